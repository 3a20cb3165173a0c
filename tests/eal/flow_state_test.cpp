// Per-flow state objects and end-of-flow notices (ClassifierConfig::
// flow_state_pool), on real mbufs and rings: every flow carries one object
// in every packet, even across a migration; its worker gets exactly one
// notice, after the flow's last packet, with the reason it ended; a full
// ring never loses a notice; every object goes back to the pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "millipede/flow/classifier.h"
#include "millipede/net/bytes.h"
#include "test_packets.h"

using namespace millipede;
using namespace millipede::flow;

namespace {

constexpr uint64_t kSec = 1'000'000'000ull;

using test::Tuple;

rte_mempool *mbufs() {
    static rte_mempool *mp = rte_pktmbuf_pool_create("fs_test_mbufs", 16383, 256, 0, 256, SOCKET_ID_ANY);
    return mp;
}

// A frame of the test's flow `flow_id` (test_packets.h).
rte_mbuf *packet(const Tuple &t, uint32_t flow_id, uint8_t tcp_flags = net::kTcpAck, uint32_t tcp_seq = 1) {
    return test::build_packet(mbufs(), t, tcp_flags, tcp_seq, flow_id);
}

uint32_t flow_id_of(rte_mbuf *m) { return test::payload_u32(m, 8); }

// What the workers saw, in the order each saw it.
struct Event {
    bool notice;
    unsigned worker;
    void *state;
    uint32_t flow_id; // packets only
    FlowEndReason why; // notices only
};

struct Rig {
    std::unique_ptr<Classifier> c;
    std::vector<std::unique_ptr<WorkerPort>> ws;
    std::vector<Event> events;
    rte_mempool *states;

    Rig(ClassifierConfig cfg, const char *pool_name, unsigned objects) {
        states = rte_mempool_create(pool_name, objects, 64, 0, 0, nullptr, nullptr, nullptr, nullptr, SOCKET_ID_ANY, 0);
        EXPECT_NE(states, nullptr);
        cfg.flow_state_pool = states;
        std::string err;
        c = Classifier::create(cfg, nullptr, err);
        EXPECT_TRUE(c) << err;
        for (unsigned w = 0; c && w < cfg.workers; ++w) ws.push_back(std::make_unique<WorkerPort>(*c, w));
    }
    ~Rig() {
        c.reset();
        rte_mempool_free(states);
    }
    void send(std::vector<rte_mbuf *> &pkts, uint64_t now) {
        for (size_t i = 0; i < pkts.size(); i += kBurst)
            c->process_burst(pkts.data() + i, static_cast<unsigned>(std::min<size_t>(kBurst, pkts.size() - i)), now);
        c->flush_staged();
        pkts.clear();
    }
    unsigned poll_all() {
        unsigned n = 0;
        for (auto &w : ws) {
            unsigned id = w->id();
            n += w->poll(
                [&](rte_mbuf *m, const FlowMeta &) {
                    events.push_back({false, id, flow_state(m), flow_id_of(m), FlowEndReason::Count_});
                    rte_pktmbuf_free(m);
                },
                [&](void *s, FlowEndReason why) { events.push_back({true, id, s, 0, why}); });
        }
        return n;
    }
    void drain() {
        while (poll_all()) {
        }
    }
    // End of input as the application does it: flush, then hand over while
    // the workers drain, until nothing waits.
    void finish() {
        c->flush();
        for (int i = 0; i < 100000 && !c->all_handed_over(); ++i) {
            c->flush_staged();
            poll_all();
        }
        EXPECT_TRUE(c->all_handed_over());
        drain();
    }
    // Checks the invariants every run must hold; returns flow id -> notice.
    std::map<uint32_t, Event> check() {
        std::map<uint32_t, void *> state_of;
        std::map<void *, uint32_t> flow_of;
        std::map<void *, size_t> last_packet, notice_at;
        std::map<uint32_t, Event> notices;
        for (size_t i = 0; i < events.size(); ++i) {
            const Event &e = events[i];
            if (!e.notice) {
                EXPECT_NE(e.state, nullptr);
                auto [it, fresh] = state_of.try_emplace(e.flow_id, e.state);
                EXPECT_EQ(it->second, e.state) << "flow " << e.flow_id << " changed state object";
                auto [jt, fresh2] = flow_of.try_emplace(e.state, e.flow_id);
                EXPECT_EQ(jt->second, e.flow_id) << "two flows share a state object";
                EXPECT_EQ(notice_at.count(e.state), 0u) << "a packet of flow " << e.flow_id << " after its notice";
                last_packet[e.state] = i;
            } else {
                EXPECT_EQ(notice_at.count(e.state), 0u) << "two notices for one object";
                notice_at[e.state] = i;
                if (flow_of.count(e.state)) {
                    notices[flow_of[e.state]] = e;
                    // The notice reaches the worker that had the last packet.
                    EXPECT_EQ(events[last_packet[e.state]].worker, e.worker);
                }
            }
        }
        for (auto &[flow, s] : state_of) EXPECT_EQ(notice_at.count(s), 1u) << "flow " << flow << " got no notice";
        return notices;
    }
    void give_back() {
        for (auto &e : events)
            if (e.notice) rte_mempool_put(states, e.state);
        EXPECT_EQ(rte_mempool_avail_count(states), states->size) << "a state object leaked";
    }
};

ClassifierConfig config(unsigned workers, unsigned ring, const char *name) {
    ClassifierConfig c;
    c.workers = workers;
    c.ring_size = ring;
    c.policy = Policy::Pending;
    c.table.capacity = 1 << 10;
    c.table.name = name;
    c.table.closed_linger_ns = kSec;
    c.table.idle_timeout_ns = {10 * kSec, 2 * kSec, 2 * kSec};
    c.check_order = true; // the workers' order and pinning counters are asserted
    return c;
}

TEST(FlowState, EachFlowGetsOneNoticeAfterItsLastPacketWithItsReason) {
    unsigned before = rte_mempool_avail_count(mbufs());
    Rig r(config(2, 4096, "fs_reasons"), "fs_states_a", 255);
    ASSERT_TRUE(r.c);
    Tuple f1{1, 2, 1000, 80, net::kProtoTCP}, f2{3, 4, 1001, 80, net::kProtoTCP}, f3{5, 6, 53, 53, net::kProtoUDP},
        f4{7, 8, 1002, 80, net::kProtoTCP}, f5{9, 10, 123, 123, net::kProtoUDP};
    std::vector<rte_mbuf *> pk = {
        packet(f1, 1, net::kTcpSyn, 1), packet(f1.reversed(), 1, net::kTcpSyn | net::kTcpAck, 7),
        packet(f1, 1), packet(f1, 1, net::kTcpFin | net::kTcpAck), packet(f1.reversed(), 1, net::kTcpFin | net::kTcpAck),
        packet(f1, 1), // the last ACK: joins the closed flow while it lingers
        packet(f2, 2, net::kTcpSyn, 1), packet(f2.reversed(), 2, net::kTcpRst),
        packet(f3, 3), packet(f3.reversed(), 3), packet(f3, 3),
        packet(f4, 4, net::kTcpSyn, 100), packet(f4, 4),
        packet(f4, 6, net::kTcpSyn, 999), packet(f4.reversed(), 6, net::kTcpSyn | net::kTcpAck, 5), // a new ISN: a new flow
    };
    r.send(pk, 1 * kSec);
    r.poll_all(); // part of it: notices must still follow the packets
    pk.push_back(packet(f5, 5));
    r.send(pk, 2500'000'000ull);
    r.c->expire(3500'000'000ull); // f1 fin, f2 rst (linger 1 s), f3 idle (2 s); f5 and f4's second flow live on
    r.finish();
    auto notices = r.check();
    ASSERT_EQ(notices.size(), 6u);
    EXPECT_EQ(notices[1].why, FlowEndReason::Fin);
    EXPECT_EQ(notices[2].why, FlowEndReason::Rst);
    EXPECT_EQ(notices[3].why, FlowEndReason::Idle);
    EXPECT_EQ(notices[4].why, FlowEndReason::Reused);
    EXPECT_EQ(notices[5].why, FlowEndReason::EndOfInput);
    EXPECT_EQ(notices[6].why, FlowEndReason::EndOfInput);
    EXPECT_EQ(r.c->stats().notices, 6u);
    EXPECT_EQ(r.c->stats().flow_states_exhausted, 0u);
    r.give_back();
    r.c.reset();
    EXPECT_EQ(rte_mempool_avail_count(mbufs()), before) << "an mbuf leaked";
}

TEST(FlowState, AFullRingDelaysNoticesButNeverLosesOne) {
    unsigned before = rte_mempool_avail_count(mbufs());
    Rig r(config(1, 32, "fs_full"), "fs_states_b", 1023);
    ASSERT_TRUE(r.c);
    std::vector<rte_mbuf *> pk;
    for (uint32_t f = 0; f < 300; ++f) pk.push_back(packet({100 + f, 1, 7, 7, net::kProtoUDP}, f));
    r.send(pk, kSec); // nobody polls: most packets find the ring full
    EXPECT_GT(r.c->ring_drops(0), 0u);
    r.c->flush(); // 300 notices for a 32-entry ring that is already full
    EXPECT_FALSE(r.c->all_handed_over());
    EXPECT_GT(r.c->stats().notices_deferred, 0u);
    r.finish();
    unsigned notices = 0;
    for (auto &e : r.events) notices += e.notice;
    EXPECT_EQ(notices, 300u) << "every flow, even one whose packets were all dropped, gets its notice";
    r.check();
    r.give_back();
    r.c.reset();
    EXPECT_EQ(rte_mempool_avail_count(mbufs()), before) << "an mbuf leaked";
}

TEST(FlowState, AnEmptyPoolIsCountedAndThoseFlowsCarryNoState) {
    Rig r(config(1, 4096, "fs_empty"), "fs_states_c", 15);
    ASSERT_TRUE(r.c);
    std::vector<rte_mbuf *> pk;
    for (uint32_t f = 0; f < 40; ++f) pk.push_back(packet({300 + f, 1, 7, 7, net::kProtoUDP}, f));
    r.send(pk, kSec);
    r.finish();
    unsigned with = 0, without = 0, notices = 0;
    for (auto &e : r.events) {
        if (e.notice) ++notices;
        else (e.state ? with : without) += 1;
    }
    // Objects may sit in the classifier lcore's mempool cache: at most 15 flows get one.
    EXPECT_LE(with, 15u);
    EXPECT_EQ(with + without, 40u);
    EXPECT_EQ(r.c->stats().flow_states_exhausted, without);
    EXPECT_EQ(notices, with);
    for (auto &e : r.events)
        if (e.notice) rte_mempool_put(r.states, e.state);
    EXPECT_EQ(rte_mempool_avail_count(r.states), 15u);
}

TEST(FlowState, StateTravelsWithAMigratingFlow) {
    ClassifierConfig cfg = config(2, 4096, "fs_mig");
    cfg.migrate = true;
    cfg.tuning.migrate_margin = 4;
    Rig r(cfg, "fs_states_d", 255);
    ASSERT_TRUE(r.c);
    Tuple m1{1, 1, 1, 1, net::kProtoUDP}, e{2, 2, 2, 2, net::kProtoUDP}, m2{3, 3, 3, 3, net::kProtoUDP};
    std::vector<rte_mbuf *> pk;
    for (int i = 0; i < 10; ++i) pk.push_back(packet(m1, 1));
    r.send(pk, kSec);                // m1 and its backlog on one worker
    pk.push_back(packet(e, 2));
    r.send(pk, kSec);                // the elephant on the other (fewer pending)
    for (int i = 0; i < 20; ++i) pk.push_back(packet(m2, 3));
    r.send(pk, kSec);                // m2 joins the elephant's worker (10 vs 1 pending)
    r.drain();
    for (int i = 0; i < 20; ++i) pk.push_back(packet(m2, 3));
    r.send(pk, kSec);                // the elephant's worker now has a backlog of 20...
    for (int i = 0; i < 5; ++i) pk.push_back(packet(e, 2));
    r.send(pk, kSec);                // ...and the idle elephant moves
    r.finish();
    EXPECT_GE(r.c->stats().migrations, 1u);
    std::set<unsigned> elephant_workers;
    for (auto &ev : r.events)
        if (!ev.notice && ev.flow_id == 2) elephant_workers.insert(ev.worker);
    EXPECT_EQ(elephant_workers.size(), 2u) << "the elephant should have run on both workers";
    auto notices = r.check(); // one state object for the elephant, its notice on its last worker
    EXPECT_EQ(notices.size(), 3u);
    r.give_back();
}

} // namespace

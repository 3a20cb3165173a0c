// The classifier stage on real mbufs, rings and lcores (EAL, --no-huge).
// Order and pinning are checked twice: by the workers' OrderChecker (the
// counters the product reports) and independently here, from a per-flow
// sequence number the test writes into each packet's payload.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <vector>

#include <rte_hash.h>
#include <rte_launch.h>
#include <rte_malloc.h>
#include <rte_lcore.h>
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

rte_mempool *test_pool() {
    static rte_mempool *mp = rte_pktmbuf_pool_create("cls_test_pool", 65535, 256, 0, 512, SOCKET_ID_ANY);
    return mp;
}

rte_mbuf *make_packet(const Tuple &t, uint8_t tcp_flags = net::kTcpAck, uint32_t tcp_seq = 1, uint32_t flow_id = 0,
                      uint32_t app_seq = 0) {
    return test::build_packet(test_pool(), t, tcp_flags, tcp_seq, flow_id, app_seq);
}

// What the workers saw, independently of the product's own checker.
struct Observed {
    std::map<uint32_t, std::set<unsigned>> workers_of_flow_epoch; // (flow_id<<16|epoch) -> workers
    std::map<uint32_t, uint32_t> last_app_seq;
    uint64_t inversions = 0;
    uint64_t packets = 0;
};

using test::payload_u32;

void observe(Observed &o, unsigned worker, rte_mbuf *m, const FlowMeta &meta) {
    uint32_t flow = payload_u32(m, 8), seq = payload_u32(m, 4);
    o.workers_of_flow_epoch[(flow << 16) | meta.epoch].insert(worker);
    auto [it, fresh] = o.last_app_seq.try_emplace(flow, seq);
    if (!fresh) {
        if (seq <= it->second) ++o.inversions;
        it->second = seq;
    }
    ++o.packets;
    rte_pktmbuf_free(m);
}

struct Collector : FlowEndSink {
    std::vector<std::pair<FlowKey, FlowEndReason>> ended;
    std::vector<FlowEntry> entries;
    void on_flow_end(const FlowKey &k, const FlowEntry &e, FlowEndReason why) override {
        ended.emplace_back(k, why);
        entries.push_back(e);
    }
    unsigned count(FlowEndReason r) const {
        unsigned n = 0;
        for (auto &e : ended) n += e.second == r;
        return n;
    }
};

ClassifierConfig small_config(unsigned workers, Policy policy, bool migrate, const char *name) {
    ClassifierConfig c;
    c.workers = workers;
    c.policy = policy;
    c.migrate = migrate;
    c.ring_size = 4096;
    c.table.capacity = 1 << 14;
    c.table.name = name;
    c.check_order = true; // the workers' order and pinning counters are asserted
    return c;
}

void send(Classifier &c, std::vector<rte_mbuf *> &pkts, uint64_t now) {
    for (size_t i = 0; i < pkts.size(); i += kBurst) {
        unsigned n = static_cast<unsigned>(std::min<size_t>(kBurst, pkts.size() - i));
        c.process_burst(pkts.data() + i, n, now);
    }
    c.flush_staged();
    pkts.clear();
}

unsigned drain(std::vector<std::unique_ptr<WorkerPort>> &ws, Observed &o) {
    unsigned total = 0;
    for (;;) {
        unsigned n = 0;
        for (auto &w : ws) n += w->poll([&](rte_mbuf *m, const FlowMeta &meta) { observe(o, w->id(), m, meta); });
        if (!n) return total;
        total += n;
    }
}

WorkerCounters sum(const std::vector<std::unique_ptr<WorkerPort>> &ws) {
    WorkerCounters s{};
    for (auto &w : ws) s += w->counters;
    return s;
}

void expect_no_leak(unsigned before) {
    EXPECT_EQ(rte_mempool_avail_count(test_pool()), before) << "every mbuf must come back to the pool";
}

} // namespace

class PolicyTest : public testing::TestWithParam<std::tuple<Policy, bool>> {};

// Many bidirectional flows, interleaved, with the workers draining at
// random moments so backlogs differ and migrations happen.
TEST_P(PolicyTest, FlowsStayPinnedAndInOrder) {
    auto [policy, migrate] = GetParam();
    unsigned before = rte_mempool_avail_count(test_pool());
    std::string name = std::string("pol_") + policy_name(policy) + (migrate ? "_m" : "");
    Collector sink;
    std::string err;
    auto c = Classifier::create(small_config(4, policy, migrate, name.c_str()), &sink, err);
    ASSERT_TRUE(c) << err;
    std::vector<std::unique_ptr<WorkerPort>> ws;
    for (unsigned w = 0; w < 4; ++w) ws.push_back(std::make_unique<WorkerPort>(*c, w));

    std::mt19937 rng(42);
    std::vector<Tuple> flows;
    for (uint32_t f = 0; f < 300; ++f)
        flows.push_back({0x0a000000u + f, 0x0a100000u + (f % 7), static_cast<uint16_t>(1024 + f), 80,
                         (f % 3) ? net::kProtoTCP : net::kProtoUDP});
    std::vector<uint32_t> seq(flows.size(), 0);
    std::set<uint32_t> flows_sent;
    Observed o;
    std::vector<rte_mbuf *> pending;
    uint64_t sent = 0;
    for (int i = 0; i < 20000; ++i) {
        // Zipf-ish: a few elephants, many mice.
        uint32_t f = std::min<uint32_t>(static_cast<uint32_t>(std::exponential_distribution<>(0.05)(rng)), 299);
        const Tuple &t = (rng() & 1) ? flows[f] : flows[f].reversed();
        rte_mbuf *m = make_packet(t, net::kTcpAck, 1, f, ++seq[f]);
        ASSERT_NE(m, nullptr);
        flows_sent.insert(f);
        pending.push_back(m);
        ++sent;
        if (pending.size() == kBurst) send(*c, pending, 1);
        // Drain one random worker now and then: uneven backlogs.
        if ((rng() % 16) == 0) {
            auto &w = ws[rng() % 4];
            w->poll([&](rte_mbuf *mb, const FlowMeta &meta) { observe(o, w->id(), mb, meta); });
        }
    }
    send(*c, pending, 1);
    drain(ws, o);

    EXPECT_EQ(o.packets + c->stats().drops[static_cast<unsigned>(ClassifierDrop::RingFull)], sent);
    EXPECT_EQ(o.inversions, 0u);
    for (auto &[fe, workers] : o.workers_of_flow_epoch)
        ASSERT_EQ(workers.size(), 1u) << "flow " << (fe >> 16) << " epoch " << (fe & 0xffff) << " on several workers";
    WorkerCounters s = sum(ws);
    EXPECT_EQ(s.order_inversions, 0u);
    EXPECT_EQ(s.split_flows, 0u);
    EXPECT_EQ(s.unrecorded_moves, 0u);
    if (!migrate || policy == Policy::Hash) {
        EXPECT_EQ(c->stats().migrations, 0u);
    }
    if (policy != Policy::Hash) {
        // Least-loaded assignment must use every worker.
        for (unsigned w = 0; w < 4; ++w) EXPECT_GT(c->dispatched(w), 0u) << "worker " << w;
    }
    c->flush();
    EXPECT_EQ(c->table().active(), 0u);
    EXPECT_EQ(sink.ended.size(), flows_sent.size());
    c.reset();
    expect_no_leak(before);
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PolicyTest,
                         testing::Combine(testing::Values(Policy::Hash, Policy::Pending, Policy::Busy),
                                          testing::Bool()),
                         [](const auto &info) {
                             return std::string(policy_name(std::get<0>(info.param))) +
                                    (std::get<1>(info.param) ? "_migrate" : "");
                         });

TEST(Classifier, MigrationHappensOnlyWhenNothingIsInFlight) {
    unsigned before = rte_mempool_avail_count(test_pool());
    Collector sink;
    std::string err;
    ClassifierConfig cfg = small_config(2, Policy::Pending, true, "mig");
    cfg.tuning.migrate_margin = 4;
    auto c = Classifier::create(cfg, &sink, err);
    ASSERT_TRUE(c) << err;
    std::vector<std::unique_ptr<WorkerPort>> ws;
    for (unsigned w = 0; w < 2; ++w) ws.push_back(std::make_unique<WorkerPort>(*c, w));
    Tuple elephant{1, 2, 3, 4, net::kProtoTCP};
    Observed o;
    std::vector<rte_mbuf *> pk;
    uint32_t seq = 0;
    for (int i = 0; i < 64; ++i) pk.push_back(make_packet(elephant, net::kTcpAck, 1, 7, ++seq));
    send(*c, pk, 1);
    unsigned first = c->dispatched(0) ? 0 : 1;
    // Load the elephant's worker with other flows while the elephant has
    // packets in flight: it must not move.
    for (uint32_t f = 0; f < 40; ++f) {
        // The pending policy puts new flows on the idle worker: force load
        // on `first` by re-sending the elephant, which is pinned there.
        pk.push_back(make_packet(elephant, net::kTcpAck, 1, 7, ++seq));
    }
    send(*c, pk, 1);
    EXPECT_EQ(c->stats().migrations, 0u) << "in flight: no migration";
    // Drain everything, then load `first` with a mouse backlog... the
    // elephant, now idle, moves to the less loaded worker.
    drain(ws, o);
    Tuple mouse{9, 9, 9, 9, net::kProtoUDP};
    pk.push_back(make_packet(mouse, 0, 1, 8, 1));
    send(*c, pk, 1); // mouse goes to some worker; give `first` a backlog:
    for (int i = 0; i < 20; ++i) pk.push_back(make_packet(elephant, net::kTcpAck, 1, 7, ++seq));
    send(*c, pk, 1);
    drain(ws, o);
    EXPECT_EQ(o.inversions, 0u);
    WorkerCounters s = sum(ws);
    EXPECT_EQ(s.order_inversions + s.split_flows + s.unrecorded_moves, 0u);
    for (auto &[fe, workers] : o.workers_of_flow_epoch) EXPECT_EQ(workers.size(), 1u);
    (void)first;
    c.reset();
    expect_no_leak(before);
}

// The classifier and two worker lcores run concurrently.
TEST(Classifier, ConcurrentWorkersOnTheirOwnLcores) {
    std::vector<unsigned> lcores;
    unsigned l;
    RTE_LCORE_FOREACH_WORKER(l) lcores.push_back(l);
    ASSERT_GE(lcores.size(), 2u) << "the EAL test main maps three lcores";
    unsigned before = rte_mempool_avail_count(test_pool());
    Collector sink;
    std::string err;
    auto c = Classifier::create(small_config(4, Policy::Busy, true, "conc"), &sink, err);
    ASSERT_TRUE(c) << err;
    struct Lane {
        Classifier *c;
        std::vector<std::unique_ptr<WorkerPort>> ws;
        Observed o;
        std::atomic<bool> *stop;
    };
    std::atomic<bool> stop{false};
    Lane lanes[2];
    for (unsigned i = 0; i < 2; ++i) {
        lanes[i].c = c.get();
        lanes[i].stop = &stop;
        for (unsigned w = i; w < 4; w += 2) lanes[i].ws.push_back(std::make_unique<WorkerPort>(*c, w));
    }
    auto run = [](void *arg) -> int {
        auto &lane = *static_cast<Lane *>(arg);
        uint64_t deadline = rte_get_tsc_cycles() + 60 * rte_get_tsc_hz();
        while (rte_get_tsc_cycles() < deadline) {
            unsigned n = drain(lane.ws, lane.o);
            if (!n && lane.stop->load()) {
                if (drain(lane.ws, lane.o) == 0) break;
            }
        }
        return 0;
    };
    rte_eal_remote_launch(run, &lanes[0], lcores[0]);
    rte_eal_remote_launch(run, &lanes[1], lcores[1]);
    std::mt19937 rng(5);
    std::vector<uint32_t> seq(2000, 0);
    std::vector<rte_mbuf *> pk;
    uint64_t sent = 0;
    for (int i = 0; i < 200000; ++i) {
        uint32_t f = std::min<uint32_t>(static_cast<uint32_t>(std::exponential_distribution<>(0.01)(rng)), 1999);
        Tuple t{0x0b000000u + f, 0x0c000000u, static_cast<uint16_t>(f), 443, net::kProtoTCP};
        rte_mbuf *m = make_packet((rng() & 1) ? t : t.reversed(), net::kTcpAck, 1, f, ++seq[f]);
        if (!m) {
            // Pool exhausted while workers lag: hand over what we have.
            send(*c, pk, 1);
            rte_pause();
            continue;
        }
        pk.push_back(m);
        ++sent;
        if (pk.size() == kBurst) send(*c, pk, 1);
    }
    send(*c, pk, 1);
    stop.store(true);
    rte_eal_mp_wait_lcore();
    uint64_t seen = lanes[0].o.packets + lanes[1].o.packets;
    EXPECT_EQ(seen + c->stats().drops[static_cast<unsigned>(ClassifierDrop::RingFull)], sent);
    EXPECT_EQ(lanes[0].o.inversions + lanes[1].o.inversions, 0u);
    uint64_t inv = 0, split = 0, moves = 0;
    for (auto &lane : lanes)
        for (auto &w : lane.ws) {
            inv += w->counters.order_inversions;
            split += w->counters.split_flows;
            moves += w->counters.unrecorded_moves;
        }
    EXPECT_EQ(inv, 0u);
    EXPECT_EQ(split, 0u);
    EXPECT_EQ(moves, 0u);
    // A flow (in one epoch) is on one worker, across both lanes.
    std::map<uint32_t, std::set<unsigned>> all;
    for (auto &lane : lanes)
        for (auto &[fe, w] : lane.o.workers_of_flow_epoch) all[fe].insert(w.begin(), w.end());
    for (auto &[fe, w] : all) ASSERT_EQ(w.size(), 1u) << "flow " << (fe >> 16);
    c.reset();
    expect_no_leak(before);
}

TEST(Classifier, TcpFlowsEndOnFinAndRstAndANewSynStartsANewFlow) {
    Collector sink;
    std::string err;
    ClassifierConfig cfg = small_config(1, Policy::Busy, false, "fin");
    cfg.table.closed_linger_ns = 2 * kSec;
    auto c = Classifier::create(cfg, &sink, err);
    ASSERT_TRUE(c) << err;
    WorkerPort w(*c, 0);
    Tuple t{10, 20, 1000, 80, net::kProtoTCP};
    std::vector<rte_mbuf *> pk = {
        make_packet(t, net::kTcpSyn, 100),
        make_packet(t.reversed(), net::kTcpSyn | net::kTcpAck, 500),
        make_packet(t, net::kTcpAck, 101),
        make_packet(t, net::kTcpFin | net::kTcpAck, 101),
        make_packet(t.reversed(), net::kTcpFin | net::kTcpAck, 501),
    };
    send(*c, pk, 1 * kSec);
    pk.push_back(make_packet(t, net::kTcpAck, 102)); // the last ACK joins the closed flow
    send(*c, pk, 1 * kSec + 1000);
    EXPECT_EQ(c->table().stats().created[0], 1u);
    EXPECT_TRUE(sink.ended.empty()) << "a closed flow lingers";
    c->expire(2 * kSec);
    EXPECT_TRUE(sink.ended.empty());
    c->expire(4 * kSec);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].second, FlowEndReason::Fin);
    EXPECT_EQ(sink.entries[0].packets[kFromLo] + sink.entries[0].packets[kFromHi], 6u);

    // RST closes; a new SYN on the same 5-tuple while it lingers is a new flow.
    pk = {make_packet(t, net::kTcpSyn, 900), make_packet(t.reversed(), net::kTcpRst | net::kTcpAck, 0)};
    send(*c, pk, 5 * kSec);
    pk = {make_packet(t, net::kTcpSyn, 1900)};
    send(*c, pk, 5 * kSec + 10);
    EXPECT_EQ(sink.count(FlowEndReason::Rst), 1u);
    EXPECT_EQ(c->table().stats().created[0], 3u);
    // A SYN with another ISN on an open flow: the tuple was reused.
    pk = {make_packet(t, net::kTcpSyn, 1900), make_packet(t, net::kTcpSyn, 7777)};
    send(*c, pk, 5 * kSec + 20);
    EXPECT_EQ(sink.count(FlowEndReason::Reused), 1u) << "a retransmitted SYN (same ISN) is not a new flow";
    c->flush();
    EXPECT_EQ(sink.count(FlowEndReason::EndOfInput), 1u);
    Observed o;
    std::vector<std::unique_ptr<WorkerPort>> ws;
    while (w.poll([](rte_mbuf *m, const FlowMeta &) { rte_pktmbuf_free(m); })) {
    }
    EXPECT_EQ(w.counters.order_inversions + w.counters.unrecorded_moves + w.counters.split_flows, 0u);
}

TEST(Classifier, IdleTimeoutsPerClass) {
    Collector sink;
    std::string err;
    ClassifierConfig cfg = small_config(2, Policy::Hash, false, "idle");
    cfg.table.idle_timeout_ns = {30 * kSec, 10 * kSec, 5 * kSec};
    auto c = Classifier::create(cfg, &sink, err);
    ASSERT_TRUE(c) << err;
    std::vector<rte_mbuf *> pk = {make_packet({1, 2, 3, 4, net::kProtoTCP}),
                                  make_packet({1, 2, 3, 4, net::kProtoUDP}),
                                  make_packet({1, 2, 0, 0, net::kProtoICMP})};
    send(*c, pk, 0);
    c->expire(6 * kSec);
    ASSERT_EQ(sink.ended.size(), 1u);
    EXPECT_EQ(sink.ended[0].first.proto, net::kProtoICMP);
    c->expire(11 * kSec);
    ASSERT_EQ(sink.ended.size(), 2u);
    EXPECT_EQ(sink.ended[1].first.proto, net::kProtoUDP);
    // Activity renews a flow.
    pk = {make_packet({1, 2, 3, 4, net::kProtoTCP}), make_packet({2, 1, 4, 3, net::kProtoTCP})};
    send(*c, pk, 25 * kSec);
    c->expire(31 * kSec);
    EXPECT_EQ(sink.ended.size(), 2u) << "the TCP flow was seen at 25 s";
    c->expire(56 * kSec);
    ASSERT_EQ(sink.ended.size(), 3u);
    EXPECT_EQ(sink.count(FlowEndReason::Idle), 3u);
    WorkerPort w0(*c, 0), w1(*c, 1);
    for (auto *w : {&w0, &w1})
        while (w->poll([](rte_mbuf *m, const FlowMeta &) { rte_pktmbuf_free(m); })) {
        }
}

TEST(Classifier, AFullTableEvictsTheOldestFlow) {
    Collector sink;
    std::string err;
    ClassifierConfig cfg = small_config(1, Policy::Busy, false, "evict");
    cfg.table.capacity = 64;
    auto c = Classifier::create(cfg, &sink, err);
    ASSERT_TRUE(c) << err;
    WorkerPort w(*c, 0);
    uint32_t slots = c->table().slots();
    std::vector<rte_mbuf *> pk;
    for (uint32_t f = 0; f < slots + 10; ++f) {
        pk.push_back(make_packet({100 + f, 1, 5, 6, net::kProtoUDP}));
        send(*c, pk, (f + 1) * 1000);
        while (w.poll([](rte_mbuf *m, const FlowMeta &) { rte_pktmbuf_free(m); })) {
        }
    }
    ASSERT_GE(sink.count(FlowEndReason::Evicted), 10u);
    // The oldest go first: the first evicted flow is the first one created.
    uint8_t first_src[4] = {0, 0, 0, 100};
    EXPECT_EQ(std::memcmp(sink.ended[0].first.addr_lo, first_src, 4) == 0 ||
                  std::memcmp(sink.ended[0].first.addr_hi, first_src, 4) == 0,
              true);
    EXPECT_EQ(c->stats().drops[static_cast<unsigned>(ClassifierDrop::TableFull)], 0u);
}

size_t eal_heap_allocated() {
    size_t total = 0;
    for (int s = 0; s < RTE_MAX_NUMA_NODES; ++s) {
        rte_malloc_socket_stats st{};
        if (rte_malloc_get_socket_stats(s, &st) == 0) total += st.heap_allocsz_bytes;
    }
    return total;
}

// A classifier destroyed normally gives its EAL memory back; one told to
// leave it to rte_eal_cleanup() frees none of it (its table stays
// registered), which is what spares tap's exit the zeroing.
TEST(Classifier, LeavingMemoryToEalCleanupFreesNothingAndOtherwiseAllIsFreed) {
    Collector sink;
    std::string err;
    // The first classifier of a process also registers EAL objects that
    // outlive it (its mbuf dynamic field): made once before measuring.
    ASSERT_TRUE(Classifier::create(small_config(2, Policy::Busy, true, "warm_t"), &sink, err)) << err;
    const size_t before = eal_heap_allocated();
    size_t table_bytes = 0;
    {
        auto c = Classifier::create(small_config(2, Policy::Busy, true, "freed_t"), &sink, err);
        ASSERT_TRUE(c) << err;
        table_bytes = eal_heap_allocated() - before;
        ASSERT_GT(table_bytes, size_t{1} << 20);
    }
    EXPECT_EQ(eal_heap_allocated(), before);
    EXPECT_EQ(rte_hash_find_existing("freed_t"), nullptr);
    {
        auto c = Classifier::create(small_config(2, Policy::Busy, true, "left_t"), &sink, err);
        ASSERT_TRUE(c) << err;
        c->leave_memory_to_eal_cleanup();
    }
    EXPECT_EQ(eal_heap_allocated() - before, table_bytes);
    EXPECT_NE(rte_hash_find_existing("left_t"), nullptr);
}

TEST(Classifier, AFullRingDropsAndCountsPerWorkerWithoutBlocking) {
    unsigned before = rte_mempool_avail_count(test_pool());
    Collector sink;
    std::string err;
    ClassifierConfig cfg = small_config(2, Policy::Hash, false, "ringfull");
    cfg.ring_size = 64;
    auto c = Classifier::create(cfg, &sink, err);
    ASSERT_TRUE(c) << err;
    std::vector<rte_mbuf *> pk;
    Tuple t{1, 2, 3, 4, net::kProtoTCP};
    for (int i = 0; i < 200; ++i) pk.push_back(make_packet(t));
    send(*c, pk, 1);
    unsigned w = c->dispatched(0) ? 0 : 1;
    EXPECT_EQ(c->dispatched(w), 200u);
    EXPECT_EQ(c->ring_drops(w), 200u - 63u) << "an rte_ring of 64 holds 63";
    EXPECT_EQ(c->stats().drops[static_cast<unsigned>(ClassifierDrop::RingFull)], 137u);
    WorkerPort wp(*c, w);
    while (wp.poll([](rte_mbuf *m, const FlowMeta &) { rte_pktmbuf_free(m); })) {
    }
    EXPECT_EQ(wp.counters.order_inversions, 0u) << "drops leave gaps, never inversions";
    c.reset();
    expect_no_leak(before);
}

TEST(Classifier, MalformedPacketsAreCountedByReasonAndFreed) {
    unsigned before = rte_mempool_avail_count(test_pool());
    Collector sink;
    std::string err;
    auto c = Classifier::create(small_config(1, Policy::Busy, false, "rej"), &sink, err);
    ASSERT_TRUE(c) << err;
    std::vector<rte_mbuf *> pk;
    for (unsigned cut : {10u, 20u, 40u}) {
        rte_mbuf *m = make_packet({1, 2, 3, 4, net::kProtoTCP});
        rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_data_len(m) - cut));
        pk.push_back(m);
    }
    rte_mbuf *arp = make_packet({1, 2, 3, 4, net::kProtoTCP});
    net::store_be16(rte_pktmbuf_mtod(arp, uint8_t *) + 12, net::kEtherTypeARP);
    pk.push_back(arp);
    send(*c, pk, 1);
    const auto &r = c->stats().rejects;
    EXPECT_EQ(r[static_cast<unsigned>(net::Reject::ETH_TRUNCATED)], 1u);
    EXPECT_EQ(r[static_cast<unsigned>(net::Reject::IPV4_TRUNCATED)], 1u);
    EXPECT_EQ(r[static_cast<unsigned>(net::Reject::IPV4_BAD_TOTAL_LEN)], 1u);
    EXPECT_EQ(r[static_cast<unsigned>(net::Reject::NOT_IP)], 1u);
    EXPECT_EQ(c->table().active(), 0u);
    c.reset();
    expect_no_leak(before);
}

// The order checker is a test instrument: without check_order there is
// none, and the workers still deliver every packet in order.
TEST(Classifier, TheOrderCheckerIsOffUnlessAskedFor) {
    Collector sink;
    std::string err;
    ClassifierConfig cfg = small_config(1, Policy::Busy, false, "nochk");
    cfg.check_order = false;
    auto c = Classifier::create(cfg, &sink, err);
    ASSERT_TRUE(c) << err;
    EXPECT_EQ(c->checker(), nullptr);
    EXPECT_FALSE(c->checks_order());
    EXPECT_FALSE(ClassifierConfig{}.check_order) << "off by default";
    std::vector<rte_mbuf *> pk;
    Tuple t{7, 8, 9, 10, net::kProtoUDP};
    for (uint32_t i = 1; i <= 100; ++i) pk.push_back(make_packet(i & 1 ? t : t.reversed(), 0, 0, 1, i));
    send(*c, pk, 1);
    Observed o;
    std::vector<std::unique_ptr<WorkerPort>> ws;
    ws.push_back(std::make_unique<WorkerPort>(*c, 0));
    drain(ws, o);
    EXPECT_EQ(o.packets, 100u);
    EXPECT_EQ(o.inversions, 0u);
    EXPECT_EQ(ws[0]->counters.packets, 100u);
    auto on = small_config(1, Policy::Busy, false, "yeschk");
    auto c2 = Classifier::create(on, &sink, err);
    ASSERT_TRUE(c2) << err;
    EXPECT_NE(c2->checker(), nullptr);
}

// The checker must be able to fail: feed it violations by hand.
TEST(OrderChecker, CountsInversionsSplitsAndUnrecordedMoves) {
    OrderChecker chk(16, SOCKET_ID_ANY);
    WorkerCounters a{}, b{};
    chk.check(0, {1, 10, 1, 0, kFromLo, 0}, a);
    chk.check(0, {1, 10, 3, 0, kFromLo, 0}, a);
    chk.check(0, {1, 10, 2, 0, kFromLo, 0}, a); // went backwards
    EXPECT_EQ(a.order_inversions, 1u);
    chk.check(1, {1, 10, 4, 0, kFromHi, 0}, b); // other direction, other worker, same epoch
    EXPECT_EQ(b.unrecorded_moves, 1u);
    EXPECT_EQ(b.split_flows, 1u);
    // A recorded migration (epoch 1) is fine.
    WorkerCounters c{};
    chk.check(2, {2, 11, 1, 0, kFromLo, 0}, c);
    chk.check(3, {2, 11, 2, 1, kFromLo, 0}, c);
    chk.check(3, {2, 11, 3, 1, kFromHi, 0}, c);
    EXPECT_EQ(c.order_inversions + c.unrecorded_moves + c.split_flows, 0u);
    // A slot reused by a newer flow resets; the older flow's stragglers are stale.
    chk.check(0, {2, 12, 1, 0, kFromLo, 0}, c);
    chk.check(3, {2, 11, 4, 1, kFromLo, 0}, c);
    EXPECT_EQ(c.stale_packets, 1u);
    EXPECT_EQ(c.order_inversions, 0u);
}

// A new flow that evicts the oldest flow while a later packet of that same
// burst belongs to the evicted flow: the later packet's slot from the bulk
// lookup is stale and must not be used for another flow's key.
TEST(Classifier, EvictionInsideABurstNeverMixesUpFlows) {
    Collector sink;
    std::string err;
    ClassifierConfig cfg = small_config(1, Policy::Busy, false, "evburst");
    cfg.table.capacity = 64;
    auto c = Classifier::create(cfg, &sink, err);
    ASSERT_TRUE(c) << err;
    WorkerPort w(*c, 0);
    auto drain_one = [&] { while (w.poll([](rte_mbuf *m, const FlowMeta &) { rte_pktmbuf_free(m); })) {} };
    // Fill the table exactly: one packet per flow, oldest first.
    std::vector<rte_mbuf *> pk;
    // Fill until the table is full (the first eviction), oldest first.
    uint32_t f = 0;
    auto evicted = [&] { return c->table().stats().ended[static_cast<unsigned>(FlowEndReason::Evicted)]; };
    for (; evicted() == 0 && f < 100000; ++f) {
        pk.push_back(make_packet({1000 + f, 1, 5, 6, net::kProtoUDP}));
        send(*c, pk, (f + 1) * 1000);
        drain_one();
    }
    ASSERT_EQ(evicted(), 1u);
    const uint32_t oldest = 1; // flow 0 was evicted to make room for the last one
    // One burst: several new flows (each evicts the then-oldest), then
    // packets of the flows that were oldest when the burst was looked up.
    for (uint32_t n = 0; n < 4; ++n) pk.push_back(make_packet({900000 + n, 1, 5, 6, net::kProtoUDP}));
    for (uint32_t old = oldest; old < oldest + 4; ++old) pk.push_back(make_packet({1000 + old, 1, 5, 6, net::kProtoUDP}));
    std::vector<FlowKey> sent_keys;
    for (auto *m : pk) {
        net::PacketInfo p;
        ASSERT_EQ(net::parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), p), net::Reject::NONE);
        FlowKey k;
        make_flow_key(p, k);
        sent_keys.push_back(k);
    }
    std::vector<rte_mbuf *> burst = pk;
    send(*c, pk, (f + 10) * 1000);
    // Every packet's stamped slot must hold that packet's own key.
    unsigned checked = 0;
    while (w.poll([&](rte_mbuf *m, const FlowMeta &meta) {
        auto it = std::find(burst.begin(), burst.end(), m);
        if (it != burst.end()) {
            EXPECT_TRUE(c->table().key(meta.slot) == sent_keys[size_t(it - burst.begin())])
                << "packet " << (it - burst.begin()) << " was stamped with another flow's slot";
            ++checked;
        }
        rte_pktmbuf_free(m);
    })) {
    }
    EXPECT_EQ(checked, 8u);
    EXPECT_GE(evicted(), 5u);
}

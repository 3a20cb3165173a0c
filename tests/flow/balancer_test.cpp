// Pure tests of the flow key (symmetry) and the balancer policies.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "millipede/flow/balancer.h"
#include "millipede/flow/flow_key.h"

using namespace millipede;
using namespace millipede::flow;

namespace {

net::PacketInfo v4_packet(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t proto) {
    net::PacketInfo p{};
    p.ip_version = 4;
    p.l4_proto = proto;
    for (int i = 0; i < 4; ++i) {
        p.src.bytes[i] = static_cast<uint8_t>(src >> (24 - 8 * i));
        p.dst.bytes[i] = static_cast<uint8_t>(dst >> (24 - 8 * i));
    }
    p.src_port = sport;
    p.dst_port = dport;
    return p;
}

} // namespace

TEST(FlowKey, BothDirectionsGiveTheSameKeyAndHash) {
    std::mt19937 rng(7);
    for (int i = 0; i < 10000; ++i) {
        uint32_t a = rng(), b = rng();
        uint16_t pa = static_cast<uint16_t>(rng()), pb = static_cast<uint16_t>(rng());
        uint8_t proto = (i & 1) ? net::kProtoTCP : net::kProtoUDP;
        FlowKey k1{}, k2{};
        Direction d1 = make_flow_key(v4_packet(a, b, pa, pb, proto), k1);
        Direction d2 = make_flow_key(v4_packet(b, a, pb, pa, proto), k2);
        ASSERT_EQ(k1, k2);
        ASSERT_EQ(flow_hash(k1), flow_hash(k2));
        if (a != b || pa != pb) {
            ASSERT_NE(d1, d2) << "the two directions must be told apart";
        }
    }
}

TEST(FlowKey, SameAddressesDifferentPortsOrderByPort) {
    FlowKey k1{}, k2{};
    EXPECT_EQ(make_flow_key(v4_packet(1, 1, 80, 1000, net::kProtoTCP), k1), kFromLo);
    EXPECT_EQ(make_flow_key(v4_packet(1, 1, 1000, 80, net::kProtoTCP), k2), kFromHi);
    EXPECT_EQ(k1, k2);
}

TEST(FlowKey, DistinctTuplesGiveDistinctKeys) {
    FlowKey a{}, b{}, c{};
    make_flow_key(v4_packet(1, 2, 3, 4, net::kProtoTCP), a);
    make_flow_key(v4_packet(1, 2, 3, 4, net::kProtoUDP), b);
    make_flow_key(v4_packet(1, 2, 3, 5, net::kProtoTCP), c);
    EXPECT_FALSE(a == b);
    EXPECT_FALSE(a == c);
}

// The key's endpoint order is memcmp's byte order, whatever computes it:
// random addresses sharing 0, 8, 12 or 16 leading bytes, so both 64-bit
// halves and the port tie-break decide some of the cases.
TEST(FlowKey, EndpointOrderIsMemcmpOrder) {
    std::mt19937 rng(11);
    for (int i = 0; i < 40000; ++i) {
        uint8_t a[16], b[16];
        for (int j = 0; j < 16; ++j) a[j] = b[j] = static_cast<uint8_t>(rng());
        const int shared = std::array<int, 4>{0, 8, 12, 16}[i % 4];
        for (int j = shared; j < 16; ++j) b[j] = static_cast<uint8_t>(rng());
        const bool tie = (rng() & 1) != 0;
        const int c = std::memcmp(a, b, 16);
        ASSERT_EQ(addr_before_or_equal(a, b, tie), c < 0 || (c == 0 && tie)) << "case " << i;
    }
}

TEST(FlowKey, ClassOfProtocol) {
    EXPECT_EQ(flow_class_of(net::kProtoTCP), FlowClass::Tcp);
    EXPECT_EQ(flow_class_of(net::kProtoUDP), FlowClass::Udp);
    EXPECT_EQ(flow_class_of(net::kProtoICMP), FlowClass::Other);
    EXPECT_EQ(flow_class_of(net::kProtoSCTP), FlowClass::Other);
}

TEST(Policy, ParseAndName) {
    for (auto p : {Policy::Hash, Policy::Pending, Policy::Busy}) EXPECT_EQ(parse_policy(policy_name(p)), p);
    EXPECT_FALSE(parse_policy("least"));
    EXPECT_FALSE(parse_policy(""));
}

TEST(Balancer, RejectsZeroWorkers) { EXPECT_THROW(Balancer(Policy::Busy, 0), std::invalid_argument); }

TEST(Balancer, HashIsStaticAndSpreads) {
    Balancer b(Policy::Hash, 8);
    std::array<unsigned, 8> count{};
    std::mt19937 rng(3);
    for (int i = 0; i < 80000; ++i) {
        uint32_t h = rng();
        unsigned w = b.pick_new(h);
        ASSERT_LT(w, 8u);
        ASSERT_EQ(w, b.pick_new(h)) << "hash must not depend on load";
        ++count[w];
    }
    for (unsigned c : count) EXPECT_NEAR(c, 10000, 600);
    // Load never moves a hashed flow.
    std::vector<WorkerLoad> loads(8);
    loads[0].backlog = 1000;
    b.refresh(loads);
    EXPECT_EQ(b.migration_target(0), 0u);
}

TEST(Balancer, PendingPicksFewestWaiting) {
    Balancer b(Policy::Pending, 4);
    std::vector<WorkerLoad> loads(4);
    loads[0].backlog = 10;
    loads[1].backlog = 3;
    loads[2].backlog = 7;
    loads[3].backlog = 3;
    loads[1].busy_share = 1.0f; // ignored by pending
    b.refresh(loads);
    EXPECT_EQ(b.pick_new(0), 1u);
}

TEST(Balancer, BusyAddsTheMovingAverageOfBusyCycles) {
    Balancer b(Policy::Busy, 3);
    std::vector<WorkerLoad> loads(3);
    loads[0] = {4, 0.9f};  // short queue, but busy
    loads[1] = {6, 0.1f};  // longer queue, mostly idle
    loads[2] = {40, 0.0f}; // far behind
    b.refresh(loads);
    EXPECT_EQ(b.pick_new(0), 1u);
    Balancer p(Policy::Pending, 3);
    p.refresh(loads);
    EXPECT_EQ(p.pick_new(0), 0u) << "the seed's policy only sees the queue";
}

TEST(Balancer, ABurstOfNewFlowsSpreads) {
    Balancer b(Policy::Pending, 4);
    std::vector<WorkerLoad> loads(4);
    b.refresh(loads);
    std::array<unsigned, 4> got{};
    for (int i = 0; i < 32; ++i) {
        unsigned w = b.pick_new(static_cast<uint32_t>(i));
        b.note_dispatch(w);
        ++got[w];
    }
    for (unsigned g : got) EXPECT_EQ(g, 8u);
}

namespace {
// A pending-policy balancer with this migration margin, refreshed once
// with these backlogs; `loads` stays for the next refresh.
struct Backlogged {
    std::vector<WorkerLoad> loads;
    Balancer b;
    Backlogged(float margin, std::initializer_list<uint32_t> backlogs)
        : loads(backlogs.size()), b(Policy::Pending, static_cast<unsigned>(backlogs.size()), with_margin(margin)) {
        unsigned w = 0;
        for (uint32_t x : backlogs) loads[w++].backlog = x;
        b.refresh(loads);
    }
    static BalancerTuning with_margin(float m) {
        BalancerTuning t;
        t.migrate_margin = m;
        return t;
    }
};
} // namespace

TEST(Balancer, MigrationNeedsAMargin) {
    Backlogged x(8, {5, 0});
    auto &[loads, b] = x;
    EXPECT_EQ(b.migration_target(0), 0u) << "within the margin: stay";
    loads[0].backlog = 20;
    b.refresh(loads);
    EXPECT_EQ(b.migration_target(0), 1u);
    EXPECT_EQ(b.migration_target(1), 1u) << "the best worker never moves its flows";
}

// A move goes to the worker that is least loaded when the move is decided:
// dispatches since the refresh count, though the balancer only looks for
// the least loaded when asked (Balancer::bump).
TEST(Balancer, AMoveSeesTheDispatchesSinceTheRefresh) {
    Backlogged x(8, {50, 0, 1});
    Balancer &b = x.b;
    EXPECT_EQ(b.migration_target(0), 1u);
    b.note_dispatch(1);
    b.note_dispatch(1);
    EXPECT_EQ(b.migration_target(0), 2u) << "worker 1 now has 2 waiting, worker 2 has 1";
    EXPECT_EQ(b.pick_new(0), 2u);
}

namespace {
std::vector<WorkerLoad> rates(std::initializer_list<float> r) {
    std::vector<WorkerLoad> v;
    for (float x : r) v.push_back({0, 0.0f, x});
    return v;
}
} // namespace

TEST(Balancer, HysteresisKeepsAWorkerHotUntilItHasCooled) {
    BalancerTuning t;
    t.hot_above = 0.04f; // hot above +4 % of the mean rate, cool below +1 %
    t.cool_below = 0.01f;
    Balancer b(Policy::Busy, 4, t);
    b.refresh(rates({103, 100, 100, 97}));
    EXPECT_FALSE(b.hot(0)) << "3 % above the mean: not hot yet";
    EXPECT_FALSE(b.may_migrate());
    b.refresh(rates({110, 100, 100, 90}));
    EXPECT_TRUE(b.hot(0));
    EXPECT_TRUE(b.may_migrate());
    EXPECT_EQ(b.migration_target(0), 3u) << "onto the worker with the least traffic";
    EXPECT_EQ(b.migration_target(1), 1u) << "a cool worker keeps its flows";
    b.refresh(rates({103, 100, 100, 97}));
    EXPECT_TRUE(b.hot(0)) << "3 % above: still hot, as it has not cooled below 1 %";
    b.refresh(rates({100.5f, 100, 100, 99.5f}));
    EXPECT_FALSE(b.hot(0));
    EXPECT_EQ(b.migration_target(0), 0u);
}

TEST(Balancer, ABacklogMakesAWorkerHotAtOnce) {
    Backlogged x(16, {40, 0, 10});
    auto &[loads, b] = x;
    EXPECT_TRUE(b.hot(0));
    EXPECT_EQ(b.migration_target(0), 1u) << "relieved onto the least backlogged worker";
    loads[0].backlog = 12; // back within the margin, not yet within half of it
    b.refresh(loads);
    EXPECT_TRUE(b.hot(0)) << "hysteresis";
    loads[0].backlog = 6;
    b.refresh(loads);
    EXPECT_FALSE(b.hot(0));
}

TEST(Balancer, MovesStayWithinTheBudget) {
    BalancerTuning t;
    t.move_budget = 0.01f; // one move per 100 packets
    t.move_burst = 3;
    Balancer b(Policy::Busy, 2, t);
    b.refresh(rates({200, 100}));
    unsigned moves = 0;
    for (int i = 0; i < 10000; ++i) {
        if (b.may_migrate() && b.migration_target(0) == 1) {
            b.note_move(0, 1);
            ++moves;
        }
        b.note_dispatch(0);
        if (i % 50 == 0) b.refresh(rates({200, 100})); // stays hot throughout
    }
    // The bucket's depth plus one token per 100 dispatched packets.
    EXPECT_LE(moves, 3u + 10000u / 100u);
    EXPECT_GE(moves, 10000u / 100u - 1u);
}

TEST(Balancer, HashNeverMoves) {
    Balancer b(Policy::Hash, 2);
    b.refresh(rates({1000, 1}));
    EXPECT_FALSE(b.may_migrate());
    EXPECT_EQ(b.migration_target(0), 0u);
}

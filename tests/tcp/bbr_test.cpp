// BBR (draft-ietf-ccwg-bbr): the windowed filters of its path model, and
// its state machine driven by a real connection over the loopback network
// (a bottleneck link with a drop-tail queue): Startup finds the bottleneck,
// Drain empties the queue, ProbeBW cycles DOWN / CRUISE / REFILL / UP,
// ProbeRTT comes every ProbeRTTInterval, the sender is paced, and random
// loss does not cut the rate the way it cuts a loss-based window.
#include <gtest/gtest.h>

#include <set>

#include "harness.h"
#include "millipede/tcp/bbr.h"
#include "millipede/tcp/windowed_filter.h"

using namespace tcptest;

namespace {

TEST(WindowedFilter, MaxKeepsTheBestOfTheWindowThenTheRunnerUp) {
    WindowedMax<uint64_t> f;
    f.reset(0, 0);
    EXPECT_EQ(f.update(10, 0, 10), 10u);
    EXPECT_EQ(f.update(50, 1, 10), 50u);  // a new best replaces everything
    EXPECT_EQ(f.update(40, 4, 10), 50u);  // a runner-up is remembered
    EXPECT_EQ(f.update(30, 7, 10), 50u);
    EXPECT_EQ(f.update(20, 10, 10), 50u); // 50 is 9 old: still inside
    // 50 (t=1) leaves the window at t=12; the best later sample takes over.
    EXPECT_EQ(f.update(5, 12, 10), 40u);
    EXPECT_EQ(f.update(5, 15, 10), 30u); // 40 (t=4) left at t=15
    // Everything old: the newest sample is the estimate.
    EXPECT_EQ(f.update(7, 100, 10), 7u);
}

TEST(WindowedFilter, MinTracksTheSmallest) {
    WindowedMin<uint64_t> f;
    f.reset(UINT64_MAX, 0);
    EXPECT_EQ(f.update(2000, 0, 1000), 2000u);
    EXPECT_EQ(f.update(1500, 100, 1000), 1500u);
    EXPECT_EQ(f.update(3000, 500, 1000), 1500u);
    EXPECT_EQ(f.update(2500, 900, 1000), 1500u);
    // 1500 (t=100) is older than the window at t=1200: the best of the rest.
    EXPECT_EQ(f.update(4000, 1200, 1000), 2500u);
}

TEST(WindowedFilter, TwoCycleMaxIsTheMaxOfThisAndThePreviousCycle) {
    TwoCycleMaxFilter f;
    f.update(100);
    f.update(80);
    EXPECT_DOUBLE_EQ(f.get(), 100);
    f.advance();
    f.update(60);
    EXPECT_DOUBLE_EQ(f.get(), 100); // the previous cycle still counts
    f.advance();
    EXPECT_DOUBLE_EQ(f.get(), 60); // 100 is two cycles old
    f.advance();                   // a cycle without samples keeps the older max
    EXPECT_DOUBLE_EQ(f.get(), 60);
}

TEST(CongestionAlgo, ParseAndName) {
    CongestionAlgo a = CongestionAlgo::NewReno;
    EXPECT_TRUE(parse_congestion_algo("bbr", a));
    EXPECT_EQ(a, CongestionAlgo::Bbr);
    EXPECT_STREQ(congestion_algo_name(a), "bbr");
    EXPECT_TRUE(parse_congestion_algo("cubic", a));
    EXPECT_EQ(a, CongestionAlgo::Cubic);
    EXPECT_TRUE(parse_congestion_algo("reno", a));
    EXPECT_EQ(a, CongestionAlgo::NewReno);
    EXPECT_FALSE(parse_congestion_algo("vegas", a));
    EXPECT_FALSE(parse_congestion_algo("", a));
}

Config bulk(CongestionAlgo cc) {
    Config c;
    c.cc = cc;
    c.send_buffer = 4 << 20;
    c.recv_buffer = 4 << 20;
    return c;
}

// Drives a bulk transfer for `duration_us` over the loopback network,
// calling `each` after every step with the client's controller.
struct BulkRun {
    std::set<BbrCC::Mode> modes;
    uint64_t acked = 0;
    Stats client{};
};

BulkRun bulk_run(const NetParams &np, CongestionAlgo cc, uint64_t duration_us,
                 const std::function<void(Loopback &, uint64_t)> &each = nullptr) {
    const Config c = bulk(cc);
    Loopback lb(np, c, c);
    const uint64_t t0 = lb.now();
    lb.client().connect(t0);
    std::vector<uint8_t> chunk(256 * 1024, 0x5a), sink(256 * 1024);
    BulkRun r;
    while (lb.now() < t0 + duration_us) {
        if (lb.client().state() == State::Established) lb.client().send(chunk, lb.now());
        if (lb.server()) lb.server()->recv(sink, lb.now());
        lb.step(1000);
        if (cc == CongestionAlgo::Bbr)
            r.modes.insert(static_cast<const BbrCC &>(lb.client().congestion()).mode());
        if (each) each(lb, lb.now() - t0);
    }
    r.acked = lb.client().bytes_acked();
    r.client = lb.client().stats();
    return r;
}

TEST(Bbr, StateMachineOnABottleneck) {
    // 20 Mbit/s, 10 ms one way, no loss, for 12 s.
    NetParams np;
    np.rate_bps = 20'000'000;
    np.delay_us = 10'000;
    np.queue_us = 100'000;
    uint64_t left_startup_us = 0, probe_rtt_at = 0, probe_rtt_left = 0;
    double bw_at_end = 0;
    uint64_t min_rtt = 0;
    BbrCC::Mode prev = BbrCC::Mode::Startup;
    int probe_rtt_entries = 0;
    std::vector<BbrCC::Mode> cycle; // ProbeBW phases in order, after the first ProbeRTT
    const BulkRun r = bulk_run(np, CongestionAlgo::Bbr, 12'000'000, [&](Loopback &lb, uint64_t t) {
        const auto &bbr = static_cast<const BbrCC &>(lb.client().congestion());
        const BbrCC::Mode m = bbr.mode();
        if (m != prev) {
            if (prev == BbrCC::Mode::Startup && !left_startup_us) left_startup_us = t;
            if (m == BbrCC::Mode::ProbeRtt) {
                probe_rtt_entries++;
                if (!probe_rtt_at) probe_rtt_at = t;
            }
            if (prev == BbrCC::Mode::ProbeRtt && !probe_rtt_left) probe_rtt_left = t;
            if (probe_rtt_left && m != BbrCC::Mode::ProbeRtt) cycle.push_back(m);
            prev = m;
        }
        bw_at_end = bbr.max_bw();
        min_rtt = bbr.min_rtt_us();
    });
    // Every state was visited. (Drain is not: 5.3.2 leaves it on the same
    // ACK when the data in flight is already at the estimated BDP, which
    // pacing at the Startup gain on this queue leaves it; DOWN likewise
    // passes straight on to CRUISE then.)
    for (auto m : {BbrCC::Mode::Startup, BbrCC::Mode::ProbeBwDown, BbrCC::Mode::ProbeBwCruise,
                   BbrCC::Mode::ProbeBwRefill, BbrCC::Mode::ProbeBwUp, BbrCC::Mode::ProbeRtt})
        EXPECT_TRUE(r.modes.count(m)) << "never in " << BbrCC::mode_name(m);
    // Startup ends within a second (about log2(BDP / IW) + 3 round trips).
    EXPECT_GT(left_startup_us, 0u);
    EXPECT_LT(left_startup_us, 1'000'000u);
    // The model: the bottleneck's payload rate within 10 % (headers take
    // 52 + 20 of every 1500 bytes on the wire), the propagation RTT (20 ms)
    // within 2 ms.
    const double payload_rate = 20e6 / 8 * 1448.0 / 1520.0;
    EXPECT_NEAR(bw_at_end, payload_rate, 0.1 * payload_rate);
    EXPECT_GE(min_rtt, 20'000u);
    EXPECT_LE(min_rtt, 22'000u);
    // ProbeRTT after ProbeRTTInterval (5 s) without a lower RTT sample,
    // left after ProbeRTTDuration (200 ms) plus a round trip.
    EXPECT_GE(probe_rtt_at, 5'000'000u);
    EXPECT_LE(probe_rtt_at, 6'000'000u);
    EXPECT_GE(probe_rtt_left - probe_rtt_at, 200'000u);
    EXPECT_LE(probe_rtt_left - probe_rtt_at, 400'000u);
    EXPECT_GE(probe_rtt_entries, 1);
    // After ProbeRTT: CRUISE, then a bandwidth probe REFILL -> UP -> DOWN.
    ASSERT_GE(cycle.size(), 4u);
    EXPECT_EQ(cycle[0], BbrCC::Mode::ProbeBwCruise);
    EXPECT_EQ(cycle[1], BbrCC::Mode::ProbeBwRefill);
    EXPECT_EQ(cycle[2], BbrCC::Mode::ProbeBwUp);
    EXPECT_EQ(cycle[3], BbrCC::Mode::ProbeBwDown);
    // Paced, and the link kept busy: over 90 % of its payload rate.
    EXPECT_GT(r.client.pacing_waits, 1000u);
    EXPECT_GT(double(r.acked), 0.9 * payload_rate * 12);
}

TEST(Bbr, PacingSpacesSegmentsAtThePacingRate) {
    // Over a 1 Gbit/s link the sender's own pacing decides how fast data
    // leaves: in every 2 ms window it sends at most what the pacing rate
    // allows (the highest rate of the window) plus a send quantum's burst
    // and one segment. The connection holds segments back (pacing_waits)
    // and its timer deadline releases them.
    NetParams np;
    np.rate_bps = 1'000'000'000;
    np.delay_us = 5'000;
    uint64_t win_start = 0, sent_at_start = 0, max_rate = 0, windows = 0;
    uint32_t max_quantum = 0;
    const BulkRun r = bulk_run(np, CongestionAlgo::Bbr, 2'000'000, [&](Loopback &lb, uint64_t t) {
        const Connection &c = lb.client();
        if (c.state() != State::Established) return;
        max_rate = std::max(max_rate, c.pacing_rate());
        max_quantum = std::max(max_quantum, c.congestion().send_quantum());
        if (t < win_start + 2'000) return;
        const uint64_t sent = c.stats().bytes_sent;
        if (win_start) {
            const double allowed = double(max_rate) * double(t - win_start) / 1e6 + max_quantum + c.send_mss();
            EXPECT_LE(double(sent - sent_at_start), allowed) << "at t=" << t;
            windows++;
        }
        win_start = t;
        sent_at_start = sent;
        max_rate = c.pacing_rate();
        max_quantum = c.congestion().send_quantum();
    });
    EXPECT_GT(windows, 500u);
    EXPECT_GT(r.client.pacing_waits, 1000u);
}

TEST(Bbr, RandomLossDoesNotCollapseTheRate) {
    // 1 % random loss each way, 50 Mbit/s, 20 ms one way: BBR keeps most of
    // the link; CUBIC, reading every loss as congestion, gets far less.
    NetParams np;
    np.seed = 3;
    np.rate_bps = 50'000'000;
    np.delay_us = 20'000;
    np.queue_us = 80'000;
    np.loss = 0.01;
    const BulkRun bbr = bulk_run(np, CongestionAlgo::Bbr, 10'000'000);
    const BulkRun cubic = bulk_run(np, CongestionAlgo::Cubic, 10'000'000);
    const double payload_rate = 50e6 / 8 * 1448.0 / 1520.0;
    EXPECT_GT(double(bbr.acked), 0.8 * payload_rate * 10);
    EXPECT_GT(bbr.acked, 2 * cubic.acked);
    EXPECT_GT(bbr.client.rack_lost, 0u);
}

} // namespace

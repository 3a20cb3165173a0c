// Pacing for NewReno and CUBIC (Config::pacing, Linux's
// tcp_update_pacing_rate rule): rate = 200 % (slow start) or 120 % of
// max(cwnd, flight) / SRTT, bursts of max(2 x 64 KiB, 1 ms at the rate),
// unpaced at an SRTT of 1 ms or less. A window that opens at once must leave
// at the pacing rate after the burst, not as one line-rate burst.
#include <gtest/gtest.h>

#include "harness.h"

using namespace tcptest;

namespace {

// A pair whose handshake took `rtt_us` (the SYN-ACK reaches the client that
// much after the SYN left), so the client's SRTT is about that; the client
// then has a window of `iw` segments and 1 MiB buffers.
struct PacedPair {
    Pair p;
    PacedPair(CongestionAlgo cc, bool pacing, uint32_t iw, uint64_t rtt_us)
        : p(config(cc, pacing, iw), config(cc, pacing, iw)) {
        EXPECT_TRUE(p.client->connect(p.now));
        p.c2s();
        p.now += rtt_us;
        p.s2c();
        p.c2s();
        EXPECT_EQ(p.client->state(), State::Established);
        EXPECT_EQ(p.server->state(), State::Established);
        // One segment and its ACK, also `rtt_us` apart: the ACK carries the
        // server's scaled window (a SYN's is not scaled, RFC 7323 2.2), so
        // the receive window does not limit what follows.
        const auto one = pattern(p.client->send_mss(), 4);
        EXPECT_EQ(p.client->send(one, p.now), one.size());
        p.c2s();
        p.now += rtt_us;
        p.s2c();
        p.drain_server();
        p.s2c();
        p.cout.take();
    }
    static Config config(CongestionAlgo cc, bool pacing, uint32_t iw) {
        Config c = recovery_config(iw);
        c.cc = cc;
        c.pacing = pacing;
        return c;
    }
    // Payload bytes the client emitted since the last call (segments are
    // not delivered: the window stays as it is).
    uint64_t emitted() {
        uint64_t n = 0;
        for (auto &w : p.cout.take()) n += w.parse().payload_len();
        return n;
    }
};

} // namespace

TEST(Pacing, RateIsRatioOfWindowOverSrtt) {
    // Slow start (cwnd < ssthresh / 2): 200 % of cwnd / SRTT.
    EXPECT_EQ(loss_based_pacing_rate(100'000, UINT32_MAX, 0, 50'000), 4'000'000u);
    EXPECT_EQ(loss_based_pacing_rate(100'000, 200'002, 0, 50'000), 4'000'000u);
    // From ssthresh / 2 on, and in congestion avoidance: 120 %.
    EXPECT_EQ(loss_based_pacing_rate(100'000, 200'000, 0, 50'000), 2'400'000u);
    EXPECT_EQ(loss_based_pacing_rate(100'000, 100'000, 0, 50'000), 2'400'000u);
    // max(cwnd, flight): a window cut below what is in flight.
    EXPECT_EQ(loss_based_pacing_rate(50'000, 50'000, 100'000, 50'000), 2'400'000u);
    // Follows SRTT.
    EXPECT_EQ(loss_based_pacing_rate(100'000, 100'000, 0, 25'000), 4'800'000u);
}

TEST(Pacing, TinySrttIsUnpaced) {
    EXPECT_EQ(loss_based_pacing_rate(1'000'000, 1'000'000, 0, 0), 0u); // no sample yet
    EXPECT_EQ(loss_based_pacing_rate(1'000'000, 1'000'000, 0, 50), 0u);
    EXPECT_EQ(loss_based_pacing_rate(1'000'000, 1'000'000, 0, kUnpacedSrttUs), 0u);
    EXPECT_GT(loss_based_pacing_rate(1'000'000, 1'000'000, 0, kUnpacedSrttUs + 1), 0u);
    // Just above the threshold the 1 ms burst still covers the window.
    const uint64_t r = loss_based_pacing_rate(1'000'000, 1'000'000, 0, kUnpacedSrttUs + 1);
    EXPECT_GE(loss_based_send_quantum(r), 1'000'000u);
}

TEST(Pacing, BurstIsTwoTsoFramesOrOneMillisecond) {
    EXPECT_EQ(loss_based_send_quantum(1'000'000), 131'072u);     // 1 MB/s: 1 ms is 1000 bytes
    EXPECT_EQ(loss_based_send_quantum(100'000'000), 131'072u);   // 100 MB/s: 100 KB
    EXPECT_EQ(loss_based_send_quantum(2'500'000'000), 2'500'000u); // memif-like: 1 ms at 2.5 GB/s
}

TEST(Pacing, WindowJumpLeavesAtThePacingRate) {
    // 400 segments of window (~580 KB) at a 50 ms SRTT: slow start paces at
    // 2 x 580 KB / 50 ms = 23 MB/s, a burst allowance of 128 KiB.
    for (CongestionAlgo cc : {CongestionAlgo::NewReno, CongestionAlgo::Cubic}) {
        SCOPED_TRACE(congestion_algo_name(cc));
        PacedPair t(cc, true, 400, 50'000);
        Connection &c = *t.p.client;
        ASSERT_GE(c.srtt_us(), 45'000u);
        ASSERT_LE(c.srtt_us(), 55'000u);
        const uint32_t mss = c.send_mss();
        const uint64_t rate = c.pacing_rate();
        EXPECT_EQ(rate, uint64_t(c.congestion().cwnd()) * 200 * 10'000 / c.srtt_us());
        EXPECT_EQ(c.send_quantum(), kPacingBurstBytes);
        const auto data = pattern(1 << 20, 5);
        EXPECT_EQ(c.send(data, t.p.now), data.size());
        // Back to back: the burst allowance and at most one segment more.
        const uint64_t burst = t.emitted();
        EXPECT_GE(burst, kPacingBurstBytes - mss);
        EXPECT_LE(burst, kPacingBurstBytes + mss);
        EXPECT_GT(c.stats().pacing_waits, 0u);
        EXPECT_GT(c.next_timer_deadline(), t.p.now);
        // Then at the rate: after T, no more than burst + rate x T (+ a
        // segment), and not much less.
        uint64_t total = burst;
        const uint64_t start = t.p.now;
        for (int i = 0; i < 100; ++i) {
            t.p.advance(100); // 10 ms in 100 us steps
            total += t.emitted();
            const uint64_t elapsed = t.p.now - start;
            EXPECT_LE(total, kPacingBurstBytes + rate * elapsed / 1'000'000 + mss);
        }
        EXPECT_GE(total, kPacingBurstBytes + rate * 10'000 / 1'000'000 - 2 * mss);
        EXPECT_LT(total, uint64_t(c.congestion().cwnd())); // the window did not leave at once
    }
}

TEST(Pacing, OffOrTinySrttSendsTheWindowAtOnce) {
    for (CongestionAlgo cc : {CongestionAlgo::NewReno, CongestionAlgo::Cubic}) {
        SCOPED_TRACE(congestion_algo_name(cc));
        for (const auto &[pacing, rtt] : {std::pair{false, uint64_t(50'000)}, std::pair{true, uint64_t(800)}}) {
            PacedPair t(cc, pacing, 400, rtt);
            Connection &c = *t.p.client;
            EXPECT_EQ(c.pacing_rate(), 0u);
            const auto data = pattern(1 << 20, 5);
            EXPECT_EQ(c.send(data, t.p.now), data.size());
            // The whole window (the initial 400 segments), nothing held.
            EXPECT_EQ(t.emitted(), uint64_t(c.congestion().cwnd()) / c.send_mss() * c.send_mss());
            EXPECT_EQ(c.stats().pacing_waits, 0u);
        }
    }
}

TEST(Pacing, OffByDefault) { EXPECT_FALSE(Config{}.pacing); }

TEST(Pacing, BbrKeepsItsOwnRate) {
    // Config::pacing concerns the loss-based controllers; BBR's rate is its
    // model's either way.
    PacedPair on(CongestionAlgo::Bbr, true, 10, 50'000), off(CongestionAlgo::Bbr, false, 10, 50'000);
    EXPECT_EQ(on.p.client->pacing_rate(), on.p.client->congestion().pacing_rate());
    EXPECT_EQ(on.p.client->pacing_rate(), off.p.client->pacing_rate());
    EXPECT_EQ(on.p.client->send_quantum(), on.p.client->congestion().send_quantum());
}

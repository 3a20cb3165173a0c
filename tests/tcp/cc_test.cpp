// Congestion controllers: NewReno window arithmetic and the CUBIC curve
// against the RFC 9438 formulas.
#include <gtest/gtest.h>

#include <cmath>

#include "millipede/tcp/congestion.h"

using namespace millipede::tcp;

namespace {
constexpr uint32_t kMss = 1000;

TEST(NewReno, SlowStartThenAvoidance) {
    NewRenoCC cc;
    cc.init(kMss, 10, 0);
    EXPECT_EQ(cc.cwnd(), 10u * kMss);
    cc.on_ack(kMss, 0, 0, 0);
    EXPECT_EQ(cc.cwnd(), 11u * kMss);
    cc.on_ack(5 * kMss, 0, 0, 0); // RFC 3465 L = 2 SMSS
    EXPECT_EQ(cc.cwnd(), 13u * kMss);
    cc.on_congestion_event(20 * kMss, 0); // ssthresh = FlightSize / 2
    EXPECT_EQ(cc.ssthresh(), 10u * kMss);
    EXPECT_EQ(cc.cwnd(), 10u * kMss);
    // Congestion avoidance: +1 SMSS per cwnd of acked bytes.
    for (int i = 0; i < 10; ++i) cc.on_ack(kMss, 0, 0, 0);
    EXPECT_EQ(cc.cwnd(), 11u * kMss);
    cc.on_rto(3 * kMss, 0); // ssthresh floor is 2 SMSS, cwnd = 1 SMSS
    EXPECT_EQ(cc.ssthresh(), 2u * kMss);
    EXPECT_EQ(cc.cwnd(), kMss);
    cc.on_congestion_event(40 * kMss, 0);
    cc.on_recovery_exit(0);
    EXPECT_EQ(cc.cwnd(), 20u * kMss);
}

TEST(Cubic, KAndCurveMatchRfc9438) {
    CubicCC cc;
    cc.init(kMss, 100, 0);
    // Leave slow start at cwnd = 100 segments with a loss.
    cc.on_congestion_event(0, 0);
    EXPECT_DOUBLE_EQ(cc.w_max(), 100.0);
    EXPECT_DOUBLE_EQ(cc.cwnd_segments(), 70.0); // beta = 0.7
    EXPECT_EQ(cc.ssthresh(), 70u * kMss);
    // First ACK in congestion avoidance starts the epoch: K = cbrt(W_max (1 - beta) / C).
    const uint64_t t0 = 1'000'000;
    cc.on_ack(kMss, 0, 0, t0);
    const double k = std::cbrt(100.0 * 0.3 / 0.4);
    EXPECT_NEAR(cc.k(), k, 1e-9);
    EXPECT_NEAR(CubicCC::w_cubic(0, 100, k), 70.0, 1e-9);
    EXPECT_NEAR(CubicCC::w_cubic(k, 100, k), 100.0, 1e-9);
    EXPECT_NEAR(CubicCC::w_cubic(k + 2, 100, k), 100 + 0.4 * 8, 1e-9);
    // Drive ACKs for 10 s with rtt 10 ms; cwnd must track W_cubic(t + RTT)
    // (concave, then plateau at W_max around K, then convex growth).
    const uint64_t rtt = 10'000;
    double at_k = 0;
    for (uint64_t t = t0; t <= t0 + 10'000'000; t += 1000) {
        cc.on_ack(kMss, 0, rtt, t);
        const double sec = (t - t0) / 1e6;
        if (std::fabs(sec - k) < 0.0005) at_k = cc.cwnd_segments();
    }
    EXPECT_NEAR(at_k, 100.0, 3.0);
    // Past K the window is convex and beyond W_max.
    const double expect = CubicCC::w_cubic(10.0 + 0.01, 100, k);
    EXPECT_GT(cc.cwnd_segments(), 100.0);
    EXPECT_NEAR(cc.cwnd_segments(), expect, expect * 0.05);
}

TEST(Cubic, FastConvergenceLowersWmax) {
    CubicCC cc;
    cc.init(kMss, 100, 0);
    cc.on_congestion_event(0, 0); // W_max = 100, cwnd 70
    cc.on_congestion_event(0, 0); // cwnd 70 < W_max: W_max = 70 * (1 + 0.7) / 2
    EXPECT_NEAR(cc.w_max(), 70 * 1.7 / 2, 1e-9);
    EXPECT_NEAR(cc.cwnd_segments(), 49.0, 1e-9);
}

TEST(Cubic, RenoFriendlyRegion) {
    // Tiny W_max and a long RTT: standard TCP would grow faster than the
    // cubic curve near the plateau, so cwnd follows W_est (RFC 9438 4.3).
    CubicCC cc;
    cc.init(kMss, 4, 0);
    cc.on_congestion_event(0, 0); // W_max = 4, cwnd = 2.8 (floored at 2 for ssthresh)
    uint64_t t = 1'000'000;
    for (int i = 0; i < 2000; ++i, t += 100'000) cc.on_ack(kMss, 0, 500'000, t);
    EXPECT_GE(cc.cwnd_segments(), cc.w_est() - 1e-9);
    EXPECT_GT(cc.w_est(), 4.0);
}

TEST(Cubic, RtoResetsToOneSegment) {
    CubicCC cc;
    cc.init(kMss, 50, 0);
    cc.on_rto(0, 0);
    EXPECT_EQ(cc.cwnd(), kMss);
    EXPECT_EQ(cc.ssthresh(), 35u * kMss);
    EXPECT_STREQ(make_congestion_control(CongestionAlgo::Cubic)->name(), "cubic");
    EXPECT_STREQ(make_congestion_control(CongestionAlgo::NewReno)->name(), "newreno");
}

} // namespace

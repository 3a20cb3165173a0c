// Congestion window validation (Config::cwnd_validation; RFC 7661's aim,
// Linux's tcp_is_cwnd_limited rule): NewReno and CUBIC grow cwnd only while
// the window limits the sender. A sender the application keeps at a few
// segments per round trip must not collect a window it would later send as
// one burst; a bulk sender still grows as before.
#include <gtest/gtest.h>

#include "harness.h"

using namespace tcptest;

namespace {

// The client writes `segs_per_round` full segments each round (1 ms apart,
// every segment delivered and acknowledged within the round) for `rounds`
// rounds; returns its stats.
Stats trickle(Config c, uint32_t segs_per_round, int rounds) {
    Pair p(c, c);
    p.handshake();
    const uint16_t mss = p.client->send_mss();
    const auto block = pattern(size_t(segs_per_round) * mss, 3);
    for (int r = 0; r < rounds; ++r) {
        EXPECT_EQ(p.client->send(block, p.now), block.size());
        p.pump();
        p.drain_server();
        p.advance(1000);
    }
    return p.client->stats();
}

Config config(CongestionAlgo cc, bool validation) {
    Config c = recovery_config(10);
    c.cc = cc;
    c.cwnd_validation = validation;
    return c;
}

} // namespace

TEST(CwndValidation, ApplicationLimitedSenderKeepsItsWindow) {
    for (CongestionAlgo cc : {CongestionAlgo::NewReno, CongestionAlgo::Cubic}) {
        const Stats held = trickle(config(cc, true), 2, 200);
        const Stats grown = trickle(config(cc, false), 2, 200);
        // 2 segments in flight at most: the initial window of 10 already
        // holds them (slow start: grow only below twice the peak in flight).
        EXPECT_LE(held.cwnd, 14600u) << congestion_algo_name(cc); // 10 segments (1448 bytes with timestamps)
        EXPECT_GT(held.cwnd_growth_held, 300u) << congestion_algo_name(cc);
        // Without validation every ACK grew it (slow start, 400 segments ACKed).
        EXPECT_GT(grown.cwnd, 100u * 1448) << congestion_algo_name(cc);
        EXPECT_EQ(grown.cwnd_growth_held, 0u);
    }
}

TEST(CwndValidation, BulkSenderStillGrows) {
    // 40 segments a round against an initial window of 10: the window
    // limits the sender, so it grows on every ACK as RFC 5681 says.
    for (CongestionAlgo cc : {CongestionAlgo::NewReno, CongestionAlgo::Cubic}) {
        const Stats s = trickle(config(cc, true), 40, 20);
        EXPECT_GT(s.cwnd, 40u * 1448) << congestion_algo_name(cc);
    }
}

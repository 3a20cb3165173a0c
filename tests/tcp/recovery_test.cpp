// Loss recovery beyond plain RFC 6675: lost retransmissions found by SACKs
// of later data (RFC 8985 reasoning), NextSeg() rules 3 and 4 (RFC 6675 4),
// limited transmit (RFC 3042). Segments are moved by hand, each round 1 ms
// apart, far below the RTO: a test that needed an RTO would fail its
// rto_events == 0 expectation.
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "harness.h"

using namespace tcptest;

namespace {


// RFC 6675 alone (Config::rack off): the rescue retransmission and
// limited transmit are its tools; with RACK-TLP on (the default, see
// rack_test.cpp) the reordering timer and the loss probe act first.
Config cfg_6675(uint32_t iw) {
    Config c = recovery_config(iw);
    c.rack = false;
    return c;
}

// Sends `segs` full segments from the client and moves segments until both
// sides are quiet. `drop(index, nth)` decides whether the nth transmission
// (0: original) of data segment `index` is lost. Returns the client's stats.
struct Run {
    Stats client;
    std::map<uint32_t, int> sends; // segment index -> transmissions
    bool ok = false;
};

Run run(uint32_t iw, size_t segs, const std::function<bool(uint32_t, int)> &drop, Config c = recovery_config(0)) {
    if (c.initial_cwnd_segments == 0) c = recovery_config(iw);
    Pair p(c, c);
    p.handshake();
    const uint16_t mss = p.client->send_mss();
    const uint32_t base = p.client->snd_nxt();
    auto d = pattern(segs * mss, 7);
    EXPECT_EQ(p.client->send(d, p.now), d.size());
    Run r;
    std::vector<uint8_t> got;
    for (int round = 0; round < 200; ++round) {
        size_t moved = 0;
        for (auto &w : p.cout.take()) {
            ++moved;
            const Segment s = w.parse();
            if (s.payload_len()) {
                const uint32_t idx = (s.seq - base) / mss;
                const int nth = r.sends[idx]++;
                if (drop(idx, nth)) continue;
            }
            p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
        }
        moved += p.s2c();
        if (!moved) {
            // Quiet: only a timer well below the RTO (the rescue probe,
            // 2 SRTT) may restart things.
            const uint64_t t = p.client->next_timer_deadline();
            if (t > p.now + 20'000) break;
            p.now = t;
            p.client->on_timer(p.now);
            continue;
        }
        p.now += 1000; // well below any RTO
        if (p.client->next_timer_deadline() <= p.now) p.client->on_timer(p.now);
    }
    got = p.drain_server();
    r.ok = got == d && p.client->snd_una() == p.client->snd_nxt();
    r.client = p.client->stats();
    return r;
}

} // namespace

TEST(LostRetransmit, ResentWhenLaterDataIsSackedNoRto) {
    // Segment 3 is lost, and so is its first retransmission. New data sent
    // during recovery (after the retransmission) is SACKed while segment 3
    // is still missing: the retransmission is lost and sent again at once.
    auto r = run(30, 80, [](uint32_t i, int nth) { return i == 3 && nth < 2; });
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.sends[3], 3);
    EXPECT_EQ(r.client.fast_recoveries, 1u);
    EXPECT_EQ(r.client.lost_retransmits, 1u);
    EXPECT_EQ(r.client.rto_events, 0u);
    EXPECT_EQ(r.client.retransmits_timeout, 0u);
}

TEST(LostRetransmit, LostTwiceStillNoRto) {
    auto r = run(30, 120, [](uint32_t i, int nth) { return (i == 3 && nth < 3) || (i == 9 && nth < 2); });
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.sends[3], 4);
    EXPECT_EQ(r.sends[9], 3);
    EXPECT_EQ(r.client.lost_retransmits, 3u);
    EXPECT_EQ(r.client.rto_events, 0u);
}

TEST(LostRetransmit, WithoutLaterDataTheRescueProbeRepairsIt) {
    // Nothing new to send after the retransmission (all 30 segments went
    // out at once): no SACK can reveal its loss. It holds the highest
    // unSACKed octet, so the rescue retransmission sent when the ACK clock
    // stops (PTO = 2 SRTT, far below the RTO) repairs it.
    Config c = recovery_config(30);
    Pair p(c, c);
    p.handshake();
    const uint16_t mss = p.client->send_mss();
    const uint32_t base = p.client->snd_nxt();
    auto d = pattern(30 * mss, 3);
    p.client->send(d, p.now);
    int sends3 = 0;
    for (int round = 0; round < 20; ++round) {
        for (auto &w : p.cout.take()) {
            const Segment s = w.parse();
            if (s.payload_len() && (s.seq - base) / mss == 3 && sends3++ < 2) continue;
            p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
        }
        p.s2c();
        p.advance(1000);
    }
    EXPECT_EQ(sends3, 3);
    const Stats st = p.client->stats();
    EXPECT_EQ(st.lost_retransmits, 0u);
    EXPECT_EQ(st.rescue_retransmits, 1u);
    EXPECT_EQ(st.rto_events, 0u);
    EXPECT_FALSE(p.client->in_recovery());
    EXPECT_EQ(p.drain_server(), d);
}

TEST(NextSeg, Rule3RetransmitsHoleWithSacksAboveWhenNothingNew) {
    // 20 segments, 5 and 17 lost. Only two segments are SACKed above 17, so
    // IsLost(17) is false; with no new data, rule 3 resends it in the same
    // recovery instead of waiting for an RTO; no rescue is needed.
    auto r = run(20, 20, [](uint32_t i, int nth) { return (i == 5 || i == 17) && nth == 0; });
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.sends[5], 2);
    EXPECT_EQ(r.sends[17], 2);
    EXPECT_EQ(r.client.retransmits_fast, 2u);
    EXPECT_EQ(r.client.rescue_retransmits, 0u);
    EXPECT_EQ(r.client.rto_events, 0u);
}

TEST(NextSeg, Rule4RescueRetransmitsTheTail) {
    // 20 segments, 5 and the last one (19) lost: nothing is SACKed above
    // 19, so only the rescue retransmission (one per recovery) repairs it,
    // once the ACK clock has stopped for a probe timeout (2 SRTT).
    auto r = run(20, 20, [](uint32_t i, int nth) { return (i == 5 || i == 19) && nth == 0; }, cfg_6675(20));
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.sends[19], 2);
    EXPECT_EQ(r.client.rescue_retransmits, 1u);
    EXPECT_EQ(r.client.rto_events, 0u);
}

TEST(NextSeg, RescueAtMostOncePerRecovery) {
    // Both the tail segment and its rescue are lost: no second rescue in the
    // same recovery (RescueRxt); the RTO takes over.
    Config c = cfg_6675(20);
    auto r = run(20, 20, [](uint32_t i, int nth) { return (i == 5 && nth == 0) || (i == 19 && nth < 2); }, c);
    EXPECT_EQ(r.sends[19], 2);
    EXPECT_EQ(r.client.rescue_retransmits, 1u);
    EXPECT_FALSE(r.ok); // stalled until the RTO (not advanced here)
}

TEST(LimitedTransmit, SmallWindowStillReachesDupThresh) {
    // cwnd of 3 segments, the first lost: only two duplicate ACKs would
    // come back. RFC 3042 sends one new segment on each, their ACKs make
    // the third duplicate, and fast retransmit repairs the loss (no RTO).
    auto r = run(3, 10, [](uint32_t i, int nth) { return i == 0 && nth == 0; }, cfg_6675(3));
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.client.limited_transmits, 2u);
    EXPECT_EQ(r.client.fast_recoveries, 1u);
    EXPECT_EQ(r.client.rto_events, 0u);
}

TEST(LimitedTransmit, WithoutSackToo) {
    Config c = recovery_config(3);
    c.sack = false;
    auto r = run(3, 10, [](uint32_t i, int nth) { return i == 0 && nth == 0; }, c);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.client.limited_transmits, 2u);
    EXPECT_EQ(r.client.fast_recoveries, 1u);
    EXPECT_EQ(r.client.rto_events, 0u);
}

TEST(LostRetransmit, LoopbackWithLossHasFewRtos) {
    // 3 % loss each way, 4 MB: every loss, including lost retransmissions,
    // is repaired without a timeout except when too little is in flight.
    NetParams np;
    np.seed = 5;
    np.loss = 0.03;
    np.delay_us = 1000;
    Config c = recovery_config(10);
    Loopback lb(np, c, c);
    auto d = pattern(4 << 20, 9);
    auto got = lb.transfer(d, 600'000'000);
    ASSERT_EQ(got, d);
    const Stats s = lb.client().stats();
    EXPECT_GT(s.fast_recoveries, 20u);
    EXPECT_GT(s.lost_retransmits, 0u);
    EXPECT_LE(s.rto_events * 10, s.fast_recoveries);
}

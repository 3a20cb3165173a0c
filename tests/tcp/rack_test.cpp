// RACK-TLP (RFC 8985): loss detection on send times with its reordering
// window and timer (6.2, 6.3), and the tail loss probe (7). Segments are
// moved by hand with a 10 ms round trip, far below the 200 ms minimum RTO:
// a test that needed an RTO would fail its rto_events == 0 expectation.
#include <gtest/gtest.h>

#include "harness.h"

using namespace tcptest;

namespace {

constexpr uint64_t kHalfRtt = 5'000;


// A connected pair whose client has RTT samples of 10 ms.
struct RackPair : Pair {
    uint16_t mss = 0;
    explicit RackPair(uint32_t iw) : Pair(recovery_config(iw), recovery_config(iw)) {}
    void warm_up() {
        handshake();
        mss = client->send_mss();
        auto d = pattern(mss, 5);
        for (int i = 0; i < 24; i++) {
            client->send(d, now);
            now += kHalfRtt;
            c2s();
            now += kHalfRtt;
            s2c();
            drain_server();
        }
        ASSERT_GT(client->stats().srtt_us, 9'000u); // (the handshake's sample was 0)
        ASSERT_EQ(client->min_rtt_us(), 10'000u);
    }
    // Delivers the captured client segments whose index (in order of
    // capture) `keep` accepts; returns the segments.
    std::vector<Wire> deliver_some(const std::function<bool(size_t)> &keep) {
        auto segs = cout.take();
        for (size_t i = 0; i < segs.size(); i++)
            if (keep(i)) server->on_bytes(segs[i].bytes, segs[i].src, segs[i].dst, now);
        return segs;
    }
};

TEST(Rack, ReorderingWindowTimerMarksTheHoleLost) {
    // Four segments; the first is lost, only the second arrives (the other
    // two are still on their way). One SACKed segment is not DupThresh, and
    // no reordering was seen yet outside recovery: RACK waits the
    // reordering window, min_RTT / 4 (6.2 step 4), then marks the hole
    // lost from its timer (6.3) and recovery retransmits it.
    RackPair p(10);
    p.warm_up();
    const uint32_t base = p.client->snd_nxt();
    const uint64_t sent_at = p.now;
    p.client->send(pattern(4 * p.mss, 9), p.now);
    p.now += kHalfRtt;
    auto segs = p.deliver_some([](size_t i) { return i == 1; });
    ASSERT_EQ(segs.size(), 4u);
    p.now += kHalfRtt;
    p.s2c();
    EXPECT_EQ(p.client->stats().rack_lost, 0u);
    EXPECT_FALSE(p.client->in_recovery());
    // RACK's deadline: xmit + RACK.rtt + reo_wnd = sent_at + 10 ms + 2.5 ms.
    EXPECT_EQ(p.client->next_timer_deadline(), sent_at + 10'000 + 2'500);
    p.now = p.client->next_timer_deadline();
    p.client->on_timer(p.now);
    const Stats st = p.client->stats();
    // Only the first segment: the two still on their way were sent at the
    // same time but after the SACKed one in sequence (RACK_sent_after).
    EXPECT_EQ(st.rack_lost, 1u);
    EXPECT_TRUE(p.client->in_recovery());
    auto rtx = p.cout.take();
    ASSERT_FALSE(rtx.empty());
    EXPECT_EQ(rtx.front().parse().seq, base); // the hole, re-sent first
    EXPECT_EQ(st.rto_events, 0u);
    EXPECT_EQ(st.fast_recoveries, 1u);
}

TEST(Rack, ThreeSackedSegmentsMarkTheHoleLostAtOnce) {
    // RFC 8985 6.2 step 4: with DupThresh segments SACKed (and no
    // reordering seen) the window is 0: lost on this ACK, no timer.
    RackPair p(10);
    p.warm_up();
    const uint32_t base = p.client->snd_nxt();
    p.client->send(pattern(5 * p.mss, 9), p.now);
    p.now += kHalfRtt;
    p.deliver_some([](size_t i) { return i != 0; });
    p.now += kHalfRtt;
    p.s2c();
    const Stats st = p.client->stats();
    EXPECT_EQ(st.rack_lost, 1u);
    EXPECT_TRUE(p.client->in_recovery());
    auto rtx = p.cout.take();
    ASSERT_FALSE(rtx.empty());
    EXPECT_EQ(rtx.front().parse().seq, base);
    p.now += kHalfRtt;
    for (auto &w : rtx) p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
    p.now += kHalfRtt;
    p.s2c();
    EXPECT_FALSE(p.client->in_recovery());
    EXPECT_EQ(p.client->snd_una(), p.client->snd_nxt());
}

TEST(Rack, TailLossProbeRepairsTheTailWithoutRto) {
    // RFC 8985 7: the last two segments of a flight are lost; no later
    // segment can produce a duplicate ACK or a SACK. The probe timeout (2
    // SRTT after the last ACK, long before the RTO) re-sends the last
    // segment; its SACK lets RACK find the other one lost.
    RackPair p(10);
    p.warm_up();
    const uint32_t base = p.client->snd_nxt();
    auto d = pattern(5 * p.mss, 9);
    p.client->send(d, p.now);
    p.now += kHalfRtt;
    p.deliver_some([](size_t i) { return i < 3; });
    p.now += kHalfRtt;
    const uint64_t last_ack = p.now;
    p.s2c();
    EXPECT_EQ(p.client->snd_una(), base + 3u * p.mss);
    EXPECT_EQ(p.client->next_timer_deadline(), last_ack + 2 * p.client->stats().srtt_us);
    p.now = p.client->next_timer_deadline();
    p.client->on_timer(p.now);
    EXPECT_EQ(p.client->stats().tlp_probes, 1u);
    auto probe = p.cout.take();
    ASSERT_EQ(probe.size(), 1u);
    EXPECT_EQ(probe[0].parse().seq, base + 4u * p.mss); // the last segment
    p.now += kHalfRtt;
    p.server->on_bytes(probe[0].bytes, probe[0].src, probe[0].dst, p.now);
    for (int round = 0; round < 100 && p.client->snd_una() != p.client->snd_nxt(); round++) {
        p.now += kHalfRtt;
        p.s2c();
        p.now += kHalfRtt;
        p.advance(0);
        p.c2s();
    }
    EXPECT_EQ(p.client->snd_una(), base + 5u * p.mss);
    const Stats st = p.client->stats();
    EXPECT_EQ(st.rto_events, 0u);
    EXPECT_EQ(st.rack_lost, 1u);
    EXPECT_EQ(p.drain_server(), d);
}

TEST(Rack, TailLossProbeSendsNewDataWhenThereIsSome) {
    // A whole window is lost; data beyond cwnd waits. The probe sends one
    // new segment (7.3), whose SACK lets RACK find the four lost ones:
    // everything is delivered without an RTO.
    RackPair p(4);
    p.warm_up();
    const uint32_t base = p.client->snd_nxt();
    auto d = pattern(32 * p.mss, 9);
    p.client->send(d, p.now);
    const auto lost = p.cout.take(); // a cwnd's worth, all lost
    ASSERT_GE(lost.size(), 4u);
    ASSERT_LT(lost.size(), 32u);
    EXPECT_EQ(p.client->next_timer_deadline(), p.now + 2 * p.client->stats().srtt_us); // PTO = 2 SRTT
    p.now = p.client->next_timer_deadline();
    p.client->on_timer(p.now);
    EXPECT_EQ(p.client->stats().tlp_probes, 1u);
    auto probe = p.cout.take();
    ASSERT_EQ(probe.size(), 1u);
    EXPECT_EQ(probe[0].parse().seq, base + uint32_t(lost.size()) * p.mss); // new data
    std::vector<uint8_t> got;
    p.server->on_bytes(probe[0].bytes, probe[0].src, probe[0].dst, p.now);
    for (int round = 0; round < 100 && p.client->snd_una() != p.client->snd_nxt(); round++) {
        p.now += kHalfRtt;
        p.s2c();
        p.now += kHalfRtt;
        p.advance(0);
        p.c2s();
    }
    EXPECT_EQ(p.client->snd_una(), base + 32u * p.mss);
    EXPECT_EQ(p.client->stats().rto_events, 0u);
    EXPECT_GE(p.client->stats().rack_lost, lost.size());
    EXPECT_EQ(p.drain_server(), d);
}

TEST(Rack, LostRetransmissionFoundBySendTime) {
    // The retransmission of the hole is lost too. Data sent after it is
    // SACKed: RACK (send times) finds the retransmission lost and sends it
    // again, without an RTO.
    RackPair p(20);
    p.warm_up();
    const uint32_t base = p.client->snd_nxt();
    auto d = pattern(120 * p.mss, 9); // more than a cwnd: new data follows the retransmission
    p.client->send(d, p.now);
    int sends0 = 0;
    for (int round = 0; round < 200 && p.client->snd_una() != p.client->snd_nxt(); round++) {
        p.now += kHalfRtt;
        for (auto &w : p.cout.take()) {
            const Segment s = w.parse();
            if (s.payload_len() && s.seq == base && sends0++ < 2) continue; // original and 1st retransmission
            p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
        }
        p.now += kHalfRtt;
        p.s2c();
        p.advance(0);
    }
    EXPECT_EQ(sends0, 3);
    const Stats st = p.client->stats();
    EXPECT_EQ(st.rescue_retransmits, 0u);
    EXPECT_EQ(st.lost_retransmits, 1u);
    EXPECT_EQ(st.rto_events, 0u);
    EXPECT_EQ(p.drain_server(), d);
}

// TxRecords alone: RACK on send order, the rate sample, and the window
// widening on a spurious mark.
TEST(TxRecords, RateSampleRackAndSpuriousMarkWidensTheWindow) {
    TxRecords t;
    t.allocate(64);
    const uint32_t mss = 1000;
    // Four segments, 100 us apart, starting with nothing in flight.
    for (uint32_t i = 0; i < 4; i++) t.on_send(i * mss, (i + 1) * mss, 1'000 + i * 100, i * mss, 0, false);
    const auto none = [](uint32_t, uint32_t) { return false; };
    // Segments 2 and 3 SACKed at t = 11,300 (RTT 10 ms).
    uint32_t edges[2] = {2 * mss, 4 * mss};
    TxRecords::AckInput in;
    in.snd_una = 0;
    in.sack_edges = edges;
    in.sack_blocks = 1;
    in.min_rtt_us = 10'000;
    RateSample rs;
    t.on_ack(in, 11'300, none, rs);
    EXPECT_TRUE(rs.has_data);
    EXPECT_EQ(rs.newly_acked, 2 * mss);
    EXPECT_EQ(rs.rtt_us, 10'000);
    // Delivered 2000 bytes over max(send 300 us, ack 10,300 us): ~194 kB/s.
    EXPECT_EQ(rs.delivered, 2 * mss);
    EXPECT_NEAR(rs.delivery_rate, 2000.0 * 1e6 / 10'300, 1.0);
    EXPECT_EQ(t.rack_rtt_us(), 10'000u);
    // In recovery without reordering seen: window 0, segments 0 and 1
    // (sent before segment 3) are lost at once.
    EXPECT_EQ(t.reo_wnd(true, 10'000, 10'000), 0u);
    std::vector<uint32_t> lost;
    EXPECT_EQ(t.detect_loss(11'300, 0, [&](const TxRecord &r) { lost.push_back(r.start); }), 0u);
    EXPECT_EQ(lost, (std::vector<uint32_t>{0, mss}));
    EXPECT_EQ(t.lost_bytes(), 2 * mss);
    // Segment 0 was only late: SACKed before any re-send. The mark was
    // spurious: reordering seen, the window multiplier grows (RFC 8985 6.2
    // step 4), so the window is no longer 0 in recovery.
    uint32_t late[2] = {0, mss};
    in.sack_edges = late;
    t.on_ack(in, 11'500, none, rs);
    EXPECT_EQ(t.spurious_marks(), 1u);
    EXPECT_TRUE(t.reordering_seen());
    EXPECT_EQ(t.reo_wnd_mult(), 2u);
    EXPECT_EQ(t.reo_wnd(true, 10'000, 12'000), 2u * 10'000 / 4);
    EXPECT_EQ(t.lost_bytes(), mss);
    // 16 recoveries without new evidence: back to one quarter min_RTT.
    for (int i = 0; i < 16; i++) t.on_recovery_end();
    EXPECT_EQ(t.reo_wnd_mult(), 1u);
    // A re-send of segment 1 puts it back in flight: no longer lost.
    t.on_send(mss, 2 * mss, 12'000, 0, 0, true);
    EXPECT_EQ(t.lost_bytes(), 0u);
    EXPECT_EQ(t.find(mss)->transmissions, 2u);
}

TEST(Rack, OffKeepsRfc6675Only) {
    // Config::rack = false: a single SACKed segment never marks a hole
    // lost, and no probe timer is armed (only the RTO).
    Config c = recovery_config(10);
    c.rack = false;
    Pair p(c, c);
    p.handshake();
    const uint16_t mss = p.client->send_mss();
    p.client->send(pattern(4 * mss, 9), p.now);
    auto segs = p.cout.take();
    p.now += 10'000;
    p.server->on_bytes(segs[1].bytes, segs[1].src, segs[1].dst, p.now);
    p.s2c();
    EXPECT_EQ(p.client->stats().rack_lost, 0u);
    EXPECT_EQ(p.client->next_timer_deadline(), p.now - 10'000 + p.client->rto_us());
}

} // namespace

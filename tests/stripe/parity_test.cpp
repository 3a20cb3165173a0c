// ParityCodec: every pattern of up to K erased units of a stripe is rebuilt
// byte-exact, for full and short stripes, with the parity accumulated one
// data unit (and one piece of a unit) at a time as the sender does.
// And the negotiation: hello feature bit 3 with the geometry, clear
// refusals on either side (docs/wire.md 2.21).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "fake_legs.h"
#include "millipede/stripe/parity.h"
#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"

using namespace stripe_test;

namespace {

// Runs every erasure pattern of at most k units among the n_used + k that
// exist; returns the number of patterns checked.
unsigned check_all_patterns(unsigned n, unsigned k, unsigned n_used, size_t len, uint32_t seed) {
    ParityCodec codec(n, k);
    std::mt19937 rng(seed);
    std::vector<std::vector<uint8_t>> data(n, std::vector<uint8_t>(len, 0));
    for (unsigned j = 0; j < n_used; j++) {
        // Units of different lengths: the tail stays zero (padding).
        const size_t used = j == 0 ? len : rng() % (len + 1);
        for (size_t b = 0; b < used; b++) data[j][b] = static_cast<uint8_t>(rng());
    }
    std::vector<std::vector<uint8_t>> parity(k, std::vector<uint8_t>(len, 0));
    std::vector<uint8_t *> pp(k);
    for (unsigned i = 0; i < k; i++) pp[i] = parity[i].data();
    for (unsigned j = 0; j < n_used; j++) {
        // In two pieces, as a sealed chunk's prefix and payload arrive.
        const size_t cut = len / 3;
        std::vector<uint8_t *> p2(k);
        codec.encode_update(j, data[j].data(), cut, pp.data());
        for (unsigned i = 0; i < k; i++) p2[i] = pp[i] + cut;
        codec.encode_update(j, data[j].data() + cut, len - cut, p2.data());
    }
    const unsigned units = n_used + k; // data 0..n_used-1 and parity; the rest are virtual zeros
    unsigned patterns = 0;
    for (uint64_t mask = 0; mask < (1ull << units); mask++) {
        if (static_cast<unsigned>(__builtin_popcountll(mask)) > k) continue;
        std::vector<std::vector<uint8_t>> work(n + k, std::vector<uint8_t>(len, 0));
        std::vector<bool> present_v(n + k, false);
        bool present[64] = {};
        for (unsigned u = 0; u < units; u++) {
            const unsigned idx = u < n_used ? u : n + (u - n_used);
            const bool erased = (mask >> u) & 1;
            present[idx] = !erased;
            if (erased) {
                std::memset(work[idx].data(), 0xA5, len); // garbage where the unit would be
            } else {
                work[idx] = idx < n ? data[idx] : parity[idx - n];
            }
        }
        std::vector<uint8_t *> up(n + k);
        for (unsigned u = 0; u < n + k; u++) up[u] = work[u].data();
        EXPECT_TRUE(codec.rebuild(n_used, present, up.data(), len))
            << "n=" << n << " k=" << k << " n_used=" << n_used << " mask=" << mask;
        for (unsigned j = 0; j < n_used; j++)
            EXPECT_EQ(work[j], data[j]) << "n=" << n << " k=" << k << " n_used=" << n_used << " mask=" << mask
                                        << " data unit " << j;
        patterns++;
    }
    return patterns;
}

TEST(Parity, RebuildsEveryPatternOfUpToKErasures) {
    unsigned total = 0;
    uint32_t seed = 1;
    for (unsigned n = 1; n <= 7; n++)
        for (unsigned k = 1; k <= 3; k++)
            for (unsigned n_used = 1; n_used <= n; n_used++)
                for (size_t len : {size_t(1), size_t(16), size_t(17), size_t(100), size_t(4113)})
                    total += check_all_patterns(n, k, n_used, len, seed++);
    EXPECT_GT(total, 10000u);
}

TEST(Parity, WideStripe) {
    // 60 legs: 56 data, 4 parity; the patterns of 4 erasures among 60 are
    // too many to run all, so every single erasure plus random sets of 4.
    const unsigned n = 56, k = 4;
    const size_t len = 333;
    ParityCodec codec(n, k);
    std::mt19937 rng(7);
    std::vector<std::vector<uint8_t>> units(n + k, std::vector<uint8_t>(len, 0));
    for (unsigned j = 0; j < n; j++)
        for (auto &b : units[j]) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t *> pp(k);
    for (unsigned i = 0; i < k; i++) pp[i] = units[n + i].data();
    for (unsigned j = 0; j < n; j++) codec.encode_update(j, units[j].data(), len, pp.data());
    for (int trial = 0; trial < 300; trial++) {
        auto work = units;
        bool present[64];
        for (unsigned u = 0; u < n + k; u++) present[u] = true;
        for (unsigned e = 0; e < (trial < 60 ? 1u : k); e++) {
            const unsigned u = trial < 60 ? static_cast<unsigned>(trial) : rng() % (n + k);
            present[u] = false;
            std::memset(work[u].data(), 0, len);
        }
        std::vector<uint8_t *> up(n + k);
        for (unsigned u = 0; u < n + k; u++) up[u] = work[u].data();
        ASSERT_TRUE(codec.rebuild(n, present, up.data(), len));
        for (unsigned j = 0; j < n; j++) ASSERT_EQ(work[j], units[j]) << "trial " << trial << " unit " << j;
    }
}

TEST(Parity, RefusesTooFewSurvivorsAndBadGeometry) {
    ParityCodec codec(3, 1);
    std::vector<uint8_t> a(8, 1), b(8, 2), c(8, 3), p(8, 0);
    uint8_t *units[4] = {a.data(), b.data(), c.data(), p.data()};
    bool present[4] = {true, false, false, true}; // two lost, one parity: no
    EXPECT_FALSE(codec.rebuild(3, present, units, 8));
    EXPECT_EQ(b, std::vector<uint8_t>(8, 2)); // nothing written
    EXPECT_THROW(ParityCodec(0, 1), std::invalid_argument);
    EXPECT_THROW(ParityCodec(1, 0), std::invalid_argument);
    EXPECT_THROW(ParityCodec(60, 5), std::invalid_argument);
}

} // namespace

// ---- negotiation (docs/wire.md 2.21): hello feature bit 3 with N and K

namespace {

SenderConfig parity_cfg(uint32_t legs, uint32_t k) {
    SenderConfig c;
    c.legs = legs;
    c.parity_k = k;
    c.chunk_bytes = 100;
    c.max_chunks_in_flight = 4;
    c.backoff_initial_us = 100;
    c.backoff_max_us = 1000;
    return c;
}

// Connects leg 0 and returns the hello it wrote.
Hello hello_of(StripeSender &tx, FakeIo &io) {
    tx.poll(0, io);
    StripeEvent ev;
    while (tx.next_event(ev))
        if (ev.type == EventType::CONNECT_LEG) tx.leg_up(ev.leg, 0);
    tx.poll(0, io);
    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
    auto recs = decode_all(dec, io.take(0));
    EXPECT_FALSE(recs.empty());
    return recs.empty() ? Hello{} : recs[0].d.hello;
}

void answer(StripeSender &tx, uint32_t features, uint32_t window) {
    std::vector<uint8_t> r(kHelloReplySize);
    encode_hello_reply(r.data(), HelloReply{kVersion, HelloStatus::ACCEPT, kVersion, features, window});
    tx.leg_input(0, r.data(), r.size(), 0);
}

} // namespace

TEST(ParityNegotiation, HelloCarriesGeometry) {
    StripeSender tx(parity_cfg(5, 2));
    FakeIo io(5);
    const Hello h = hello_of(tx, io);
    EXPECT_TRUE(h.features & kFeatureParity);
    EXPECT_EQ(parity_feature_n(h.features), 3u);
    EXPECT_EQ(parity_feature_k(h.features), 2u);
    EXPECT_EQ(h.features & kFeaturesV1, kFeaturesV1);
    answer(tx, h.features, 64);
    EXPECT_EQ(tx.leg_state(0), SenderLegState::OPEN);
    EXPECT_EQ(tx.state(), SessionState::RUNNING);
}

TEST(ParityNegotiation, SenderFailsClearlyWithoutParityAtTheReceiver) {
    StripeSender tx(parity_cfg(3, 1));
    FakeIo io(3);
    hello_of(tx, io);
    answer(tx, kFeaturesV1, 64); // an rx that does not know bit 3 answers the plain intersection
    EXPECT_EQ(tx.state(), SessionState::FAILED);
    EXPECT_NE(std::string(tx.message()).find("does not support parity"), std::string::npos) << tx.message();
}

TEST(ParityNegotiation, SenderFailsWhenTheWindowCannotHoldAStripe) {
    StripeSender tx(parity_cfg(3, 1));
    FakeIo io(3);
    const Hello h = hello_of(tx, io);
    answer(tx, h.features, 3);
    EXPECT_EQ(tx.state(), SessionState::FAILED);
    EXPECT_NE(std::string(tx.message()).find("window"), std::string::npos) << tx.message();
}

TEST(ParityNegotiation, SenderConfigRefusals) {
    EXPECT_THROW(StripeSender(parity_cfg(3, 3)), std::invalid_argument); // K >= legs: no data chunk
    SenderConfig c = parity_cfg(3, 1);
    c.codec = Codec::VIAMILLIPEDE;
    EXPECT_THROW(StripeSender{c}, std::invalid_argument);
    c = parity_cfg(3, 1);
    c.max_chunks_in_flight = 1;
    EXPECT_THROW(StripeSender{c}, std::invalid_argument);
}

namespace {

HelloReply receiver_reply(StripeReceiver &rx, uint32_t features) {
    FakeIo io(2);
    rx.leg_up(0, 0);
    Hello h;
    h.session_id = 7;
    h.chunk_bytes = 100;
    h.features = features;
    auto b = hello_bytes(h);
    rx.leg_input(0, b.data(), b.size(), 0);
    rx.poll(0, io);
    Decoder dec(Codec::NATIVE, Direction::FROM_RECEIVER);
    auto recs = decode_all(dec, io.take(0));
    EXPECT_FALSE(recs.empty());
    return recs.empty() ? HelloReply{} : recs[0].d.reply;
}

} // namespace

TEST(ParityNegotiation, ReceiverEchoesGeometryOrRefuses) {
    ReceiverConfig rc;
    rc.max_legs = 2;
    rc.window_chunks = 16;
    rc.max_chunk_bytes = 1000;
    {
        StripeReceiver rx(rc);
        const HelloReply r = receiver_reply(rx, kFeaturesV1 | parity_feature(5, 2));
        EXPECT_EQ(r.status, HelloStatus::ACCEPT);
        EXPECT_EQ(r.features, kFeaturesV1 | parity_feature(5, 2));
    }
    {
        StripeReceiver rx(rc); // N+K = 9: two stripes do not fit in 16
        const HelloReply r = receiver_reply(rx, kFeaturesV1 | parity_feature(6, 3));
        EXPECT_EQ(r.status, HelloStatus::BAD_HELLO);
        EXPECT_NE(std::string(rx.last_leg_message()).find("window"), std::string::npos) << rx.last_leg_message();
    }
    {
        StripeReceiver rx(rc); // no parity asked: none granted
        const HelloReply r = receiver_reply(rx, kFeaturesV1);
        EXPECT_EQ(r.status, HelloStatus::ACCEPT);
        EXPECT_EQ(r.features, kFeaturesV1);
    }
}

TEST(ParityNegotiation, ReceiverClosesALegSendingParityUnasked) {
    ReceiverConfig rc;
    rc.max_legs = 2;
    rc.window_chunks = 8;
    rc.max_chunk_bytes = 1000;
    StripeReceiver rx(rc);
    EXPECT_EQ(receiver_reply(rx, kFeaturesV1).status, HelloStatus::ACCEPT);
    auto c = chunk_bytes(0, 0, std::vector<uint8_t>(40, 1));
    c[5] = kChunkFlagParity;
    rx.leg_input(0, c.data(), c.size(), 0);
    StripeEvent ev;
    bool closed = false;
    while (rx.next_event(ev)) closed |= ev.type == EventType::CLOSE_LEG && ev.leg == 0;
    EXPECT_TRUE(closed);
    EXPECT_NE(std::string(rx.last_leg_message()).find("did not ask for parity"), std::string::npos)
        << rx.last_leg_message();
}

namespace {

// Leg 0 alone, 3 legs of parity 1 (stripes of 2 data + 1 parity), six
// chunks of input; returns how many chunk headers leg 0 got before its TCP
// acknowledged anything, and how many more once it acknowledged those.
std::pair<size_t, size_t> chunks_before_and_after_ack(QueueAhead mode, uint64_t bytes = 0) {
    SenderConfig c = parity_cfg(3, 1);
    c.max_chunks_in_flight = 8;
    c.parity_queue_ahead = mode;
    c.parity_queue_ahead_bytes = bytes;
    StripeSender tx(c);
    FakeIo io(3);
    io.acked.assign(3, 0);
    const Hello h = hello_of(tx, io);
    io.acked[0] = kHelloSize; // the hello was delivered
    answer(tx, h.features, 64);
    std::vector<uint8_t> in(600, 0x5a);
    EXPECT_EQ(tx.push_input(in.data(), in.size(), 0), in.size());
    tx.poll(1, io);
    // Every record on the leg now is a whole 100-byte data chunk.
    auto count = [](const std::vector<uint8_t> &bytes) {
        EXPECT_EQ(bytes.size() % (kChunkHeaderSize + 100), 0u) << bytes.size();
        return bytes.size() / (kChunkHeaderSize + 100);
    };
    std::vector<uint8_t> first = io.take(0);
    const size_t before = count(first);
    io.acked[0] += first.size(); // TCP delivered all of it (no chunk acknowledgement yet)
    tx.poll(2, io);
    return {before, count(io.take(0))};
}

} // namespace

// parity_queue_ahead_bytes: a leg takes its next chunk only while less than
// the bound of what it was handed is TCP-unacknowledged, so the next chunk
// waits for whichever leg drains first instead of queueing behind others.
TEST(ParityQueueAhead, LegTakesTheNextChunkOnlyOnceItsQueueDrained) {
    const auto bounded = chunks_before_and_after_ack(QueueAhead::FIXED, 100);
    EXPECT_EQ(bounded.first, 1u) << "one 100-byte chunk reaches the 100-byte bound";
    EXPECT_EQ(bounded.second, 1u) << "delivered: room for exactly one more";
    const auto unbounded = chunks_before_and_after_ack(QueueAhead::OFF);
    EXPECT_GE(unbounded.first, 2u) << "no bound: the leg queues every chunk it may carry";
}

TEST(ParityQueueAhead, FixedBoundOfZeroBytesIsRefused) {
    SenderConfig c = parity_cfg(3, 1);
    c.parity_queue_ahead = QueueAhead::FIXED;
    c.parity_queue_ahead_bytes = 0;
    EXPECT_THROW(StripeSender{c}, std::invalid_argument);
    c.parity_queue_ahead_bytes = 1;
    EXPECT_NO_THROW(StripeSender{c});
}

namespace {

// One leg's path for QueueAheadEstimator: a FIFO link of `rate` bytes per µs
// (no other traffic), acknowledgements `rtt_us` after a byte left the link.
// A sender keeps handing it whole chunks while what is unacknowledged is
// below the estimator's bound, as StripeSender does. Returns the bytes
// delivered per µs over the second half of `run_us`, and the final bound.
struct PathRun {
    double goodput = 0; // bytes/µs, second half
    uint64_t bound = 0;
    uint64_t min_rtt_us = 0;
};

PathRun run_path(double rate, uint64_t rtt_us, uint64_t chunk, uint64_t run_us) {
    QueueAheadEstimator est;
    est.new_connection();
    uint64_t written = 0;
    double on_wire = 0;                               // bytes that left the link's queue
    std::deque<std::pair<uint64_t, uint64_t>> trail;  // (time, floor(on_wire)): acks lag by rtt_us
    uint64_t delivered = 0, delivered_half = 0;
    const uint64_t step = 10;
    for (uint64_t now = 0; now <= run_us; now += step) {
        on_wire = std::min<double>(static_cast<double>(written), on_wire + rate * step);
        trail.emplace_back(now, static_cast<uint64_t>(on_wire));
        while (!trail.empty() && trail.front().first + rtt_us <= now) {
            delivered = trail.front().second;
            trail.pop_front();
        }
        if (now == run_us / 2) delivered_half = delivered;
        est.on_delivered(delivered, now);
        while (written - delivered < est.bound(chunk)) {
            est.on_write(written, chunk, delivered, now);
            written += chunk;
        }
    }
    return {static_cast<double>(delivered - delivered_half) / static_cast<double>(run_us - run_us / 2),
            est.bound(chunk), est.min_rtt_us()};
}

} // namespace

// The default rule: one chunk + 2 x the leg's bandwidth-delay product, from
// its delivery rate and min round trip. A short path (100 Mbit/s, 2 ms:
// 25 KB) and a long one (25 ms one way: 625 KB) both end at that bound and
// at the link's rate, where a fixed 64 KiB bound would take a fifth of the
// long one.
TEST(ParityQueueAhead, AutoBoundFollowsTheBandwidthDelayProduct) {
    const double rate = 12.5; // bytes/µs: 100 Mbit/s
    const PathRun lan = run_path(rate, 2000, 65536, 2'000'000);
    EXPECT_GE(lan.bound, 65536u + 2 * 25'000u * 9 / 10) << lan.bound;
    EXPECT_LE(lan.bound, 65536u + 2 * 25'000u * 11 / 10) << lan.bound;
    EXPECT_GE(lan.goodput, 0.95 * rate);
    EXPECT_GE(lan.min_rtt_us, 2000u);
    EXPECT_LE(lan.min_rtt_us, 2010u) << "the first write found the path empty";

    const PathRun wan = run_path(rate, 50'000, 65536, 4'000'000);
    EXPECT_GE(wan.bound, 65536u + 2 * 625'000u * 9 / 10) << wan.bound;
    EXPECT_LE(wan.bound, 65536u + 2 * 625'000u * 11 / 10) << wan.bound;
    EXPECT_GE(wan.goodput, 0.95 * rate) << "the bound must not starve a long path";

    const PathRun small = run_path(rate, 2000, 16384, 2'000'000);
    EXPECT_GE(small.bound, 16384u + 2 * 25'000u * 9 / 10) << small.bound;
    EXPECT_LE(small.bound, 16384u + 2 * 25'000u * 11 / 10) << small.bound;
    EXPECT_GE(small.goodput, 0.95 * rate);

    // What a fixed bound of one 64 KiB chunk gives on the long path: the
    // starvation the rule avoids (the same model, the bound held fixed).
    uint64_t written = 0, delivered = 0;
    double on_wire = 0;
    std::deque<std::pair<uint64_t, uint64_t>> trail;
    for (uint64_t now = 0; now <= 4'000'000; now += 10) {
        on_wire = std::min<double>(static_cast<double>(written), on_wire + rate * 10);
        trail.emplace_back(now, static_cast<uint64_t>(on_wire));
        while (!trail.empty() && trail.front().first + 50'000 <= now) {
            delivered = trail.front().second;
            trail.pop_front();
        }
        while (written - delivered < 65536) written += 65536;
    }
    EXPECT_LT(static_cast<double>(delivered) / 4'000'000, 0.3 * rate);
}

// The rate is the path's: a leg that delivered less for a while (idle, or
// a halved congestion window) keeps the best rate of the last one to two
// windows (1 s here), and forgets it after two windows.
TEST(ParityQueueAhead, RateIsTheMaxOfTheLastWindows) {
    QueueAheadEstimator est;
    est.new_connection();
    uint64_t written = 0, delivered = 0;
    // One write of `bytes` at `t`, acknowledged whole `rtt` later.
    const auto exchange = [&](uint64_t t, uint64_t bytes, uint64_t rtt) {
        est.on_write(written, bytes, delivered, t);
        written += bytes;
        est.on_delivered(delivered + 1, t + rtt / 2); // the first byte: a round trip ...
        delivered = written;
        est.on_delivered(delivered, t + rtt); // ... and the last: a rate
    };
    exchange(0, 100'000, 10'000); // 10 MB/s, min round trip 5 ms
    EXPECT_EQ(est.min_rtt_us(), 5000u);
    EXPECT_EQ(est.max_rate_bytes_per_s(), 10'000'000u);
    EXPECT_EQ(est.bound(1000), 1000u + 2 * 50'000u);
    exchange(500'000, 10'000, 10'000); // 1 MB/s for a while
    exchange(1'200'000, 10'000, 10'000);
    EXPECT_EQ(est.max_rate_bytes_per_s(), 10'000'000u) << "within two windows: the path's rate";
    exchange(2'300'000, 10'000, 10'000);
    EXPECT_EQ(est.max_rate_bytes_per_s(), 1'000'000u) << "two windows later: what the leg delivers now";
}

// In the sender: before anything was measured the bound is one chunk; the
// hello's round trip and what the leg delivered per round trip make it grow,
// and the leg then holds that much unacknowledged.
TEST(ParityQueueAhead, AutoBoundStartsAtOneChunkAndGrowsWithTheDeliveryRate) {
    SenderConfig c = parity_cfg(3, 1);
    c.chunk_bytes = 1000;
    c.max_chunks_in_flight = 16;
    StripeSender tx(c); // parity_queue_ahead: AUTO by default
    FakeIo io(3);
    io.acked.assign(3, 0);
    EXPECT_EQ(tx.queue_ahead_bound(0), 1000u);
    const Hello h = hello_of(tx, io); // written at t = 0
    io.acked[0] = kHelloSize;         // delivered after 1 ms
    answer(tx, h.features, 64);
    std::vector<uint8_t> in(12000, 0x5a);
    EXPECT_EQ(tx.push_input(in.data(), in.size(), 1000), in.size());
    uint64_t written = kHelloSize;
    // What leg 0 holds unacknowledged reached the bound, and did so with its
    // last record (data or parity chunk: at most a chunk, its header and the
    // parity prefix).
    const auto holds_the_bound = [&](const char *when) {
        written += io.take(0).size();
        const uint64_t unacked = written - io.acked[0], bound = tx.queue_ahead_bound(0);
        EXPECT_GE(unacked, bound) << when;
        EXPECT_LT(unacked, bound + kChunkHeaderSize + kParityUnitPrefix + 1000) << when;
    };
    tx.poll(1000, io);
    ASSERT_NE(tx.queue_ahead_estimate(0), nullptr);
    EXPECT_EQ(tx.queue_ahead_estimate(0)->min_rtt_us(), 1000u);
    EXPECT_EQ(tx.queue_ahead_estimate(0)->max_rate_bytes_per_s(), kHelloSize * 1000) << "32 bytes per ms";
    EXPECT_EQ(tx.queue_ahead_bound(0), 1000u + 2 * kHelloSize) << "one chunk + 2 x rate x min round trip";
    holds_the_bound("after the hello");
    const uint64_t first = written - kHelloSize;
    io.acked[0] += first; // all of it delivered 1 ms later
    tx.poll(2000, io);
    EXPECT_EQ(tx.queue_ahead_estimate(0)->max_rate_bytes_per_s(), first * 1000) << "what was written at 1 ms, per ms";
    EXPECT_EQ(tx.queue_ahead_bound(0), 1000u + 2 * first);
    written += io.take(0).size();
    EXPECT_GT(written - io.acked[0], 1000u + 2 * kHelloSize + kChunkHeaderSize + kParityUnitPrefix + 1000)
        << "the leg holds more than the first bound let it";
    EXPECT_LE(written - io.acked[0], tx.queue_ahead_bound(0) + kChunkHeaderSize + kParityUnitPrefix + 1000);
}

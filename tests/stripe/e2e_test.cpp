// Sender + receiver over fake legs (byte queues). A seeded RNG decides which
// leg delivers next and how much; one leg dies mid-chunk and comes back.
// The output must be byte-exact for every seed.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "fake_legs.h"
#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"

using namespace stripe_test;

namespace {

struct Result {
    std::vector<uint8_t> out;
    SessionState tx, rx;
    bool confirmed;
    uint64_t resent;
    std::string msg;
};

// Zero copy: chunk buffers the test owns, each with its reference, as the
// application's pipe reader would hand them over.
struct ExternalChunks {
    std::map<uint64_t, std::vector<uint8_t>> held; // ref -> buffer, while the sender holds it
    uint64_t next = 1, released = 0, bad_releases = 0;
    uint64_t digest = 0; // CRC-64 of the stream pushed so far (for precomputed sums)
    static void release(void *ctx, uint64_t ref) {
        auto *e = static_cast<ExternalChunks *>(ctx);
        if (e->held.erase(ref) != 1) e->bad_releases++;
        e->released++;
    }
};

// Counts what the sender hands over by reference.
struct RefIo : FakeIo {
    using FakeIo::FakeIo;
    size_t write_ref(uint32_t leg, const uint8_t *p, size_t n, uint64_t ref) override {
        ref_bytes += ref ? n : 0;
        return write(leg, p, n);
    }
    uint64_t ref_bytes = 0;
};

Result run(uint32_t seed, Codec codec, bool kill, size_t input_len, uint32_t legs = 4, ExternalChunks *ext = nullptr,
           uint64_t *ref_bytes = nullptr, uint32_t parity_k = 0, uint64_t *rebuilt = nullptr) {
    std::mt19937 rng(seed);
    auto rnd = [&](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); };
    std::vector<uint8_t> in(input_len);
    for (auto &b : in) b = uint8_t(rng());

    SenderConfig sc;
    sc.codec = codec;
    sc.legs = legs;
    sc.chunk_bytes = rnd(100, 5000);
    sc.max_chunks_in_flight = rnd(2, 12);
    sc.session_id = 0xabc;
    sc.backoff_initial_us = 1000;
    sc.backoff_max_us = 8000;
    if (ext) {
        sc.external_chunks = true;
        sc.release_chunk = &ExternalChunks::release;
        sc.release_ctx = ext;
    }
    ReceiverConfig rc;
    rc.codec = codec;
    rc.max_legs = legs;
    rc.window_chunks = rnd(1, 8);
    sc.parity_k = parity_k;
    if (parity_k) rc.window_chunks = std::max<uint32_t>(rc.window_chunks, 2 * legs); // two stripes must fit
    rc.max_chunk_bytes = 5000;
    StripeSender tx(sc);
    StripeReceiver rx(rc);
    RefIo s2r(legs), r2s(legs);
    for (auto &c : s2r.cap) c = rnd(64, 20000);
    std::vector<bool> up(legs, false);

    size_t fed = 0;
    uint64_t now = 0;
    bool killed = !kill;
    uint32_t victim = rnd(0, legs - 1);
    std::vector<uint8_t> out;
    for (int it = 0; it < 2000000; it++) {
        now += rnd(0, 300);
        tx.poll(now, s2r);
        StripeEvent ev;
        while (tx.next_event(ev)) {
            if (ev.type == EventType::CONNECT_LEG) {
                if (rnd(0, 3) == 0) {
                    tx.leg_connect_failed(ev.leg, now);
                } else {
                    s2r.q[ev.leg].clear();
                    r2s.q[ev.leg].clear();
                    up[ev.leg] = true;
                    rx.leg_up(ev.leg, now);
                    tx.leg_up(ev.leg, now);
                }
            }
        }
        if (fed < in.size() && rnd(0, 2) == 0) {
            if (ext) {
                const size_t k = std::min<size_t>({in.size() - fed, rnd(1, 9000), sc.chunk_bytes});
                std::vector<uint8_t> buf(in.begin() + fed, in.begin() + fed + k);
                const uint64_t ref = ext->next;
                // Half the chunks come with their CRCs precomputed (as
                // pipeio's reader hands them over); the receiver's checks
                // of chunk CRCs and stream digest must not tell the two apart.
                StripeSender::ChunkSums sums{crc32c(buf.data(), k), crc64(buf.data(), k, ext->digest)};
                const bool pre = rnd(0, 1) == 1;
                if (tx.push_chunk(buf.data(), static_cast<uint32_t>(k), ref, now, pre ? &sums : nullptr)) {
                    ext->digest = sums.digest_after;
                    ext->held[ref] = std::move(buf); // (moving a vector keeps its storage)
                    ext->next++;
                    fed += k;
                }
            } else {
                size_t k = std::min<size_t>(in.size() - fed, rnd(1, 9000));
                fed += tx.push_input(in.data() + fed, k, now);
            }
            if (fed == in.size()) tx.finish_input(now);
        }
        if (fed == 0 && in.empty()) tx.finish_input(now);
        // a random leg delivers a random amount
        uint32_t l = rnd(0, legs - 1);
        if (up[l] && !s2r.q[l].empty()) {
            size_t k = std::min<size_t>(s2r.q[l].size(), rnd(1, 3000));
            std::vector<uint8_t> chunk(s2r.q[l].begin(), s2r.q[l].begin() + k);
            size_t used = rx.leg_input(l, chunk.data(), k, now);
            s2r.q[l].erase(s2r.q[l].begin(), s2r.q[l].begin() + used);
        }
        // kill the victim while a chunk is half-way through its queue
        if (!killed && fed > in.size() / 3) {
            victim = 0;
            for (uint32_t i = 1; i < legs; i++)
                if (s2r.q[i].size() > s2r.q[victim].size()) victim = i;
        }
        if (!killed && up[victim] && s2r.q[victim].size() > 100 && fed > in.size() / 3) {
            killed = true;
            up[victim] = false;
            s2r.q[victim].clear();
            r2s.q[victim].clear();
            tx.leg_down(victim, now);
            rx.leg_down(victim, now);
        }
        while (rx.next_event(ev))
            if (ev.type == EventType::CLOSE_LEG) ADD_FAILURE() << rx.last_leg_message();
        rx.poll(now, r2s);
        uint32_t m = rnd(0, legs - 1);
        if (up[m] && !r2s.q[m].empty()) {
            auto v = r2s.take(m);
            tx.leg_input(m, v.data(), v.size(), now);
        }
        auto o = rx.output();
        if (!o.empty() && rnd(0, 1)) {
            size_t k = std::min<size_t>(o.size(), rnd(1, 7000));
            out.insert(out.end(), o.begin(), o.begin() + k);
            rx.output_consumed(k);
        }
        if (tx.state() != SessionState::RUNNING && rx.state() != SessionState::RUNNING) break;
        if (codec == Codec::VIAMILLIPEDE && tx.state() == SessionState::DONE && rx.state() == SessionState::DONE) break;
    }
    if (ref_bytes) *ref_bytes = s2r.ref_bytes;
    if (ext) EXPECT_EQ(tx.stats().bytes_copied, 0u);
    if (rebuilt) *rebuilt = rx.stats().parity_rebuilt;
    return {out, tx.state(), rx.state(), tx.confirmed(), tx.stats().chunks_resent,
            std::string(tx.message()) + " | " + rx.message()};
}

} // namespace

class StripeE2E : public ::testing::TestWithParam<uint32_t> {};

TEST_P(StripeE2E, NativeByteExactWithLegDeath) {
    uint32_t seed = GetParam();
    std::mt19937 sizes(seed * 7 + 1);
    size_t len = std::uniform_int_distribution<size_t>(0, 300000)(sizes);
    if (seed == 1) len = 0; // empty input is a valid stream too
    Result r = run(seed, Codec::NATIVE, /*kill=*/true, len);
    ASSERT_EQ(r.tx, SessionState::DONE) << r.msg;
    ASSERT_EQ(r.rx, SessionState::DONE) << r.msg;
    EXPECT_TRUE(r.confirmed);
    // regenerate the input the same way run() did
    std::mt19937 rng(seed);
    std::vector<uint8_t> in(len);
    for (auto &b : in) b = uint8_t(rng());
    ASSERT_EQ(r.out.size(), in.size());
    EXPECT_TRUE(r.out == in) << "output differs";
    if (len > 50000) {
        EXPECT_GT(r.resent, 0u) << "the dying leg should have forced re-sends";
    }
}

TEST_P(StripeE2E, CompatByteExactNoDeath) {
    uint32_t seed = GetParam();
    size_t len = 50000 + seed * 1000;
    Result r = run(seed, Codec::VIAMILLIPEDE, /*kill=*/false, len);
    ASSERT_EQ(r.tx, SessionState::DONE) << r.msg;
    ASSERT_EQ(r.rx, SessionState::DONE) << r.msg;
    EXPECT_FALSE(r.confirmed);
    std::mt19937 rng(seed);
    std::vector<uint8_t> in(len);
    for (auto &b : in) b = uint8_t(rng());
    EXPECT_TRUE(r.out == in);
}

TEST_P(StripeE2E, ExternalChunksTravelByReferenceAndAreAllReleased) {
    const uint32_t seed = GetParam();
    const size_t len = 40000 + seed * 7919;
    for (Codec codec : {Codec::NATIVE, Codec::VIAMILLIPEDE}) {
        ExternalChunks ext;
        uint64_t ref_bytes = 0;
        {
            Result r = run(seed, codec, /*kill=*/codec == Codec::NATIVE, len, 4, &ext, &ref_bytes);
            ASSERT_EQ(r.tx, SessionState::DONE) << r.msg;
            ASSERT_EQ(r.rx, SessionState::DONE) << r.msg;
            std::mt19937 rng(seed);
            std::vector<uint8_t> in(len);
            for (auto &b : in) b = uint8_t(rng());
            EXPECT_TRUE(r.out == in) << "output differs";
            // Every payload byte went to the legs by reference, at least once.
            EXPECT_GE(ref_bytes, len);
        } // (the sender is gone with run())
        EXPECT_TRUE(ext.held.empty()) << ext.held.size() << " chunks never released";
        EXPECT_EQ(ext.bad_releases, 0u);
        EXPECT_EQ(ext.released, ext.next - 1);
    }
}

INSTANTIATE_TEST_SUITE_P(Seeds, StripeE2E, ::testing::Range(1u, 13u));

// Parity (docs/wire.md 2.21): one leg of N+K dies mid-chunk; the receiver
// rebuilds what it carried from the stripes' parity. Byte-exact and
// confirmed for every seed, with copied and by-reference chunks.
TEST_P(StripeE2E, ParityByteExactWithLegDeath) {
    const uint32_t seed = GetParam();
    const uint32_t legs = 2 + seed % 5, k = 1 + seed % std::min<uint32_t>(3, legs - 1);
    uint64_t rebuilt = 0;
    Result r = run(seed, Codec::NATIVE, true, 3000 + seed * 997 % 60000, legs, nullptr, nullptr, k, &rebuilt);
    ASSERT_EQ(r.tx, SessionState::DONE) << r.msg;
    ASSERT_EQ(r.rx, SessionState::DONE) << r.msg;
    EXPECT_TRUE(r.confirmed);
    std::mt19937 rng(seed);
    std::vector<uint8_t> in(3000 + seed * 997 % 60000);
    for (auto &b : in) b = uint8_t(rng());
    EXPECT_EQ(r.out, in);
    // Deterministic per seed: one dead leg of N+K costs no re-send.
    EXPECT_EQ(r.resent, 0u) << "rebuilt " << rebuilt;
    ExternalChunks ext;
    Result e = run(seed, Codec::NATIVE, true, 3000 + seed * 997 % 60000, legs, &ext, nullptr, k, nullptr);
    ASSERT_EQ(e.tx, SessionState::DONE) << e.msg;
    EXPECT_EQ(e.out, in);
    EXPECT_EQ(ext.bad_releases, 0u);
    EXPECT_TRUE(ext.held.empty());
}

// Across the seeds above, the receiver did rebuild chunks (the dying leg
// carried some that nothing else brought).
TEST(StripeE2EParity, DeadLegsChunksAreRebuilt) {
    uint64_t total = 0;
    for (uint32_t seed = 1; seed < 13; seed++) {
        const uint32_t legs = 2 + seed % 5, k = 1 + seed % std::min<uint32_t>(3, legs - 1);
        uint64_t rebuilt = 0;
        Result r = run(seed, Codec::NATIVE, true, 3000 + seed * 997 % 60000, legs, nullptr, nullptr, k, &rebuilt);
        ASSERT_EQ(r.tx, SessionState::DONE) << r.msg;
        total += rebuilt;
    }
    EXPECT_GE(total, 12u);
}

// Four legs, parity 1 (N = 3), 1000-byte chunks: a quiet pipe closes a
// partial chunk after 0.5 ms and a short stripe after 1 ms. One leg's bytes
// can be held back (they never reach the receiver) and its queue capped.
struct QuietParityRun {
    static constexpr uint32_t kLegs = 4;
    static SenderConfig sender(uint64_t session_id) {
        SenderConfig sc;
        sc.legs = kLegs;
        sc.chunk_bytes = 1000;
        sc.max_chunks_in_flight = 8;
        sc.parity_k = 1;
        sc.parity_idle_us = 1000;
        sc.flush_partial_us = 500;
        sc.backoff_initial_us = 1000;
        sc.backoff_max_us = 8000;
        sc.session_id = session_id;
        return sc;
    }
    static ReceiverConfig receiver() {
        ReceiverConfig rc;
        rc.max_legs = kLegs;
        rc.window_chunks = 16;
        rc.max_chunk_bytes = 4096;
        return rc;
    }
    explicit QuietParityRun(uint64_t session_id) : tx(sender(session_id)), rx(receiver()) {}

    StripeSender tx;
    StripeReceiver rx;
    FakeIo s2r{kLegs}, r2s{kLegs};
    std::vector<bool> up = std::vector<bool>(kLegs, false);
    std::vector<uint8_t> out;
    uint64_t now = 0;
    int held = -1; // this leg's bytes are not delivered

    void step() {
        now += 100;
        tx.poll(now, s2r);
        connect_requested_legs(tx, rx, s2r, r2s, now, &up);
        for (uint32_t l = 0; l < kLegs; l++) {
            if (!up[l] || s2r.q[l].empty() || int(l) == held) continue;
            std::vector<uint8_t> v(s2r.q[l].begin(), s2r.q[l].end());
            const size_t used = rx.leg_input(l, v.data(), v.size(), now);
            s2r.q[l].erase(s2r.q[l].begin(), s2r.q[l].begin() + static_cast<long>(used));
        }
        StripeEvent ev;
        while (rx.next_event(ev))
            if (ev.type == EventType::CLOSE_LEG) ADD_FAILURE() << rx.last_leg_message();
        rx.poll(now, r2s);
        for (uint32_t l = 0; l < kLegs; l++)
            if (up[l] && !r2s.q[l].empty()) {
                auto v = r2s.take(l);
                tx.leg_input(l, v.data(), v.size(), now);
            }
        auto o = rx.output();
        if (!o.empty()) {
            out.insert(out.end(), o.begin(), o.end());
            rx.output_consumed(o.size());
        }
    }
    bool open_all() {
        for (int i = 0; i < 1000; i++) {
            bool open = true;
            for (uint32_t l = 0; l < kLegs; l++) open &= tx.leg_state(l) == SenderLegState::OPEN;
            if (open) return true;
            step();
        }
        return false;
    }
    // The leg dies at both ends; its bytes are delivered again from here on.
    void kill(uint32_t leg) {
        up[leg] = false;
        s2r.q[leg].clear();
        r2s.q[leg].clear();
        tx.leg_down(leg, now);
        rx.leg_down(leg, now);
        held = -1;
    }
    void finish() {
        tx.finish_input(now);
        for (int i = 0; i < 100000 && (tx.state() == SessionState::RUNNING || rx.state() == SessionState::RUNNING); i++)
            step();
    }
};

// A short stripe (closed because the pipe went quiet) whose only parity
// chunk dies with its leg: every data chunk arrived, so nothing needs a
// rebuild, and the receiver completes the stripe once the next stripe's
// first chunk, or the end record, says where it ended. The parity chunk is
// not sent again (transport_combos saw "resent 1" from exactly this).
// Each leg in turn is the one that dies; one of them carries the parity.
TEST(StripeE2EParity, LostParityOfAQuietShortStripeIsNotResent) {
    std::mt19937 rng(99);
    std::vector<uint8_t> in(4000);
    for (auto &b : in) b = uint8_t(rng());
    bool parity_leg_seen = false;
    for (uint32_t victim = 0; victim < QuietParityRun::kLegs; victim++) {
        QuietParityRun r(0x51);
        ASSERT_TRUE(r.open_all()) << "victim " << victim;
        // 1500 bytes: a full chunk and a partial one sealed after 500 us;
        // after 1 ms of quiet the stripe closes short (2 data chunks) and
        // its parity goes out. The victim's bytes are held back meanwhile.
        r.held = int(victim);
        ASSERT_EQ(r.tx.push_input(in.data(), 1500, r.now), 1500u);
        for (int i = 0; i < 200 && r.tx.stats().parity_chunks_sent == 0; i++) r.step();
        ASSERT_EQ(r.tx.stats().parity_chunks_sent, 1u) << "victim " << victim;
        for (int i = 0; i < 20; i++) r.step(); // (the other legs deliver what they carry)
        r.kill(victim);
        // The pipe stays quiet for 50 ms: nothing is sent again.
        for (int i = 0; i < 500; i++) r.step();
        EXPECT_EQ(r.tx.stats().chunks_resent, 0u) << "victim " << victim;
        EXPECT_EQ(r.out.size(), 1500u) << "victim " << victim << ": the data chunks are delivered meanwhile";
        // The rest of the input, then the end: byte-exact, still no re-send.
        ASSERT_EQ(r.tx.push_input(in.data() + 1500, in.size() - 1500, r.now), in.size() - 1500);
        r.finish();
        ASSERT_EQ(r.tx.state(), SessionState::DONE) << "victim " << victim << ": " << r.tx.message() << " | " << r.rx.message();
        ASSERT_EQ(r.rx.state(), SessionState::DONE) << "victim " << victim << ": " << r.rx.message();
        EXPECT_EQ(r.out, in) << "victim " << victim;
        EXPECT_EQ(r.tx.stats().chunks_resent, 0u) << "victim " << victim;
        if (r.tx.stats().parity_covered > 0 && r.rx.stats().parity_rebuilt == 0) parity_leg_seen = true;
    }
    EXPECT_TRUE(parity_leg_seen) << "no victim carried the short stripe's parity chunk";
}

// A quiet short stripe, then more input: the next stripe's first chunk is
// what tells the receiver where the short stripe ended when its parity is
// lost (2.21), and the receiver resolves stripes in order, so it cannot
// rebuild that first chunk first. One leg must therefore not carry both:
// here the leg with the short stripe's parity is the only one that can take
// the next chunk, and it dies afterwards. Nothing may need a re-send.
// (transport_combos failed on "covered 6 resent 1" this way: stripe 30
// with one data chunk, its parity and chunk 124 on the leg that went down.)
TEST(StripeE2EParity, ShortStripesParityAndTheNextStripesFirstChunkGoOnDistinctLegs) {
    constexpr uint32_t kData = 0, kVictim = 2;
    std::mt19937 rng(7);
    std::vector<uint8_t> in(6000);
    for (auto &b : in) b = uint8_t(rng());
    QuietParityRun r(0x52);
    auto only_writable = [&](int leg) { // -1: every leg
        for (uint32_t l = 0; l < QuietParityRun::kLegs; l++)
            r.s2r.cap[l] = (leg < 0 || l == uint32_t(leg)) ? (1u << 20) : 0;
    };
    ASSERT_TRUE(r.open_all());
    for (int i = 0; i < 20; i++) r.step(); // (hellos answered, queues empty)
    // A short stripe: one partial data chunk on kData, then (after the
    // quiet) its parity on kVictim, whose bytes are held back.
    r.held = int(kVictim);
    only_writable(kData);
    ASSERT_EQ(r.tx.push_input(in.data(), 500, r.now), 500u);
    for (int i = 0; i < 20 && r.out.size() < 500; i++) r.step();
    ASSERT_EQ(r.out.size(), 500u) << "the data chunk went on its own leg (and is delivered at once)";
    ASSERT_EQ(r.tx.stats().parity_chunks_sent, 0u) << "the stripe closed before its parity's leg was chosen";
    only_writable(kVictim);
    for (int i = 0; i < 200 && r.tx.stats().parity_chunks_sent == 0; i++) r.step();
    ASSERT_EQ(r.tx.stats().parity_chunks_sent, 1u);
    for (int i = 0; i < 5; i++) r.step();
    ASSERT_GT(r.s2r.q[kVictim].size(), 0u) << "the parity went on the victim";
    // The next stripe's first chunk, while only kVictim can take it. (A
    // whole chunk is sealed at once; 5 steps stay short of the 1 ms of
    // quiet that would close this stripe too and give the victim its parity.)
    const size_t victim_bytes = r.s2r.q[kVictim].size();
    ASSERT_EQ(r.tx.push_input(in.data() + 500, 1000, r.now), 1000u);
    for (int i = 0; i < 5; i++) r.step();
    EXPECT_EQ(r.s2r.q[kVictim].size(), victim_bytes) << "the parity's leg took the next stripe's first chunk";
    only_writable(-1);
    for (int i = 0; i < 50; i++) r.step();
    r.kill(kVictim);
    ASSERT_EQ(r.tx.push_input(in.data() + 1500, in.size() - 1500, r.now), in.size() - 1500);
    r.finish();
    ASSERT_EQ(r.tx.state(), SessionState::DONE) << r.tx.message() << " | " << r.rx.message();
    ASSERT_EQ(r.rx.state(), SessionState::DONE) << r.rx.message();
    EXPECT_EQ(r.out, in);
    EXPECT_EQ(r.tx.stats().chunks_resent, 0u);
}

// Compressed chunks through the stripe sender and receiver (docs/wire.md
// 2.20): the flag and feature bits on the wire, the negotiation, byte-exact
// streams of compressed and raw chunks whose end record verifies the
// original bytes, and the refusals.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "../stripe/fake_legs.h"
#include "millipede/codec/chunk_codec.h"
#include "millipede/net/bytes.h"
#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"

using namespace stripe_test;
namespace codec = millipede::codec;

namespace {

constexpr uint32_t kChunk = 16u << 10;

std::vector<uint8_t> corpus(size_t n, uint32_t seed) {
    // Text with an incompressible stretch in the middle: both kinds of chunk.
    static const char *w[] = {"stripe ", "leg ", "chunk ", "window ", "ack\n", "the "};
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n;) {
        if (i > n / 3 && i < n / 2) {
            v[i++] = static_cast<uint8_t>(rng());
            continue;
        }
        for (const char *p = w[rng() % 6]; *p && i < n; p++) v[i++] = static_cast<uint8_t>(*p);
    }
    return v;
}

struct Chunks {
    std::map<uint64_t, std::vector<uint8_t>> held;
    static void release(void *ctx, uint64_t ref) { static_cast<Chunks *>(ctx)->held.erase(ref); }
};

struct Outcome {
    std::vector<uint8_t> out;
    SessionState tx, rx;
    bool confirmed = false;
    uint64_t compressed_chunks = 0, raw_chunks = 0;
    std::string msg;
};

// One sender, one receiver, `legs` fake legs, chunks compressed as the
// application's deflate pool does; the receiver's owner inflates in order.
Outcome transfer(const std::vector<uint8_t> &in, uint32_t seed, uint32_t rx_features, uint32_t legs = 3,
                 bool corrupt_prefix = false) {
    std::mt19937 rng(seed);
    auto rnd = [&](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); };
    Chunks chunks;
    SenderConfig sc;
    sc.legs = legs;
    sc.chunk_bytes = kChunk;
    sc.max_chunks_in_flight = 8;
    sc.session_id = 0x5eed;
    sc.external_chunks = true;
    sc.release_chunk = &Chunks::release;
    sc.release_ctx = &chunks;
    sc.features = kFeaturesV1 | kFeatureCompress;
    ReceiverConfig rc;
    rc.max_legs = legs;
    rc.window_chunks = 4;
    rc.max_chunk_bytes = kChunk;
    rc.features = rx_features;
    StripeSender tx(sc);
    StripeReceiver rx(rc);
    FakeIo s2r(legs), r2s(legs);
    codec::Compressor comp(kChunk);
    codec::Decompressor decomp(kChunk);
    std::vector<uint8_t> scratch(kChunk), plain(kChunk);
    Outcome o;
    size_t fed = 0;
    uint64_t digest = 0, ref = 1, now = 0, next_out = 0;
    for (int it = 0; it < 200000; it++) {
        now += rnd(1, 200);
        tx.poll(now, s2r);
        StripeEvent ev;
        while (tx.next_event(ev))
            if (ev.type == EventType::CONNECT_LEG) {
                rx.leg_up(ev.leg, now);
                tx.leg_up(ev.leg, now);
            }
        if (fed < in.size() && tx.chunk_room()) {
            const uint32_t k = static_cast<uint32_t>(std::min<size_t>(in.size() - fed, rnd(kChunk / 2, kChunk)));
            std::vector<uint8_t> buf(in.begin() + fed, in.begin() + fed + k);
            const uint32_t crc = crc32c(buf.data(), k);
            digest = crc64(buf.data(), k, digest);
            StripeSender::ChunkSums sums{crc, digest};
            uint32_t n = comp.compress(buf.data(), k, crc, scratch.data(), kChunk);
            if (n) {
                if (corrupt_prefix && o.compressed_chunks == 2) millipede::net::store_le32(scratch.data(), kChunk + 1);
                std::copy(scratch.begin(), scratch.begin() + n, buf.begin());
                sums = {crc32c(buf.data(), n), digest, k};
                o.compressed_chunks++;
            } else {
                n = k;
                o.raw_chunks++;
            }
            EXPECT_TRUE(tx.push_chunk(buf.data(), n, ref, now, &sums));
            chunks.held[ref++] = std::move(buf);
            fed += k;
            if (fed == in.size()) tx.finish_input(now);
        }
        const uint32_t l = rnd(0, legs - 1);
        if (!s2r.q[l].empty()) {
            auto v = s2r.take(l);
            const size_t used = rx.leg_input(l, v.data(), v.size(), now);
            s2r.q[l].insert(s2r.q[l].begin(), v.begin() + used, v.end());
        }
        while (rx.next_event(ev))
            if (ev.type == EventType::CLOSE_LEG) o.msg += std::string("[closed: ") + rx.last_leg_message() + "]";
        rx.poll(now, r2s);
        for (uint32_t m = 0; m < legs; m++)
            if (!r2s.q[m].empty()) {
                auto v = r2s.take(m);
                tx.leg_input(m, v.data(), v.size(), now);
            }
        // The owner: inflate the next delivered chunk, digest, "write", free.
        StripeReceiver::Held h;
        if (rx.compressed_session() && rx.held(next_out, h)) {
            const uint8_t *p = h.data;
            uint32_t n = h.len;
            if (h.compressed) {
                const auto st = decomp.decompress(h.data, h.len, plain.data(), kChunk, n);
                EXPECT_EQ(st, codec::InflateStatus::OK) << codec::inflate_status_text(st);
                EXPECT_EQ(n, h.stream_len);
                p = plain.data();
            }
            rx.digest_output(p, n);
            o.out.insert(o.out.end(), p, p + n);
            rx.output_consumed(h.len);
            next_out++;
        }
        if (tx.state() != SessionState::RUNNING && rx.state() != SessionState::RUNNING) break;
        if (tx.state() == SessionState::FAILED || rx.state() == SessionState::FAILED) break;
    }
    o.tx = tx.state();
    o.rx = rx.state();
    o.confirmed = tx.confirmed();
    o.msg += std::string(tx.message()) + " | " + rx.message();
    return o;
}

} // namespace

TEST(StripeCompress, FlagAndFeatureBitsOnTheWire) {
    EXPECT_EQ(kFeatureCompress, 1u << 2);
    EXPECT_EQ(kChunkFlagCompressed, 1u << 1);
    ChunkHeader h;
    h.flags = kChunkFlagCompressed | kChunkFlagResent;
    h.seq = 7;
    h.length = 20;
    uint8_t b[kChunkHeaderSize];
    encode_chunk_header(b, h);
    EXPECT_EQ(b[5], 0x03);
    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
    Hello hello;
    hello.features = kFeaturesV1 | kFeatureCompress;
    auto bytes = hello_bytes(hello);
    EXPECT_EQ(bytes[20], 0x07);
    bytes.insert(bytes.end(), b, b + kChunkHeaderSize);
    const auto recs = decode_all(dec, bytes);
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[0].d.hello.features, kFeaturesV1 | kFeatureCompress);
    EXPECT_EQ(recs[1].kind, EventKind::CHUNK_HEADER);
    EXPECT_EQ(recs[1].chunk.flags, 0x03);
}

TEST(StripeCompress, ByteExactAndVerifiedOverOriginalBytes) {
    for (uint32_t seed = 1; seed <= 6; seed++) {
        const auto in = corpus(200'000 + seed * 3001, seed);
        const Outcome o = transfer(in, seed, kFeaturesV1 | kFeatureCompress);
        ASSERT_EQ(o.tx, SessionState::DONE) << o.msg;
        ASSERT_EQ(o.rx, SessionState::DONE) << o.msg;
        EXPECT_TRUE(o.confirmed) << "the end record's length and CRC64 cover the original bytes";
        EXPECT_GT(o.compressed_chunks, 0u);
        EXPECT_GT(o.raw_chunks, 0u) << "the random stretch should have gone raw";
        ASSERT_EQ(o.out.size(), in.size());
        EXPECT_TRUE(o.out == in);
    }
}

TEST(StripeCompress, ReceiverWithoutCompressionRefusesClearly) {
    const auto in = corpus(50'000, 9);
    const Outcome o = transfer(in, 9, kFeaturesV1);
    EXPECT_EQ(o.tx, SessionState::FAILED);
    EXPECT_NE(o.msg.find("does not accept compressed chunks"), std::string::npos) << o.msg;
}

TEST(StripeCompress, CompressedChunkWithoutNegotiationClosesTheLeg) {
    ReceiverConfig rc;
    rc.max_legs = 1;
    rc.features = kFeaturesV1 | kFeatureCompress; // could, but the sender did not ask
    StripeReceiver rx(rc);
    rx.leg_up(0, 0);
    Hello h;
    h.session_id = 1;
    auto b = hello_bytes(h);
    auto c = chunk_bytes(0, 0, std::vector<uint8_t>(20, 'a'));
    c[5] = kChunkFlagCompressed;
    append(b, c);
    rx.leg_input(0, b.data(), b.size(), 0);
    EXPECT_FALSE(rx.compressed_session());
    StripeEvent ev;
    bool closed = false;
    while (rx.next_event(ev)) closed |= ev.type == EventType::CLOSE_LEG && ev.error == Error::BAD_COMPRESSED;
    EXPECT_TRUE(closed);
    EXPECT_NE(std::string(rx.last_leg_message()).find("not negotiated"), std::string::npos) << rx.last_leg_message();
}

TEST(StripeCompress, PrefixShorterThanItselfClosesTheLeg) {
    ReceiverConfig rc;
    rc.max_legs = 1;
    rc.features = kFeaturesV1 | kFeatureCompress;
    StripeReceiver rx(rc);
    rx.leg_up(0, 0);
    Hello h;
    h.session_id = 1;
    h.features = kFeaturesV1 | kFeatureCompress;
    auto b = hello_bytes(h);
    auto c = chunk_bytes(0, 0, std::vector<uint8_t>(8, 'a'));
    c[5] = kChunkFlagCompressed;
    append(b, c);
    rx.leg_input(0, b.data(), b.size(), 0);
    EXPECT_TRUE(rx.compressed_session());
    EXPECT_EQ(rx.stats().errors[static_cast<unsigned>(Error::BAD_COMPRESSED)], 1u);
}

TEST(StripeCompress, LengthBombInThePrefixFailsTheSession) {
    const auto in = corpus(120'000, 4);
    const Outcome o = transfer(in, 4, kFeaturesV1 | kFeatureCompress, 2, /*corrupt_prefix=*/true);
    EXPECT_EQ(o.rx, SessionState::FAILED) << o.msg;
    EXPECT_NE(o.msg.find("announces"), std::string::npos) << o.msg;
    EXPECT_LT(o.out.size(), in.size());
}

TEST(StripeCompress, SenderRefusesCompressedChunksItDidNotNegotiateOrThatDoNotShrink) {
    std::vector<uint8_t> buf(100, 'z');
    Chunks chunks;
    SenderConfig sc;
    sc.chunk_bytes = 1000;
    sc.external_chunks = true;
    sc.release_chunk = &Chunks::release;
    sc.release_ctx = &chunks;
    {
        StripeSender plain(sc); // no kFeatureCompress
        StripeSender::ChunkSums sums{crc32c(buf.data(), 100), 0, 500};
        EXPECT_FALSE(plain.push_chunk(buf.data(), 100, 1, 0, &sums));
    }
    sc.features = kFeaturesV1 | kFeatureCompress;
    StripeSender tx(sc);
    StripeSender::ChunkSums grows{crc32c(buf.data(), 100), 0, 100}; // does not shrink
    EXPECT_FALSE(tx.push_chunk(buf.data(), 100, 1, 0, &grows));
    StripeSender::ChunkSums too_big{crc32c(buf.data(), 100), 0, 1001}; // beyond chunk_bytes
    EXPECT_FALSE(tx.push_chunk(buf.data(), 100, 1, 0, &too_big));
    StripeSender::ChunkSums ok{crc32c(buf.data(), 100), 0, 1000};
    EXPECT_TRUE(tx.push_chunk(buf.data(), 100, 1, 0, &ok));
    EXPECT_EQ(tx.bytes_in(), 1000u) << "stream bytes, not payload bytes";
    EXPECT_THROW(
        [] {
            SenderConfig bad;
            bad.codec = Codec::VIAMILLIPEDE;
            bad.features = kFeaturesV1 | kFeatureCompress;
            StripeSender s(bad);
        }(),
        std::invalid_argument);
}

// Per-chunk compression (docs/wire.md 2.20): round trips, the raw fallback
// for data that does not shrink, and every way a payload from the wire is
// refused before anything unverified could reach stdout.
#include <gtest/gtest.h>

#include <isa-l/igzip_lib.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "millipede/codec/chunk_codec.h"
#include "millipede/net/bytes.h"
#include "millipede/stripe/wire.h"

using namespace millipede;
using codec::InflateStatus;

namespace {

constexpr uint32_t kChunk = 1u << 20;

std::vector<uint8_t> text(size_t n, uint32_t seed = 1) {
    // Words drawn from a small vocabulary: compressible like prose or logs.
    static const char *words[] = {"stripe ", "leg ", "chunk ", "millipede ", "the ", "of ", "pipe ",
                                  "receiver ", "sender ", "window\n", "acknowledged ", "CRC32C "};
    std::mt19937 rng(seed);
    std::vector<uint8_t> v;
    v.reserve(n);
    while (v.size() < n) {
        const char *w = words[rng() % 12];
        for (const char *p = w; *p && v.size() < n; p++) v.push_back(static_cast<uint8_t>(*p));
    }
    return v;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed = 7) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto &b : v) b = static_cast<uint8_t>(rng());
    return v;
}

struct Packed {
    std::vector<uint8_t> payload;
    uint32_t len = 0;
};

Packed pack(codec::Compressor &c, const std::vector<uint8_t> &in) {
    Packed p;
    p.payload.resize(in.size() + 64);
    p.len = c.compress(in.data(), static_cast<uint32_t>(in.size()), stripe::crc32c(in.data(), in.size()),
                       p.payload.data(), static_cast<uint32_t>(p.payload.size()));
    p.payload.resize(p.len);
    return p;
}

} // namespace

TEST(ChunkCodec, PrefixIsLittleEndianLengthThenCrc) {
    uint8_t b[codec::kPrefixSize];
    codec::encode_prefix(b, {0x00102030u, 0xE3069283u});
    const uint8_t want[] = {0x30, 0x20, 0x10, 0x00, 0x83, 0x92, 0x06, 0xE3};
    EXPECT_EQ(0, std::memcmp(b, want, 8));
    const auto p = codec::decode_prefix(b);
    EXPECT_EQ(p.original_len, 0x00102030u);
    EXPECT_EQ(p.original_crc32c, 0xE3069283u);
}

TEST(ChunkCodec, TextRoundTripsAndShrinks) {
    codec::Compressor c(kChunk);
    codec::Decompressor d(kChunk);
    for (size_t n : {size_t(4096), size_t(100'000), size_t(kChunk)}) {
        const auto in = text(n, static_cast<uint32_t>(n));
        const auto p = pack(c, in);
        ASSERT_GT(p.len, 0u) << n;
        EXPECT_LT(p.len, n / 2) << "text should at least halve, n=" << n;
        EXPECT_EQ(codec::decode_prefix(p.payload.data()).original_len, n);
        std::vector<uint8_t> out(kChunk);
        uint32_t got = 0;
        ASSERT_EQ(d.decompress(p.payload.data(), p.len, out.data(), kChunk, got), InflateStatus::OK) << n;
        ASSERT_EQ(got, n);
        EXPECT_EQ(0, std::memcmp(out.data(), in.data(), n));
    }
}

TEST(ChunkCodec, OutputIsPlainRawDeflate) {
    // Another inflater (zlib's raw mode is not linked here; ISA-L's
    // streaming isal_inflate is a second code path) reads the stream.
    codec::Compressor c(kChunk);
    const auto in = text(300'000);
    const auto p = pack(c, in);
    ASSERT_GT(p.len, 0u);
    inflate_state s;
    isal_inflate_init(&s);
    s.crc_flag = ISAL_DEFLATE;
    std::vector<uint8_t> out(in.size());
    s.next_in = const_cast<uint8_t *>(p.payload.data() + codec::kPrefixSize);
    s.avail_in = p.len - static_cast<uint32_t>(codec::kPrefixSize);
    s.next_out = out.data();
    s.avail_out = static_cast<uint32_t>(out.size());
    ASSERT_EQ(isal_inflate(&s), ISAL_DECOMP_OK);
    EXPECT_EQ(s.block_state, ISAL_BLOCK_FINISH);
    EXPECT_EQ(out, in);
}

TEST(ChunkCodec, IncompressibleChunkStaysRaw) {
    codec::Compressor c(kChunk);
    for (size_t n : {size_t(1), size_t(8), size_t(9), size_t(1000), size_t(kChunk)}) {
        const auto in = random_bytes(n);
        std::vector<uint8_t> out(n + 1024, 0xAA);
        EXPECT_EQ(c.compress(in.data(), static_cast<uint32_t>(n), stripe::crc32c(in.data(), n), out.data(),
                             static_cast<uint32_t>(out.size())),
                  0u)
            << n;
    }
}

TEST(ChunkCodec, NeverWritesPastTheOutputBuffer) {
    codec::Compressor c(kChunk);
    const auto in = text(200'000);
    const auto full = pack(c, in);
    ASSERT_GT(full.len, 100u);
    // One byte too small for the compressed payload: raw, and the guard
    // bytes after the given capacity are untouched.
    std::vector<uint8_t> out(full.len + 64, 0x5C);
    EXPECT_EQ(c.compress(in.data(), 200'000, stripe::crc32c(in.data(), in.size()), out.data(), full.len - 1), 0u);
    for (size_t i = full.len - 1; i < out.size(); i++) ASSERT_EQ(out[i], 0x5C) << i;
}

TEST(ChunkCodec, CorruptedStreamIsDetected) {
    codec::Compressor c(kChunk);
    codec::Decompressor d(kChunk);
    const auto in = text(500'000, 3);
    const auto p = pack(c, in);
    ASSERT_GT(p.len, 100u);
    std::vector<uint8_t> out(kChunk);
    std::mt19937 rng(11);
    int refused = 0;
    for (int i = 0; i < 200; i++) {
        auto bad = p.payload;
        const size_t at = codec::kPrefixSize + rng() % (bad.size() - codec::kPrefixSize);
        bad[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        uint32_t got = 0;
        const auto st = d.decompress(bad.data(), static_cast<uint32_t>(bad.size()), out.data(), kChunk, got);
        // Every flip is caught: by the inflater, by the length, or at the latest by the CRC.
        ASSERT_NE(st, InflateStatus::OK) << "flip at " << at;
        EXPECT_EQ(got, 0u);
        refused++;
    }
    EXPECT_EQ(refused, 200);
    // A wrong CRC in the prefix with an intact stream.
    auto bad = p.payload;
    bad[5] ^= 1;
    uint32_t got = 0;
    EXPECT_EQ(d.decompress(bad.data(), p.len, out.data(), kChunk, got), InflateStatus::CRC_MISMATCH);
}

TEST(ChunkCodec, TruncatedAndPaddedStreamsAreRefused) {
    codec::Compressor c(kChunk);
    codec::Decompressor d(kChunk);
    const auto in = text(100'000, 5);
    auto p = pack(c, in);
    std::vector<uint8_t> out(kChunk);
    uint32_t got = 0;
    EXPECT_NE(d.decompress(p.payload.data(), p.len - 1, out.data(), kChunk, got), InflateStatus::OK);
    EXPECT_EQ(d.decompress(p.payload.data(), 8, out.data(), kChunk, got), InflateStatus::TOO_SHORT);
    EXPECT_EQ(d.decompress(p.payload.data(), 3, out.data(), kChunk, got), InflateStatus::TOO_SHORT);
    p.payload.push_back(0);
    EXPECT_EQ(d.decompress(p.payload.data(), p.len + 1, out.data(), kChunk, got), InflateStatus::TRAILING_BYTES);
}

TEST(ChunkCodec, LengthBombsAreRefusedBeforeInflating) {
    codec::Compressor c(kChunk);
    codec::Decompressor d(64u << 10); // this receiver's chunks are 64 KiB
    // 1 MiB of zeros deflates to about a kilobyte: a "bomb" for a 64 KiB receiver.
    std::vector<uint8_t> zeros(kChunk, 0);
    const auto p = pack(c, zeros);
    ASSERT_GT(p.len, 0u);
    ASSERT_LT(p.len, 4096u);
    std::vector<uint8_t> out((64u << 10) + 16, 0x77);
    uint32_t got = 0;
    // The prefix tells the truth (1 MiB): above the limit, refused unread.
    EXPECT_EQ(d.decompress(p.payload.data(), p.len, out.data(), static_cast<uint32_t>(out.size()), got),
              InflateStatus::BAD_LENGTH);
    // The prefix lies (claims 64 KiB): inflating stops at the bound.
    auto liar = p.payload;
    net::store_le32(liar.data(), 64u << 10);
    EXPECT_EQ(d.decompress(liar.data(), p.len, out.data(), 64u << 10, got), InflateStatus::LENGTH_MISMATCH);
    for (size_t i = 64u << 10; i < out.size(); i++) ASSERT_EQ(out[i], 0x77) << "wrote past the bound at " << i;
    // Claims fewer bytes than the stream holds, with room to spare.
    net::store_le32(liar.data(), 1000);
    EXPECT_EQ(d.decompress(liar.data(), p.len, out.data(), static_cast<uint32_t>(out.size()), got),
              InflateStatus::LENGTH_MISMATCH);
    // Claims more than the stream holds.
    codec::Decompressor big(kChunk);
    std::vector<uint8_t> out2(kChunk);
    const auto small = pack(c, text(10'000));
    auto more = small.payload;
    net::store_le32(more.data(), 20'000);
    EXPECT_EQ(big.decompress(more.data(), small.len, out2.data(), kChunk, got), InflateStatus::LENGTH_MISMATCH);
    // Zero length.
    net::store_le32(more.data(), 0);
    EXPECT_EQ(big.decompress(more.data(), small.len, out2.data(), kChunk, got), InflateStatus::BAD_LENGTH);
}

TEST(ChunkCodec, GarbageIsRefusedNotCrashed) {
    codec::Decompressor d(kChunk);
    std::vector<uint8_t> out(kChunk);
    std::mt19937 rng(99);
    for (int i = 0; i < 500; i++) {
        auto g = random_bytes(9 + rng() % 5000, static_cast<uint32_t>(i));
        net::store_le32(g.data(), 1 + rng() % kChunk);
        uint32_t got = 0;
        EXPECT_NE(d.decompress(g.data(), static_cast<uint32_t>(g.size()), out.data(), kChunk, got), InflateStatus::OK);
    }
}

TEST(ChunkCodec, ConfigIsValidated) {
    EXPECT_THROW(codec::Compressor(0), std::invalid_argument);
    EXPECT_THROW(codec::Decompressor(stripe::kMaxChunkBytes + 1), std::invalid_argument);
    EXPECT_STRNE(codec::inflate_status_text(InflateStatus::CRC_MISMATCH), "unknown");
}

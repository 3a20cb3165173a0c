// viamillipede codec: exact bytes, decoding, checksum reproduction.
#include <gtest/gtest.h>

#include <cstring>

#include "fake_legs.h"

using namespace stripe_test;

namespace {
// viamillipede's mix() as written in its plumbing.c, on a little-endian
// 64-bit host: note it adds the first word plus the cursor each time.
unsigned long literal_mix(unsigned int seed, const uint8_t *data, unsigned long size) {
    unsigned acc = seed;
    unsigned long first;
    std::memcpy(&first, data, sizeof first);
    for (unsigned long cursor = 0; cursor <= size; cursor += sizeof(unsigned long)) acc += first + cursor;
    return acc;
}
} // namespace

TEST(StripeCompat, HeaderExactBytes) {
    CompatHeader h;
    h.chunk_seq = 2;
    h.size = 0x200000;
    h.checksum = 0;
    h.opcode = kCompatOpMore;
    uint8_t b[40];
    ASSERT_EQ(encode_compat_header(b, h), 40u);
    const uint8_t want[40] = {0x5a, 0x5a, 0x5a, 0x5a, 0xa5, 0xa5, 0xa5, 0xa5, // preamble LE
                              2, 0, 0, 0, 0, 0, 0, 0,                         // leg_id
                              0, 0, 0x20, 0, 0, 0, 0, 0,                      // size 2 MiB
                              0, 0, 0, 0, 0, 0, 0, 0,                         // checksum off
                              0xfe, 0xca, 0, 0, 0, 0, 0, 0};                  // 0xcafe
    EXPECT_EQ(0, std::memcmp(b, want, 40));
    h.opcode = kCompatOpEnd;
    h.size = 0;
    encode_compat_header(b, h);
    EXPECT_EQ(b[32], 0xad);
    EXPECT_EQ(b[33], 0xde);
}

TEST(StripeCompat, DecodeSenderStreamBytewise) {
    std::vector<uint8_t> b = {'y', 'o', 'e', 's'};
    b.reserve(256); // keeps GCC 12's -Wstringop-overflow false positive quiet
    std::vector<uint8_t> pay = {1, 2, 3, 4, 5};
    uint8_t h[40];
    encode_compat_header(h, CompatHeader{1, 5, 77, kCompatOpMore});
    b.insert(b.end(), h, h + 40);
    append(b, pay);
    encode_compat_header(h, CompatHeader{0, 0, 0, kCompatOpMore}); // size 0 is tolerated
    b.insert(b.end(), h, h + 40);
    encode_compat_header(h, CompatHeader{2, 0, 0, kCompatOpEnd});
    b.insert(b.end(), h, h + 40);
    Decoder dec(Codec::VIAMILLIPEDE, Direction::FROM_SENDER);
    auto recs = decode_all(dec, b, true);
    ASSERT_EQ(recs.size(), 4u);
    EXPECT_EQ(recs[0].kind, EventKind::COMPAT_PHRASE);
    EXPECT_EQ(0, std::memcmp(recs[0].d.phrase, "yoes", 4));
    EXPECT_EQ(recs[1].chunk.seq, 1u);
    EXPECT_EQ(recs[1].payload, pay);
    EXPECT_EQ(recs[1].d.compat_checksum, 77u);
    EXPECT_EQ(recs[2].chunk.length, 0u);
    EXPECT_EQ(recs[3].kind, EventKind::END);
    EXPECT_EQ(recs[3].d.end.chunks, 2u);
}

TEST(StripeCompat, DecodeErrors) {
    auto run = [](CompatHeader h, uint64_t pre = kCompatPreamble) {
        std::vector<uint8_t> b = {'y', 'o', 'e', 's'};
    b.reserve(256); // keeps GCC 12's -Wstringop-overflow false positive quiet
        uint8_t x[40];
        encode_compat_header(x, h);
        std::memcpy(x, &pre, 8);
        b.insert(b.end(), x, x + 40);
        Decoder dec(Codec::VIAMILLIPEDE, Direction::FROM_SENDER);
        Error e = Error::NONE;
        decode_all(dec, b, true, &e);
        return e;
    };
    EXPECT_EQ(run(CompatHeader{0, 1, 0, kCompatOpMore}, 0x1234), Error::COMPAT_BAD_PREAMBLE);
    EXPECT_EQ(run(CompatHeader{0, 1, 0, 0xbeef}), Error::COMPAT_BAD_OPCODE);
    EXPECT_EQ(run(CompatHeader{0, 1, 0, kCompatOpEnd}), Error::COMPAT_BAD_END);
    EXPECT_EQ(run(CompatHeader{0, kCompatMaxChunkBytes + 1, 0, kCompatOpMore}), Error::OVERSIZE_CHUNK);
    EXPECT_EQ(run(CompatHeader{0, ~0ull, 0, kCompatOpMore}), Error::OVERSIZE_CHUNK);
    EXPECT_EQ(run(CompatHeader{0, kCompatMaxChunkBytes, 0, kCompatOpMore}), Error::NONE);
}

// viamillipede v0.6 to v0.81 declare the opcode a C int: bytes 36-39 of the
// header are struct padding, and v0.6/v0.7 leave stack garbage there. The
// header below is the one captured from such a sender (issue 12); a stock
// receiver of that era compares only the int, and so do we.
TEST(StripeCompat, OpcodeIsTheLow32BitsWhateverThePadding) {
    auto header = [](uint64_t seq, uint64_t size, const uint8_t (&op)[8]) {
        CompatHeader h{seq, size, 0, 0};
        std::vector<uint8_t> v(40);
        encode_compat_header(v.data(), h);
        std::memcpy(v.data() + 32, op, 8);
        return v;
    };
    const uint8_t more_2018[8] = {0xfe, 0xca, 0x00, 0x00, 0xfd, 0x7f, 0x00, 0x00};
    const uint8_t end_2018[8] = {0xad, 0xde, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff};
    const uint8_t more_089[8] = {0xfe, 0xca, 0, 0, 0, 0, 0, 0};
    std::vector<uint8_t> b = {'y', 'o', 'e', 's'};
    b.reserve(512);
    append(b, header(0, 3, more_2018));
    append(b, {7, 8, 9});
    append(b, header(1, 2, more_089));
    append(b, {10, 11});
    append(b, header(2, 0, end_2018));
    for (bool bytewise : {false, true}) {
        Decoder dec(Codec::VIAMILLIPEDE, Direction::FROM_SENDER);
        Error e = Error::NONE;
        auto recs = decode_all(dec, b, bytewise, &e);
        ASSERT_EQ(e, Error::NONE);
        ASSERT_EQ(recs.size(), 4u);
        EXPECT_EQ(recs[1].kind, EventKind::CHUNK_HEADER);
        EXPECT_EQ(recs[1].payload, (std::vector<uint8_t>{7, 8, 9}));
        EXPECT_EQ(recs[2].payload, (std::vector<uint8_t>{10, 11}));
        EXPECT_EQ(recs[3].kind, EventKind::END);
        EXPECT_EQ(recs[3].d.end.chunks, 2u);
    }
    EXPECT_EQ(compat_opcode(more_2018), kCompatOpMore);
    EXPECT_EQ(compat_opcode(end_2018), kCompatOpEnd);
    // Garbage in the padding does not make a bad opcode good, nor a good one bad.
    const uint8_t bad[8] = {0xef, 0xbe, 0x00, 0x00, 0xfe, 0xca, 0x00, 0x00}; // 0xbeef, "cafe" only in the padding
    std::vector<uint8_t> c = {'y', 'o', 'e', 's'};
    c.reserve(64);
    append(c, header(0, 1, bad));
    Decoder dec(Codec::VIAMILLIPEDE, Direction::FROM_SENDER);
    Error e = Error::NONE;
    auto recs = decode_all(dec, c, false, &e);
    EXPECT_EQ(e, Error::COMPAT_BAD_OPCODE);
    ASSERT_FALSE(recs.empty());
    EXPECT_EQ(recs.back().d.bad_value, 0xbeefu); // the opcode, as the receiver read it
}

// We always write v0.89's layout: the opcode as a u_long, padding zero, so
// that receivers of either era read it.
TEST(StripeCompat, EncodeWritesZeroPadding) {
    uint8_t b[40];
    std::memset(b, 0xaa, sizeof b);
    encode_compat_header(b, CompatHeader{5, 0, 0, 0x7ffd00000000dead});
    const uint8_t want[8] = {0xad, 0xde, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(0, std::memcmp(b + 32, want, 8));
}

TEST(StripeCompat, ReceiverOkAndNothingElse) {
    Decoder d1(Codec::VIAMILLIPEDE, Direction::FROM_RECEIVER);
    auto r = decode_all(d1, {'o', 'k'}, true);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, EventKind::COMPAT_OK);
    Decoder d2(Codec::VIAMILLIPEDE, Direction::FROM_RECEIVER);
    Error e = Error::NONE;
    decode_all(d2, {'n', 'o'}, true, &e);
    EXPECT_EQ(e, Error::COMPAT_BAD_OK);
    Decoder d3(Codec::VIAMILLIPEDE, Direction::FROM_RECEIVER);
    e = Error::NONE;
    decode_all(d3, {'o', 'k', 'x'}, true, &e);
    EXPECT_EQ(e, Error::COMPAT_UNEXPECTED);
}

TEST(StripeCompat, MixMatchesViamillipedeSource) {
    std::vector<uint8_t> buf(2 << 20);
    for (size_t i = 0; i < buf.size(); i++) buf[i] = uint8_t(i * 131 + 7);
    for (unsigned long size : {4ul, 7ul, 8ul, 9ul, 100ul, 4096ul, 1000003ul, 2097152ul})
        for (unsigned seed : {0u, 0xffu, 0xfffffff0u})
            EXPECT_EQ(viamillipede_mix(seed, buf.data(), size), literal_mix(seed, buf.data(), size))
                << size << " " << seed;
    // Only the first 4 bytes matter (acc is 32-bit): a documented weakness.
    std::vector<uint8_t> other = buf;
    other[100] ^= 1;
    EXPECT_EQ(viamillipede_mix(1, buf.data(), 4096), viamillipede_mix(1, other.data(), 4096));
}

TEST(StripeCompat, ChecksumChain) {
    std::vector<uint8_t> a(100, 3), b(50, 9);
    CompatChecksumChain tx, rx;
    uint64_t ca = tx.next(0, a.data(), a.size());
    uint64_t cb = tx.next(1, b.data(), b.size());
    EXPECT_EQ(ca, literal_mix(0xff + 0, a.data(), a.size()));
    EXPECT_EQ(cb, literal_mix(static_cast<unsigned>(ca + 1), b.data(), b.size()));
    EXPECT_TRUE(rx.verify(0, a.data(), a.size(), ca));
    b[0] ^= 1;
    EXPECT_FALSE(rx.verify(1, b.data(), b.size(), cb));
    CompatChecksumChain off;
    EXPECT_TRUE(off.verify(0, a.data(), a.size(), 0)); // checksums off
}

// Native codec: round trips, fragmentation, every error.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "fake_legs.h"

using namespace stripe_test;

namespace {
const uint8_t k123[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
}

TEST(StripeChecksum, Crc32cCheckValueAndChaining) {
    EXPECT_EQ(crc32c(k123, 9), 0xE3069283u);
    EXPECT_EQ(crc32c(k123 + 4, 5, crc32c(k123, 4)), 0xE3069283u);
    EXPECT_EQ(crc32c(k123, 0), 0u);
}

TEST(StripeChecksum, Crc64XzCheckValueAndChaining) {
    EXPECT_EQ(crc64(k123, 9), 0x995DC9BBDF1939FAull);
    EXPECT_EQ(crc64(k123 + 3, 6, crc64(k123, 3)), 0x995DC9BBDF1939FAull);
}

// The combination equals the CRC of the concatenation for every split,
// including empty halves and lengths around the 16 KiB blocks.
TEST(StripeChecksum, Crc64CombineEqualsTheCrcOfTheConcatenation) {
    std::vector<uint8_t> all(70000);
    uint32_t x = 12345;
    for (auto &b : all) b = static_cast<uint8_t>((x = x * 1103515245 + 12345) >> 16);
    for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{16384}, size_t{16385}, size_t{40000}, all.size()}) {
        const uint64_t a = crc64(all.data(), split);
        const uint64_t b = crc64(all.data() + split, all.size() - split);
        EXPECT_EQ(crc64_combine(a, b, all.size() - split), crc64(all.data(), all.size())) << split;
    }
    // Chained over equal-length pieces (the cached power) and then another length.
    uint64_t chained = 0;
    for (size_t off = 0; off < 65536; off += 4096) chained = crc64_combine(chained, crc64(all.data() + off, 4096), 4096);
    chained = crc64_combine(chained, crc64(all.data() + 65536, all.size() - 65536), all.size() - 65536);
    EXPECT_EQ(chained, crc64(all.data(), all.size()));
    EXPECT_NE(crc64_combine(crc64(all.data(), 10), crc64(all.data() + 10, 10), 11), crc64(all.data(), 20));
}

TEST(StripeChecksum, BothCrcsInOnePassEqualEachAlone) {
    std::vector<uint8_t> all(50001);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(i * 31 + 7);
    uint32_t c32 = crc32c(all.data(), 5);
    uint64_t c64 = crc64(all.data(), 5);
    crc32c_and_crc64(all.data() + 5, all.size() - 5, c32, c64);
    EXPECT_EQ(c32, crc32c(all.data(), all.size()));
    EXPECT_EQ(c64, crc64(all.data(), all.size()));
}

TEST(StripeWire, HelloExactBytes) {
    Hello h;
    h.session_id = 0x1122334455667788ull;
    h.stream_index = 3;
    h.features = kFeaturesV1;
    std::memcpy(h.checkphrase, "abcd", 4);
    h.chunk_bytes = 1 << 20;
    auto v = hello_bytes(h);
    const uint8_t want[32] = {'M', 'L', 'P', 'D', 'H', 1, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                              3, 0, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c', 'd', 0, 0, 0x10, 0};
    ASSERT_EQ(v.size(), 32u);
    EXPECT_EQ(0, std::memcmp(v.data(), want, 32));
}

TEST(StripeWire, ChunkHeaderExactBytes) {
    auto v = chunk_bytes(0x0102, 0x0a0b, {'x', 'y'});
    const uint8_t want[32] = {'M', 'L', 'P', 'D', 'C', 0, 0, 0, 0x02, 0x01, 0, 0, 0, 0, 0, 0,
                              0x0b, 0x0a, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    uint32_t crc = crc32c(reinterpret_cast<const uint8_t *>("xy"), 2);
    uint8_t w[32];
    std::memcpy(w, want, 32);
    w[28] = crc & 0xff;
    w[29] = (crc >> 8) & 0xff;
    w[30] = (crc >> 16) & 0xff;
    w[31] = crc >> 24;
    EXPECT_EQ(0, std::memcmp(v.data(), w, 32));
    EXPECT_EQ(v[32], 'x');
}

class StripeWireRoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(StripeWireRoundTrip, SenderToReceiverRecords) {
    bool bytewise = GetParam();
    Hello h;
    h.session_id = 42;
    h.stream_index = 7;
    h.chunk_bytes = 4096;
    auto bytes = hello_bytes(h);
    std::vector<uint8_t> p1(1000), p2(1);
    for (size_t i = 0; i < p1.size(); i++) p1[i] = uint8_t(i * 7);
    p2[0] = 9;
    append(bytes, chunk_bytes(0, 0, p1));
    append(bytes, chunk_bytes(1, 1000, p2));
    std::vector<uint8_t> e(kEndSize);
    encode_end(e.data(), End{2, 1001, 0xdeadbeefcafef00dull});
    append(bytes, e);
    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
    auto recs = decode_all(dec, bytes, bytewise);
    ASSERT_EQ(recs.size(), 4u);
    EXPECT_EQ(recs[0].kind, EventKind::HELLO);
    EXPECT_EQ(recs[0].d.hello.session_id, 42u);
    EXPECT_EQ(recs[0].d.hello.stream_index, 7u);
    EXPECT_EQ(recs[0].d.hello.chunk_bytes, 4096u);
    EXPECT_EQ(0, std::memcmp(recs[0].d.hello.checkphrase, "yoes", 4));
    EXPECT_EQ(recs[1].kind, EventKind::CHUNK_HEADER);
    EXPECT_EQ(recs[1].payload, p1);
    EXPECT_TRUE(recs[1].crc_ok);
    EXPECT_EQ(recs[2].chunk.seq, 1u);
    EXPECT_EQ(recs[2].chunk.offset, 1000u);
    EXPECT_EQ(recs[2].payload, p2);
    EXPECT_EQ(recs[3].kind, EventKind::END);
    EXPECT_EQ(recs[3].d.end.chunks, 2u);
    EXPECT_EQ(recs[3].d.end.bytes, 1001u);
    EXPECT_EQ(recs[3].d.end.digest, 0xdeadbeefcafef00dull);
}

TEST_P(StripeWireRoundTrip, ReceiverToSenderRecords) {
    bool bytewise = GetParam();
    std::vector<uint8_t> b(kHelloReplySize + kAckSize + kResendSize + kEndAckSize);
    size_t o = 0;
    HelloReply r;
    r.window_chunks = 33;
    o += encode_hello_reply(b.data() + o, r);
    o += encode_ack(b.data() + o, Ack{17, 0x5});
    Resend rs;
    rs.seq = 12;
    rs.crc_header = 1;
    rs.crc_computed = 2;
    o += encode_resend(b.data() + o, rs);
    o += encode_end_ack(b.data() + o, EndAck{EndStatus::DIGEST_MISMATCH, 3, 4, 5});
    Decoder dec(Codec::NATIVE, Direction::FROM_RECEIVER);
    auto recs = decode_all(dec, b, bytewise);
    ASSERT_EQ(recs.size(), 4u);
    EXPECT_EQ(recs[0].d.reply.window_chunks, 33u);
    EXPECT_EQ(recs[0].d.reply.status, HelloStatus::ACCEPT);
    EXPECT_EQ(recs[1].d.ack.cumulative, 17u);
    EXPECT_EQ(recs[1].d.ack.bitmap, 5u);
    EXPECT_EQ(recs[2].d.resend.seq, 12u);
    EXPECT_EQ(recs[2].d.resend.crc_computed, 2u);
    EXPECT_EQ(recs[3].d.end_ack.status, EndStatus::DIGEST_MISMATCH);
    EXPECT_EQ(recs[3].d.end_ack.digest, 5u);
}

INSTANTIATE_TEST_SUITE_P(Fragments, StripeWireRoundTrip, ::testing::Values(false, true));

namespace {
Error first_error(Direction dir, const std::vector<uint8_t> &b, uint64_t *bad = nullptr,
                  uint32_t max_chunk = kMaxChunkBytes) {
    Decoder dec(Codec::NATIVE, dir, max_chunk);
    Error e = Error::NONE;
    auto recs = decode_all(dec, b, true, &e);
    if (bad && !recs.empty()) *bad = recs.back().d.bad_value;
    return e;
}
std::vector<uint8_t> good_hello() { return hello_bytes(Hello{}); }
} // namespace

TEST(StripeWireErrors, BadMagic) {
    auto b = good_hello();
    b[0] = 'X';
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b), Error::BAD_MAGIC);
}

TEST(StripeWireErrors, OtherVersionStopsAfterPrefix) {
    auto b = good_hello();
    b[5] = 9;
    b.resize(8); // a v9 hello might be shorter: only the prefix is needed
    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
    auto recs = decode_all(dec, b, true);
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].kind, EventKind::HELLO_VERSION);
    EXPECT_EQ(recs[0].d.hello.version, 9);
    EXPECT_TRUE(dec.failed());
}

TEST(StripeWireErrors, OversizeLengthRefusedBeforePayload) {
    auto b = good_hello();
    auto c = chunk_bytes(0, 0, {1, 2, 3});
    uint32_t len = kMaxChunkBytes + 1;
    std::memcpy(&c[24], &len, 4);
    c.resize(kChunkHeaderSize);
    append(b, c);
    uint64_t bad = 0;
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b, &bad), Error::OVERSIZE_CHUNK);
    EXPECT_EQ(bad, kMaxChunkBytes + 1);
    // A receiver-configured limit below the ceiling is honoured too.
    auto b2 = good_hello();
    append(b2, chunk_bytes(0, 0, std::vector<uint8_t>(100)));
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b2, nullptr, 99), Error::OVERSIZE_CHUNK);
    // Hello advertising a chunk size above 2 MiB.
    Hello h;
    h.chunk_bytes = kMaxChunkBytes + 1;
    EXPECT_EQ(first_error(Direction::FROM_SENDER, hello_bytes(h)), Error::OVERSIZE_CHUNK);
}

TEST(StripeWireErrors, EmptyChunkReservedAndOrdering) {
    auto b = good_hello();
    auto c = chunk_bytes(0, 0, {1});
    c[24] = 0;
    append(b, c);
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b), Error::EMPTY_CHUNK);
    b = good_hello();
    b[6] = 1;
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b), Error::RESERVED_NONZERO);
    // chunk before hello
    EXPECT_EQ(first_error(Direction::FROM_SENDER, chunk_bytes(0, 0, {1})), Error::UNEXPECTED_RECORD);
    // second hello
    b = good_hello();
    append(b, good_hello());
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b), Error::UNEXPECTED_RECORD);
    // an ack travelling the wrong way
    b = good_hello();
    std::vector<uint8_t> a(kAckSize);
    encode_ack(a.data(), Ack{});
    append(b, a);
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b), Error::BAD_RECORD_TYPE);
    // unknown flag bit
    b = good_hello();
    c = chunk_bytes(0, 0, {1});
    c[5] = 0x80;
    append(b, c);
    EXPECT_EQ(first_error(Direction::FROM_SENDER, b), Error::RESERVED_NONZERO);
}

TEST(StripeWireErrors, CrcFailureReported) {
    auto b = good_hello();
    append(b, chunk_bytes(5, 0, {1, 2, 3, 4}, /*corrupt=*/true));
    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
    auto recs = decode_all(dec, b, true);
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[1].chunk.seq, 5u);
    EXPECT_FALSE(recs[1].crc_ok);
    EXPECT_FALSE(dec.failed()); // framing is intact: the stream continues
}

TEST(StripeWireErrors, ReplyAndEndAckRanges) {
    std::vector<uint8_t> b(kHelloReplySize);
    HelloReply r;
    encode_hello_reply(b.data(), r);
    b[6] = 77;
    EXPECT_EQ(first_error(Direction::FROM_RECEIVER, b), Error::BAD_COUNT);
    encode_hello_reply(b.data(), r);
    b[12] = 0; // accept with a zero window
    EXPECT_EQ(first_error(Direction::FROM_RECEIVER, b), Error::BAD_COUNT);
    encode_hello_reply(b.data(), HelloReply{kVersion, HelloStatus::ACCEPT, kVersion, kFeaturesV1, 4});
    std::vector<uint8_t> e(kEndAckSize);
    encode_end_ack(e.data(), EndAck{});
    e[5] = 9;
    append(b, e);
    EXPECT_EQ(first_error(Direction::FROM_RECEIVER, b), Error::BAD_COUNT);
}

TEST(StripeWireErrors, ErrorIsSticky) {
    std::vector<uint8_t> b = {'Z', 'Z', 'Z', 'Z', 'H', 1, 0, 0};
    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
    Decoded d;
    dec.feed(b.data(), b.size(), d);
    EXPECT_EQ(d.kind, EventKind::ERROR);
    auto good = good_hello();
    EXPECT_EQ(dec.feed(good.data(), good.size(), d), 0u);
    EXPECT_EQ(d.kind, EventKind::ERROR);
    EXPECT_EQ(d.error, Error::BAD_MAGIC);
}

TEST(StripeWireErrors, NamesAndDescriptions) {
    EXPECT_STREQ(error_name(Error::NONE), "none");
    for (unsigned i = 1; i < kErrorCount; i++) {
        EXPECT_STRNE(error_name(static_cast<Error>(i)), "unknown");
        EXPECT_GT(std::strlen(error_description(static_cast<Error>(i))), 10u);
    }
    EXPECT_STREQ(error_name(Error::CRC_MISMATCH), "crc_mismatch");
}

// Feeding nothing (a null pointer with length 0, as an empty read gives)
// is a no-op for both decoders, never undefined behaviour.
TEST(Wire, FeedingZeroBytesIsANoOp) {
    for (auto codec : {Codec::NATIVE, Codec::VIAMILLIPEDE})
        for (auto dir : {Direction::FROM_SENDER, Direction::FROM_RECEIVER}) {
            Decoder d(codec, dir);
            Decoded out;
            EXPECT_EQ(d.feed(nullptr, 0, out), 0u);
            EXPECT_EQ(out.kind, EventKind::NEED_MORE);
        }
}

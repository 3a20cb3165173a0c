// Sequence arithmetic, option parsing (including malformed options),
// checksum accept/reject and serialization round trips.
#include <gtest/gtest.h>

#include <vector>

#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"
#include "millipede/tcp/segment.h"
#include "millipede/tcp/seq.h"

using namespace millipede::tcp;

namespace {

const IpAddr kA = IpAddr::v4(0xc0a80001), kB = IpAddr::v4(0xc0a80002);

std::vector<uint8_t> header_with_options(std::vector<uint8_t> opts, size_t payload = 0) {
    while (opts.size() % 4) opts.push_back(0);
    std::vector<uint8_t> b(20 + opts.size() + payload, 0);
    millipede::net::store_be16(b.data(), 1000);
    millipede::net::store_be16(b.data() + 2, 2000);
    millipede::net::store_be32(b.data() + 4, 100);
    b[12] = static_cast<uint8_t>(((20 + opts.size()) / 4) << 4);
    b[13] = flag::ACK;
    std::copy(opts.begin(), opts.end(), b.begin() + 20);
    return b;
}

TEST(Seq, WrapSafeComparisons) {
    EXPECT_TRUE(seq_lt(1, 2));
    EXPECT_TRUE(seq_lt(0xfffffff0u, 0x10));   // across the wrap
    EXPECT_TRUE(seq_gt(0x10, 0xfffffff0u));
    EXPECT_TRUE(seq_leq(5, 5));
    EXPECT_TRUE(seq_geq(5, 5));
    EXPECT_FALSE(seq_lt(5, 5));
    EXPECT_EQ(seq_max(0xffffffffu, 3), 3u);
    EXPECT_EQ(seq_min(0xffffffffu, 3), 0xffffffffu);
    EXPECT_TRUE(seq_in(0, 0xfffffff0u, 0x10));
    EXPECT_FALSE(seq_in(0x10, 0xfffffff0u, 0x10));
    EXPECT_EQ(seq_diff(2, 0xfffffffeu), 4);
}

// A SYN from kA to kB with MSS, window scale 7, SACK-permitted and timestamps.
Segment syn_with_options(uint16_t mss) {
    Segment s;
    s.src_ip = kA, s.dst_ip = kB;
    s.flags = flag::SYN;
    s.opt.has_mss = true, s.opt.mss = mss;
    s.opt.has_wscale = true, s.opt.wscale = 7;
    s.opt.sack_permitted = true;
    s.opt.has_ts = true, s.opt.ts_val = 0x01020304, s.opt.ts_ecr = 0x05060708;
    return s;
}

TEST(Options, ParsesAllKinds) {
    const Segment s = syn_with_options(1460);
    std::vector<uint8_t> buf(100);
    const size_t n = serialize(s, buf);
    ASSERT_EQ(n, 40u); // 20 + MSS 4 + SACKOK/TS 12 + NOP WS 4
    Segment p;
    ASSERT_EQ(parse_segment(std::span(buf).first(n), kA, kB, p), ParseResult::Ok);
    EXPECT_TRUE(p.opt.has_mss);
    EXPECT_EQ(p.opt.mss, 1460);
    EXPECT_TRUE(p.opt.has_wscale);
    EXPECT_EQ(p.opt.wscale, 7);
    EXPECT_TRUE(p.opt.sack_permitted);
    EXPECT_TRUE(p.opt.has_ts);
    EXPECT_EQ(p.opt.ts_val, 0x01020304u);
    EXPECT_EQ(p.opt.ts_ecr, 0x05060708u);
    EXPECT_FALSE(p.opt.malformed);
}

TEST(Options, ChecksumTrustRoundTripsAndOtherExperimentsAreSkipped) {
    Segment s = syn_with_options(65000);
    s.opt.checksum_trust = true;
    std::vector<uint8_t> buf(100);
    const size_t n = serialize(s, buf);
    ASSERT_EQ(n, 44u); // the 40 of ParsesAllKinds + kind 254, length 4, ExID
    EXPECT_EQ(buf[40], 254);
    EXPECT_EQ(buf[41], 4);
    EXPECT_EQ(millipede::net::load_be16(&buf[42]), kChecksumTrustExId);
    Segment p;
    ASSERT_EQ(parse_segment(std::span(buf).first(n), kA, kB, p), ParseResult::Ok);
    EXPECT_TRUE(p.opt.checksum_trust);
    EXPECT_EQ(p.opt.mss, 65000);
    EXPECT_TRUE(p.opt.has_ts);
    // Another experiment's ExID, or a wrong length, is not this option.
    for (const std::vector<uint8_t> &o : {std::vector<uint8_t>{254, 4, 0x12, 0x34}, std::vector<uint8_t>{254, 6, 0x4D, 0x50, 0, 0},
                                          std::vector<uint8_t>{253, 4, 0x4D, 0x50}}) {
        auto b = header_with_options(o);
        Segment q;
        ASSERT_EQ(parse_segment(b, kA, kB, q, false), ParseResult::Ok);
        EXPECT_FALSE(q.opt.checksum_trust);
        EXPECT_FALSE(q.opt.malformed);
    }
}

TEST(Options, SackBlocksLimitedByOptionSpace) {
    Segment s;
    s.src_ip = kA, s.dst_ip = kB;
    s.flags = flag::ACK;
    s.opt.sack_count = 4;
    for (uint32_t i = 0; i < 4; ++i) s.opt.sack[i] = {1000 * i, 1000 * i + 500};
    EXPECT_EQ(options_length(s.opt), 4u + 32);
    s.opt.has_ts = true; // 12 bytes of TS leave room for 3 blocks
    EXPECT_EQ(options_length(s.opt), 12u + 4 + 24);
    std::vector<uint8_t> buf(100);
    const size_t n = serialize(s, buf);
    Segment p;
    ASSERT_EQ(parse_segment(std::span(buf).first(n), kA, kB, p), ParseResult::Ok);
    ASSERT_EQ(p.opt.sack_count, 3);
    EXPECT_EQ(p.opt.sack[2].left, 2000u);
    EXPECT_EQ(p.opt.sack[2].right, 2500u);
}

TEST(Options, NopEolAndUnknown) {
    // NOP, unknown kind 30 len 4, EOL, then garbage after EOL is ignored.
    auto b = header_with_options({1, 30, 4, 0xaa, 0xbb, 0, 2, 4, 5, 0xb4});
    Segment p;
    ASSERT_EQ(parse_segment(b, kA, kB, p, false), ParseResult::Ok);
    EXPECT_FALSE(p.opt.has_mss);
    EXPECT_FALSE(p.opt.malformed);
}

TEST(Options, MalformedNeverOverReads) {
    Segment p;
    // Zero length.
    auto b1 = header_with_options({2, 0, 5, 0xb4});
    ASSERT_EQ(parse_segment(b1, kA, kB, p, false), ParseResult::Ok);
    EXPECT_TRUE(p.opt.malformed);
    EXPECT_FALSE(p.opt.has_mss);
    // Length past the header end.
    auto b2 = header_with_options({1, 1, 8, 40, 0, 0, 0, 0});
    ASSERT_EQ(parse_segment(b2, kA, kB, p, false), ParseResult::Ok);
    EXPECT_TRUE(p.opt.malformed);
    EXPECT_FALSE(p.opt.has_ts);
    // Kind byte is the last byte: no length byte to read.
    auto b3 = header_with_options({1, 1, 1, 2});
    ASSERT_EQ(parse_segment(b3, kA, kB, p, false), ParseResult::Ok);
    EXPECT_TRUE(p.opt.malformed);
    // Wrong fixed lengths are ignored, not trusted.
    auto b4 = header_with_options({2, 3, 5, 3, 4, 7, 8, 6, 1, 2, 3, 4});
    ASSERT_EQ(parse_segment(b4, kA, kB, p, false), ParseResult::Ok);
    EXPECT_FALSE(p.opt.has_mss);
    EXPECT_FALSE(p.opt.has_wscale);
    EXPECT_FALSE(p.opt.has_ts);
    // SACK with a length that is not 2 + 8n.
    auto b5 = header_with_options({5, 7, 0, 0, 0, 1, 0});
    ASSERT_EQ(parse_segment(b5, kA, kB, p, false), ParseResult::Ok);
    EXPECT_EQ(p.opt.sack_count, 0);
}

TEST(Parse, RejectsTruncatedAndBadOffset) {
    Segment p;
    std::vector<uint8_t> tiny(19, 0);
    EXPECT_EQ(parse_segment(tiny, kA, kB, p, false), ParseResult::Truncated);
    auto b = header_with_options({});
    b[12] = 4 << 4;
    EXPECT_EQ(parse_segment(b, kA, kB, p, false), ParseResult::BadDataOffset);
    b[12] = 15 << 4; // 60 bytes > 20
    EXPECT_EQ(parse_segment(b, kA, kB, p, false), ParseResult::BadDataOffset);
}

TEST(Checksum, AcceptsCorrectRejectsCorrupt) {
    const std::vector<uint8_t> payload = {1, 2, 3, 4, 5}; // odd length
    Segment s;
    s.src_ip = kA, s.dst_ip = kB;
    s.src_port = 1, s.dst_port = 2, s.seq = 7, s.ack = 9, s.flags = flag::ACK | flag::PSH, s.window = 1000;
    s.payload = payload;
    std::vector<uint8_t> buf(64);
    const size_t n = serialize(s, buf);
    ASSERT_EQ(n, 25u);
    auto b = std::span(buf).first(n);
    Segment p;
    ASSERT_EQ(parse_segment(b, kA, kB, p), ParseResult::Ok);
    EXPECT_EQ(p.payload.size(), 5u);
    EXPECT_EQ(p.seq, 7u);
    EXPECT_EQ(p.window, 1000);
    // Wrong pseudo-header (other destination) fails.
    EXPECT_EQ(parse_segment(b, kA, IpAddr::v4(0xc0a80003), p), ParseResult::BadChecksum);
    for (size_t i = 0; i < n; ++i) {
        buf[i] ^= 0x10;
        // Byte 12 holds the data offset, which is checked first.
        EXPECT_EQ(parse_segment(b, kA, kB, p), i == 12 ? ParseResult::BadDataOffset : ParseResult::BadChecksum) << i;
        buf[i] ^= 0x10;
    }
    // Independent check: the RFC 1071 sum over pseudo-header + segment folds to 0.
    uint32_t sum = millipede::net::pseudo_header_v4(kA.v4_host_order(), kB.v4_host_order(), 6, uint32_t(n));
    EXPECT_EQ(millipede::net::checksum_finish(millipede::net::checksum_partial(buf.data(), n, sum)), 0);
}

TEST(Checksum, TwoPieceOddPayloadAndIpv6) {
    const uint8_t s6[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t d6[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    const std::vector<uint8_t> a = {1, 2, 3}, b = {4, 5, 6, 7};
    Segment s;
    s.src_ip = IpAddr::v6(s6), s.dst_ip = IpAddr::v6(d6);
    s.flags = flag::ACK;
    s.payload = a;
    s.payload2 = b;
    std::vector<uint8_t> buf(64);
    const size_t n = serialize(s, buf);
    Segment p;
    ASSERT_EQ(parse_segment(std::span(buf).first(n), s.src_ip, s.dst_ip, p), ParseResult::Ok);
    ASSERT_EQ(p.payload.size(), 7u);
    EXPECT_EQ(p.payload[3], 4);
    EXPECT_EQ(parse_segment(std::span(buf).first(n), s.dst_ip, s.src_ip, p), ParseResult::Ok); // symmetric sum
    buf[n - 1] ^= 1;
    EXPECT_EQ(parse_segment(std::span(buf).first(n), s.src_ip, s.dst_ip, p), ParseResult::BadChecksum);
}

TEST(Checksum, OffloadLeavesPseudoHeaderSum) {
    Segment s;
    s.src_ip = kA, s.dst_ip = kB;
    s.flags = flag::ACK;
    s.checksum_offload = true;
    std::vector<uint8_t> buf(64);
    const size_t n = serialize(s, buf);
    uint32_t ph = millipede::net::pseudo_header_v4(kA.v4_host_order(), kB.v4_host_order(), 6, uint32_t(n));
    while (ph >> 16) ph = (ph & 0xffff) + (ph >> 16);
    EXPECT_EQ(millipede::net::load_be16(buf.data() + 16), ph);
    Segment p;
    EXPECT_EQ(parse_segment(std::span(buf).first(n), kA, kB, p, false), ParseResult::Ok);
}

TEST(Serialize, TooSmallBufferWritesNothing) {
    Segment s;
    s.flags = flag::ACK;
    std::vector<uint8_t> buf(19);
    EXPECT_EQ(serialize(s, buf), 0u);
}

} // namespace

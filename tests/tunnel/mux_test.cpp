// The tunnel's records: encoding, parsing split at every byte boundary,
// half-close and reset records, and malformed input counted and refused.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "millipede/tunnel/mux.h"

using namespace millipede::tunnel;

namespace {

struct Seen {
    RecordType type;
    uint32_t stream;
    std::vector<uint8_t> payload;
    bool operator==(const Seen &o) const { return type == o.type && stream == o.stream && payload == o.payload; }
};

std::vector<uint8_t> sample_stream(std::vector<Seen> &expect) {
    std::vector<uint8_t> s(kMaxRecord * 3 + 64);
    size_t at = encode_hello(s.data(), s.size(), Role::TERMINATE);
    expect.push_back({RecordType::HELLO, 0, {'M', 'P', 'T', 'N', kVersion, uint8_t(Role::TERMINATE)}});
    auto ctl = [&](RecordType t, uint32_t id) {
        at += encode_control(s.data() + at, s.size() - at, t, id);
        expect.push_back({t, id, {}});
    };
    auto data = [&](uint32_t id, size_t n, uint8_t seed) {
        std::vector<uint8_t> p(n);
        for (size_t i = 0; i < n; i++) p[i] = uint8_t(seed + i * 7);
        at += encode_data(s.data() + at, s.size() - at, id, p.data(), n);
        expect.push_back({RecordType::DATA, id, p});
    };
    ctl(RecordType::OPEN, 1);
    data(1, 1, 3);
    ctl(RecordType::OPEN, 0x01020304);
    data(0x01020304, kMaxPayload, 9);
    data(1, 1000, 11);
    ctl(RecordType::FIN, 1);          // half-close: stream 1's sender is done ...
    data(0x01020304, 77, 5);          // ... the other one goes on
    ctl(RecordType::RST, 0x01020304);
    ctl(RecordType::BYE, 0);
    s.resize(at);
    return s;
}

std::vector<Seen> drain(MuxParser &p) {
    std::vector<Seen> out;
    Record r;
    while (p.next(r) == Next::RECORD) {
        out.push_back({r.type, r.stream, std::vector<uint8_t>(r.payload, r.payload + r.length)});
        p.pop();
    }
    return out;
}

} // namespace

TEST(TunnelMux, HeaderLayoutIsLittleEndian) {
    uint8_t b[kHeaderBytes];
    ASSERT_EQ(encode_header(b, sizeof b, RecordType::DATA, 0x0A0B0C0D, 0x1234), kHeaderBytes);
    const uint8_t want[] = {'D', 0, 0x34, 0x12, 0x0D, 0x0C, 0x0B, 0x0A};
    EXPECT_EQ(0, std::memcmp(b, want, sizeof want));
    EXPECT_EQ(encode_header(b, 7, RecordType::DATA, 1, 1), 0u);
    std::vector<uint8_t> big(kMaxRecord + 1);
    EXPECT_EQ(encode_data(big.data(), big.size(), 1, big.data(), kMaxPayload + 1), 0u);
    EXPECT_EQ(encode_data(big.data(), kMaxRecord - 1, 1, big.data(), kMaxPayload), 0u);
}

TEST(TunnelMux, WholeStreamParsesToTheRecordsEncoded) {
    std::vector<Seen> expect;
    const auto s = sample_stream(expect);
    MuxParser p(s.size() + kMaxRecord);
    ASSERT_EQ(p.feed(s.data(), s.size()), s.size());
    EXPECT_EQ(drain(p), expect);
    EXPECT_FALSE(p.failed());
    EXPECT_EQ(p.peer_role(), Role::TERMINATE);
    EXPECT_EQ(p.buffered(), 0u);
}

// Split in two at every byte boundary, and fed one byte at a time.
TEST(TunnelMux, AnyByteBoundary) {
    std::vector<Seen> expect;
    const auto s = sample_stream(expect);
    for (size_t cut = 0; cut <= s.size(); cut += (cut < 64 || s.size() - cut < 64) ? 1 : 97) {
        MuxParser p;
        std::vector<Seen> got;
        size_t at = 0;
        const size_t ends[2] = {cut, s.size()};
        for (size_t e : ends) {
            while (at < e) {
                at += p.feed(s.data() + at, e - at);
                auto part = drain(p);
                got.insert(got.end(), part.begin(), part.end());
            }
        }
        ASSERT_EQ(got, expect) << "cut at " << cut;
    }
    MuxParser p;
    std::vector<Seen> got;
    for (uint8_t b : s) {
        ASSERT_EQ(p.feed(&b, 1), 1u);
        auto part = drain(p);
        got.insert(got.end(), part.begin(), part.end());
    }
    EXPECT_EQ(got, expect);
}

// The parser holds at most its capacity: feed() takes no more, and a record
// held by next() is not moved by a feed.
TEST(TunnelMux, BoundedBuffer) {
    std::vector<Seen> expect;
    const auto s = sample_stream(expect);
    MuxParser p(kMaxRecord);
    size_t taken = p.feed(s.data(), s.size());
    EXPECT_EQ(taken, kMaxRecord);
    EXPECT_EQ(p.free_space(), 0u);
    Record r;
    ASSERT_EQ(p.next(r), Next::RECORD);
    EXPECT_EQ(r.type, RecordType::HELLO);
    ASSERT_EQ(p.next(r), Next::RECORD); // asked again before pop: the same record
    EXPECT_EQ(r.type, RecordType::HELLO);
    EXPECT_EQ(p.feed(s.data() + taken, 1), 0u);
    p.pop();
    std::vector<Seen> got;
    while (taken < s.size() || p.buffered()) {
        taken += p.feed(s.data() + taken, s.size() - taken);
        auto part = drain(p);
        ASSERT_TRUE(!part.empty() || p.free_space() > 0);
        got.insert(got.end(), part.begin(), part.end());
        if (part.empty() && taken == s.size()) break;
    }
    expect.erase(expect.begin());
    EXPECT_EQ(got, expect);
}

namespace {
Malformed parse_bad(std::vector<uint8_t> tail, bool with_hello = true) {
    std::vector<uint8_t> s(kHeaderBytes + kHelloPayload);
    if (with_hello) encode_hello(s.data(), s.size(), Role::INITIATE);
    else s.clear();
    s.insert(s.end(), tail.begin(), tail.end());
    s.resize(s.size() + 64, 0xEE); // bytes after a bad header must not matter
    MuxParser p;
    p.feed(s.data(), s.size());
    Record r;
    Next n;
    while ((n = p.next(r)) == Next::RECORD) p.pop();
    EXPECT_EQ(n, Next::FAILED);
    EXPECT_TRUE(p.failed());
    EXPECT_EQ(p.next(r), Next::FAILED); // for good
    EXPECT_EQ(p.malformed(p.failure()), 1u);
    return p.failure();
}
} // namespace

TEST(TunnelMux, MalformedCountedAndRefused) {
    EXPECT_EQ(parse_bad({'X', 0, 0, 0, 1, 0, 0, 0}), Malformed::UNKNOWN_TYPE);
    EXPECT_EQ(parse_bad({'D', 1, 1, 0, 1, 0, 0, 0}), Malformed::RESERVED_SET);
    EXPECT_EQ(parse_bad({'D', 0, 0x01, 0x40, 1, 0, 0, 0}), Malformed::BAD_LENGTH); // 16385 bytes
    EXPECT_EQ(parse_bad({'D', 0, 0, 0, 1, 0, 0, 0}), Malformed::BAD_LENGTH);       // empty DATA
    EXPECT_EQ(parse_bad({'F', 0, 1, 0, 1, 0, 0, 0}), Malformed::BAD_LENGTH);
    EXPECT_EQ(parse_bad({'O', 0, 0, 0, 0, 0, 0, 0}), Malformed::BAD_STREAM);
    EXPECT_EQ(parse_bad({'R', 0, 0, 0, 0, 0, 0, 0}), Malformed::BAD_STREAM);
    EXPECT_EQ(parse_bad({'B', 0, 0, 0, 5, 0, 0, 0}), Malformed::BAD_STREAM);
    EXPECT_EQ(parse_bad({'D', 0, 1, 0, 1, 0, 0, 0, 'x'}, false), Malformed::NO_HELLO);
    // A plain stream (the far end is not a tunnel) fails at its first bytes.
    EXPECT_EQ(parse_bad({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o'}, false), Malformed::UNKNOWN_TYPE);
    std::vector<uint8_t> h2(kHeaderBytes + kHelloPayload);
    encode_hello(h2.data(), h2.size(), Role::TERMINATE);
    EXPECT_EQ(parse_bad(h2), Malformed::BAD_HELLO); // a second HELLO
    h2[kHeaderBytes] = 'X';
    EXPECT_EQ(parse_bad(h2, false), Malformed::BAD_HELLO); // bad magic
    encode_hello(h2.data(), h2.size(), Role::TERMINATE);
    h2[kHeaderBytes + 4] = 2;
    EXPECT_EQ(parse_bad(h2, false), Malformed::BAD_HELLO); // version
    encode_hello(h2.data(), h2.size(), Role::TERMINATE);
    h2[kHeaderBytes + 5] = 7;
    EXPECT_EQ(parse_bad(h2, false), Malformed::BAD_HELLO); // role
}

// Well-formed records are never counted as malformed: random valid streams.
TEST(TunnelMux, RandomValidStreamsNeverMalformed) {
    std::mt19937 rng(16);
    for (int round = 0; round < 50; round++) {
        std::vector<uint8_t> s(kHeaderBytes + kHelloPayload);
        encode_hello(s.data(), s.size(), Role::INITIATE);
        std::vector<Seen> expect{{RecordType::HELLO, 0, {'M', 'P', 'T', 'N', kVersion, uint8_t(Role::INITIATE)}}};
        for (int i = 0; i < 40; i++) {
            const uint32_t id = 1 + rng() % 5;
            const int kind = rng() % 4;
            std::vector<uint8_t> rec(kMaxRecord);
            size_t n;
            if (kind == 0) {
                std::vector<uint8_t> pay(1 + rng() % 3000);
                for (auto &b : pay) b = uint8_t(rng());
                n = encode_data(rec.data(), rec.size(), id, pay.data(), pay.size());
                expect.push_back({RecordType::DATA, id, pay});
            } else {
                const RecordType t = kind == 1 ? RecordType::OPEN : kind == 2 ? RecordType::FIN : RecordType::RST;
                n = encode_control(rec.data(), rec.size(), t, id);
                expect.push_back({t, id, {}});
            }
            s.insert(s.end(), rec.begin(), rec.begin() + ptrdiff_t(n));
        }
        MuxParser p;
        std::vector<Seen> got;
        size_t at = 0;
        while (at < s.size()) {
            at += p.feed(s.data() + at, std::min<size_t>(s.size() - at, 1 + rng() % 5000));
            auto part = drain(p);
            got.insert(got.end(), part.begin(), part.end());
        }
        ASSERT_EQ(got, expect);
        for (size_t m = 0; m < size_t(Malformed::COUNT); m++) EXPECT_EQ(p.malformed(Malformed(m)), 0u);
    }
}

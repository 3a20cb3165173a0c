// lib/net: parse_packet_prefix(), the parse of a frame held in pieces (a
// chained mbuf), against parse_packet() on the whole frame.
//
// The property: for every frame and every prefix length `held`, the prefix
// parse either says "hold more" or gives exactly what the whole-frame parse
// gives (result and every PacketInfo byte), and it never says "hold more"
// once the prefix covers min(frame, kMaxHeaderBytes). Each prefix is an
// exact-size heap copy, so under ASan a read past `held` is a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "millipede/net/bytes.h"
#include "millipede/net/parse.h"

namespace {

using namespace millipede::net;
using Bytes = std::vector<uint8_t>;

void put16(Bytes &b, uint16_t v) {
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
}

Bytes ether(uint16_t type, unsigned vlans = 0) {
    Bytes b(12, 0x02);
    for (unsigned i = 0; i < vlans; ++i) {
        put16(b, i == 0 && vlans == 2 ? kEtherTypeQinQ : kEtherTypeVLAN);
        put16(b, uint16_t(100 + i));
    }
    put16(b, type);
    return b;
}

// L4 header + payload for `proto`.
Bytes l4(uint8_t proto, size_t payload) {
    Bytes b;
    if (proto == kProtoTCP) {
        b = {0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0x18, 0xff, 0xff, 0, 0, 0, 0};
        b.resize(32, 1); // 12 bytes of options (data offset 8)
    } else if (proto == kProtoUDP) {
        b = {0x13, 0x88, 0x00, 0x35};
        put16(b, uint16_t(8 + payload));
        put16(b, 0);
    } else if (proto == kProtoICMP || proto == kProtoICMPv6) {
        b = {3, 3, 0, 0, 0, 0, 0, 0};
    } else if (proto == kProtoSCTP) {
        b.assign(12, 0x11);
    }
    for (size_t i = 0; i < payload; ++i) b.push_back(uint8_t(i * 13));
    return b;
}

Bytes ipv4(uint8_t proto, const Bytes &l4b, unsigned options = 0, uint16_t frag = 0) {
    Bytes b = {uint8_t(0x45 + options / 4), 0};
    put16(b, uint16_t(20 + options + l4b.size()));
    put16(b, 0x1234);
    put16(b, frag);
    b.push_back(64);
    b.push_back(proto);
    put16(b, 0);
    for (uint8_t x : {10, 0, 0, 1, 10, 0, 0, 2}) b.push_back(x);
    b.resize(b.size() + options, 1);
    b.insert(b.end(), l4b.begin(), l4b.end());
    return b;
}

// IPv6 with extension headers (next-header values, each 8 x (len + 1) bytes
// long, a fragment header 8) before `proto`.
Bytes ipv6(uint8_t proto, const Bytes &l4b, const std::vector<std::pair<uint8_t, uint8_t>> &exts = {}) {
    Bytes ext;
    for (size_t i = 0; i < exts.size(); ++i) {
        uint8_t next = i + 1 < exts.size() ? exts[i + 1].first : proto;
        Bytes e = {next, exts[i].second};
        size_t len = exts[i].first == 44 ? 8 : exts[i].first == 51 ? (exts[i].second + 2u) * 4u
                                                                    : (exts[i].second + 1u) * 8u;
        if (exts[i].first == 44) e = {next, 0, 0, 0, 0, 0, 0, 7}; // atomic fragment: offset 0, M clear
        e.resize(len, 0);
        ext.insert(ext.end(), e.begin(), e.end());
    }
    Bytes b = {0x60, 0, 0, 0};
    put16(b, uint16_t(ext.size() + l4b.size()));
    b.push_back(exts.empty() ? proto : exts[0].first);
    b.push_back(64);
    for (int i = 0; i < 32; ++i) b.push_back(uint8_t(0x20 + i));
    b.insert(b.end(), ext.begin(), ext.end());
    b.insert(b.end(), l4b.begin(), l4b.end());
    return b;
}

Bytes cat(Bytes a, const Bytes &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::vector<Bytes> seed_frames() {
    std::vector<Bytes> f;
    f.push_back(cat(ether(kEtherTypeIPv4), ipv4(kProtoTCP, l4(kProtoTCP, 100))));
    f.push_back(cat(ether(kEtherTypeIPv4, 2), ipv4(kProtoTCP, l4(kProtoTCP, 10), 40)));
    f.push_back(cat(ether(kEtherTypeIPv4, 1), ipv4(kProtoUDP, l4(kProtoUDP, 60))));
    f.push_back(cat(ether(kEtherTypeIPv4), ipv4(kProtoUDP, l4(kProtoUDP, 60), 0, 0x2000))); // first fragment
    f.push_back(cat(ether(kEtherTypeIPv4), ipv4(kProtoUDP, l4(0, 60), 0, 0x0010)));         // later fragment
    f.push_back(cat(ether(kEtherTypeIPv4), ipv4(kProtoICMP, cat(l4(kProtoICMP, 0), ipv4(kProtoUDP, l4(kProtoUDP, 4))))));
    f.push_back(cat(ether(kEtherTypeIPv4), ipv4(kProtoSCTP, l4(kProtoSCTP, 20))));
    f.push_back(cat(ether(kEtherTypeIPv4), ipv4(47, l4(0, 30)))); // GRE: L3-only
    f.push_back(cat(ether(kEtherTypeIPv6), ipv6(kProtoTCP, l4(kProtoTCP, 200))));
    f.push_back(cat(ether(kEtherTypeIPv6, 1), ipv6(kProtoUDP, l4(kProtoUDP, 30), {{0, 0}, {60, 3}, {44, 0}})));
    f.push_back(cat(ether(kEtherTypeIPv6), ipv6(kProtoICMPv6, l4(kProtoICMPv6, 16), {{51, 4}, {43, 1}})));
    f.push_back(cat(ether(kEtherTypeIPv6), ipv6(kProtoTCP, l4(kProtoTCP, 8), {{0, 255}, {60, 255}})));
    f.push_back(cat(ether(kEtherTypeIPv6), ipv6(59, {})));
    f.push_back(ether(kEtherTypeARP));
    Bytes arp = ether(kEtherTypeARP);
    arp.resize(60, 0);
    f.push_back(arp);
    return f;
}

// Exact-size copies so ASan sees any read past the bytes given.
Reject full_parse(const Bytes &frame, PacketInfo &out) {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[frame.size() ? frame.size() : 1]);
    if (!frame.empty()) std::memcpy(copy.get(), frame.data(), frame.size());
    return parse_packet(copy.get(), uint32_t(frame.size()), out);
}

void check_every_prefix(const Bytes &frame) {
    PacketInfo whole;
    Reject expect = full_parse(frame, whole);
    const uint32_t len = uint32_t(frame.size());
    const uint32_t enough = std::min(len, kMaxHeaderBytes);
    for (uint32_t held = 0; held <= len; ++held) {
        std::unique_ptr<uint8_t[]> head(new uint8_t[held ? held : 1]);
        if (held) std::memcpy(head.get(), frame.data(), held);
        PacketInfo got;
        Reject r = Reject::NONE;
        bool decided = parse_packet_prefix(head.get(), held, len, got, r);
        if (held >= enough) {
            ASSERT_TRUE(decided) << "held " << held << " of " << len;
        }
        if (!decided) continue;
        ASSERT_EQ(r, expect) << "held " << held << " of " << len << ": " << reject_name(r) << " vs "
                             << reject_name(expect);
        ASSERT_EQ(std::memcmp(&got, &whole, sizeof got), 0) << "held " << held << " of " << len;
    }
}

TEST(ParsePrefix, EveryPrefixOfWellFormedFramesAgreesWithTheWholeFrame) {
    for (const Bytes &f : seed_frames()) check_every_prefix(f);
}

// The whole-frame parse of these frames is what the prefix must reproduce:
// a sanity check that the seeds exercise what they claim.
TEST(ParsePrefix, SeedsParseAsBuilt) {
    auto seeds = seed_frames();
    PacketInfo p;
    EXPECT_EQ(full_parse(seeds[0], p), Reject::NONE);
    EXPECT_EQ(p.payload_len, 100);
    EXPECT_EQ(full_parse(seeds[9], p), Reject::NONE);
    EXPECT_EQ(p.l4_proto, kProtoUDP);
    EXPECT_EQ(p.payload_len, 30);
    EXPECT_EQ(full_parse(seeds[11], p), Reject::NONE);
    EXPECT_EQ(p.l4_offset, 14 + 40 + 2048 + 2048);
    EXPECT_EQ(full_parse(seeds[13], p), Reject::NOT_IP);
    EXPECT_EQ(full_parse(Bytes(10, 0), p), Reject::ETH_TRUNCATED);
}

TEST(ParsePrefix, MutatedFramesAgreeWithTheWholeFrame) {
    std::mt19937 rng(11);
    auto seeds = seed_frames();
    for (int round = 0; round < 3000; ++round) {
        Bytes f = seeds[rng() % seeds.size()];
        unsigned flips = 1 + rng() % 4;
        for (unsigned i = 0; i < flips && !f.empty(); ++i) f[rng() % std::min<size_t>(f.size(), 120)] = uint8_t(rng());
        if (rng() % 4 == 0) f.resize(rng() % (f.size() + 1)); // cut short
        check_every_prefix(f);
        if (HasFatalFailure()) return;
    }
}

// A 64 KiB datagram, as a capture taken with GRO/TSO holds it, decided from
// a 2 KiB first segment: lengths count the whole frame.
TEST(ParsePrefix, LargestDatagramsFromTheFirstSegment) {
    for (bool v6 : {false, true}) {
        size_t payload = v6 ? 65535 - 32 : 65535 - 20 - 32; // 32: TCP header with options
        Bytes f = v6 ? cat(ether(kEtherTypeIPv6), ipv6(kProtoTCP, l4(kProtoTCP, payload)))
                     : cat(ether(kEtherTypeIPv4), ipv4(kProtoTCP, l4(kProtoTCP, payload)));
        PacketInfo p;
        Reject r = Reject::IPV4_TRUNCATED;
        ASSERT_TRUE(parse_packet_prefix(f.data(), 2048, uint32_t(f.size()), p, r));
        EXPECT_EQ(r, Reject::NONE) << reject_name(r);
        EXPECT_EQ(p.payload_len, payload);
        EXPECT_EQ(p.ip_total_len, v6 ? 40u + 65535u : 65535u);
        // One byte short of what the IP header claims: still a reject.
        ASSERT_TRUE(parse_packet_prefix(f.data(), 2048, uint32_t(f.size() - 1), p, r));
        EXPECT_EQ(r, v6 ? Reject::IPV6_BAD_PAYLOAD_LEN : Reject::IPV4_BAD_TOTAL_LEN);
    }
}

} // namespace

// Symmetric RSS sharding (lib/flow/rss.h): the tuple layout matches the RSS
// specification's test vectors, both directions of every flow land on one
// shard, shards share the flows evenly, and why the symmetric hash is not
// the flow table's hash.
#include <gtest/gtest.h>

#include <random>
#include <unordered_set>
#include <vector>

#include <rte_ethdev.h>

#include "millipede/flow/flow_key.h"
#include "millipede/flow/rss.h"

using namespace millipede;
using namespace millipede::flow;

namespace {

net::PacketInfo packet(unsigned version, const uint8_t *src, const uint8_t *dst, uint16_t sport, uint16_t dport,
                       uint8_t proto) {
    net::PacketInfo p{};
    p.ip_version = static_cast<uint8_t>(version);
    p.l4_proto = proto;
    unsigned len = version == 6 ? 16 : 4;
    for (unsigned i = 0; i < len; ++i) {
        p.src.bytes[i] = src[i];
        p.dst.bytes[i] = dst[i];
    }
    bool has_ports = proto == net::kProtoTCP || proto == net::kProtoUDP || proto == net::kProtoSCTP;
    p.src_port = has_ports ? sport : 0;
    p.dst_port = has_ports ? dport : 0;
    return p;
}

net::PacketInfo reversed(net::PacketInfo p) {
    std::swap(p.src, p.dst);
    std::swap(p.src_port, p.dst_port);
    return p;
}

// The Microsoft RSS specification's verification key and suite ("Verifying
// the RSS Hash Calculation"), which NIC vendors test against.
constexpr RssKey kMsKey = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
                           0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
                           0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

net::PacketInfo random_packet(std::mt19937_64 &rng) {
    uint8_t a[16], b[16];
    for (unsigned i = 0; i < 16; ++i) {
        a[i] = static_cast<uint8_t>(rng());
        b[i] = static_cast<uint8_t>(rng());
    }
    static constexpr uint8_t kProtos[] = {net::kProtoTCP, net::kProtoUDP, net::kProtoICMP, net::kProtoSCTP};
    unsigned version = (rng() & 3) == 0 ? 6 : 4;
    net::PacketInfo p = packet(version, a, b, static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()),
                               kProtos[rng() % 4]);
    if ((rng() % 16) == 0) {
        p.is_fragment = true; // NICs hash fragments on the addresses only
        p.is_first_fragment = (rng() & 1) != 0;
    }
    return p;
}

} // namespace

TEST(Rss, MatchesTheSpecificationsIpv4Vectors) {
    const uint8_t s1[4] = {66, 9, 149, 187}, d1[4] = {161, 142, 100, 80};
    EXPECT_EQ(toeplitz_hash(packet(4, s1, d1, 2794, 1766, net::kProtoTCP), kMsKey), 0x51ccc178u);
    EXPECT_EQ(toeplitz_hash(packet(4, s1, d1, 0, 0, net::kProtoICMP), kMsKey), 0x323e8fc2u);
    const uint8_t s2[4] = {199, 92, 111, 2}, d2[4] = {65, 69, 140, 83};
    EXPECT_EQ(toeplitz_hash(packet(4, s2, d2, 14230, 4739, net::kProtoTCP), kMsKey), 0xc626b0eau);
    EXPECT_EQ(toeplitz_hash(packet(4, s2, d2, 0, 0, net::kProtoICMP), kMsKey), 0xd718262au);
}

TEST(Rss, MatchesTheSpecificationsIpv6Vectors) {
    // 3ffe:2501:200:1fff::7 port 2794 -> 3ffe:2501:200:3::1 port 1766
    const uint8_t s[16] = {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 7};
    const uint8_t d[16] = {0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 1};
    EXPECT_EQ(toeplitz_hash(packet(6, s, d, 2794, 1766, net::kProtoTCP), kMsKey), 0x40207d3du);
    EXPECT_EQ(toeplitz_hash(packet(6, s, d, 0, 0, net::kProtoICMPv6), kMsKey), 0x2cc18cd5u);
}

TEST(Rss, ThePortConfigurationCarriesTheSymmetricKey) {
    rte_eth_rss_conf conf{};
    symmetric_rss_conf(conf);
    ASSERT_EQ(conf.rss_key_len, kRssKeyLen);
    for (unsigned i = 0; i < kRssKeyLen; ++i) EXPECT_EQ(conf.rss_key[i], i % 2 ? 0x5a : 0x6d);
    EXPECT_TRUE(conf.rss_hf & RTE_ETH_RSS_NONFRAG_IPV4_TCP);
    EXPECT_TRUE(conf.rss_hf & RTE_ETH_RSS_NONFRAG_IPV6_UDP);
    EXPECT_TRUE(conf.rss_hf & RTE_ETH_RSS_FRAG_IPV4);
}

TEST(Rss, BothDirectionsOfEveryFlowLandOnOneShard) {
    std::mt19937_64 rng(11);
    for (int i = 0; i < 200000; ++i) {
        net::PacketInfo p = random_packet(rng), q = reversed(p);
        uint32_t h = symmetric_rss_hash(p);
        ASSERT_EQ(h, symmetric_rss_hash(q)) << "packet " << i;
        for (unsigned shards : {2u, 3u, 4u, 8u}) ASSERT_EQ(rss_shard(h, shards), rss_shard(symmetric_rss_hash(q), shards));
        // The key the shard's table files the packet under is one key too.
        FlowKey k1{}, k2{};
        make_flow_key(p, k1);
        make_flow_key(q, k2);
        ASSERT_EQ(k1, k2);
    }
    // The default (non-symmetric) key does split flows: the test can fail.
    unsigned split = 0;
    for (int i = 0; i < 1000; ++i) {
        net::PacketInfo p = random_packet(rng);
        split += rss_shard(toeplitz_hash(p, kMsKey), 4) != rss_shard(toeplitz_hash(reversed(p), kMsKey), 4);
    }
    EXPECT_GT(split, 500u);
}

TEST(Rss, ShardsShareTheFlowsEvenly) {
    std::mt19937_64 rng(5);
    for (unsigned shards : {2u, 4u}) {
        std::vector<unsigned> count(shards, 0);
        const unsigned flows = 100000;
        for (unsigned i = 0; i < flows; ++i) ++count[rss_shard(symmetric_rss_hash(random_packet(rng)), shards)];
        for (unsigned s = 0; s < shards; ++s)
            EXPECT_NEAR(count[s], flows / shards, flows / shards / 20) << shards << " shards, shard " << s;
    }
}

// Why the classifier's table does not use the symmetric RSS hash (even when
// the NIC delivers it in the mbuf): it takes at most 65,536 values, so a
// million flows would share each value about 16 times and overflow
// rte_hash's 8-entry buckets. flow_hash spreads them over 32 bits.
TEST(Rss, TheSymmetricHashHasSixteenBitsOfEntropy) {
    std::mt19937_64 rng(9);
    std::unordered_set<uint32_t> rss, table;
    const uint8_t dst[4] = {192, 168, 0, 1};
    for (uint32_t i = 0; i < 300000; ++i) {
        uint8_t src[4] = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
        net::PacketInfo p = packet(4, src, dst, static_cast<uint16_t>(1024 + rng() % 60000), 443, net::kProtoTCP);
        rss.insert(symmetric_rss_hash(p));
        FlowKey k{};
        make_flow_key(p, k);
        table.insert(flow_hash(k));
    }
    EXPECT_LE(rss.size(), 65536u);
    EXPECT_GT(table.size(), 299000u);
}

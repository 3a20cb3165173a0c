// IPv6 on the wire: address helpers, Neighbour Discovery (parse, answer,
// solicit: RFC 4861), ICMPv6 echo (RFC 4443), --ip with IPv6; and tshark
// decoding what we build (checksums verified by tshark, not by us).
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "l2_helpers.h"
#include "millipede/net/addr_parse.h"
#include "millipede/net/ipv6.h"

using namespace millipede::net;
using namespace l2_test;

namespace {

struct A6 {
    uint8_t b[16];
};
A6 ip6(const char *s) {
    A6 a{};
    EXPECT_TRUE(parse_ipv6(s, a.b)) << s;
    return a;
}

const A6 kOur6 = ip6("fd00::1");
const A6 kPeer6 = ip6("fd00::2");

// Ethernet + IPv6 + an ICMPv6 message `msg` (checksum filled in here, by the
// RFC 4443 2.3 definition written out: pseudo-header then message).
std::vector<uint8_t> icmp6_frame(const MacAddr &dmac, const MacAddr &smac, const uint8_t src[16],
                                 const uint8_t dst[16], std::vector<uint8_t> msg, uint8_t hop_limit = 255) {
    msg[2] = msg[3] = 0;
    uint32_t sum = 0;
    auto add16 = [&](const uint8_t *p, size_t n) {
        for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
        if (n & 1) sum += uint32_t(p[n - 1]) << 8;
    };
    add16(src, 16);
    add16(dst, 16);
    sum += static_cast<uint32_t>(msg.size());
    sum += 58;
    add16(msg.data(), msg.size());
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    const uint16_t c = static_cast<uint16_t>(~sum);
    msg[2] = static_cast<uint8_t>(c >> 8);
    msg[3] = static_cast<uint8_t>(c);
    std::vector<uint8_t> f(dmac.b, dmac.b + 6);
    f.insert(f.end(), smac.b, smac.b + 6);
    f.push_back(0x86);
    f.push_back(0xdd);
    const uint8_t v[4] = {0x60, 0, 0, 0};
    f.insert(f.end(), v, v + 4);
    f.push_back(static_cast<uint8_t>(msg.size() >> 8));
    f.push_back(static_cast<uint8_t>(msg.size()));
    f.push_back(58);
    f.push_back(hop_limit);
    f.insert(f.end(), src, src + 16);
    f.insert(f.end(), dst, dst + 16);
    f.insert(f.end(), msg.begin(), msg.end());
    return f;
}

// A peer's solicitation for `target` (to its solicited-node group), with a
// source link-layer option unless `src` is unspecified.
std::vector<uint8_t> peer_ns(const uint8_t target[16], const uint8_t *src = kPeer6.b, bool sllao = true) {
    std::vector<uint8_t> m(24, 0);
    m[0] = 135;
    std::memcpy(m.data() + 8, target, 16);
    if (sllao) {
        m.push_back(1);
        m.push_back(1);
        m.insert(m.end(), kPeerMac.b, kPeerMac.b + 6);
    }
    uint8_t group[16];
    solicited_node(target, group);
    return icmp6_frame(ipv6_multicast_mac(group), kPeerMac, src, group, m);
}

std::vector<uint8_t> peer_echo(const uint8_t dst[16], uint16_t id, uint16_t seq, size_t payload) {
    std::vector<uint8_t> m = {128, 0, 0, 0, static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id),
                              static_cast<uint8_t>(seq >> 8), static_cast<uint8_t>(seq)};
    for (size_t i = 0; i < payload; i++) m.push_back(static_cast<uint8_t>(i * 13));
    return icmp6_frame(kOurMac, kPeerMac, kPeer6.b, dst, m, 64);
}

} // namespace

TEST(Ipv6, AddressHelpers) {
    uint8_t a[16];
    EXPECT_TRUE(parse_ipv6("2001:db8::1", a));
    EXPECT_EQ(format_ipv6(a), "2001:db8::1");
    EXPECT_FALSE(parse_ipv6("2001:db8::1::2", a));
    EXPECT_FALSE(parse_ipv6("10.0.0.1", a));
    EXPECT_FALSE(parse_ipv6("", a));
    EXPECT_FALSE(parse_ipv6(std::string_view("fd00::1\0junk", 12), a)); // inet_pton would stop at the NUL
    EXPECT_TRUE(ipv6_prefix_match(ip6("fd00::1").b, ip6("fd00::ffff:2").b, 64));
    EXPECT_FALSE(ipv6_prefix_match(ip6("fd00::1").b, ip6("fd00:0:0:1::1").b, 64));
    EXPECT_TRUE(ipv6_prefix_match(ip6("fd00::1").b, ip6("fd00:0:0:1::1").b, 63));
    EXPECT_TRUE(ipv6_prefix_match(ip6("fd00::1").b, ip6("fd00::1").b, 128));
    EXPECT_FALSE(ipv6_prefix_match(ip6("fd00::1").b, ip6("fd00::3").b, 127));
    uint8_t g[16];
    solicited_node(ip6("2001:db8::12:3456:789a").b, g);
    EXPECT_EQ(format_ipv6(g), "ff02::1:ff56:789a"); // RFC 4291 2.7.1: low 24 bits
    EXPECT_EQ(format_mac(ipv6_multicast_mac(g)), "33:33:ff:56:78:9a");
    // Keys are what the neighbour cache takes as unicast, and differ.
    for (const char *s : {"fd00::1", "fd00::2", "::ffff:0", "ff02::1", "2001:db8::"}) {
        const uint32_t k = ipv6_key(ip6(s).b);
        EXPECT_GE(k >> 24, 1u) << s;
        EXPECT_LT(k >> 24, 224u) << s;
    }
    EXPECT_NE(ipv6_key(kOur6.b), ipv6_key(kPeer6.b));
}

TEST(Ipv6, IpOptionTakesIpv6) {
    IpAssignment a;
    std::string err;
    ASSERT_TRUE(parse_ip_option("1=fd00::1/64", a, err)) << err;
    EXPECT_TRUE(a.v6);
    EXPECT_EQ(a.port_id, 1);
    EXPECT_EQ(a.prefix_len, 64);
    EXPECT_EQ(a.text(), "fd00::1");
    EXPECT_EQ(a.addr, ipv6_key(kOur6.b));
    EXPECT_TRUE(a.on_link6(kPeer6.b));
    EXPECT_FALSE(a.on_link6(ip6("fd01::2").b));
    EXPECT_FALSE(a.on_link(0x0a000002)); // an IPv4 address is never on an IPv6 link
    ASSERT_TRUE(parse_ip_option("0=2001:db8::5/128", a, err)) << err;
    struct Bad {
        const char *value, *says;
    } bad[] = {
        {"0=fd00::1/0", "prefix length \"0\" is not 1..128"},
        {"0=fd00::1/129", "is not 1..128"},
        {"0=fd00::1/", "is not 1..128"},
        {"0=fd00:::1/64", "is not an IPv6 address"},
        {"0=fe80::1/64", "is link-local"},
        {"0=ff02::1/64", "is a multicast address"},
        {"0=::/64", "is the unspecified address"},
        {"0=::1/128", "is the loopback address"},
        {"0=::ffff:10.0.0.1/96", "is IPv4-mapped"},
        {"0=fd00::1", "missing /PREFIX"},
    };
    for (const auto &b : bad) {
        err.clear();
        EXPECT_FALSE(parse_ip_option(b.value, a, err)) << b.value;
        EXPECT_NE(err.find(b.says), std::string::npos) << b.value << ": " << err;
        EXPECT_EQ(err.find('\n'), std::string::npos);
    }
    // IPv4 still works and says IPv6 is an option when the text is neither.
    ASSERT_TRUE(parse_ip_option("0=10.0.0.1/24", a, err)) << err;
    EXPECT_FALSE(a.v6);
    EXPECT_FALSE(parse_ip_option("0=10.0.0/24", a, err));
    EXPECT_NE(err.find("or an IPv6 address"), std::string::npos) << err;
}

TEST(Ipv6, AnswersASolicitation) {
    auto ns = peer_ns(kOur6.b);
    NdMessage m;
    ASSERT_EQ(parse_nd(ns.data(), static_cast<uint32_t>(ns.size()), m), NdError::NONE);
    EXPECT_EQ(m.type, kIcmp6NeighbourSolicitation);
    EXPECT_TRUE(ipv6_equal(m.target, kOur6.b));
    EXPECT_TRUE(ipv6_equal(m.src, kPeer6.b));
    ASSERT_TRUE(m.has_lladdr);
    EXPECT_EQ(m.lladdr, kPeerMac);
    uint8_t out[128];
    ASSERT_EQ(build_neighbour_advertisement(out, sizeof out, m, kOurMac, kOur6.b), 86u);
    EXPECT_EQ(std::memcmp(out, kPeerMac.b, 6), 0);
    EXPECT_EQ(std::memcmp(out + 6, kOurMac.b, 6), 0);
    NdMessage na;
    ASSERT_EQ(parse_nd(out, 86, na), NdError::NONE); // hop limit 255, checksum right
    EXPECT_EQ(na.type, kIcmp6NeighbourAdvertisement);
    EXPECT_TRUE(na.solicited);
    EXPECT_TRUE(na.override_flag);
    EXPECT_FALSE(na.router);
    EXPECT_TRUE(ipv6_equal(na.src, kOur6.b));
    EXPECT_TRUE(ipv6_equal(na.dst, kPeer6.b));
    EXPECT_TRUE(ipv6_equal(na.target, kOur6.b));
    ASSERT_TRUE(na.has_lladdr);
    EXPECT_EQ(na.lladdr, kOurMac);
    // Without a link-layer option the answer goes to the frame's source.
    auto bare = peer_ns(kOur6.b, kPeer6.b, false);
    ASSERT_EQ(parse_nd(bare.data(), static_cast<uint32_t>(bare.size()), m), NdError::NONE);
    EXPECT_FALSE(m.has_lladdr);
    ASSERT_EQ(build_neighbour_advertisement(out, sizeof out, m, kOurMac, kOur6.b), 86u);
    EXPECT_EQ(std::memcmp(out, kPeerMac.b, 6), 0);
    // Duplicate address detection (unspecified source): to all-nodes, S clear.
    uint8_t unspecified[16] = {};
    auto dad = peer_ns(kOur6.b, unspecified, false);
    ASSERT_EQ(parse_nd(dad.data(), static_cast<uint32_t>(dad.size()), m), NdError::NONE);
    ASSERT_EQ(build_neighbour_advertisement(out, sizeof out, m, kOurMac, kOur6.b), 86u);
    EXPECT_EQ(format_mac(*reinterpret_cast<const MacAddr *>(out)), "33:33:00:00:00:01");
    ASSERT_EQ(parse_nd(out, 86, na), NdError::NONE);
    EXPECT_FALSE(na.solicited);
    EXPECT_EQ(format_ipv6(na.dst), "ff02::1");
    EXPECT_EQ(build_neighbour_advertisement(out, 85, m, kOurMac, kOur6.b), 0u);
}

TEST(Ipv6, UnsolicitedAdvertisementGoesToAllNodes) {
    uint8_t out[128];
    ASSERT_EQ(build_unsolicited_advertisement(out, sizeof out, kOurMac, kOur6.b), 86u);
    EXPECT_EQ(format_mac(*reinterpret_cast<const MacAddr *>(out)), "33:33:00:00:00:01");
    NdMessage na;
    ASSERT_EQ(parse_nd(out, 86, na), NdError::NONE);
    EXPECT_EQ(na.type, kIcmp6NeighbourAdvertisement);
    EXPECT_FALSE(na.solicited); // RFC 4861 7.2.6
    EXPECT_TRUE(na.override_flag);
    EXPECT_EQ(format_ipv6(na.dst), "ff02::1");
    EXPECT_TRUE(ipv6_equal(na.src, kOur6.b));
    EXPECT_TRUE(ipv6_equal(na.target, kOur6.b));
    ASSERT_TRUE(na.has_lladdr);
    EXPECT_EQ(na.lladdr, kOurMac);
    EXPECT_EQ(build_unsolicited_advertisement(out, 85, kOurMac, kOur6.b), 0u);
}

TEST(Ipv6, SolicitsToTheSolicitedNodeGroup) {
    uint8_t out[128];
    ASSERT_EQ(build_neighbour_solicitation(out, sizeof out, kOurMac, kOur6.b, kPeer6.b), 86u);
    EXPECT_EQ(format_mac(*reinterpret_cast<const MacAddr *>(out)), "33:33:ff:00:00:02");
    NdMessage m;
    ASSERT_EQ(parse_nd(out, 86, m), NdError::NONE);
    EXPECT_EQ(m.type, kIcmp6NeighbourSolicitation);
    EXPECT_EQ(format_ipv6(m.dst), "ff02::1:ff00:2");
    EXPECT_TRUE(ipv6_equal(m.target, kPeer6.b));
    ASSERT_TRUE(m.has_lladdr);
    EXPECT_EQ(m.lladdr, kOurMac);
    EXPECT_EQ(build_neighbour_solicitation(out, 85, kOurMac, kOur6.b, kPeer6.b), 0u);
}

TEST(Ipv6, RejectsInvalidNeighbourDiscovery) {
    NdMessage m;
    auto check = [&](std::vector<uint8_t> f, NdError want, const char *what) {
        EXPECT_EQ(parse_nd(f.data(), static_cast<uint32_t>(f.size()), m), want) << what;
    };
    const auto good = peer_ns(kOur6.b);
    check({good.begin(), good.begin() + 10}, NdError::ETH_TRUNCATED, "short");
    auto f = good;
    f[12] = 0x08;
    f[13] = 0x00;
    check(f, NdError::NOT_IPV6, "IPv4 ethertype");
    check({good.begin(), good.begin() + 40}, NdError::IPV6_TRUNCATED, "cut header");
    f = good;
    f[14] = 0x40;
    check(f, NdError::IPV6_TRUNCATED, "version 4");
    f = good;
    f[19] = 200;
    check(f, NdError::BAD_PAYLOAD_LEN, "payload length past frame");
    f = good;
    f[20] = 6;
    check(f, NdError::NOT_ICMPV6, "TCP");
    f = good;
    f[21] = 64;
    check(f, NdError::BAD_HOP_LIMIT, "hop limit 64");
    f = good;
    f[54 + 10] ^= 1;
    check(f, NdError::BAD_CHECKSUM, "flipped target bit");
    uint8_t group[16];
    solicited_node(kOur6.b, group);
    std::vector<uint8_t> msg(24, 0);
    msg[0] = 135;
    msg[1] = 1;
    std::memcpy(msg.data() + 8, kOur6.b, 16);
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, group, msg), NdError::BAD_CODE, "code 1");
    msg[1] = 0;
    msg.resize(20);
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, group, msg), NdError::TRUNCATED, "20 bytes");
    msg.assign(24, 0);
    msg[0] = 135;
    std::memcpy(msg.data() + 8, group, 16);
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, group, msg), NdError::TARGET_MULTICAST, "multicast target");
    std::memcpy(msg.data() + 8, kOur6.b, 16);
    auto zero_opt = msg;
    zero_opt.insert(zero_opt.end(), {1, 0, 0, 0, 0, 0, 0, 0});
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, group, zero_opt), NdError::BAD_OPTION, "option length 0");
    auto long_opt = msg;
    long_opt.insert(long_opt.end(), {1, 2, 0, 0, 0, 0, 0, 0});
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, group, long_opt), NdError::BAD_OPTION, "option past the end");
    uint8_t unspecified[16] = {};
    check(peer_ns(kOur6.b, unspecified, true), NdError::BAD_UNSPECIFIED, "DAD with a link-layer option");
    uint8_t mc_source[16];
    ASSERT_TRUE(parse_ipv6("ff02::1", mc_source));
    check(peer_ns(kOur6.b, mc_source, true), NdError::MULTICAST_SOURCE, "multicast source (found by ipv6_nd_fuzz)");
    check(icmp6_frame(kOurMac, kPeerMac, unspecified, kOur6.b, msg), NdError::BAD_UNSPECIFIED, "DAD to unicast");
    msg[0] = 136;
    msg[4] = 0x40; // solicited
    uint8_t all_nodes[16];
    ASSERT_TRUE(parse_ipv6("ff02::1", all_nodes));
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, all_nodes, msg), NdError::SOLICITED_TO_MULTICAST, "S to ff02::1");
    msg[0] = 133; // router solicitation
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, all_nodes, msg), NdError::NOT_ND, "router solicitation");
    // An unknown option is skipped, a well-formed message is not an error.
    auto extra = msg;
    extra[0] = 135;
    extra[4] = 0;
    extra.insert(extra.end(), {14, 1, 1, 2, 3, 4, 5, 6}); // nonce option (RFC 3971)
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, group, extra), NdError::NONE, "nonce option");
    for (unsigned e = 0; e < kNdErrorCount; e++) {
        EXPECT_STRNE(nd_error_name(static_cast<NdError>(e)), "?");
        EXPECT_STRNE(nd_error_description(static_cast<NdError>(e)), "?");
    }
}

TEST(Ipv6, AnswersEcho) {
    auto req = peer_echo(kOur6.b, 0x1234, 9, 56);
    const std::vector<uint8_t> orig = req;
    uint32_t rlen = 0;
    ASSERT_EQ(icmpv6_echo_reply_in_place(req.data(), static_cast<uint32_t>(req.size()), kOur6.b, kOurMac, rlen),
              Icmp6EchoError::NONE);
    EXPECT_EQ(rlen, orig.size());
    EXPECT_EQ(std::memcmp(req.data(), kPeerMac.b, 6), 0);
    EXPECT_EQ(std::memcmp(req.data() + 6, kOurMac.b, 6), 0);
    EXPECT_TRUE(ipv6_equal(req.data() + 22, kOur6.b));
    EXPECT_TRUE(ipv6_equal(req.data() + 38, kPeer6.b));
    EXPECT_EQ(req[54], 129);
    EXPECT_EQ(std::memcmp(req.data() + 58, orig.data() + 58, orig.size() - 58), 0); // id, seq, data
    const uint32_t mlen = static_cast<uint32_t>(req.size() - 54);
    EXPECT_EQ(icmpv6_checksum(req.data() + 22, req.data() + 38, req.data() + 54, mlen), 0);
    // Ethernet padding is not echoed.
    auto small = peer_echo(kOur6.b, 1, 1, 0);
    const size_t real = small.size();
    small.resize(real + 4, 0);
    ASSERT_EQ(icmpv6_echo_reply_in_place(small.data(), static_cast<uint32_t>(small.size()), kOur6.b, kOurMac, rlen),
              Icmp6EchoError::NONE);
    EXPECT_EQ(rlen, real);
}

TEST(Ipv6, EchoRejects) {
    uint32_t rlen = 0;
    auto check = [&](std::vector<uint8_t> f, Icmp6EchoError want, const char *what) {
        const auto before = f;
        EXPECT_EQ(icmpv6_echo_reply_in_place(f.data(), static_cast<uint32_t>(f.size()), kOur6.b, kOurMac, rlen), want)
            << what;
        EXPECT_EQ(f, before) << what << ": frame changed";
    };
    check(peer_echo(kPeer6.b, 1, 1, 8), Icmp6EchoError::NOT_FOR_US, "to another host");
    auto f = peer_echo(kOur6.b, 1, 1, 8);
    f[58] ^= 0x80;
    check(f, Icmp6EchoError::BAD_CHECKSUM, "flipped id bit");
    f = peer_echo(kOur6.b, 1, 1, 8);
    f[55] = 1;
    check(f, Icmp6EchoError::BAD_CODE, "code 1");
    std::vector<uint8_t> reply = {129, 0, 0, 0, 0, 1, 0, 1};
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, kOur6.b, reply), Icmp6EchoError::NOT_ECHO_REQUEST, "a reply");
    std::vector<uint8_t> tiny = {128, 0, 0, 0};
    check(icmp6_frame(kOurMac, kPeerMac, kPeer6.b, kOur6.b, tiny), Icmp6EchoError::TRUNCATED, "4 bytes");
    uint8_t mc[16];
    ASSERT_TRUE(parse_ipv6("ff02::1", mc));
    check(icmp6_frame(kOurMac, kPeerMac, mc, kOur6.b, {128, 0, 0, 0, 0, 1, 0, 1}), Icmp6EchoError::BAD_SOURCE,
          "multicast source");
    f = peer_echo(kOur6.b, 1, 1, 8);
    f[20] = 17;
    check(f, Icmp6EchoError::NOT_ICMPV6, "UDP");
}

// tshark reads what we build and what we answer: ICMPv6 checksums good,
// Neighbour Discovery fields as intended, nothing malformed.
TEST(Ipv6, TsharkDecodesOurFrames) {
    ASSERT_EQ(system("command -v tshark >/dev/null 2>&1"), 0) << "tshark is not installed (apt-get install tshark, or run tools/test.sh)";
    char path[] = "/tmp/net_ipv6_XXXXXX.pcap";
    int fd = mkstemps(path, 5);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        Pcap pcap(path);
        ASSERT_NE(pcap.f, nullptr);
        uint8_t buf[128];
        ASSERT_EQ(build_neighbour_solicitation(buf, sizeof buf, kOurMac, kOur6.b, kPeer6.b), 86u);
        pcap.add(buf, 86, 1);
        auto ns = peer_ns(kOur6.b);
        NdMessage m;
        ASSERT_EQ(parse_nd(ns.data(), static_cast<uint32_t>(ns.size()), m), NdError::NONE);
        ASSERT_EQ(build_neighbour_advertisement(buf, sizeof buf, m, kOurMac, kOur6.b), 86u);
        pcap.add(buf, 86, 2);
        auto echo = peer_echo(kOur6.b, 0x4242, 7, 56);
        uint32_t rlen = 0;
        ASSERT_EQ(icmpv6_echo_reply_in_place(echo.data(), static_cast<uint32_t>(echo.size()), kOur6.b, kOurMac, rlen),
                  Icmp6EchoError::NONE);
        pcap.add(echo.data(), rlen, 3);
    }
    const std::vector<std::string> lines = tshark_fields(
        path, "-T fields -E separator=, -e icmpv6.type -e icmpv6.checksum.status -e ipv6.src"
              " -e ipv6.dst -e ipv6.hlim -e icmpv6.nd.ns.target_address -e icmpv6.nd.na.target_address"
              " -e icmpv6.nd.na.flag.s -e icmpv6.opt.linkaddr -e icmpv6.echo.identifier"
              " -e icmpv6.echo.sequence_number -e _ws.malformed");
    ASSERT_EQ(lines.size(), 3u) << joined_lines(lines);
    EXPECT_EQ(lines[0], "135,1,fd00::1,ff02::1:ff00:2,255,fd00::2,,,02:00:00:00:00:01,,,") << lines[0];
    EXPECT_EQ(lines[1].rfind("136,1,fd00::1,fd00::2,255,,fd00::1,", 0), 0u) << lines[1];
    EXPECT_NE(lines[1].find(",02:00:00:00:00:01,"), std::string::npos) << lines[1];
    EXPECT_EQ(lines[2], "129,1,fd00::1,fd00::2,64,,,,,0x4242,7,") << lines[2];
}

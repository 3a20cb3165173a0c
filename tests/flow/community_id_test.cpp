// Community ID v1 against the published test vectors.
//
// Sources (all by the spec's authors):
//  [B] community-id-spec, baseline/README.md: the "Default settings" and
//      "A custom seed=1 value" tables,
//      https://github.com/corelight/community-id-spec/tree/master/baseline
//  [J] community-id-spec, baseline/baseline_deflt.json and baseline_seed1.json
//      (pycommunityid's community-id-pcap over pcaps/combined.pcap.gz). The
//      JSON prints ICMP "ports" after the type mapping; the inputs below are
//      the type/code on the wire.
//  [P] pycommunityid, tests/communityid_test.py,
//      https://github.com/corelight/pycommunityid
#include "millipede/flow/community_id.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "millipede/net/parse.h"

namespace {

using millipede::flow::community_id_v1;
using millipede::flow::kCommunityIdLen;
using millipede::net::IpAddr;

struct Endpoint {
    IpAddr addr;
    uint8_t version;
};

Endpoint ip(const char *text) {
    Endpoint e{};
    if (inet_pton(AF_INET, text, e.addr.bytes) == 1) {
        e.version = 4;
    } else {
        EXPECT_EQ(inet_pton(AF_INET6, text, e.addr.bytes), 1) << text;
        e.version = 6;
    }
    return e;
}

struct Vector {
    const char *source;
    uint8_t proto;
    const char *src;
    const char *dst;
    uint16_t sport; // ICMP: type
    uint16_t dport; // ICMP: code
    const char *id_seed0;
    const char *id_seed1;
};

constexpr Vector kVectors[] = {
    // [B] default and seed=1 tables.
    {"B tcp", 6, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
    {"B tcp back", 6, "5.6.7.8", "1.2.3.4", 3344, 1122,
     "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="},
    {"B udp", 17, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="},
    {"B udp back", 17, "5.6.7.8", "1.2.3.4", 3344, 1122,
     "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="},
    {"B sctp", 132, "1.2.3.4", "5.6.7.8", 1122, 3344,
     "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="},
    {"B sctp back", 132, "5.6.7.8", "1.2.3.4", 3344, 1122,
     "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="},
    {"B icmp echo request", 1, "1.2.3.4", "5.6.7.8", 8, 0,
     "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="},
    {"B icmp echo reply", 1, "5.6.7.8", "1.2.3.4", 0, 0,
     "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="},
    {"B icmp time exceeded (one-way)", 1, "1.2.3.4", "5.6.7.8", 11, 0,
     "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:1DD7cWGC/Yg91YGsQeni8du3pIA="},
    {"B icmp6 echo request", 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D",
     128, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="},
    {"B icmp6 echo reply", 58, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
     129, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="},
    {"B icmp6 type 146 (one-way)", 58, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D",
     "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 146, 0,
     "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="},
    {"B rsvp", 46, "1.2.3.4", "5.6.7.8", 0, 0, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="},
    {"B rsvp back", 46, "5.6.7.8", "1.2.3.4", 0, 0, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="},
    {"B rsvp v6", 46, "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", 0, 0,
     "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="},
    {"B rsvp v6 back", 46, "fe80:1011:1213:1415:1617:1819:1A1B:1C1D", "fe80:0001:0203:0405:0607:0809:0A0B:0C0D", 0, 0,
     "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="},

    // [P] tests/communityid_test.py.
    {"P icmp echo", 1, "192.168.0.89", "192.168.0.1", 8, 0,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {"P icmp echo reply", 1, "192.168.0.1", "192.168.0.89", 0, 8,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {"P icmp type 20 code 0", 1, "192.168.0.89", "192.168.0.1", 20, 0,
     "1:3o2RFccXzUgjl7zDpqmY7yJi8rI=", "1:lCXHHxavE1Vq3oX9NH5ladQg02o="},
    {"P icmp type 20 code 1", 1, "192.168.0.89", "192.168.0.1", 20, 1,
     "1:tz/fHIDUHs19NkixVVoOZywde+I=", "1:Ie3wmFyxiEyikbsbcO03d2nh+PM="},
    {"P icmp echo reply, code ignored", 1, "192.168.0.1", "192.168.0.89", 0, 20,
     "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="},
    {"P icmp6 neighbor solicitation", 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
    {"P icmp6 neighbor advertisement", 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 0,
     "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="},
    {"P icmp6 time exceeded", 58, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=", "1:OlOWx9psIbBFi7lOCw/4MhlKR9M="},
    {"P icmp6 time exceeded, other way: one-way, not flipped", 58, "3ffe:507:0:1:200:86ff:fe05:80da",
     "3ffe:507:0:1:260:97ff:fe07:69ea", 3, 0, "1:/OGBt9BN1ofenrmSPWYicpij2Vc=", "1:Ij4ZxnC87/MXzhOjvH2vHu7LRmE="},
    {"P sctp", 132, "192.168.170.8", "192.168.170.56", 7, 80,
     "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
    {"P sctp back", 132, "192.168.170.56", "192.168.170.8", 80, 7,
     "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=", "1:Y1/0jQg6e+I3ZwZZ9LP65DNbTXU="},
    {"P tcp", 6, "128.232.110.120", "66.35.250.204", 34855, 80,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
    {"P tcp back", 6, "66.35.250.204", "128.232.110.120", 80, 34855,
     "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="},
    // pycommunityid issue 3: ports must be hashed as 2 big-endian bytes.
    {"P tcp low port", 6, "10.0.0.1", "10.0.0.2", 10, 11569,
     "1:SXBGMX1lBOwhhoDrZynfROxnhnM=", "1:HmBRGR+fUyXF4t8WEtal7Y0gEAo="},
    {"P udp", 17, "192.168.1.52", "8.8.8.8", 54585, 53,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
    {"P udp back", 17, "8.8.8.8", "192.168.1.52", 53, 54585,
     "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="},
    {"P ip proto 46", 46, "10.1.24.4", "10.1.12.1", 0, 0,
     "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},
    {"P ip proto 46 back", 46, "10.1.12.1", "10.1.24.4", 0, 0,
     "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=", "1:BK3BVW3U2eemuwVQVN3zd/GULno="},

    // [J] flows from pcaps/combined.pcap.gz.
    {"J ipv6 tcp", 6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", 63943, 25,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="},
    {"J ipv6 tcp back", 6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", 25, 63943,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="},
    {"J icmp6 neighbor solicitation, other way", 58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 0,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="},
    {"J icmp6 neighbor advertisement, other way", 58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 0,
     "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="},
    {"J icmp6 time exceeded", 58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0,
     "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", "1:lVEtCZpYu84Xqaa++3lXFyuu2n4="},
    {"J icmp6 unreachable port", 58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4,
     "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8="},
    {"J icmp6 echo request", 58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 0,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="},
    {"J icmp6 echo reply", 58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 0,
     "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="},
    {"J icmp6 router solicitation", 58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 0,
     "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8="},
    {"J icmp6 router advertisement", 58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 0,
     "1:pkvHqCL88/tg1k4cPigmZXUtL00=", "1:K/ee5UCqAMAQXDorP5nSa2CGLjc="},
    {"J icmp time exceeded", 1, "10.0.0.1", "10.0.0.2", 11, 0,
     "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:XjUibYHaafLQ3pxQeiMI8g25q20="},
    // Equal ports in both directions: the addresses alone decide.
    {"J sctp same ports", 132, "192.168.170.8", "192.168.170.56", 7, 7,
     "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="},
    {"J sctp same ports back", 132, "192.168.170.56", "192.168.170.8", 7, 7,
     "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="},
    {"J rsvp", 46, "10.1.12.1", "10.1.12.2", 0, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="},
    {"J rsvp back", 46, "10.1.12.2", "10.1.12.1", 0, 0,
     "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="},
};

std::string id_of(const Vector &v, uint16_t seed) {
    const Endpoint s = ip(v.src), d = ip(v.dst);
    EXPECT_EQ(s.version, d.version) << v.source;
    return community_id_v1(s.addr, d.addr, s.version, v.proto, v.sport, v.dport, seed).text;
}

TEST(CommunityId, PublishedVectorsSeed0) {
    for (const Vector &v : kVectors) EXPECT_EQ(id_of(v, 0), v.id_seed0) << v.source;
}

TEST(CommunityId, PublishedVectorsSeed1) {
    for (const Vector &v : kVectors) EXPECT_EQ(id_of(v, 1), v.id_seed1) << v.source;
}

TEST(CommunityId, DefaultSeedIsZero) {
    const Endpoint s = ip("1.2.3.4"), d = ip("5.6.7.8");
    EXPECT_STREQ(community_id_v1(s.addr, d.addr, 4, 6, 1122, 3344).text, "1:wCb3OG7yAFWelaUydu0D+125CLM=");
}

TEST(CommunityId, TextIsFixedLengthAndTerminated) {
    for (const Vector &v : kVectors) {
        const Endpoint s = ip(v.src), d = ip(v.dst);
        const auto id = community_id_v1(s.addr, d.addr, s.version, v.proto, v.sport, v.dport, 0xffff);
        EXPECT_EQ(std::strlen(id.text), kCommunityIdLen) << v.source;
        EXPECT_EQ(id.text[kCommunityIdLen], '\0');
        EXPECT_EQ(std::string(id.text, 2), "1:");
    }
}

TEST(CommunityId, SeedChangesTheId) {
    const Endpoint s = ip("1.2.3.4"), d = ip("5.6.7.8");
    const std::string a = community_id_v1(s.addr, d.addr, 4, 6, 1122, 3344, 0).text;
    const std::string b = community_id_v1(s.addr, d.addr, 4, 6, 1122, 3344, 0x1234).text;
    const std::string c = community_id_v1(s.addr, d.addr, 4, 6, 1122, 3344, 0x3412).text;
    EXPECT_NE(a, b);
    EXPECT_NE(b, c); // the seed is hashed big-endian, not as a byte bag
}

TEST(CommunityId, PortsIgnoredForPortlessProtocols) {
    const Endpoint s = ip("1.2.3.4"), d = ip("5.6.7.8");
    for (uint8_t proto : {46, 47, 50}) {
        EXPECT_STREQ(community_id_v1(s.addr, d.addr, 4, proto, 0, 0).text,
                     community_id_v1(s.addr, d.addr, 4, proto, 1234, 80).text)
            << int(proto);
    }
    EXPECT_STREQ(community_id_v1(s.addr, d.addr, 4, 46, 99, 1).text, "1:ikv3kmf89luf73WPz1jOs49S768=");
}

TEST(CommunityId, Ipv4ReadsOnlyTheFirstFourBytes) {
    Endpoint s = ip("1.2.3.4"), d = ip("5.6.7.8");
    std::memset(s.addr.bytes + 4, 0xaa, 12);
    std::memset(d.addr.bytes + 4, 0x55, 12);
    EXPECT_STREQ(community_id_v1(s.addr, d.addr, 4, 6, 1122, 3344).text, "1:wCb3OG7yAFWelaUydu0D+125CLM=");
}

TEST(CommunityId, SameAddressesOrderByPort) {
    const Endpoint a = ip("10.0.0.1");
    EXPECT_STREQ(community_id_v1(a.addr, a.addr, 4, 6, 1000, 80).text,
                 community_id_v1(a.addr, a.addr, 4, 6, 80, 1000).text);
}

TEST(CommunityId, UnpairedIcmpIsOneWay) {
    // Destination unreachable both ways must stay two IDs: the code, not a
    // counterpart type, goes into the hash, and the tuple is not flipped.
    const Endpoint a = ip("192.168.0.1"), b = ip("192.168.0.89");
    EXPECT_STRNE(community_id_v1(a.addr, b.addr, 4, 1, 3, 3).text, community_id_v1(b.addr, a.addr, 4, 1, 3, 3).text);
}

TEST(CommunityId, EveryIcmpRequestMatchesItsReply) {
    const Endpoint a = ip("10.9.8.7"), b = ip("10.1.2.3");
    for (auto [req, rep] : {std::pair{8, 0}, {13, 14}, {15, 16}, {10, 9}, {17, 18}})
        EXPECT_STREQ(community_id_v1(a.addr, b.addr, 4, 1, req, 0).text,
                     community_id_v1(b.addr, a.addr, 4, 1, rep, 0).text)
            << req;
    const Endpoint c = ip("2001:db8::9"), d = ip("2001:db8::1");
    for (auto [req, rep] : {std::pair{128, 129}, {130, 131}, {133, 134}, {135, 136}, {139, 140}, {144, 145}})
        EXPECT_STREQ(community_id_v1(c.addr, d.addr, 6, 58, req, 0).text,
                     community_id_v1(d.addr, c.addr, 6, 58, rep, 0).text)
            << req;
}

// The ID as the classifier will compute it: straight from parse_packet().
TEST(CommunityId, FromParsedPacket) {
    // Ethernet + IPv4 + TCP SYN 128.232.110.120:34855 -> 66.35.250.204:80.
    std::vector<uint8_t> f = {
        0,    1,    2, 3,  4, 5, 6,    7, 8,  9, 10, 11, 0x08, 0x00,                               // Ethernet
        0x45, 0,    0, 40, 0, 1, 0x40, 0, 64, 6, 0,  0,  128,  232,  110,  120,  66, 35, 250, 204, // IPv4
        0x88, 0x27, 0, 80, 0, 0, 0,    1, 0,  0, 0,  0,  0x50, 0x02, 0xff, 0xff, 0,  0,  0,   0,   // TCP
    };
    millipede::net::PacketInfo pi;
    ASSERT_EQ(millipede::net::parse_packet(f.data(), uint32_t(f.size()), pi), millipede::net::Reject::NONE);
    EXPECT_STREQ(community_id_v1(pi.src, pi.dst, pi.ip_version, pi.l4_proto, pi.src_port, pi.dst_port).text,
                 "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
}

TEST(CommunityId, ConcurrentThreadsAgree) {
    std::vector<std::thread> threads;
    std::vector<int> mismatches(4, 0);
    for (size_t t = 0; t < mismatches.size(); ++t) {
        threads.emplace_back([&, t] {
            const Endpoint s = ip("1.2.3.4"), d = ip("5.6.7.8");
            for (int i = 0; i < 2000; ++i)
                if (std::strcmp(community_id_v1(s.addr, d.addr, 4, 17, 1122, 3344, 1).text,
                                "1:OShq+iKDAMVouh/4bMxB9Sz4amw=") != 0)
                    ++mismatches[t];
        });
    }
    for (auto &th : threads) th.join();
    for (int m : mismatches) EXPECT_EQ(m, 0);
}

// The data path must not allocate; libcrypto's EVP API would, per call.
std::atomic<long> g_crypto_allocs{0};
void *count_malloc(size_t n, const char *, int) {
    ++g_crypto_allocs;
    return std::malloc(n);
}
void *count_realloc(void *p, size_t n, const char *, int) {
    ++g_crypto_allocs;
    return std::realloc(p, n);
}
void plain_free(void *p, const char *, int) { std::free(p); }

TEST(CommunityId, NeverAllocates) {
    // libcrypto refuses new allocators once it has allocated anything in
    // this process; the earlier tests call community_id_v1() too, so a
    // refusal already means the data path allocated.
    ASSERT_EQ(CRYPTO_set_mem_functions(count_malloc, count_realloc, plain_free), 1)
        << "libcrypto allocated before this test: community_id_v1() or another earlier test allocated";
    const Endpoint s = ip("2001:db8::1"), d = ip("2001:db8::2");
    for (uint16_t port = 0; port < 1000; ++port) community_id_v1(s.addr, d.addr, 6, 6, port, 443, port);
    EXPECT_EQ(g_crypto_allocs.load(), 0);
}

} // namespace

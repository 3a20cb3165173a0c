// ICMP echo: replies in place and into a buffer, checksums, payload, VLANs,
// IP options, padding; every reject reason.
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "l2_helpers.h"
#include "millipede/net/icmp_echo.h"

using namespace millipede::net;
using namespace l2_test;

namespace {

std::vector<uint8_t> payload_of(size_t n, uint32_t seed) {
    std::vector<uint8_t> p(n);
    std::mt19937 rng(seed);
    for (auto &b : p) b = static_cast<uint8_t>(rng());
    return p;
}

void expect_valid_reply(const std::vector<uint8_t> &req, const uint8_t *rep, uint32_t rlen, size_t l3, size_t ihl,
                        const std::vector<uint8_t> &payload) {
    EXPECT_EQ(std::memcmp(rep, kPeerMac.b, 6), 0);     // to the requester
    EXPECT_EQ(std::memcmp(rep + 6, kOurMac.b, 6), 0);  // from us
    const uint8_t *ip = rep + l3;
    EXPECT_EQ(load_be32(ip + 12), kOurIp);
    EXPECT_EQ(load_be32(ip + 16), kPeerIp);
    EXPECT_EQ(ip[8], 64);
    EXPECT_EQ(checksum_finish(checksum_partial(ip, ihl)), 0) << "IPv4 header checksum";
    const size_t icmp_len = load_be16(ip + 2) - ihl;
    const uint8_t *icmp = ip + ihl;
    EXPECT_EQ(icmp[0], 0);
    EXPECT_EQ(icmp[1], 0);
    EXPECT_EQ(checksum_finish(checksum_partial(icmp, icmp_len)), 0) << "ICMP checksum";
    // Incremental update equals a full recomputation (same value, not just valid).
    std::vector<uint8_t> copy(icmp, icmp + icmp_len);
    copy[2] = copy[3] = 0;
    const uint16_t full = checksum_finish(checksum_partial(copy.data(), copy.size()));
    EXPECT_EQ(load_be16(icmp + 2), full);
    EXPECT_EQ(std::memcmp(icmp + 4, req.data() + l3 + ihl + 4, 4), 0); // id + seq kept
    if (!payload.empty()) {
        EXPECT_EQ(std::memcmp(icmp + 8, payload.data(), payload.size()), 0);
    }
    EXPECT_GE(rlen, l3 + ihl + 8 + payload.size());
}

} // namespace

TEST(IcmpEcho, RepliesInPlaceKeepingPayload) {
    for (size_t n : {size_t(0), size_t(1), size_t(18), size_t(56), size_t(1472)}) {
        SCOPED_TRACE("payload " + std::to_string(n));
        auto payload = payload_of(n, static_cast<uint32_t>(n));
        auto req = echo_request(kPeerIp, kOurIp, 0x1234, 9, payload);
        auto f = req;
        uint32_t rlen = 0;
        ASSERT_EQ(icmp_echo_reply_in_place(f.data(), static_cast<uint32_t>(f.size()), kOurIp, kOurMac, rlen),
                  IcmpEchoError::NONE);
        EXPECT_EQ(rlen, f.size());
        expect_valid_reply(req, f.data(), rlen, 14, 20, payload);
    }
}

TEST(IcmpEcho, ManyRandomRequestsChecksumExact) {
    std::mt19937 rng(3);
    for (int i = 0; i < 2000; i++) {
        auto payload = payload_of(rng() % 200, rng());
        auto req = echo_request(kPeerIp, kOurIp, static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()), payload);
        std::vector<uint8_t> out(1600);
        uint32_t rlen = 0;
        ASSERT_EQ(icmp_echo_reply(req.data(), static_cast<uint32_t>(req.size()), out.data(), out.size(), kOurIp,
                                  kOurMac, rlen),
                  IcmpEchoError::NONE);
        expect_valid_reply(req, out.data(), rlen, 14, 20, payload);
        if (HasFailure()) break;
    }
}

TEST(IcmpEcho, VlanOptionsAndPadding) {
    auto payload = payload_of(4, 1);
    auto req = echo_request(kPeerIp, kOurIp, 1, 2, payload, 8, 100); // 8 bytes of options, one tag
    auto f = req;
    const size_t unpadded = f.size();
    f.resize(80, 0xcc); // trailing Ethernet padding from the sender
    uint32_t rlen = 0;
    ASSERT_EQ(icmp_echo_reply_in_place(f.data(), static_cast<uint32_t>(f.size()), kOurIp, kOurMac, rlen),
              IcmpEchoError::NONE);
    EXPECT_EQ(unpadded, 18u + 28 + 8 + 4);
    EXPECT_EQ(rlen, 60u); // datagram (58) padded back to the minimum with zeros
    EXPECT_EQ(f[58], 0);
    EXPECT_EQ(f[59], 0);
    EXPECT_EQ(load_be16(&f[14]), 100); // tag kept
    expect_valid_reply(req, f.data(), rlen, 18, 28, payload);
    EXPECT_EQ(f[18 + 20], 1); // options kept
}

TEST(IcmpEcho, RejectsWithReasons) {
    auto good = echo_request(kPeerIp, kOurIp, 1, 1, payload_of(32, 2));
    uint32_t rlen = 0;
    auto expect_reject = [&](std::vector<uint8_t> f, IcmpEchoError want, const char *what) {
        const auto before = f;
        EXPECT_EQ(icmp_echo_reply_in_place(f.data(), static_cast<uint32_t>(f.size()), kOurIp, kOurMac, rlen), want)
            << what;
        EXPECT_TRUE(f == before) << what << ": a rejected frame must not be modified";
    };
    auto fix_ip_csum = [](std::vector<uint8_t> &f) {
        store_be16(&f[24], 0);
        store_be16(&f[24], checksum_finish(checksum_partial(&f[14], 20)));
    };
    auto fix_icmp_csum = [](std::vector<uint8_t> &f) {
        store_be16(&f[36], 0);
        store_be16(&f[36], checksum_finish(checksum_partial(&f[34], f.size() - 34)));
    };
    {
        auto f = good;
        f[23] = 6;
        fix_ip_csum(f);
        expect_reject(f, IcmpEchoError::NOT_ICMP, "tcp");
    }
    {
        auto f = good;
        store_be32(&f[30], 0x0a000063);
        fix_ip_csum(f);
        expect_reject(f, IcmpEchoError::NOT_FOR_US, "other host");
    }
    {
        auto f = good;
        store_be32(&f[30], 0x0a0000ff);
        fix_ip_csum(f);
        expect_reject(f, IcmpEchoError::NOT_FOR_US, "subnet broadcast");
    }
    {
        auto f = good;
        store_be32(&f[26], 0xe0000001);
        fix_ip_csum(f);
        expect_reject(f, IcmpEchoError::BAD_SOURCE, "multicast source");
    }
    {
        auto f = good;
        f[24] ^= 1;
        expect_reject(f, IcmpEchoError::IPV4_BAD_CHECKSUM, "ip checksum");
    }
    {
        auto f = good;
        f[36] ^= 1;
        expect_reject(f, IcmpEchoError::BAD_CHECKSUM, "icmp checksum");
    }
    {
        auto f = good;
        f[50] ^= 0x80; // payload corrupted
        expect_reject(f, IcmpEchoError::BAD_CHECKSUM, "payload");
    }
    {
        auto f = good;
        f[34] = 0; // an echo reply is not answered
        fix_icmp_csum(f);
        expect_reject(f, IcmpEchoError::NOT_ECHO_REQUEST, "reply");
    }
    {
        auto f = good;
        f[35] = 1;
        fix_icmp_csum(f);
        expect_reject(f, IcmpEchoError::BAD_CODE, "code");
    }
    {
        auto f = good;
        store_be16(&f[20], 0x2000); // MF
        fix_ip_csum(f);
        expect_reject(f, IcmpEchoError::FRAGMENT, "fragment");
    }
    {
        auto f = good;
        f[14] = 0x65;
        expect_reject(f, IcmpEchoError::IPV4_BAD_VERSION, "version");
    }
    {
        auto f = good;
        f[14] = 0x44;
        expect_reject(f, IcmpEchoError::IPV4_BAD_IHL, "ihl 16");
    }
    {
        auto f = good;
        store_be16(&f[16], static_cast<uint16_t>(f.size())); // longer than the frame holds
        fix_ip_csum(f);
        expect_reject(f, IcmpEchoError::IPV4_BAD_TOTAL_LEN, "total length");
    }
    {
        auto f = good;
        store_be16(&f[16], 24); // ICMP of 4 bytes
        fix_ip_csum(f);
        expect_reject(f, IcmpEchoError::ICMP_TRUNCATED, "icmp truncated");
    }
    {
        auto f = good;
        f[12] = 0x86;
        f[13] = 0xdd;
        expect_reject(f, IcmpEchoError::NOT_IPV4, "ipv6");
    }
    // Truncations: exact-size heap copies, so ASan sees any read past `len`.
    for (uint32_t len = 0; len < good.size(); len++) {
        std::vector<uint8_t> cut(good.begin(), good.begin() + len);
        const IcmpEchoError e = icmp_echo_reply_in_place(cut.data(), len, kOurIp, kOurMac, rlen);
        EXPECT_NE(e, IcmpEchoError::NONE) << len;
    }
    std::vector<uint8_t> out(good.size() - 1);
    EXPECT_EQ(icmp_echo_reply(good.data(), static_cast<uint32_t>(good.size()), out.data(), out.size(), kOurIp,
                              kOurMac, rlen),
              IcmpEchoError::NO_ROOM);
    EXPECT_STREQ(icmp_echo_error_name(IcmpEchoError::NOT_FOR_US), "icmp_not_for_us");
    EXPECT_STREQ(icmp_echo_error_name(IcmpEchoError::NONE), "none");
}

// Found by tests/fuzz/icmp_echo_fuzz: a request with identifier, sequence
// and data all zero (scapy's `IP()/ICMP()`) got a reply with ICMP checksum
// 0x0000, which the peer rejects: the incremental update (RFC 1624 eqn. 3)
// gives -0 where the all-zero message needs +0's checksum 0xffff.
TEST(IcmpEcho, AllZeroEchoGetsAValidChecksum) {
    for (size_t n : {size_t(0), size_t(1), size_t(18), size_t(1472)}) {
        SCOPED_TRACE("payload " + std::to_string(n));
        const std::vector<uint8_t> zeros(n, 0);
        auto req = echo_request(kPeerIp, kOurIp, 0, 0, zeros);
        auto f = req;
        uint32_t rlen = 0;
        ASSERT_EQ(icmp_echo_reply_in_place(f.data(), static_cast<uint32_t>(f.size()), kOurIp, kOurMac, rlen),
                  IcmpEchoError::NONE);
        expect_valid_reply(req, f.data(), rlen, 14, 20, zeros);
        EXPECT_EQ(load_be16(f.data() + 14 + 20 + 2), 0xffff);
        std::vector<uint8_t> out(1600);
        ASSERT_EQ(icmp_echo_reply(req.data(), static_cast<uint32_t>(req.size()), out.data(), out.size(), kOurIp,
                                  kOurMac, rlen),
                  IcmpEchoError::NONE);
        expect_valid_reply(req, out.data(), rlen, 14, 20, zeros);
    }
}

// ARP: parsing and validation, replies (in place and fresh), requests,
// gratuitous ARP; and tshark decoding what we build (ARP and ICMP).
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "l2_helpers.h"
#include "millipede/net/arp.h"
#include "millipede/net/icmp_echo.h"

using namespace millipede::net;
using namespace l2_test;

namespace {

// A request from the peer for `target`, written by hand (independent of the builders).
std::vector<uint8_t> peer_request(uint32_t target, bool vlan = false) {
    std::vector<uint8_t> f(vlan ? 64 : kEthMinFrame, 0);
    std::fill(f.begin(), f.begin() + 6, 0xff);
    std::memcpy(&f[6], kPeerMac.b, 6);
    size_t off = 12;
    if (vlan) {
        store_be16(&f[12], 0x8100);
        store_be16(&f[14], 42);
        off = 16;
    }
    store_be16(&f[off], 0x0806);
    uint8_t *a = &f[off + 2];
    store_be16(a, 1);
    store_be16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    store_be16(a + 6, 1);
    std::memcpy(a + 8, kPeerMac.b, 6);
    store_be32(a + 14, kPeerIp);
    store_be32(a + 24, target);
    return f;
}

} // namespace

TEST(Arp, ParsesARequest) {
    auto f = peer_request(kOurIp);
    ArpPacket p;
    ASSERT_EQ(parse_arp(f.data(), static_cast<uint32_t>(f.size()), p), ArpError::NONE);
    EXPECT_EQ(p.op, kArpOpRequest);
    EXPECT_EQ(p.sender_mac, kPeerMac);
    EXPECT_EQ(p.sender_ip, kPeerIp);
    EXPECT_EQ(p.target_ip, kOurIp);
    EXPECT_TRUE(p.target_mac.is_zero());
    EXPECT_TRUE(p.eth_dst.is_broadcast());
    EXPECT_EQ(p.arp_offset, 14);
    EXPECT_EQ(p.vlan_count, 0);
    EXPECT_TRUE(arp_should_reply(p, kOurIp));
    EXPECT_FALSE(arp_should_reply(p, 0x0a000009));
}

TEST(Arp, ParsesVlanTagged) {
    auto f = peer_request(kOurIp, true);
    ArpPacket p;
    ASSERT_EQ(parse_arp(f.data(), static_cast<uint32_t>(f.size()), p), ArpError::NONE);
    EXPECT_EQ(p.vlan_count, 1);
    EXPECT_EQ(p.vlan_tci[0], 42);
    EXPECT_EQ(p.arp_offset, 18);
}

TEST(Arp, RejectsMalformed) {
    ArpPacket p;
    auto good = peer_request(kOurIp);
    struct Case {
        size_t byte;
        uint8_t value;
        ArpError want;
    } cases[] = {
        {12, 0x08, ArpError::NONE}, // unchanged first byte of the ethertype
        {13, 0x00, ArpError::NOT_ARP},
        {15, 6, ArpError::BAD_HTYPE},
        {16, 0x86, ArpError::BAD_PTYPE},
        {18, 8, ArpError::BAD_HLEN},
        {19, 16, ArpError::BAD_PLEN},
        {21, 3, ArpError::BAD_OPCODE},
        {22, 0x01, ArpError::BAD_SENDER_MAC}, // group bit in the sender MAC
    };
    for (const auto &c : cases) {
        auto f = good;
        f[c.byte] = c.value;
        EXPECT_EQ(parse_arp(f.data(), static_cast<uint32_t>(f.size()), p), c.want) << "byte " << c.byte;
    }
    auto zero_sender = good;
    std::memset(&zero_sender[22], 0, 6);
    EXPECT_EQ(parse_arp(zero_sender.data(), 60, p), ArpError::BAD_SENDER_MAC);
    // Every truncation is caught without reading past `len` (ASan checks the reads:
    // each length gets its own exact-size heap copy).
    for (uint32_t len = 0; len < 42; len++) {
        std::vector<uint8_t> cut(good.begin(), good.begin() + len);
        EXPECT_EQ(parse_arp(cut.data(), len, p), ArpError::TRUNCATED) << len;
    }
    std::vector<uint8_t> exact(good.begin(), good.begin() + 42);
    EXPECT_EQ(parse_arp(exact.data(), 42, p), ArpError::NONE);
    // Three VLAN tags.
    std::vector<uint8_t> deep(80, 0);
    for (int i = 0; i < 3; i++) store_be16(&deep[12 + 4 * i], 0x8100);
    store_be16(&deep[24], 0x0806);
    EXPECT_EQ(parse_arp(deep.data(), 80, p), ArpError::VLAN_TOO_DEEP);
    std::vector<uint8_t> short_tag(good.begin(), good.begin() + 15);
    store_be16(&short_tag[12], 0x8100);
    EXPECT_EQ(parse_arp(short_tag.data(), 15, p), ArpError::TRUNCATED);
    EXPECT_STREQ(arp_error_name(ArpError::BAD_PTYPE), "arp_bad_ptype");
    EXPECT_STREQ(arp_error_name(ArpError::NONE), "none");
    EXPECT_NE(std::string(arp_error_description(ArpError::TRUNCATED)).find("28-byte"), std::string::npos);
}

TEST(Arp, ReplyInPlaceAndIntoBuffer) {
    for (bool vlan : {false, true}) {
        auto f = peer_request(kOurIp, vlan);
        ArpPacket req;
        ASSERT_EQ(parse_arp(f.data(), static_cast<uint32_t>(f.size()), req), ArpError::NONE);
        std::vector<uint8_t> out(100, 0xee);
        const size_t n = build_arp_reply(out.data(), out.size(), req, kOurMac);
        ASSERT_EQ(n, kEthMinFrame);
        EXPECT_EQ(arp_reply_in_place(f.data(), static_cast<uint32_t>(f.size()), req, kOurMac), f.size());
        for (const auto *frame : {&f, &out}) {
            ArpPacket rep;
            ASSERT_EQ(parse_arp(frame->data(), static_cast<uint32_t>(frame == &f ? f.size() : n), rep), ArpError::NONE);
            EXPECT_EQ(rep.op, kArpOpReply);
            EXPECT_EQ(rep.eth_dst, kPeerMac);
            EXPECT_EQ(rep.eth_src, kOurMac);
            EXPECT_EQ(rep.sender_mac, kOurMac);
            EXPECT_EQ(rep.sender_ip, kOurIp);
            EXPECT_EQ(rep.target_mac, kPeerMac);
            EXPECT_EQ(rep.target_ip, kPeerIp);
        }
        EXPECT_EQ(out[60], 0xee); // nothing written past the frame
        if (vlan) {
            EXPECT_EQ(load_be16(&f[14]), 42); // the tag is kept in place
        }
    }
    ArpPacket req;
    auto f = peer_request(kOurIp);
    ASSERT_EQ(parse_arp(f.data(), 60, req), ArpError::NONE);
    uint8_t small[59];
    EXPECT_EQ(build_arp_reply(small, sizeof small, req, kOurMac), 0u);
}

TEST(Arp, RequestAndGratuitous) {
    uint8_t buf[60];
    ASSERT_EQ(build_arp_request(buf, sizeof buf, kOurMac, kOurIp, kPeerIp), 60u);
    ArpPacket p;
    ASSERT_EQ(parse_arp(buf, 60, p), ArpError::NONE);
    EXPECT_EQ(p.op, kArpOpRequest);
    EXPECT_TRUE(p.eth_dst.is_broadcast());
    EXPECT_EQ(p.eth_src, kOurMac);
    EXPECT_EQ(p.sender_ip, kOurIp);
    EXPECT_EQ(p.target_ip, kPeerIp);
    EXPECT_TRUE(p.target_mac.is_zero());
    for (int i = 42; i < 60; i++) EXPECT_EQ(buf[i], 0) << i;

    ASSERT_EQ(build_gratuitous_arp(buf, sizeof buf, kOurMac, kOurIp), 60u);
    ASSERT_EQ(parse_arp(buf, 60, p), ArpError::NONE);
    EXPECT_TRUE(p.is_gratuitous());
    EXPECT_FALSE(p.is_probe());
    EXPECT_EQ(p.op, kArpOpRequest);
    EXPECT_FALSE(arp_should_reply(p, kOurIp)); // our own announcement is not a question
    ASSERT_EQ(build_gratuitous_arp(buf, sizeof buf, kOurMac, kOurIp, kArpOpReply), 60u);
    ASSERT_EQ(parse_arp(buf, 60, p), ArpError::NONE);
    EXPECT_EQ(p.op, kArpOpReply);
    EXPECT_EQ(build_gratuitous_arp(buf, sizeof buf, kOurMac, kOurIp, 7), 0u);
}

// A real decoder reads what we build: ARP request, reply, gratuitous, and an
// ICMP echo reply made from a request.
TEST(Arp, TsharkDecodesOurFrames) {
    // tshark is a test dependency that tools/test.sh installs: its absence is a
    // set-up error to report, not a reason to pass without the cross-check.
    ASSERT_EQ(system("command -v tshark >/dev/null 2>&1"), 0) << "tshark is not installed (apt-get install tshark, or run tools/test.sh)";
    char path[] = "/tmp/net_l2_XXXXXX.pcap";
    int fd = mkstemps(path, 5);
    ASSERT_GE(fd, 0);
    close(fd);
    {
        Pcap pcap(path);
        ASSERT_NE(pcap.f, nullptr);
        uint8_t buf[128];
        ASSERT_EQ(build_arp_request(buf, sizeof buf, kOurMac, kOurIp, kPeerIp), 60u);
        pcap.add(buf, 60, 1);
        auto req = peer_request(kOurIp);
        ArpPacket p;
        ASSERT_EQ(parse_arp(req.data(), 60, p), ArpError::NONE);
        ASSERT_EQ(build_arp_reply(buf, sizeof buf, p, kOurMac), 60u);
        pcap.add(buf, 60, 2);
        ASSERT_EQ(build_gratuitous_arp(buf, sizeof buf, kOurMac, kOurIp), 60u);
        pcap.add(buf, 60, 3);
        std::vector<uint8_t> payload(56);
        for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i * 7);
        auto echo = echo_request(kPeerIp, kOurIp, 0x4242, 7, payload);
        pcap.add(echo.data(), echo.size(), 4);
        uint32_t rlen = 0;
        ASSERT_EQ(icmp_echo_reply_in_place(echo.data(), static_cast<uint32_t>(echo.size()), kOurIp, kOurMac, rlen),
                  IcmpEchoError::NONE);
        pcap.add(echo.data(), rlen, 5);
    }
    const std::vector<std::string> lines = tshark_fields(
        path, "-T fields -E separator=, -e arp.opcode -e arp.src.hw_mac -e arp.src.proto_ipv4"
              " -e arp.dst.proto_ipv4 -e arp.isgratuitous -e icmp.type -e icmp.checksum.status"
              " -e ip.src -e ip.dst -e ip.checksum.status -e icmp.ident -e icmp.seq"
              " -o ip.check_checksum:TRUE");
    ASSERT_EQ(lines.size(), 5u) << joined_lines(lines);
    EXPECT_EQ(lines[0].rfind("1,02:00:00:00:00:01,10.0.0.1,10.0.0.2,", 0), 0u) << lines[0];
    EXPECT_EQ(lines[1].rfind("2,02:00:00:00:00:01,10.0.0.1,10.0.0.2,", 0), 0u) << lines[1];
    EXPECT_EQ(lines[2].rfind("1,02:00:00:00:00:01,10.0.0.1,10.0.0.1,1,", 0), 0u) << lines[2]; // gratuitous
    EXPECT_EQ(lines[3].rfind(",,,,,8,1,10.0.0.2,10.0.0.1,1,", 0), 0u) << lines[3];          // request, checksums good
    EXPECT_EQ(lines[4].rfind(",,,,,0,1,10.0.0.1,10.0.0.2,1,", 0), 0u) << lines[4];          // our reply, checksums good
    EXPECT_EQ(lines[3].substr(lines[3].size() - 8), ",16962,7") << lines[3]; // id 0x4242, seq 7
    EXPECT_EQ(lines[4].substr(lines[4].size() - 8), ",16962,7") << lines[4];
}

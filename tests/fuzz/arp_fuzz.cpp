// libFuzzer target for ARP (lib/net arp.h): parse_arp() on arbitrary frames,
// then, for every frame it accepts, the three builders and the in-place reply.
//
// Beyond "no over-read" (libFuzzer's buffer is exactly `size` bytes, so ASan
// sees any read past it), the checks are the contract's: an accepted frame
// describes itself consistently (offsets, VLAN tags, the fields read back
// from the bytes), and everything the builders write parses back to what
// they were asked to say (RFC 826 reply rules, RFC 5227 announcements).
//
//   build-fuzz/tests/fuzz/arp_fuzz -max_total_time=60 NEW_DIR tests/fuzz/corpus/arp
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "millipede/net/arp.h"
#include "millipede/net/bytes.h"
#include "millipede/net/parse.h"

using namespace millipede::net;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap(); // fires in release builds too
}

const MacAddr kOurMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};

MacAddr mac_at(const uint8_t *p) {
    MacAddr m;
    std::memcpy(m.b, p, 6);
    return m;
}

// The accepted packet says what the bytes say.
void check_accepted(const uint8_t *f, size_t len, const ArpPacket &p) {
    check(p.vlan_count <= 2);
    check(p.arp_offset == kEthHeaderLen + 4u * p.vlan_count);
    check(size_t(p.arp_offset) + kArpLen <= len);
    for (unsigned i = 0; i < p.vlan_count; i++) {
        const uint16_t tpid = load_be16(f + 12 + 4 * i);
        check(tpid == kEtherTypeVLAN || tpid == kEtherTypeQinQ);
        check(p.vlan_tci[i] == load_be16(f + 14 + 4 * i));
    }
    check(load_be16(f + p.arp_offset - 2) == kEtherTypeARP);
    const uint8_t *a = f + p.arp_offset;
    check(load_be16(a) == kArpHtypeEthernet && load_be16(a + 2) == kEtherTypeIPv4 && a[4] == 6 && a[5] == 4);
    check(p.op == kArpOpRequest || p.op == kArpOpReply);
    check(p.op == load_be16(a + 6));
    check(!p.sender_mac.is_zero() && !p.sender_mac.is_multicast());
    check(p.eth_dst == mac_at(f) && p.eth_src == mac_at(f + 6));
    check(p.sender_mac == mac_at(a + 8) && p.target_mac == mac_at(a + 18));
    check(p.sender_ip == load_be32(a + 14) && p.target_ip == load_be32(a + 24));
    check(p.is_probe() == (p.sender_ip == 0));
    check(!(p.is_probe() && p.is_gratuitous()));
}

// A reply from us to `req`, as RFC 826 builds it.
void check_reply(const ArpPacket &req, const ArpPacket &rep) {
    check(rep.op == kArpOpReply);
    check(rep.eth_dst == req.sender_mac && rep.eth_src == kOurMac);
    check(rep.sender_mac == kOurMac && rep.sender_ip == req.target_ip);
    check(rep.target_mac == req.sender_mac && rep.target_ip == req.sender_ip);
}

void check_built(const uint8_t *buf, size_t n, uint16_t op, uint32_t spa, uint32_t tpa) {
    check(n == kEthMinFrame);
    ArpPacket p;
    check(parse_arp(buf, static_cast<uint32_t>(n), p) == ArpError::NONE);
    check(p.vlan_count == 0 && p.op == op && p.eth_dst == kBroadcastMac && p.eth_src == kOurMac);
    check(p.sender_mac == kOurMac && p.sender_ip == spa && p.target_ip == tpa && p.target_mac.is_zero());
    for (size_t i = kEthHeaderLen + kArpLen; i < n; i++) check(buf[i] == 0); // zero padding
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0; // ARP is 28 bytes; longer inputs only slow the search
    ArpPacket req;
    const ArpError e = parse_arp(data, static_cast<uint32_t>(size), req);
    check(static_cast<unsigned>(e) < kArpErrorCount);
    check(std::strcmp(arp_error_name(e), "unknown") != 0 && arp_error_description(e)[0] != '\0');
    if (e != ArpError::NONE) return 0;
    check_accepted(data, size, req);

    // In place: same length, same VLAN tags, every byte outside the Ethernet
    // addresses and the ARP body's opcode/addresses untouched.
    std::vector<uint8_t> frame(data, data + size);
    check(arp_reply_in_place(frame.data(), static_cast<uint32_t>(size), req, kOurMac) == size);
    ArpPacket rep;
    check(parse_arp(frame.data(), static_cast<uint32_t>(size), rep) == ArpError::NONE);
    check_reply(req, rep);
    check(rep.vlan_count == req.vlan_count && rep.arp_offset == req.arp_offset);
    check(std::memcmp(frame.data() + 12, data + 12, req.arp_offset + 6u - 12u) == 0);
    check(std::memcmp(frame.data() + req.arp_offset + kArpLen, data + req.arp_offset + kArpLen,
                      size - req.arp_offset - kArpLen) == 0);

    // Into a fresh frame: untagged, padded, and refused when it does not fit.
    uint8_t buf[kEthMinFrame + 4];
    check(build_arp_reply(buf, kEthMinFrame - 1, req, kOurMac) == 0);
    const size_t n = build_arp_reply(buf, sizeof buf, req, kOurMac);
    check(n == kEthMinFrame);
    check(parse_arp(buf, static_cast<uint32_t>(n), rep) == ArpError::NONE);
    check_reply(req, rep);
    check(rep.vlan_count == 0);

    // Request and announcements, with addresses taken from the input.
    check_built(buf, build_arp_request(buf, sizeof buf, kOurMac, req.target_ip, req.sender_ip), kArpOpRequest,
                req.target_ip, req.sender_ip);
    check_built(buf, build_gratuitous_arp(buf, sizeof buf, kOurMac, req.sender_ip), kArpOpRequest, req.sender_ip,
                req.sender_ip);
    check_built(buf, build_gratuitous_arp(buf, sizeof buf, kOurMac, req.sender_ip, kArpOpReply), kArpOpReply,
                req.sender_ip, req.sender_ip);
    check(build_gratuitous_arp(buf, sizeof buf, kOurMac, req.sender_ip, static_cast<uint16_t>(req.op + 2)) == 0);

    // The reply rule: answer requests for our address, never announcements.
    const bool should = arp_should_reply(req, req.target_ip);
    check(should == (req.op == kArpOpRequest && req.target_ip != 0 && !req.is_gratuitous()));
    return 0;
}

// ARP (RFC 826) for Ethernet/IPv4: parse requests and replies, build replies,
// requests and gratuitous announcements (RFC 5227 section 2.3).
//
// Contract
// - Pure functions, any lcore, reentrant; no allocation, no EAL.
// - parse_arp() reads at most `len` bytes of `frame` and never writes it.
//   It accepts Ethernet II with up to two VLAN tags (802.1Q/802.1ad) and
//   checks every field RFC 826 defines for this pair of protocols: hardware
//   type 1 (Ethernet), protocol type 0x0800, lengths 6 and 4, opcode 1 or 2.
//   Frames that fail return a named ArpError (see the table below) that the
//   caller counts and drops for.
// - Builders write Ethernet II frames without VLAN tags, padded with zeros
//   to the 60-byte Ethernet minimum (FCS excluded; some virtual ports do not
//   pad), and return the length written, or 0 when `cap` is too small.
//   arp_reply_in_place() rewrites a parsed request in the caller's buffer,
//   VLAN tags and padding included, and keeps its length.
// - IPv4 addresses are host byte order uint32_t here (10.0.0.1 = 0x0a000001);
//   on the wire they are big-endian, written through bytes.h.
// - Which addresses are "ours", and learning from ARP, belong to the caller
//   and NeighbourCache (neighbour.h); arp_should_reply() is the RFC 826
//   "am I the target protocol address?" test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace millipede::net {

struct MacAddr {
    uint8_t b[6] = {};
    bool operator==(const MacAddr &o) const { return std::memcmp(b, o.b, 6) == 0; }
    bool operator!=(const MacAddr &o) const { return !(*this == o); }
    bool is_zero() const { return (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]) == 0; }
    bool is_multicast() const { return (b[0] & 1) != 0; } // broadcast included
    bool is_broadcast() const { return (b[0] & b[1] & b[2] & b[3] & b[4] & b[5]) == 0xff; }
};

inline constexpr MacAddr kBroadcastMac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kArpLen = 28;          // the Ethernet/IPv4 ARP body
inline constexpr size_t kEthMinFrame = 60;     // without FCS
inline constexpr uint16_t kArpHtypeEthernet = 1;
inline constexpr uint16_t kArpOpRequest = 1;
inline constexpr uint16_t kArpOpReply = 2;

// X-macro table: symbol, short name, description.
#define MILLIPEDE_ARP_ERRORS(X)                                                                     \
    X(NOT_ARP, "arp_not_arp", "ethertype (after VLAN tags) is not ARP 0x0806")                     \
    X(TRUNCATED, "arp_truncated", "frame shorter than Ethernet + VLAN tags + 28-byte ARP body")    \
    X(BAD_HTYPE, "arp_bad_htype", "hardware type is not 1 (Ethernet)")                             \
    X(BAD_PTYPE, "arp_bad_ptype", "protocol type is not 0x0800 (IPv4)")                            \
    X(BAD_HLEN, "arp_bad_hlen", "hardware address length is not 6")                                \
    X(BAD_PLEN, "arp_bad_plen", "protocol address length is not 4")                                \
    X(BAD_OPCODE, "arp_bad_opcode", "opcode is neither 1 (request) nor 2 (reply)")                 \
    X(BAD_SENDER_MAC, "arp_bad_sender_mac", "sender hardware address is zero or multicast")        \
    X(VLAN_TOO_DEEP, "arp_vlan_too_deep", "more than two stacked VLAN tags")

enum class ArpError : uint8_t {
    NONE = 0,
#define MILLIPEDE_X(sym, name, desc) sym,
    MILLIPEDE_ARP_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
        COUNT_
};
inline constexpr unsigned kArpErrorCount = static_cast<unsigned>(ArpError::COUNT_);
const char *arp_error_name(ArpError e);        // "none" for NONE
const char *arp_error_description(ArpError e);

struct ArpPacket {
    uint16_t op = 0;          // kArpOpRequest or kArpOpReply
    MacAddr eth_src, eth_dst; // the Ethernet header's addresses
    MacAddr sender_mac, target_mac;
    uint32_t sender_ip = 0, target_ip = 0; // host order
    uint16_t arp_offset = 0;  // first byte of the ARP body in the frame
    uint8_t vlan_count = 0;
    uint16_t vlan_tci[2] = {};

    // RFC 5227: a probe has sender IP 0; an announcement (gratuitous ARP)
    // has sender IP == target IP.
    bool is_probe() const { return sender_ip == 0; }
    bool is_gratuitous() const { return sender_ip != 0 && sender_ip == target_ip; }
};

ArpError parse_arp(const uint8_t *frame, uint32_t len, ArpPacket &out);

// RFC 826: answer a request whose target protocol address is ours (not a
// probe from ourselves, not a gratuitous announcement).
inline bool arp_should_reply(const ArpPacket &p, uint32_t our_ip) {
    return p.op == kArpOpRequest && p.target_ip == our_ip && our_ip != 0 && !p.is_gratuitous();
}

// Turns the request `req` (parsed from `frame`) into our reply, in place:
// Ethernet destination = requester, source = our_mac; opcode 2; sender =
// (our_mac, req.target_ip); target = (req.sender_mac, req.sender_ip).
// Returns the frame length (unchanged: `len`).
uint32_t arp_reply_in_place(uint8_t *frame, uint32_t len, const ArpPacket &req, const MacAddr &our_mac);

// The same reply, into a fresh untagged frame, unicast to req.sender_mac
// (RFC 826). For a probe (sender IP 0) the reply's target IP is 0, which is
// how an RFC 5227 prober learns the address is taken.
size_t build_arp_reply(uint8_t *buf, size_t cap, const ArpPacket &req, const MacAddr &our_mac);

// Broadcast who-has `target_ip`, tell `our_ip`.
size_t build_arp_request(uint8_t *buf, size_t cap, const MacAddr &our_mac, uint32_t our_ip, uint32_t target_ip);

// Gratuitous ARP: broadcast announcement of (our_mac, our_ip) with sender IP
// == target IP, target MAC zero. `op` is kArpOpRequest (RFC 5227
// announcement, the default and what Linux sends) or kArpOpReply (older
// peers that only update caches from replies).
size_t build_gratuitous_arp(uint8_t *buf, size_t cap, const MacAddr &our_mac, uint32_t our_ip,
                            uint16_t op = kArpOpRequest);

} // namespace millipede::net

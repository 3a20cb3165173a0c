// Layer 2-4 parser for the classifier and the transport's input path.
//
// Contract
// - parse_packet() reads at most `len` bytes from `frame` and nothing else;
//   it never writes outside `out`. Pure, reentrant, any lcore.
// - It returns Reject::NONE and fills PacketInfo, or a named Reject that the
//   caller counts (see rejects.def) and drops the packet for.
// - Understood: Ethernet II, 802.1Q/802.1ad VLAN (up to two tags: QinQ),
//   IPv4 with options and fragments, IPv6 with extension headers
//   (hop-by-hop, routing, fragment, destination options, AH), TCP, UDP,
//   ICMP, ICMPv6, SCTP. Other IP protocols (GRE, ESP, ...) parse as L3-only
//   flows (ports 0). Tunnels are not decapsulated: see docs/classifier.md.
// - Non-first IP fragments carry no L4 header: l4_offset is 0 and ports are 0;
//   `fragment_id` lets the flow layer join them to their first fragment.
// - parse_packet_prefix() is the same parse for a frame held in pieces (a
//   chained mbuf: DPDK's net_pcap, or a NIC with RX scatter, spreads a frame
//   longer than one mbuf over several): it reads only the first `held` bytes
//   and checks every length against the whole frame's. It reads only header
//   bytes, never the L4 payload, so a frame whose first `held` bytes cover
//   min(frame_len, kMaxHeaderBytes) is always decided.
// - Checksums are not verified here (mirrored traffic often carries offloaded,
//   not-yet-filled checksums); the transport verifies TCP checksums itself.
#pragma once

#include <cstdint>

namespace millipede::net {

enum class Reject : uint8_t {
    NONE = 0,
#define MILLIPEDE_REJECT(sym, name, desc) sym,
#include "millipede/net/rejects.def"
#undef MILLIPEDE_REJECT
    COUNT_
};
inline constexpr unsigned kRejectCount = static_cast<unsigned>(Reject::COUNT_);

const char *reject_name(Reject r);        // short snake_case name, "none" for NONE
const char *reject_description(Reject r); // one-line human description

inline constexpr uint16_t kEtherTypeIPv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIPv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeARP = 0x0806;
inline constexpr uint16_t kEtherTypeVLAN = 0x8100;
inline constexpr uint16_t kEtherTypeQinQ = 0x88a8;

inline constexpr uint8_t kProtoICMP = 1;
inline constexpr uint8_t kProtoTCP = 6;
inline constexpr uint8_t kProtoUDP = 17;
inline constexpr uint8_t kProtoICMPv6 = 58;
inline constexpr uint8_t kProtoSCTP = 132;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

// Addresses are kept in network byte order. IPv4 occupies the first 4 bytes
// of `bytes` and the rest is zero, so keys of either family compare and hash
// as plain memory.
struct IpAddr {
    uint8_t bytes[16];
};

struct PacketInfo {
    uint16_t l3_offset;      // first byte of the IP header
    uint16_t l4_offset;      // first byte of TCP/UDP/ICMP/SCTP header; 0 when absent
    uint16_t payload_offset; // first byte of L4 payload; 0 when no L4 header
    uint16_t payload_len;    // L4 payload bytes that the IP length claims AND the frame holds
    uint16_t vlan_tci[2];    // outer first
    uint32_t ip_total_len;   // IP datagram length from the header (v6: 40 + payload length, up to 65,575)
    uint8_t vlan_count;      // 0, 1 or 2
    uint8_t ip_version;      // 4 or 6
    uint8_t l4_proto;        // IPPROTO_* of the upper layer after extension headers
    uint8_t tcp_flags;       // low 8 bits of the TCP flags; 0 for non-TCP
    uint8_t icmp_type;       // ICMP/ICMPv6 only
    uint8_t icmp_code;
    bool is_fragment;        // any fragment (MF set or offset != 0)
    bool is_first_fragment;  // offset == 0 (the one carrying the L4 header)
    uint32_t fragment_id;    // IPv4 identification or IPv6 fragment id
    uint16_t src_port;       // host order; 0 when the protocol has none
    uint16_t dst_port;
    uint32_t tcp_seq;        // host order, TCP only
    uint32_t tcp_ack;
    uint16_t tcp_window;
    IpAddr src;
    IpAddr dst;
};

Reject parse_packet(const uint8_t *frame, uint32_t len, PacketInfo &out);

// Where the last byte parse_packet reads can lie: Ethernet with two VLAN
// tags (22), IPv6 (40), eight extension headers of at most 2,048 bytes each
// (RFC 8200 4.3: (255 + 1) x 8; AH is at most 1,028), then the 20 bytes of a
// TCP header that are read.
inline constexpr uint32_t kMaxHeaderBytes = 22 + 40 + 8 * 2048 + 20;

// A frame `frame_len` bytes long whose first `held` bytes (held <= frame_len)
// are at `head`. Returns true and sets `result` (and `out`, as parse_packet
// would for the whole frame) when the headers lie within those bytes; false
// when they reach past them (then `out` is unspecified: hold more and retry).
bool parse_packet_prefix(const uint8_t *head, uint32_t held, uint32_t frame_len, PacketInfo &out, Reject &result);

} // namespace millipede::net

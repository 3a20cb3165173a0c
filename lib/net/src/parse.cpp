// parse_packet(): one front-to-back pass over the frame.
//
// Bounds discipline: every load is preceded by a check against `len` (the
// frame) or, from the IP header on, against `ip_end` (where the IP length
// says the datagram stops, never past `len`). Offsets are carried as
// uint32_t so `a - b` checks cannot wrap: each one is taken only after the
// previous check proved b <= a.
//
// Anything past the IP datagram (Ethernet minimum-size padding, FCS left by
// the NIC) is ignored: L4 is bounded by the IP length, not the frame length.
//
// Prefix mode (parse_packet_prefix, kPrefix = true): lengths are checked
// against the whole frame as above, and in addition every load is preceded
// by a check against `held`, the bytes actually present at `frame`. A load
// past `held` stops the parse with kNeedMore, which never leaves this file.
// For parse_packet() held == len and those checks compile away.

#include "millipede/net/parse.h"

#include <cstring>
#include <iterator>

#include "millipede/net/bytes.h"

namespace millipede::net {
namespace {

constexpr uint32_t kEthHeaderLen = 14;
constexpr uint32_t kVlanTagLen = 4;
constexpr unsigned kMaxVlanTags = 2;
constexpr uint32_t kIpv4MinHeaderLen = 20;
constexpr uint32_t kIpv6HeaderLen = 40;
constexpr uint32_t kIpv6ExtMinLen = 8;
constexpr unsigned kMaxIpv6ExtHeaders = 8;
constexpr uint32_t kTcpMinHeaderLen = 20;
constexpr uint32_t kUdpHeaderLen = 8;
// Every ICMP and ICMPv6 message has 4 bytes of type-specific data (echo
// id/seq, MTU, pointer, unused) after type/code/checksum.
constexpr uint32_t kIcmpHeaderLen = 8;
constexpr uint32_t kSctpCommonHeaderLen = 12;

constexpr uint16_t kIpv4MoreFragments = 0x2000;
constexpr uint16_t kIpv4FragOffsetMask = 0x1fff;

// RFC 8200 section 4 (and RFC 4302 for AH).
constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6AH = 51;
constexpr uint8_t kIpv6NoNextHeader = 59;
constexpr uint8_t kIpv6DestOptions = 60;

// Internal: the headers reach past the bytes held (prefix mode only).
constexpr Reject kNeedMore = Reject::COUNT_;

// True when `n` bytes at `off` are not all held (prefix mode only).
template <bool kPrefix> inline bool past_held(uint32_t off, uint32_t n, uint32_t held) {
    if constexpr (kPrefix) return off > held || n > held - off;
    else return false;
}

struct RejectText {
    const char *name;
    const char *description;
};

constexpr RejectText kRejectText[] = {
    {"none", "parsed"},
#define MILLIPEDE_REJECT(sym, name, desc) {name, desc},
#include "millipede/net/rejects.def"
#undef MILLIPEDE_REJECT
};
static_assert(std::size(kRejectText) == kRejectCount, "rejects.def and the text table disagree");

// L4 starts at `l4` and the datagram ends at `ip_end` (l4 <= ip_end <= len).
// `more_fragments`: this is a first fragment and the rest of the datagram is
// in later packets, so length fields describing the whole datagram may
// exceed what this packet holds.
template <bool kPrefix>
inline Reject parse_l4(const uint8_t *frame, uint32_t held, uint32_t l4, uint32_t ip_end, uint8_t proto,
                       bool more_fragments, PacketInfo &out) {
    const uint8_t *p = frame + l4;
    const uint32_t avail = ip_end - l4;
    uint32_t header_len;
    uint32_t payload_len;

    switch (proto) {
    case kProtoTCP: {
        if (avail < kTcpMinHeaderLen) return Reject::TCP_TRUNCATED;
        if (past_held<kPrefix>(l4, kTcpMinHeaderLen, held)) return kNeedMore;
        header_len = (p[12] >> 4) * 4u;
        if (header_len < kTcpMinHeaderLen || header_len > avail) return Reject::TCP_BAD_DATA_OFFSET;
        out.src_port = load_be16(p);
        out.dst_port = load_be16(p + 2);
        out.tcp_seq = load_be32(p + 4);
        out.tcp_ack = load_be32(p + 8);
        out.tcp_flags = p[13];
        out.tcp_window = load_be16(p + 14);
        payload_len = avail - header_len;
        break;
    }
    case kProtoUDP: {
        if (avail < kUdpHeaderLen) return Reject::UDP_TRUNCATED;
        if (past_held<kPrefix>(l4, kUdpHeaderLen, held)) return kNeedMore;
        uint32_t udp_len = load_be16(p + 4);
        if (udp_len < kUdpHeaderLen) return Reject::UDP_BAD_LENGTH;
        if (udp_len > avail) {
            // A first fragment carries only part of the datagram that the
            // UDP length describes (fragmented DNS, NFS, ...): that is not
            // an error, but only the bytes here are payload.
            if (!more_fragments) return Reject::UDP_BAD_LENGTH;
            udp_len = avail;
        }
        out.src_port = load_be16(p);
        out.dst_port = load_be16(p + 2);
        header_len = kUdpHeaderLen;
        payload_len = udp_len - kUdpHeaderLen;
        break;
    }
    case kProtoICMP:
    case kProtoICMPv6: {
        if (avail < kIcmpHeaderLen) return Reject::ICMP_TRUNCATED;
        if (past_held<kPrefix>(l4, kIcmpHeaderLen, held)) return kNeedMore;
        out.icmp_type = p[0];
        out.icmp_code = p[1];
        header_len = kIcmpHeaderLen;
        payload_len = avail - kIcmpHeaderLen;
        break;
    }
    case kProtoSCTP: {
        if (avail < kSctpCommonHeaderLen) return Reject::SCTP_TRUNCATED;
        if (past_held<kPrefix>(l4, kSctpCommonHeaderLen, held)) return kNeedMore;
        out.src_port = load_be16(p);
        out.dst_port = load_be16(p + 2);
        header_len = kSctpCommonHeaderLen;
        payload_len = avail - kSctpCommonHeaderLen;
        break;
    }
    default:
        // GRE, ESP, OSPF, No Next Header, ...: an L3-only flow.
        return Reject::NONE;
    }

    // Fits: l4 <= 22 + 60 (IPv4) or 22 + 40 + 8 * 2048 (IPv6 extension
    // headers), header_len <= 60, payload_len <= 65535 - 8 (UDP or ICMP
    // straight after an IPv6 header).
    out.l4_offset = static_cast<uint16_t>(l4);
    out.payload_offset = static_cast<uint16_t>(l4 + header_len);
    out.payload_len = static_cast<uint16_t>(payload_len);
    return Reject::NONE;
}

template <bool kPrefix>
inline Reject parse_ipv4(const uint8_t *frame, uint32_t held, uint32_t len, uint32_t l3, PacketInfo &out) {
    const uint8_t *ip = frame + l3;
    const uint32_t avail = len - l3;
    if (avail < kIpv4MinHeaderLen) return Reject::IPV4_TRUNCATED;
    // Options are skipped, never read: the fixed header is all that is loaded.
    if (past_held<kPrefix>(l3, kIpv4MinHeaderLen, held)) return kNeedMore;
    if ((ip[0] >> 4) != 4) return Reject::IPV4_BAD_VERSION;
    const uint32_t header_len = (ip[0] & 0x0fu) * 4u;
    if (header_len < kIpv4MinHeaderLen || header_len > avail) return Reject::IPV4_BAD_IHL;
    const uint32_t total_len = load_be16(ip + 2);
    if (total_len < header_len || total_len > avail) return Reject::IPV4_BAD_TOTAL_LEN;

    out.ip_version = 4;
    out.ip_total_len = total_len;
    out.l4_proto = ip[9];
    std::memcpy(out.src.bytes, ip + 12, 4);
    std::memcpy(out.dst.bytes, ip + 16, 4);

    const uint16_t frag = load_be16(ip + 6);
    const bool more_fragments = (frag & kIpv4MoreFragments) != 0;
    const bool first = (frag & kIpv4FragOffsetMask) == 0;
    out.is_fragment = more_fragments || !first;
    out.is_first_fragment = first;
    if (out.is_fragment) out.fragment_id = load_be16(ip + 4);
    // Later fragments start mid-datagram: their first bytes are payload, not
    // an L4 header, so reading ports there would invent a flow.
    if (!first) return Reject::NONE;

    return parse_l4<kPrefix>(frame, held, l3 + header_len, l3 + total_len, out.l4_proto, more_fragments, out);
}

template <bool kPrefix>
inline Reject parse_ipv6(const uint8_t *frame, uint32_t held, uint32_t len, uint32_t l3, PacketInfo &out) {
    const uint8_t *ip = frame + l3;
    const uint32_t avail = len - l3;
    if (avail < kIpv6HeaderLen) return Reject::IPV6_TRUNCATED;
    if (past_held<kPrefix>(l3, kIpv6HeaderLen, held)) return kNeedMore;
    if ((ip[0] >> 4) != 6) return Reject::IPV6_BAD_VERSION;
    const uint32_t payload_len = load_be16(ip + 4);
    uint8_t next = ip[6];
    // Payload length 0 is an RFC 2675 jumbogram (real length in a hop-by-hop
    // option, which the parser does not follow) unless nothing follows at all.
    // 65,535 is a full datagram of 65,575 bytes (a GRO/TSO capture holds them).
    if ((payload_len == 0 && next != kIpv6NoNextHeader) || payload_len > avail - kIpv6HeaderLen)
        return Reject::IPV6_BAD_PAYLOAD_LEN;

    out.ip_version = 6;
    out.ip_total_len = kIpv6HeaderLen + payload_len;
    out.is_first_fragment = true;
    std::memcpy(out.src.bytes, ip + 8, 16);
    std::memcpy(out.dst.bytes, ip + 24, 16);

    const uint32_t ip_end = l3 + kIpv6HeaderLen + payload_len;
    uint32_t cur = l3 + kIpv6HeaderLen;
    bool more_fragments = false;
    for (unsigned seen = 0;; ++seen) {
        if (next != kIpv6HopByHop && next != kIpv6Routing && next != kIpv6Fragment && next != kIpv6AH &&
            next != kIpv6DestOptions)
            break;
        // Bounds the work an attacker can ask for; real traffic uses two or three.
        if (seen == kMaxIpv6ExtHeaders) return Reject::IPV6_EXT_TOO_MANY;
        if (ip_end - cur < kIpv6ExtMinLen) return Reject::IPV6_EXT_TRUNCATED;
        // Only an extension header's first 8 bytes are read; the rest is skipped.
        if (past_held<kPrefix>(cur, kIpv6ExtMinLen, held)) return kNeedMore;
        const uint8_t *ext = frame + cur;
        uint32_t ext_len;
        if (next == kIpv6Fragment) {
            ext_len = kIpv6ExtMinLen;
            const uint16_t off_m = load_be16(ext + 2);
            const bool first = (off_m >> 3) == 0;
            more_fragments = (off_m & 1) != 0;
            // Offset 0 with M clear is an RFC 6946 atomic fragment: the
            // whole datagram, handled as unfragmented.
            if (more_fragments || !first) {
                out.is_fragment = true;
                out.fragment_id = load_be32(ext + 4);
            }
            if (!first) {
                // Next Header names the first header of the fragmentable
                // part, which lives in the offset-0 fragment only.
                out.is_first_fragment = false;
                out.l4_proto = ext[0];
                return Reject::NONE;
            }
        } else if (next == kIpv6AH) {
            ext_len = (ext[1] + 2u) * 4u; // RFC 4302 2.2: 4-byte units, minus 2
        } else {
            ext_len = (ext[1] + 1u) * 8u; // RFC 8200 4.3: 8-byte units, excluding the first 8
        }
        if (ext_len > ip_end - cur) return Reject::IPV6_EXT_TRUNCATED;
        next = ext[0];
        cur += ext_len;
    }

    out.l4_proto = next;
    return parse_l4<kPrefix>(frame, held, cur, ip_end, next, more_fragments, out);
}


template <bool kPrefix> Reject parse_frame(const uint8_t *frame, uint32_t held, uint32_t len, PacketInfo &out) {
    // memset rather than `= {}` so padding is zero too: callers may memcmp or
    // hash the struct.
    std::memset(&out, 0, sizeof out);
    if (len < kEthHeaderLen) return Reject::ETH_TRUNCATED;
    if (past_held<kPrefix>(0, kEthHeaderLen, held)) return kNeedMore;

    uint32_t off = kEthHeaderLen;
    uint16_t ethertype = load_be16(frame + 12);
    // 802.1ad says 0x88a8 outside, 0x8100 inside, but double 0x8100 is common
    // on older gear, so either TPID is accepted at either depth.
    while (ethertype == kEtherTypeVLAN || ethertype == kEtherTypeQinQ) {
        if (out.vlan_count == kMaxVlanTags) return Reject::VLAN_TOO_DEEP;
        if (len - off < kVlanTagLen) return Reject::VLAN_TRUNCATED;
        if (past_held<kPrefix>(off, kVlanTagLen, held)) return kNeedMore;
        out.vlan_tci[out.vlan_count++] = load_be16(frame + off);
        ethertype = load_be16(frame + off + 2);
        off += kVlanTagLen;
    }
    out.l3_offset = static_cast<uint16_t>(off);

    if (ethertype == kEtherTypeIPv4) return parse_ipv4<kPrefix>(frame, held, len, off, out);
    if (ethertype == kEtherTypeIPv6) return parse_ipv6<kPrefix>(frame, held, len, off, out);
    return Reject::NOT_IP;
}

} // namespace

Reject parse_packet(const uint8_t *frame, uint32_t len, PacketInfo &out) {
    return parse_frame<false>(frame, len, len, out);
}

bool parse_packet_prefix(const uint8_t *head, uint32_t held, uint32_t frame_len, PacketInfo &out, Reject &result) {
    if (held > frame_len) held = frame_len;
    Reject r = parse_frame<true>(head, held, frame_len, out);
    if (r == kNeedMore) return false;
    result = r;
    return true;
}

const char *reject_name(Reject r) {
    const auto i = static_cast<unsigned>(r);
    return i < kRejectCount ? kRejectText[i].name : "unknown";
}

const char *reject_description(Reject r) {
    const auto i = static_cast<unsigned>(r);
    return i < kRejectCount ? kRejectText[i].description : "unknown reject reason";
}

} // namespace millipede::net

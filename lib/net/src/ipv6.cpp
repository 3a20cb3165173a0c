// IPv6 addresses, Neighbour Discovery and ICMPv6 echo; see ipv6.h.
#include "millipede/net/ipv6.h"

#include <arpa/inet.h>

#include <cstring>

#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"
#include "millipede/net/parse.h"

namespace millipede::net {

namespace {

constexpr uint32_t kEth = 14;
constexpr uint8_t kOptSourceLinkLayer = 1; // RFC 4861 4.6.1
constexpr uint8_t kOptTargetLinkLayer = 2;
constexpr uint32_t kNdLen = 24;            // type, code, checksum, flags/reserved, target
constexpr uint32_t kNdFrameLen = kEth + kIpv6HeaderLen + kNdLen + 8; // with one link-layer option

void write_ipv6_header(uint8_t *ip, uint32_t payload_len, uint8_t next, uint8_t hop_limit, const uint8_t src[16],
                       const uint8_t dst[16]) {
    store_be32(ip, 0x60000000u); // version 6, traffic class 0, flow label 0
    store_be16(ip + 4, static_cast<uint16_t>(payload_len));
    ip[6] = next;
    ip[7] = hop_limit;
    std::memcpy(ip + 8, src, 16);
    std::memcpy(ip + 24, dst, 16);
}

// The IPv6 header of an untagged frame carrying ICMPv6 directly; on success
// `icmp_len` is the ICMPv6 message length (the payload length).
template <class E>
E ipv6_icmp(const uint8_t *f, uint32_t len, uint32_t &icmp_len) {
    if (len < kEth) return E::ETH_TRUNCATED;
    if (load_be16(f + 12) != kEtherTypeIPv6) return E::NOT_IPV6;
    if (len < kEth + kIpv6HeaderLen || (f[kEth] >> 4) != 6) return E::IPV6_TRUNCATED;
    const uint32_t plen = load_be16(f + kEth + 4);
    if (kEth + kIpv6HeaderLen + plen > len) return E::BAD_PAYLOAD_LEN;
    if (f[kEth + 6] != kProtoICMPv6) return E::NOT_ICMPV6;
    icmp_len = plen;
    return E::NONE;
}

} // namespace

bool parse_ipv6(std::string_view s, uint8_t out[16]) {
    if (s.empty() || s.size() > 45) return false; // INET6_ADDRSTRLEN - 1
    // inet_pton stops at a NUL: "fd00::1\0junk" must not pass as fd00::1.
    if (std::memchr(s.data(), 0, s.size())) return false;
    char buf[46];
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = 0;
    return inet_pton(AF_INET6, buf, out) == 1;
}

std::string format_ipv6(const uint8_t a[16]) {
    char buf[INET6_ADDRSTRLEN];
    return inet_ntop(AF_INET6, a, buf, sizeof buf) ? std::string(buf) : std::string("?");
}

bool ipv6_prefix_match(const uint8_t a[16], const uint8_t b[16], unsigned prefix_len) {
    if (prefix_len > 128) prefix_len = 128;
    const unsigned whole = prefix_len / 8, bits = prefix_len % 8;
    if (std::memcmp(a, b, whole) != 0) return false;
    if (!bits) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff00u >> bits);
    return ((a[whole] ^ b[whole]) & mask) == 0;
}

uint32_t ipv6_key(const uint8_t a[16]) {
    uint32_t h = 2166136261u; // FNV-1a
    for (int i = 0; i < 16; i++) h = (h ^ a[i]) * 16777619u;
    // 1.0.0.0 .. 223.255.255.255: what the neighbour cache takes as unicast.
    return 0x01000000u + h % (0xe0000000u - 0x01000000u);
}

void solicited_node(const uint8_t a[16], uint8_t out[16]) {
    static constexpr uint8_t kPrefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
    std::memcpy(out, kPrefix, 13);
    std::memcpy(out + 13, a + 13, 3);
}

MacAddr ipv6_multicast_mac(const uint8_t group[16]) {
    MacAddr m;
    m.b[0] = 0x33;
    m.b[1] = 0x33;
    std::memcpy(m.b + 2, group + 12, 4);
    return m;
}

uint16_t icmpv6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t *msg, uint32_t len) {
    return checksum_finish(checksum_partial(msg, len, pseudo_header_v6(src, dst, kProtoICMPv6, len)));
}

const char *nd_error_name(NdError e) {
    switch (e) {
    case NdError::NONE: return "none";
#define MILLIPEDE_X(sym, name, desc)                                                                               \
    case NdError::sym: return name;
        MILLIPEDE_ND_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
    case NdError::COUNT_: break;
    }
    return "?";
}

const char *nd_error_description(NdError e) {
    switch (e) {
    case NdError::NONE: return "no error";
#define MILLIPEDE_X(sym, name, desc)                                                                               \
    case NdError::sym: return desc;
        MILLIPEDE_ND_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
    case NdError::COUNT_: break;
    }
    return "?";
}

const char *icmp6_echo_error_name(Icmp6EchoError e) {
    switch (e) {
    case Icmp6EchoError::NONE: return "none";
#define MILLIPEDE_X(sym, name, desc)                                                                               \
    case Icmp6EchoError::sym: return name;
        MILLIPEDE_ICMP6_ECHO_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
    case Icmp6EchoError::COUNT_: break;
    }
    return "?";
}

NdError parse_nd(const uint8_t *f, uint32_t len, NdMessage &out) {
    uint32_t mlen = 0;
    if (const NdError e = ipv6_icmp<NdError>(f, len, mlen); e != NdError::NONE) return e;
    const uint8_t *ip = f + kEth;
    const uint8_t *m = ip + kIpv6HeaderLen;
    if (mlen < 1) return NdError::TRUNCATED;
    if (m[0] != kIcmp6NeighbourSolicitation && m[0] != kIcmp6NeighbourAdvertisement) return NdError::NOT_ND;
    // RFC 4861 7.1.1 / 7.1.2, in its order.
    if (ip[7] != 255) return NdError::BAD_HOP_LIMIT;
    if (mlen < kNdLen) return NdError::TRUNCATED;
    if (icmpv6_checksum(ip + 8, ip + 24, m, mlen) != 0) return NdError::BAD_CHECKSUM;
    if (m[1] != 0) return NdError::BAD_CODE;
    const uint8_t *target = m + 8;
    if (ipv6_is_multicast(target)) return NdError::TARGET_MULTICAST;
    if (ipv6_is_multicast(ip + 8)) return NdError::MULTICAST_SOURCE; // RFC 4291 2.7: never a source
    NdMessage r;
    r.type = m[0];
    std::memcpy(r.eth_dst.b, f, 6);
    std::memcpy(r.eth_src.b, f + 6, 6);
    std::memcpy(r.src, ip + 8, 16);
    std::memcpy(r.dst, ip + 24, 16);
    std::memcpy(r.target, target, 16);
    if (r.type == kIcmp6NeighbourAdvertisement) {
        r.router = m[4] & 0x80;
        r.solicited = m[4] & 0x40;
        r.override_flag = m[4] & 0x20;
        if (r.solicited && ipv6_is_multicast(r.dst)) return NdError::SOLICITED_TO_MULTICAST;
    }
    const uint8_t want = r.type == kIcmp6NeighbourSolicitation ? kOptSourceLinkLayer : kOptTargetLinkLayer;
    for (uint32_t off = kNdLen; off < mlen;) {
        if (mlen - off < 2) return NdError::BAD_OPTION;
        const uint32_t olen = m[off + 1] * 8u;
        if (olen == 0 || off + olen > mlen) return NdError::BAD_OPTION;
        if (m[off] == want && olen >= 8 && !r.has_lladdr) {
            r.has_lladdr = true;
            std::memcpy(r.lladdr.b, m + off + 2, 6);
        }
        off += olen; // unknown options are skipped (RFC 4861 4.6)
    }
    if (r.type == kIcmp6NeighbourSolicitation && ipv6_is_unspecified(r.src)) {
        uint8_t group[16];
        solicited_node(r.target, group);
        if (!ipv6_equal(r.dst, group) || r.has_lladdr) return NdError::BAD_UNSPECIFIED;
    }
    out = r;
    return NdError::NONE;
}

size_t build_neighbour_solicitation(uint8_t *out, size_t cap, const MacAddr &our_mac, const uint8_t our_ip[16],
                                    const uint8_t target[16]) {
    if (cap < kNdFrameLen) return 0;
    uint8_t group[16];
    solicited_node(target, group);
    const MacAddr dmac = ipv6_multicast_mac(group);
    std::memcpy(out, dmac.b, 6);
    std::memcpy(out + 6, our_mac.b, 6);
    store_be16(out + 12, kEtherTypeIPv6);
    uint8_t *ip = out + kEth;
    write_ipv6_header(ip, kNdLen + 8, kProtoICMPv6, 255, our_ip, group);
    uint8_t *m = ip + kIpv6HeaderLen;
    std::memset(m, 0, kNdLen + 8);
    m[0] = kIcmp6NeighbourSolicitation;
    std::memcpy(m + 8, target, 16);
    m[24] = kOptSourceLinkLayer;
    m[25] = 1; // 8 bytes
    std::memcpy(m + 26, our_mac.b, 6);
    store_be16(m + 2, icmpv6_checksum(our_ip, group, m, kNdLen + 8));
    return kNdFrameLen;
}

size_t build_neighbour_advertisement(uint8_t *out, size_t cap, const NdMessage &ns, const MacAddr &our_mac,
                                     const uint8_t target[16]) {
    if (cap < kNdFrameLen) return 0;
    static constexpr uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
    const bool dad = ipv6_is_unspecified(ns.src);
    const uint8_t *dst = dad ? kAllNodes : ns.src;
    const MacAddr dmac = dad ? ipv6_multicast_mac(kAllNodes) : ns.has_lladdr ? ns.lladdr : ns.eth_src;
    std::memcpy(out, dmac.b, 6);
    std::memcpy(out + 6, our_mac.b, 6);
    store_be16(out + 12, kEtherTypeIPv6);
    uint8_t *ip = out + kEth;
    write_ipv6_header(ip, kNdLen + 8, kProtoICMPv6, 255, target, dst);
    uint8_t *m = ip + kIpv6HeaderLen;
    std::memset(m, 0, kNdLen + 8);
    m[0] = kIcmp6NeighbourAdvertisement;
    m[4] = static_cast<uint8_t>((dad ? 0 : 0x40) | 0x20); // Solicited (unless DAD), Override
    std::memcpy(m + 8, target, 16);
    m[24] = kOptTargetLinkLayer;
    m[25] = 1;
    std::memcpy(m + 26, our_mac.b, 6);
    store_be16(m + 2, icmpv6_checksum(target, dst, m, kNdLen + 8));
    return kNdFrameLen;
}

size_t build_unsolicited_advertisement(uint8_t *out, size_t cap, const MacAddr &our_mac, const uint8_t target[16]) {
    NdMessage none; // unspecified source: the all-nodes form, S clear
    return build_neighbour_advertisement(out, cap, none, our_mac, target);
}

Icmp6EchoError icmpv6_echo_reply_in_place(uint8_t *f, uint32_t len, const uint8_t our_ip[16], const MacAddr &our_mac,
                                          uint32_t &reply_len) {
    uint32_t mlen = 0;
    if (const Icmp6EchoError e = ipv6_icmp<Icmp6EchoError>(f, len, mlen); e != Icmp6EchoError::NONE) return e;
    uint8_t *ip = f + kEth;
    uint8_t *m = ip + kIpv6HeaderLen;
    if (!ipv6_equal(ip + 24, our_ip)) return Icmp6EchoError::NOT_FOR_US;
    const uint8_t *src = ip + 8;
    if (ipv6_is_unspecified(src) || ipv6_is_loopback(src) || ipv6_is_multicast(src)) return Icmp6EchoError::BAD_SOURCE;
    if (mlen < 8) return Icmp6EchoError::TRUNCATED;
    if (m[0] != kIcmp6EchoRequest) return Icmp6EchoError::NOT_ECHO_REQUEST;
    if (m[1] != 0) return Icmp6EchoError::BAD_CODE;
    if (icmpv6_checksum(ip + 8, ip + 24, m, mlen) != 0) return Icmp6EchoError::BAD_CHECKSUM;
    std::memcpy(f, f + 6, 6);
    std::memcpy(f + 6, our_mac.b, 6);
    uint8_t tmp[16];
    std::memcpy(tmp, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, tmp, 16);
    ip[7] = 64;
    m[0] = kIcmp6EchoReply;
    store_be16(m + 2, 0);
    store_be16(m + 2, icmpv6_checksum(ip + 8, ip + 24, m, mlen));
    reply_len = kEth + kIpv6HeaderLen + mlen;
    return Icmp6EchoError::NONE;
}

} // namespace millipede::net

// IPv6 on the transport's wire: addresses, Neighbour Discovery (RFC 4861:
// Neighbour Solicitation / Advertisement, the IPv6 counterpart of ARP) and
// ICMPv6 echo (RFC 4443 section 4).
//
// Contract
// - Pure functions, any lcore, reentrant, no allocation, no EAL (the parse
//   and format helpers of the option parser build std::string and are for
//   set-up time). Readers read at most `len` bytes; builders write at most
//   `cap` bytes and return 0 when that is too little.
// - Frames are untagged Ethernet II; the IPv6 header is followed directly by
//   ICMPv6 (an extension header makes the frame "not ND"/"not echo" here:
//   RFC 4861 messages carry none in practice, Linux sends none).
// - Addresses are 16 bytes in network order.
// - parse_nd() applies the validity checks of RFC 4861 sections 7.1.1 and
//   7.1.2 (hop limit 255, ICMP code 0, checksum, length, target not
//   multicast, options of non-zero length, the rules for an unspecified
//   source) and returns a named NdError for the caller to count otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "millipede/net/arp.h"

namespace millipede::net {

inline constexpr uint8_t kIcmp6EchoRequest = 128;
inline constexpr uint8_t kIcmp6EchoReply = 129;
inline constexpr uint8_t kIcmp6NeighbourSolicitation = 135;
inline constexpr uint8_t kIcmp6NeighbourAdvertisement = 136;
inline constexpr uint32_t kIpv6HeaderLen = 40;

// inet_pton/inet_ntop (RFC 4291 section 2.2 text forms; RFC 5952 output).
bool parse_ipv6(std::string_view s, uint8_t out[16]);
std::string format_ipv6(const uint8_t a[16]);

inline bool ipv6_is_unspecified(const uint8_t a[16]) {
    for (int i = 0; i < 16; i++)
        if (a[i]) return false;
    return true;
}
inline bool ipv6_is_multicast(const uint8_t a[16]) { return a[0] == 0xff; }
inline bool ipv6_is_loopback(const uint8_t a[16]) {
    for (int i = 0; i < 15; i++)
        if (a[i]) return false;
    return a[15] == 1;
}
inline bool ipv6_equal(const uint8_t a[16], const uint8_t b[16]) {
    for (int i = 0; i < 16; i++)
        if (a[i] != b[i]) return false;
    return true;
}
// The first `prefix_len` bits of a and b agree.
bool ipv6_prefix_match(const uint8_t a[16], const uint8_t b[16], unsigned prefix_len);

// A 32-bit stand-in for an IPv6 address, for the tables of the data plane
// that key neighbours and flows by 32 bits (the neighbour cache, the board
// the workers read, the flow table). A hash, mapped into 1.0.0.0 ..
// 223.255.255.255 so the neighbour cache takes it as a unicast key. Two
// addresses may share one (odds 2^-32 per pair): the owner detects that
// for neighbours and refuses the second (counted), see docs/ipv6.md.
uint32_t ipv6_key(const uint8_t a[16]);

// RFC 4291 section 2.7.1: ff02::1:ffXX:XXXX from the low 24 bits of `a`.
void solicited_node(const uint8_t a[16], uint8_t out[16]);
// RFC 2464 section 7: 33:33 and the last four bytes of the group.
MacAddr ipv6_multicast_mac(const uint8_t group[16]);

// The ICMPv6 checksum (RFC 4443 section 2.3: the RFC 8200 8.1 pseudo-header
// with next header 58) of `msg` as it stands, to be stored at msg + 2 with
// that field zero; a message whose stored checksum is right sums to 0.
uint16_t icmpv6_checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t *msg, uint32_t len);

#define MILLIPEDE_ND_ERRORS(X)                                                                             \
    X(ETH_TRUNCATED, "nd_eth_truncated", "frame shorter than an Ethernet header")                          \
    X(NOT_IPV6, "nd_not_ipv6", "ethertype is not IPv6 (tagged frames included)")                           \
    X(IPV6_TRUNCATED, "nd_ipv6_truncated", "IPv6 header cut short or version not 6")                       \
    X(BAD_PAYLOAD_LEN, "nd_bad_payload_len", "IPv6 payload length past the frame")                         \
    X(NOT_ICMPV6, "nd_not_icmpv6", "next header is not ICMPv6")                                            \
    X(NOT_ND, "nd_not_nd", "ICMPv6 type is not 135/136 (solicitation/advertisement)")                      \
    X(BAD_HOP_LIMIT, "nd_bad_hop_limit", "hop limit not 255: sent from off-link (RFC 4861 7.1)")           \
    X(BAD_CODE, "nd_bad_code", "ICMP code not 0")                                                           \
    X(TRUNCATED, "nd_truncated", "message shorter than 24 bytes")                                           \
    X(BAD_CHECKSUM, "nd_bad_checksum", "ICMPv6 checksum does not verify")                                   \
    X(TARGET_MULTICAST, "nd_target_multicast", "target address is multicast")                              \
    X(MULTICAST_SOURCE, "nd_multicast_source", "source address is multicast (RFC 4291 2.7)")              \
    X(BAD_OPTION, "nd_bad_option", "an option of length 0 or past the message")                           \
    X(BAD_UNSPECIFIED, "nd_bad_unspecified", "unspecified source: not to a solicited-node group, or with a source link-layer option") \
    X(SOLICITED_TO_MULTICAST, "nd_solicited_to_multicast", "advertisement to a multicast group with S set")

enum class NdError : uint8_t {
    NONE = 0,
#define MILLIPEDE_X(sym, name, desc) sym,
    MILLIPEDE_ND_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
        COUNT_
};
inline constexpr unsigned kNdErrorCount = static_cast<unsigned>(NdError::COUNT_);
const char *nd_error_name(NdError e);
const char *nd_error_description(NdError e);

struct NdMessage {
    uint8_t type = 0; // kIcmp6NeighbourSolicitation or kIcmp6NeighbourAdvertisement
    MacAddr eth_src, eth_dst;
    uint8_t src[16] = {}, dst[16] = {}, target[16] = {};
    bool has_lladdr = false; // source (NS) or target (NA) link-layer address option
    MacAddr lladdr;
    bool router = false, solicited = false, override_flag = false; // NA flags
};

NdError parse_nd(const uint8_t *frame, uint32_t len, NdMessage &out);

// A Neighbour Solicitation for `target` from `our_ip`, to its solicited-node
// group (33:33:ff:xx:xx:xx), with our source link-layer address (RFC 4861
// 4.3, 7.2.2). 86 bytes.
size_t build_neighbour_solicitation(uint8_t *out, size_t cap, const MacAddr &our_mac, const uint8_t our_ip[16],
                                    const uint8_t target[16]);

// The answer to a parsed solicitation `ns` for our address `target`
// (RFC 4861 7.2.4): to the soliciting host (its link-layer option's MAC,
// else the frame's source), S and O set, our target link-layer address;
// to all-nodes (ff02::1) with S clear when the solicitation came from the
// unspecified address (duplicate address detection). 86 bytes.
size_t build_neighbour_advertisement(uint8_t *out, size_t cap, const NdMessage &ns, const MacAddr &our_mac,
                                     const uint8_t target[16]);

// An unsolicited advertisement of our address `target` (RFC 4861 7.2.6),
// sent when a port comes up so neighbours holding an old MAC for it learn
// the new one (IPv6's gratuitous ARP): to all-nodes (ff02::1), S clear,
// O set, our target link-layer address. 86 bytes.
size_t build_unsolicited_advertisement(uint8_t *out, size_t cap, const MacAddr &our_mac, const uint8_t target[16]);

#define MILLIPEDE_ICMP6_ECHO_ERRORS(X)                                                          \
    X(ETH_TRUNCATED, "icmp6_eth_truncated", "frame shorter than an Ethernet header")            \
    X(NOT_IPV6, "icmp6_not_ipv6", "ethertype is not IPv6")                                      \
    X(IPV6_TRUNCATED, "icmp6_ipv6_truncated", "IPv6 header cut short or version not 6")         \
    X(BAD_PAYLOAD_LEN, "icmp6_bad_payload_len", "IPv6 payload length past the frame")           \
    X(NOT_ICMPV6, "icmp6_not_icmpv6", "next header is not ICMPv6")                              \
    X(NOT_FOR_US, "icmp6_not_for_us", "destination is not our address")                         \
    X(BAD_SOURCE, "icmp6_bad_source", "source is unspecified, loopback or multicast")           \
    X(TRUNCATED, "icmp6_truncated", "ICMPv6 message shorter than the 8-byte echo header")       \
    X(NOT_ECHO_REQUEST, "icmp6_not_echo_request", "ICMPv6 type is not 128 (echo request)")      \
    X(BAD_CODE, "icmp6_bad_code", "echo request with a code other than 0")                      \
    X(BAD_CHECKSUM, "icmp6_bad_checksum", "ICMPv6 checksum does not verify")

enum class Icmp6EchoError : uint8_t {
    NONE = 0,
#define MILLIPEDE_X(sym, name, desc) sym,
    MILLIPEDE_ICMP6_ECHO_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
        COUNT_
};
inline constexpr unsigned kIcmp6EchoErrorCount = static_cast<unsigned>(Icmp6EchoError::COUNT_);
const char *icmp6_echo_error_name(Icmp6EchoError e);

// Checks `frame` as an echo request to `our_ip` and turns it into the reply
// in place (RFC 4443 4.2: same identifier, sequence and data; Ethernet and
// IPv6 addresses swapped, hop limit 64, checksum recomputed, Ethernet
// padding dropped). `reply_len` is the length to transmit. On error the
// frame is left untouched.
Icmp6EchoError icmpv6_echo_reply_in_place(uint8_t *frame, uint32_t len, const uint8_t our_ip[16],
                                          const MacAddr &our_mac, uint32_t &reply_len);

} // namespace millipede::net

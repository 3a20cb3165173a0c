// ICMP echo (RFC 792) for IPv4: answer a ping addressed to us.
//
// Contract
// - Pure functions, any lcore, reentrant, no allocation, no EAL. They read
//   at most `len` bytes of the request and write only inside the frame
//   (in place) or `cap` bytes of `out`.
// - Accepted: Ethernet II with up to two VLAN tags, IPv4 (header checksum
//   valid, not a fragment: a reassembled ping is the caller's business),
//   destination exactly `our_ip` (broadcast pings are not answered, like
//   Linux's icmp_echo_ignore_broadcasts), a unicast source, ICMP type 8
//   code 0 with a valid checksum over the whole message. Anything else
//   returns a named IcmpEchoError for the caller to count, and the frame is
//   left untouched.
// - The reply (RFC 792, RFC 1122 section 3.2.2.6): Ethernet addresses
//   swapped (to the frame's source, from our_mac), IPv4 source/destination
//   swapped, TTL 64, header checksum recomputed; IP options are kept as
//   they are (a record-route option is not updated); ICMP type 0, same code,
//   identifier, sequence and payload; the ICMP checksum is updated
//   incrementally (RFC 1624 equation 3: only the type changed). Ethernet
//   padding past the IP datagram is dropped, and the reply is padded with
//   zeros back to 60 bytes when the request had at least that many.
#pragma once

#include <cstddef>
#include <cstdint>

#include "millipede/net/arp.h"

namespace millipede::net {

#define MILLIPEDE_ICMP_ECHO_ERRORS(X)                                                                 \
    X(ETH_TRUNCATED, "icmp_eth_truncated", "frame shorter than its Ethernet header and VLAN tags")     \
    X(VLAN_TOO_DEEP, "icmp_vlan_too_deep", "more than two stacked VLAN tags")                         \
    X(NOT_IPV4, "icmp_not_ipv4", "ethertype is not IPv4")                                             \
    X(IPV4_TRUNCATED, "icmp_ipv4_truncated", "IPv4 header cut short")                                 \
    X(IPV4_BAD_VERSION, "icmp_ipv4_bad_version", "IPv4 version field is not 4")                       \
    X(IPV4_BAD_IHL, "icmp_ipv4_bad_ihl", "IPv4 header length below 20 or past the frame")             \
    X(IPV4_BAD_TOTAL_LEN, "icmp_ipv4_bad_total_len", "IPv4 total length below its header or past the frame") \
    X(IPV4_BAD_CHECKSUM, "icmp_ipv4_bad_checksum", "IPv4 header checksum does not verify")            \
    X(FRAGMENT, "icmp_fragment", "IPv4 fragment (MF set or offset non-zero)")                         \
    X(NOT_ICMP, "icmp_not_icmp", "IPv4 protocol is not ICMP")                                         \
    X(NOT_FOR_US, "icmp_not_for_us", "destination is not our address")                                \
    X(BAD_SOURCE, "icmp_bad_source", "source address is 0, loopback, multicast or broadcast")         \
    X(ICMP_TRUNCATED, "icmp_truncated", "ICMP message shorter than the 8-byte echo header")           \
    X(NOT_ECHO_REQUEST, "icmp_not_echo_request", "ICMP type is not 8 (echo request)")                 \
    X(BAD_CODE, "icmp_bad_code", "echo request with a code other than 0")                             \
    X(BAD_CHECKSUM, "icmp_bad_checksum", "ICMP checksum does not verify")                             \
    X(NO_ROOM, "icmp_no_room", "output buffer smaller than the reply")

enum class IcmpEchoError : uint8_t {
    NONE = 0,
#define MILLIPEDE_X(sym, name, desc) sym,
    MILLIPEDE_ICMP_ECHO_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
        COUNT_
};
inline constexpr unsigned kIcmpEchoErrorCount = static_cast<unsigned>(IcmpEchoError::COUNT_);
const char *icmp_echo_error_name(IcmpEchoError e);
const char *icmp_echo_error_description(IcmpEchoError e);

inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpEchoRequest = 8;

// Checks `frame` as an echo request to `our_ip` (host order) and turns it
// into the reply in place; `reply_len` is the length to transmit.
IcmpEchoError icmp_echo_reply_in_place(uint8_t *frame, uint32_t len, uint32_t our_ip, const MacAddr &our_mac,
                                       uint32_t &reply_len);

// The same, writing the reply to `out` (the request is not modified).
IcmpEchoError icmp_echo_reply(const uint8_t *req, uint32_t len, uint8_t *out, size_t cap, uint32_t our_ip,
                              const MacAddr &our_mac, uint32_t &reply_len);

} // namespace millipede::net

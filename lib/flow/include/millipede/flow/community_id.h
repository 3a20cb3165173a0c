// Community ID v1: the bidirectional flow hash that Zeek, Suricata and
// Arkime print, so our tap records join with theirs.
// Spec: https://github.com/corelight/community-id-spec
//
// Contract
// - community_id_v1() is pure and reentrant: any lcore or thread, concurrently.
//   It never allocates: SHA-1 runs on a stack context.
// - It reads `src`/`dst` (4 bytes for ip_version 4, 16 for 6, as laid out by
//   net::IpAddr) and writes only the returned value: the text is always
//   NUL-terminated inside `text`. Both directions of a flow give the same ID.
// - Ports are used only for TCP, UDP, SCTP, ICMP and ICMPv6. For ICMP and
//   ICMPv6 pass the message type as src_port and the code as dst_port, as seen
//   on the packet: the spec's type pairing (echo request/reply, ...) and its
//   one-way handling for unpaired types happen here.
// - Should libcrypto's SHA-1 ever report failure, the text is empty rather
//   than a wrong ID (the spec allows an empty ID for what cannot be hashed).
#pragma once

#include <cstddef>
#include <cstdint>

#include "millipede/net/parse.h"

namespace millipede::flow {

inline constexpr size_t kCommunityIdLen = 30; // "1:" + 28 base64 chars
struct CommunityIdText {
    char text[kCommunityIdLen + 1];
};

CommunityIdText community_id_v1(const net::IpAddr &src, const net::IpAddr &dst, uint8_t ip_version, uint8_t proto,
                                uint16_t src_port, uint16_t dst_port, uint16_t seed = 0);

} // namespace millipede::flow

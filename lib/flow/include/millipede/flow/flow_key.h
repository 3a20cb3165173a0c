// The flow key: a canonical (direction-free) 5-tuple.
//
// Contract: pure, any thread. The key orders the two endpoints so that both
// directions of a conversation produce the same bytes; any hash over the key
// is therefore symmetric, and one flow-table entry serves both directions.
// make_flow_key() reports which endpoint sent the packet (its direction).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "millipede/net/parse.h"

namespace millipede::flow {

// 40 bytes, no implicit padding: hashed and compared as raw memory.
struct FlowKey {
    uint8_t addr_lo[16];
    uint8_t addr_hi[16];
    uint16_t port_lo;
    uint16_t port_hi;
    uint8_t proto;
    uint8_t ip_version;
    uint8_t pad_[2];
};
static_assert(sizeof(FlowKey) == 40);

inline bool operator==(const FlowKey &a, const FlowKey &b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Direction 0: the packet's source is the key's "lo" endpoint.
enum Direction : uint8_t { kFromLo = 0, kFromHi = 1 };

// Flow class: idle timeouts differ per class.
enum class FlowClass : uint8_t { Tcp = 0, Udp = 1, Other = 2 };
inline constexpr unsigned kFlowClassCount = 3;

inline FlowClass flow_class_of(uint8_t proto) {
    return proto == net::kProtoTCP ? FlowClass::Tcp : proto == net::kProtoUDP ? FlowClass::Udp : FlowClass::Other;
}

// Orders two addresses as memcmp would (bytes in network order, first byte
// most significant), in two 64-bit compares: an ordering memcmp is a libc
// call that cost 20-30 cycles per classified packet (docs/classifier.md).
inline bool addr_before_or_equal(const uint8_t a[16], const uint8_t b[16], bool tie) {
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a, 8);
    std::memcpy(&a1, a + 8, 8);
    std::memcpy(&b0, b, 8);
    std::memcpy(&b1, b + 8, 8);
    if constexpr (std::endian::native == std::endian::little) {
        a0 = __builtin_bswap64(a0);
        a1 = __builtin_bswap64(a1);
        b0 = __builtin_bswap64(b0);
        b1 = __builtin_bswap64(b1);
    }
    if (a0 != b0) return a0 < b0;
    if (a1 != b1) return a1 < b1;
    return tie;
}

// Builds the canonical key. ICMP/ICMPv6 and protocols without ports (and
// non-first fragments, whose ports are unknown) key on the address pair and
// protocol only; the flow layer joins non-first fragments separately.
inline Direction make_flow_key(const net::PacketInfo &p, FlowKey &k) {
    uint16_t sport = p.src_port, dport = p.dst_port;
    bool src_is_lo = addr_before_or_equal(p.src.bytes, p.dst.bytes, sport <= dport);
    const net::IpAddr &lo = src_is_lo ? p.src : p.dst;
    const net::IpAddr &hi = src_is_lo ? p.dst : p.src;
    std::memcpy(k.addr_lo, lo.bytes, 16);
    std::memcpy(k.addr_hi, hi.bytes, 16);
    k.port_lo = src_is_lo ? sport : dport;
    k.port_hi = src_is_lo ? dport : sport;
    k.proto = p.l4_proto;
    k.ip_version = p.ip_version;
    k.pad_[0] = k.pad_[1] = 0;
    return src_is_lo ? kFromLo : kFromHi;
}

// A symmetric 32-bit hash of a key, for the `hash` policy (what NIC RSS with
// a symmetric key would do) and the rte_hash signature. CRC32C in hardware
// when the compiler targets SSE4.2 (DPDK's build flags do).
uint32_t flow_hash(const FlowKey &k);

} // namespace millipede::flow

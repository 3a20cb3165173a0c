// RFC 1071 Internet checksum and the IPv4/IPv6 pseudo-headers of RFC 9293
// section 3.1 and RFC 8200 section 8.1.
//
// Contract: pure functions, any thread. Sums are carried as uint32_t partial
// sums so several regions (pseudo-header, header, payload) can be chained
// before one fold. On the DPDK path, ports that offer checksum offload skip
// these; the pure cores (tcp, the simulator) and fuzzers use them directly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace millipede::net {

// Adds `len` bytes at `data` to a running partial sum. Odd lengths are padded
// with a zero byte, as RFC 1071 requires; only the last region of a chain may
// have odd length.
uint32_t checksum_partial(const uint8_t *data, size_t len, uint32_t sum = 0);

// Adds a region that starts at byte `offset` of the summed stream. Unlike
// checksum_partial() the regions may have any length: a region at an odd
// offset sits in swapped byte lanes, so its folded sum is byte-swapped
// (RFC 1071 2(B)). Used for payload gathered from several buffers.
uint32_t checksum_partial_at(const uint8_t *data, size_t len, size_t offset, uint32_t sum);

// Folds a partial sum to 16 bits and complements it: the value to store in a
// header. A buffer that already holds a correct checksum folds to 0.
uint16_t checksum_finish(uint32_t sum);

// Pseudo-header partial sums; `l4_len` is the TCP/UDP header + payload length.
uint32_t pseudo_header_v4(uint32_t src_host_order, uint32_t dst_host_order, uint8_t proto, uint32_t l4_len);
uint32_t pseudo_header_v6(const uint8_t src[16], const uint8_t dst[16], uint8_t proto, uint32_t l4_len);

} // namespace millipede::net

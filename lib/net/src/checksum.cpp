#include "millipede/net/checksum.h"

#include "millipede/net/bytes.h"

namespace millipede::net {

uint32_t checksum_partial(const uint8_t *data, size_t len, uint32_t sum) {
    // 64-bit accumulator: no carry handling inside the loop.
    uint64_t acc = sum;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) acc += load_be32(data + i);
    for (; i + 2 <= len; i += 2) acc += load_be16(data + i);
    if (i < len) acc += static_cast<uint32_t>(data[i]) << 8;
    while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
    return static_cast<uint32_t>(acc);
}

uint16_t checksum_finish(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
    return static_cast<uint16_t>(~sum & 0xffffu);
}

uint32_t pseudo_header_v4(uint32_t src, uint32_t dst, uint8_t proto, uint32_t l4_len) {
    uint64_t acc = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + (l4_len >> 16) +
                   (l4_len & 0xffff);
    while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
    return static_cast<uint32_t>(acc);
}

uint32_t pseudo_header_v6(const uint8_t src[16], const uint8_t dst[16], uint8_t proto, uint32_t l4_len) {
    uint32_t sum = checksum_partial(src, 16);
    sum = checksum_partial(dst, 16, sum);
    uint64_t acc = uint64_t(sum) + (l4_len >> 16) + (l4_len & 0xffff) + proto;
    while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
    return static_cast<uint32_t>(acc);
}

} // namespace millipede::net

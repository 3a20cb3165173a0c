#include "millipede/net/checksum.h"

#include <algorithm>
#include <bit>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cstring>

#include "millipede/net/bytes.h"

namespace millipede::net {

namespace {

// RFC 1071 section 2(B): the one's-complement sum does not depend on byte
// order, so the bytes are summed as native 64-bit words (four independent
// accumulators, each adding the two 32-bit halves of a word: no carry can be
// lost below 2^31 iterations) and the folded result is byte-swapped once at
// the end. About four times the speed of the big-endian 32-bit loop this
// replaces; the payload checksum was 15-19 % of the transfer lcores' time.
uint32_t native_sum(const uint8_t *p, size_t len) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    uint64_t w0, w1, w2, w3;
    for (; len >= 32; p += 32, len -= 32) {
        std::memcpy(&w0, p, 8);
        std::memcpy(&w1, p + 8, 8);
        std::memcpy(&w2, p + 16, 8);
        std::memcpy(&w3, p + 24, 8);
        a0 += (w0 & 0xffffffffu) + (w0 >> 32);
        a1 += (w1 & 0xffffffffu) + (w1 >> 32);
        a2 += (w2 & 0xffffffffu) + (w2 >> 32);
        a3 += (w3 & 0xffffffffu) + (w3 >> 32);
    }
    for (; len >= 8; p += 8, len -= 8) {
        std::memcpy(&w0, p, 8);
        a0 += (w0 & 0xffffffffu) + (w0 >> 32);
    }
    if (len >= 4) {
        uint32_t v;
        std::memcpy(&v, p, 4);
        a1 += v;
        p += 4, len -= 4;
    }
    if (len >= 2) {
        uint16_t v;
        std::memcpy(&v, p, 2);
        a2 += v;
        p += 2, len -= 2;
    }
    if (len) a3 += p[0]; // the pad byte of RFC 1071 follows it: the low byte of a native word
    uint64_t acc = (a0 & 0xffffffffu) + (a0 >> 32) + (a1 & 0xffffffffu) + (a1 >> 32) + (a2 & 0xffffffffu) +
                   (a2 >> 32) + (a3 & 0xffffffffu) + (a3 >> 32);
    while (acc >> 16) acc = (acc & 0xffffu) + (acc >> 16);
    return static_cast<uint32_t>(acc);
}

#if defined(__x86_64__)
// The same sum, 64 bytes per iteration with AVX2: each 16-bit word is
// widened to a 32-bit lane and added (a lane takes 65535 words before it
// could overflow, so the loop folds into 64-bit accumulators every 32K
// words). Several times the scalar loop's speed: the payload checksum
// was the largest single cost of the transfer lcores (docs/benchmarks.md).
__attribute__((target("avx2"))) uint32_t native_sum_avx2(const uint8_t *p, size_t len) {
    const __m256i zero = _mm256_setzero_si256();
    uint64_t total = 0;
    while (len >= 64) {
        __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        size_t blocks = std::min<size_t>(len / 64, 8192); // 8192 x 2 words per lane < 65536
        len -= blocks * 64;
        for (; blocks; blocks--, p += 64) {
            const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));
            const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 32));
            a0 = _mm256_add_epi32(a0, _mm256_unpacklo_epi16(v0, zero));
            a1 = _mm256_add_epi32(a1, _mm256_unpackhi_epi16(v0, zero));
            a2 = _mm256_add_epi32(a2, _mm256_unpacklo_epi16(v1, zero));
            a3 = _mm256_add_epi32(a3, _mm256_unpackhi_epi16(v1, zero));
        }
        alignas(32) uint32_t lanes[4][8];
        _mm256_store_si256(reinterpret_cast<__m256i *>(lanes[0]), a0);
        _mm256_store_si256(reinterpret_cast<__m256i *>(lanes[1]), a1);
        _mm256_store_si256(reinterpret_cast<__m256i *>(lanes[2]), a2);
        _mm256_store_si256(reinterpret_cast<__m256i *>(lanes[3]), a3);
        for (auto &l : lanes)
            for (uint32_t v : l) total += v;
    }
    total += native_sum(p, len);
    while (total >> 16) total = (total & 0xffffu) + (total >> 16);
    return static_cast<uint32_t>(total);
}

bool have_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2");
    return yes;
}
#endif

} // namespace

uint32_t checksum_partial(const uint8_t *data, size_t len, uint32_t sum) {
    uint64_t acc = sum;
    if constexpr (std::endian::native == std::endian::little) {
#if defined(__x86_64__)
        const uint32_t s = len >= 256 && have_avx2() ? native_sum_avx2(data, len) : native_sum(data, len);
#else
        const uint32_t s = native_sum(data, len);
#endif
        acc += ((s & 0xffu) << 8) | (s >> 8); // little-endian words: swap the folded sum into network order
    } else {
        size_t i = 0;
        for (; i + 4 <= len; i += 4) acc += load_be32(data + i);
        for (; i + 2 <= len; i += 2) acc += load_be16(data + i);
        if (i < len) acc += static_cast<uint32_t>(data[i]) << 8;
    }
    while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
    return static_cast<uint32_t>(acc);
}

uint32_t checksum_partial_at(const uint8_t *data, size_t len, size_t offset, uint32_t sum) {
    uint32_t r = checksum_partial(data, len, 0);
    while (r >> 16) r = (r & 0xffffu) + (r >> 16);
    if (offset & 1) r = ((r & 0xffu) << 8) | (r >> 8);
    uint64_t acc = uint64_t(sum) + r;
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

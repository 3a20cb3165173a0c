#include "millipede/flow/flow_key.h"

#include "millipede/net/bytes.h"

#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace millipede::flow {

namespace {

[[maybe_unused]] uint32_t hash_fnv1a(const uint8_t *b) {
    uint32_t h = 2166136261u; // FNV-1a: portable fallback
    for (unsigned i = 0; i < sizeof(FlowKey); ++i) h = (h ^ b[i]) * 16777619u;
    return h;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// This library is pure and built without DPDK's -march flags, so SSE4.2 is
// not assumed at compile time: the CRC32C path is compiled for it on its own
// and chosen once at run time. FNV-1a costs ~40 dependent multiplies (about
// 160 cycles); five CRC32 steps cost about 15, on every classified packet.
__attribute__((target("sse4.2"))) uint32_t hash_crc32c(const uint8_t *b) {
    uint64_t h = 0x9e3779b9u;
    for (unsigned i = 0; i < sizeof(FlowKey); i += 8) {
        uint64_t w;
        std::memcpy(&w, b + i, 8);
        h = _mm_crc32_u64(h, w);
    }
    return static_cast<uint32_t>(h);
}
const bool g_have_crc32c = [] {
    __builtin_cpu_init(); // may run before libgcc's own constructor
    return __builtin_cpu_supports("sse4.2") != 0;
}();
#endif

} // namespace

uint32_t flow_hash(const FlowKey &k) {
    const auto *b = reinterpret_cast<const uint8_t *>(&k);
#if defined(__SSE4_2__)
    return hash_crc32c(b);
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    return g_have_crc32c ? hash_crc32c(b) : hash_fnv1a(b);
#else
    return hash_fnv1a(b);
#endif
}

} // namespace millipede::flow

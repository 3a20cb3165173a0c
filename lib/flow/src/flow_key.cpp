#include "millipede/flow/flow_key.h"

#include "millipede/net/bytes.h"

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace millipede::flow {

uint32_t flow_hash(const FlowKey &k) {
    const auto *b = reinterpret_cast<const uint8_t *>(&k);
#if defined(__SSE4_2__)
    uint64_t h = 0x9e3779b9u;
    for (unsigned i = 0; i < sizeof k; i += 8) {
        uint64_t w;
        std::memcpy(&w, b + i, 8);
        h = _mm_crc32_u64(h, w);
    }
    return static_cast<uint32_t>(h);
#else
    uint32_t h = 2166136261u; // FNV-1a: portable fallback
    for (unsigned i = 0; i < sizeof k; ++i) h = (h ^ b[i]) * 16777619u;
    return h;
#endif
}

} // namespace millipede::flow

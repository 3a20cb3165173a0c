// libFuzzer: a compressed chunk payload from the wire (docs/wire.md 2.20)
// through lib/codec's inflater, and any input through a deflate/inflate
// round trip. The inflater must never write past its bound, report OK
// only for exactly the announced length with a matching CRC32C, and hand
// back nothing (out_len 0) otherwise.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "millipede/codec/chunk_codec.h"
#include "millipede/stripe/wire.h"

using namespace millipede;

namespace {
constexpr uint32_t kLimit = 64u << 10; // this "receiver"'s chunk limit
constexpr size_t kGuard = 64;
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n) {
    static codec::Decompressor inflater(kLimit);
    static codec::Compressor deflater(kLimit);
    static std::vector<uint8_t> out(kLimit + kGuard), packed(kLimit);
    if (n > kLimit) return 0;
    std::memset(out.data() + kLimit, 0xA5, kGuard);
    uint32_t len = 7;
    const auto st = inflater.decompress(p, static_cast<uint32_t>(n), out.data(), kLimit, len);
    if (st == codec::InflateStatus::OK) {
        const auto pre = codec::decode_prefix(p);
        if (len != pre.original_len || len == 0 || len > kLimit || stripe::crc32c(out.data(), len) != pre.original_crc32c)
            __builtin_trap();
    } else if (len != 0) {
        __builtin_trap();
    }
    for (size_t i = 0; i < kGuard; i++)
        if (out[kLimit + i] != 0xA5) __builtin_trap(); // wrote past the bound
    // Round trip: whatever shrinks inflates back to itself.
    if (n > 0) {
        const uint32_t crc = stripe::crc32c(p, n);
        const uint32_t m = deflater.compress(p, static_cast<uint32_t>(n), crc, packed.data(), kLimit);
        if (m) {
            if (m >= n) __builtin_trap();
            uint32_t back = 0;
            if (inflater.decompress(packed.data(), m, out.data(), kLimit, back) != codec::InflateStatus::OK ||
                back != n || std::memcmp(out.data(), p, n) != 0)
                __builtin_trap();
        }
    }
    return 0;
}

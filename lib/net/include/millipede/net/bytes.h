// Unaligned, endian-explicit loads and stores. Packet bytes are never
// reinterpret_cast to structs: memcpy keeps UBSan quiet on any alignment and
// compiles to a single mov (+bswap) on x86.
//
// Contract: pure functions, any thread, no bounds checks (callers check).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace millipede::net {

inline uint16_t load_be16(const uint8_t *p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return std::endian::native == std::endian::little ? __builtin_bswap16(v) : v;
}

inline uint32_t load_be32(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return std::endian::native == std::endian::little ? __builtin_bswap32(v) : v;
}

inline uint64_t load_le64(const uint8_t *p) {
    uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return std::endian::native == std::endian::little ? v : __builtin_bswap64(v);
}

inline uint32_t load_le32(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return std::endian::native == std::endian::little ? v : __builtin_bswap32(v);
}

inline void store_be16(uint8_t *p, uint16_t v) {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
    std::memcpy(p, &v, sizeof v);
}

inline void store_be32(uint8_t *p, uint32_t v) {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
    std::memcpy(p, &v, sizeof v);
}

inline void store_le64(uint8_t *p, uint64_t v) {
    if constexpr (std::endian::native != std::endian::little) v = __builtin_bswap64(v);
    std::memcpy(p, &v, sizeof v);
}

inline void store_le32(uint8_t *p, uint32_t v) {
    if constexpr (std::endian::native != std::endian::little) v = __builtin_bswap32(v);
    std::memcpy(p, &v, sizeof v);
}

} // namespace millipede::net

// Wrap-safe TCP sequence-number arithmetic (RFC 9293 section 3.4: all
// comparisons are modulo 2^32; RFC 1982 serial-number style with a signed
// 32-bit difference).
//
// Contract: pure constexpr functions, any thread.
#pragma once

#include <cstdint>

namespace millipede::tcp {

constexpr int32_t seq_diff(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b); }
constexpr bool seq_lt(uint32_t a, uint32_t b) { return seq_diff(a, b) < 0; }
constexpr bool seq_leq(uint32_t a, uint32_t b) { return seq_diff(a, b) <= 0; }
constexpr bool seq_gt(uint32_t a, uint32_t b) { return seq_diff(a, b) > 0; }
constexpr bool seq_geq(uint32_t a, uint32_t b) { return seq_diff(a, b) >= 0; }
constexpr uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
constexpr uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }
// lo <= x < hi, modulo 2^32.
constexpr bool seq_in(uint32_t x, uint32_t lo, uint32_t hi) { return seq_geq(x, lo) && seq_lt(x, hi); }

} // namespace millipede::tcp

// SplitMix64 (Steele, Lea, Flood 2014): the one 64-bit mixer and seeded
// generator the project uses (test/simulator randomness, BBR's probe
// jitter, the PRBS seed, the flow-count estimator's hash spreading). It
// lives in lib/net because every pure library already depends on it.
//
// Contract: pure functions, any thread. Not for anything secret.
#pragma once

#include <cstdint>

namespace millipede::net {

inline constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;

// The finaliser: a bijection on 64 bits with full avalanche.
constexpr uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// The generator's next output; advances `state`.
constexpr uint64_t splitmix64_next(uint64_t &state) { return splitmix64_mix(state += kSplitMixGamma); }

// The output for `seed` as a fresh state: splitmix64_next on a copy.
constexpr uint64_t splitmix64(uint64_t seed) { return splitmix64_mix(seed + kSplitMixGamma); }

} // namespace millipede::net

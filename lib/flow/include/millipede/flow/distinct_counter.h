// How many distinct flows a stream of flow hashes holds, estimated in 4 KiB:
// HyperLogLog (Flajolet, Fusy, Gandouet, Meunier 2007) with 2^12 one-byte
// registers, and linear counting while many registers are still empty
// (Heule, Nunkesser, Hall 2013, section 4). Standard error 1.04 / sqrt(4096),
// about 1.6 %.
//
// Contract: pure (no EAL), not thread-safe; one owner calls add() and
// estimate(). The input is flow_hash() of a key: it is mixed to 64 bits
// first, so distinct hashes stay distinct and their bits spread evenly.
#pragma once

#include <array>
#include <cstdint>

namespace millipede::flow {

class DistinctCounter {
public:
    static constexpr unsigned kIndexBits = 12;
    static constexpr unsigned kRegisters = 1u << kIndexBits;

    void add(uint32_t hash);
    uint64_t estimate() const;

private:
    std::array<uint8_t, kRegisters> reg_{};
};

} // namespace millipede::flow

#include "millipede/flow/distinct_counter.h"

#include <cmath>

#include "millipede/net/splitmix.h"

namespace millipede::flow {

void DistinctCounter::add(uint32_t hash) {
    const uint64_t x = net::splitmix64(hash); // a bijection: distinct hashes stay distinct
    const unsigned index = static_cast<unsigned>(x >> (64 - kIndexBits));
    // The rank of the first set bit after the index bits; the guard bit
    // bounds it at 64 - kIndexBits + 1.
    const uint64_t rest = (x << kIndexBits) | (uint64_t{1} << (kIndexBits - 1));
    const auto rank = static_cast<uint8_t>(__builtin_clzll(rest) + 1);
    if (rank > reg_[index]) reg_[index] = rank;
}

uint64_t DistinctCounter::estimate() const {
    constexpr double m = kRegisters;
    double sum = 0;
    unsigned zeros = 0;
    for (uint8_t r : reg_) {
        sum += std::ldexp(1.0, -r);
        zeros += r == 0;
    }
    const double alpha = 0.7213 / (1 + 1.079 / m);
    double e = alpha * m * m / sum;
    if (e <= 2.5 * m && zeros) e = m * std::log(m / zeros); // small range: linear counting
    return static_cast<uint64_t>(std::llround(e));
}

} // namespace millipede::flow

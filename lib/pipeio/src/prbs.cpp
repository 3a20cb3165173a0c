#include "millipede/pipeio/prbs.h"

#include <algorithm>
#include <cstring>

#include "millipede/net/bytes.h"
#include "millipede/net/splitmix.h"

namespace millipede::pipeio {

PrbsGenerator::PrbsGenerator(uint64_t seed) : s_(net::splitmix64(seed)) {
    if (s_ == 0) s_ = 0x9e3779b97f4a7c15ull; // xorshift's one forbidden state
}

inline uint64_t PrbsGenerator::next_word() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dull;
}

void PrbsGenerator::fill(uint8_t *p, size_t n) {
    offset_ += n;
    // Finish the word a previous call started.
    while (n > 0 && pos_ < 8) {
        *p++ = static_cast<uint8_t>(word_ >> (8 * pos_++));
        n--;
    }
    for (; n >= 8; n -= 8, p += 8) net::store_le64(p, next_word());
    if (n > 0) {
        word_ = next_word();
        pos_ = 0;
        while (n > 0) {
            *p++ = static_cast<uint8_t>(word_ >> (8 * pos_++));
            n--;
        }
    }
}

bool PrbsVerifier::check(const uint8_t *p, size_t n) {
    if (!ok_) return false;
    while (n > 0) {
        const size_t k = std::min(n, sizeof scratch_);
        gen_.fill(scratch_, k);
        if (std::memcmp(scratch_, p, k) != 0) {
            size_t i = 0;
            while (scratch_[i] == p[i]) i++;
            ok_ = false;
            bad_offset_ = checked_ + i;
            expected_ = scratch_[i];
            actual_ = p[i];
            checked_ += i;
            return false;
        }
        checked_ += k;
        p += k;
        n -= k;
    }
    return true;
}

} // namespace millipede::pipeio

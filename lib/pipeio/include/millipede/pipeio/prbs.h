// PRBS: the pseudo-random test stream behind viamillipede's `prbs SEED` word.
// tx generates it instead of reading stdin, rx verifies it instead of
// writing stdout, so a transfer can be measured and checked end to end
// without disks or zfs in the way.
//
// The stream (this definition is the contract; tests pin it):
//   s = splitmix64(seed); if s == 0: s = 0x9e3779b97f4a7c15
//   for word i = 0, 1, 2, ...:
//       s ^= s >> 12; s ^= s << 25; s ^= s >> 27          (xorshift64*, Vigna)
//       w_i = s * 0x2545f4914f6cdd1d
//       bytes [8i, 8i+8) of the stream = w_i little-endian
// So byte k of the stream depends only on the seed and k, never on how the
// stream is cut into calls. xorshift64* is not cryptographic; it only has to
// be fast (one multiply per 8 bytes) and catch reordered, lost, duplicated
// or corrupted bytes. Byte compatibility with viamillipede's own generator
// is not claimed (its source was not checked): both ends of a PRBS run
// must be dpdk-millipede.
//
// Contract: plain value types, no threads, no allocation; one instance per
// thread (not thread-safe). fill()/check() may be called with any lengths.
#pragma once

#include <cstddef>
#include <cstdint>

namespace millipede::pipeio {

class PrbsGenerator {
  public:
    explicit PrbsGenerator(uint64_t seed);
    void fill(uint8_t *p, size_t n);      // the next n bytes of the stream
    uint64_t offset() const { return offset_; } // bytes produced so far

  private:
    uint64_t next_word();
    uint64_t s_;
    uint64_t word_ = 0;
    unsigned pos_ = 8; // bytes of word_ already used
    uint64_t offset_ = 0;
};

class PrbsVerifier {
  public:
    explicit PrbsVerifier(uint64_t seed) : gen_(seed) {}
    // Compares the next n bytes with the stream. Returns false on the first
    // mismatch (then, and on every later call, ok() is false and the
    // mismatch_* accessors describe the first bad byte).
    bool check(const uint8_t *p, size_t n);
    bool ok() const { return ok_; }
    uint64_t checked() const { return checked_; }          // bytes that matched
    uint64_t mismatch_offset() const { return bad_offset_; } // stream offset of the first bad byte
    uint8_t expected() const { return expected_; }
    uint8_t actual() const { return actual_; }

  private:
    PrbsGenerator gen_;
    bool ok_ = true;
    uint64_t checked_ = 0;
    uint64_t bad_offset_ = 0;
    uint8_t expected_ = 0, actual_ = 0;
    uint8_t scratch_[4096];
};

} // namespace millipede::pipeio

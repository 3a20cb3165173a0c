// Reed-Solomon parity across legs ("parity K", docs/wire.md section 2.21):
// the encode/rebuild arithmetic over GF(2^8), done by ISA-L's erasure code
// (a Cauchy generator matrix, ec_encode_data / ec_encode_data_update,
// gf_invert_matrix for a rebuild).
//
// A stripe has N data units and K parity units, all the same length (a
// shorter data unit counts as padded with zeros). Data unit j contributes to
// parity unit i with the coefficient of row N+i, column j of the Cauchy
// matrix. A stripe may be short: only its first n (1..N) data units exist,
// the others are zero and never travel; any n of the n+K units rebuild the
// missing ones (every square sub-matrix of a Cauchy matrix is invertible).
//
// Contract
// - Pure: no EAL, no threads, no clock. An object is not thread-safe: it
//   belongs to the thread that owns the sender or receiver using it.
// - Construction allocates the matrices and tables (and throws
//   std::invalid_argument on N or K outside 1..kMaxParityUnits); nothing else
//   allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace millipede::stripe {

inline constexpr unsigned kMaxParityUnits = 64; // N + K <= legs <= 64

class ParityCodec {
  public:
    ParityCodec(unsigned n, unsigned k);

    unsigned data_units() const { return n_; }
    unsigned parity_units() const { return k_; }

    // Sender, one data unit at a time: adds `len` bytes of data unit
    // `data_index` (0..N-1) into the K parity buffers `parity[0..K-1]`
    // (each at least `len` bytes, zeroed before the stripe's first unit).
    // Called once per data unit and byte range; the ranges of one unit may
    // come in pieces (same offset in the unit and in the parity buffers).
    void encode_update(unsigned data_index, const uint8_t *data, size_t len, uint8_t *const *parity) const;

    // Receiver: rebuilds the missing data units of a stripe whose first
    // `n_used` (1..N) data units exist. units[0..N+K-1]: data units 0..N-1,
    // then parity units 0..K-1, each `len` bytes (data units padded with
    // zeros up to len); present[u] says which hold their bytes. Every missing
    // data unit below n_used is written into units[j] (len bytes). Returns
    // false (nothing written) when fewer than n_used units are present.
    bool rebuild(unsigned n_used, const bool *present, uint8_t *const *units, size_t len);

    // The same rebuild one survivor at a time, for survivors whose unit is
    // not in memory as a whole (the receiver re-seals an encrypted chunk's
    // plaintext into one scratch buffer, docs/wire.md 2.21):
    // plan_rebuild() picks the survivors (false: fewer than n_used present)
    // and returns them in `sources` (unit indices, rebuild_sources() of
    // them) and the missing data units in `targets` (rebuild_targets());
    // the caller zeroes the targets' `len` bytes, then calls
    // rebuild_update(r, unit, len, outs) once per source r with that
    // source's unit, outs[t] pointing into target t at the same offset
    // (a unit may come in pieces, as for encode_update()).
    bool plan_rebuild(unsigned n_used, const bool *present, unsigned *sources, unsigned *targets);
    unsigned rebuild_sources() const { return plan_m_; }
    unsigned rebuild_targets() const { return plan_miss_; }
    void rebuild_update(unsigned source_index, const uint8_t *unit, size_t len, uint8_t *const *outs) const;

  private:
    unsigned n_, k_;
    std::vector<uint8_t> matrix_;     // (N+K) x N, rows 0..N-1 the identity
    std::vector<uint8_t> enc_tables_; // ec_init_tables of the K parity rows
    // rebuild scratch, sized once
    std::vector<uint8_t> sub_, inv_, dec_rows_, dec_tables_;
    unsigned plan_m_ = 0, plan_miss_ = 0; // the last plan: survivors used, units rebuilt
};

} // namespace millipede::stripe

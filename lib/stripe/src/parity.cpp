// ParityCodec: ISA-L erasure code (Reed-Solomon over GF(2^8), Cauchy
// generator). See parity.h and docs/wire.md section 2.21.
#include "millipede/stripe/parity.h"

#include <isa-l/erasure_code.h>

#include <stdexcept>
#include <string>

namespace millipede::stripe {

ParityCodec::ParityCodec(unsigned n, unsigned k) : n_(n), k_(k) {
    if (n == 0 || k == 0 || n + k > kMaxParityUnits)
        throw std::invalid_argument("parity: need 1 <= N, 1 <= K and N + K <= " + std::to_string(kMaxParityUnits));
    matrix_.resize(static_cast<size_t>(n + k) * n);
    // Identity on top, Cauchy rows 1/(i ^ j) below: any N rows invertible.
    gf_gen_cauchy1_matrix(matrix_.data(), static_cast<int>(n + k), static_cast<int>(n));
    enc_tables_.resize(32u * n * k);
    ec_init_tables(static_cast<int>(n), static_cast<int>(k), matrix_.data() + static_cast<size_t>(n) * n,
                   enc_tables_.data());
    sub_.resize(static_cast<size_t>(n) * n);
    inv_.resize(static_cast<size_t>(n) * n);
    dec_rows_.resize(static_cast<size_t>(n) * n);
    dec_tables_.resize(32u * n * n);
}

void ParityCodec::encode_update(unsigned data_index, const uint8_t *data, size_t len, uint8_t *const *parity) const {
    if (len == 0) return;
    ec_encode_data_update(static_cast<int>(len), static_cast<int>(n_), static_cast<int>(k_),
                          static_cast<int>(data_index), const_cast<uint8_t *>(enc_tables_.data()),
                          const_cast<uint8_t *>(data), const_cast<uint8_t **>(parity));
}

bool ParityCodec::rebuild(unsigned n_used, const bool *present, uint8_t *const *units, size_t len) {
    if (n_used == 0 || n_used > n_) return false;
    const unsigned m = n_used;
    // Survivors: present data units below m first, then present parity.
    uint8_t *src[kMaxParityUnits];
    unsigned rows[kMaxParityUnits];
    unsigned have = 0;
    for (unsigned j = 0; j < m && have < m; j++)
        if (present[j]) rows[have] = j, src[have++] = units[j];
    for (unsigned i = 0; i < k_ && have < m; i++)
        if (present[n_ + i]) rows[have] = n_ + i, src[have++] = units[n_ + i];
    if (have < m) return false;
    uint8_t *out[kMaxParityUnits];
    unsigned missing[kMaxParityUnits];
    unsigned nmiss = 0;
    for (unsigned j = 0; j < m; j++)
        if (!present[j]) missing[nmiss] = j, out[nmiss++] = units[j];
    if (nmiss == 0) return true;
    // The survivors' rows of the generator, restricted to the m columns that
    // exist (the others multiply zeros), inverted: data = inv x survivors.
    for (unsigned r = 0; r < m; r++)
        for (unsigned c = 0; c < m; c++) sub_[r * m + c] = matrix_[static_cast<size_t>(rows[r]) * n_ + c];
    if (gf_invert_matrix(sub_.data(), inv_.data(), static_cast<int>(m)) != 0) return false; // cannot happen (Cauchy)
    for (unsigned t = 0; t < nmiss; t++)
        for (unsigned c = 0; c < m; c++) dec_rows_[t * m + c] = inv_[missing[t] * m + c];
    ec_init_tables(static_cast<int>(m), static_cast<int>(nmiss), dec_rows_.data(), dec_tables_.data());
    ec_encode_data(static_cast<int>(len), static_cast<int>(m), static_cast<int>(nmiss), dec_tables_.data(), src, out);
    return true;
}

} // namespace millipede::stripe

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

bool ParityCodec::plan_rebuild(unsigned n_used, const bool *present, unsigned *sources, unsigned *targets) {
    plan_m_ = plan_miss_ = 0;
    if (n_used == 0 || n_used > n_) return false;
    const unsigned m = n_used;
    // Survivors: present data units below m first, then present parity.
    unsigned have = 0;
    for (unsigned j = 0; j < m && have < m; j++)
        if (present[j]) sources[have++] = j;
    for (unsigned i = 0; i < k_ && have < m; i++)
        if (present[n_ + i]) sources[have++] = n_ + i;
    if (have < m) return false;
    unsigned nmiss = 0;
    for (unsigned j = 0; j < m; j++)
        if (!present[j]) targets[nmiss++] = j;
    plan_m_ = m;
    plan_miss_ = nmiss;
    if (nmiss == 0) return true;
    // The survivors' rows of the generator, restricted to the m columns that
    // exist (the others multiply zeros), inverted: data = inv x survivors.
    for (unsigned r = 0; r < m; r++)
        for (unsigned c = 0; c < m; c++) sub_[r * m + c] = matrix_[static_cast<size_t>(sources[r]) * n_ + c];
    if (gf_invert_matrix(sub_.data(), inv_.data(), static_cast<int>(m)) != 0) { // cannot happen (Cauchy)
        plan_m_ = plan_miss_ = 0;
        return false;
    }
    for (unsigned t = 0; t < nmiss; t++)
        for (unsigned c = 0; c < m; c++) dec_rows_[t * m + c] = inv_[targets[t] * m + c];
    ec_init_tables(static_cast<int>(m), static_cast<int>(nmiss), dec_rows_.data(), dec_tables_.data());
    return true;
}

void ParityCodec::rebuild_update(unsigned source_index, const uint8_t *unit, size_t len, uint8_t *const *outs) const {
    if (len == 0 || plan_miss_ == 0) return;
    ec_encode_data_update(static_cast<int>(len), static_cast<int>(plan_m_), static_cast<int>(plan_miss_),
                          static_cast<int>(source_index), const_cast<uint8_t *>(dec_tables_.data()),
                          const_cast<uint8_t *>(unit), const_cast<uint8_t **>(outs));
}

bool ParityCodec::rebuild(unsigned n_used, const bool *present, uint8_t *const *units, size_t len) {
    unsigned sources[kMaxParityUnits], targets[kMaxParityUnits];
    if (!plan_rebuild(n_used, present, sources, targets)) return false;
    if (plan_miss_ == 0) return true;
    uint8_t *src[kMaxParityUnits], *out[kMaxParityUnits];
    for (unsigned r = 0; r < plan_m_; r++) src[r] = units[sources[r]];
    for (unsigned t = 0; t < plan_miss_; t++) out[t] = units[targets[t]];
    ec_encode_data(static_cast<int>(len), static_cast<int>(plan_m_), static_cast<int>(plan_miss_), dec_tables_.data(),
                   src, out);
    return true;
}

} // namespace millipede::stripe

// AES-256-GCM for `key FILE` through DPDK cryptodev: the stripe cores'
// stripe::Aead (aead.h) on a cryptodev device.
//
// Device: the first cryptodev that does AES-256-GCM (16-byte tag, 12-byte
// IV, 32-byte AAD) on caller memory (RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO); when
// there is none, one software device is created with rte_eal_hotplug_add
// (vdev "crypto_aesni_gcm_mp", the crypto_ipsec_mb PMD of Debian's DPDK on Intel
// ipsec-mb). It is configured and started once per process and shared.
// Chunks are processed synchronously on the calling lcore
// (rte_cryptodev_sym_cpu_crypto_process): a chunk sits in hugepage memory
// of up to 2 MiB, larger than one mbuf can describe, and the lcore that
// owns the chunk waits for it anyway. A device without that feature (e.g.
// QAT) is reported as unsupported by create().
//
// Contract
// - create() and the destructor: any thread, after rte_eal_init(). The
//   object is then used by one thread (stripe::Aead's contract).
// - create() wipes its copy of the key; the device sessions hold it.
#pragma once

#include <memory>
#include <string>

#include "millipede/seal/key_file.h"
#include "millipede/stripe/aead.h"

namespace millipede::seal {

class CryptodevAead final : public stripe::Aead {
  public:
    // nullptr with `err` (one line) when no device can do it.
    static std::unique_ptr<CryptodevAead> create(const Key &key, std::string &err);
    ~CryptodevAead() override;
    CryptodevAead(const CryptodevAead &) = delete;
    CryptodevAead &operator=(const CryptodevAead &) = delete;

    bool start_session(uint64_t session_id) override;
    bool proof(uint32_t label, uint64_t counter, const uint8_t aad[stripe::kAeadAadBytes],
               uint8_t tag[stripe::kAeadTagBytes]) override;
    bool seal(uint64_t seq, const uint8_t aad[stripe::kAeadAadBytes], uint8_t *buf, uint32_t len) override;
    bool open(uint64_t seq, const uint8_t aad[stripe::kAeadAadBytes], uint8_t *buf, uint32_t len) override;

    const char *device_name() const;
    uint64_t ops() const { return ops_; }           // crypto operations run
    uint64_t auth_failures() const { return auth_failures_; }

  private:
    CryptodevAead() = default;
    bool run(void *sess, uint32_t label, uint64_t counter, const uint8_t *aad, uint8_t *buf, uint32_t len,
             uint8_t *tag);
    void drop_session_keys();

    uint8_t dev_ = 0;
    void *master_ = nullptr;  // pre-shared key, encrypt: derives session keys
    void *enc_ = nullptr;     // session key, encrypt (chunks, proofs)
    void *dec_ = nullptr;     // session key, decrypt + verify
    bool have_session_ = false;
    uint64_t ops_ = 0;
    uint64_t auth_failures_ = 0;
};

} // namespace millipede::seal

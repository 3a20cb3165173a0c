// AES-256-GCM for `key FILE` through DPDK cryptodev: the stripe cores'
// stripe::Aead (aead.h) on a cryptodev device.
//
// Device: the first cryptodev that does AES-256-GCM (16-byte tag, 12-byte
// IV, 32-byte AAD) on caller memory (RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO); when
// there is none, one software device is created with rte_eal_hotplug_add
// (vdev "crypto_aesni_gcm_mp", the crypto_ipsec_mb PMD of Debian's DPDK on Intel
// ipsec-mb). It is configured and started once per process and shared.
// Chunks are processed synchronously on the calling lcore: through
// rte_cryptodev_sym_cpu_crypto_process where the device has it (software:
// no mbufs, any memory), else through the object's own queue pair with the
// chunk as a chain of mbufs over its memory (32 KiB external-buffer
// segments: one mbuf segment holds at most 64 KiB, a chunk up to 2 MiB),
// enqueued and polled until it completes. The lcore that owns the chunk
// waits for it either way; one op per chunk (1 MiB by default) leaves
// nothing worth batching.
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

struct rte_mempool;

namespace millipede::seal {

class CryptodevAead final : public stripe::Aead {
  public:
    // How chunks reach the device: AUTO takes CPU when the device has it,
    // else QUEUE_PAIR (enqueue/dequeue on chained mbufs over the chunk's
    // own memory: hardware such as QAT or mlx5 crypto). Tests force each.
    enum class Path : uint8_t { AUTO, CPU, QUEUE_PAIR };
    // nullptr with `err` (one line) when no device can do it.
    static std::unique_ptr<CryptodevAead> create(const Key &key, std::string &err, Path path = Path::AUTO);
    ~CryptodevAead() override;
    CryptodevAead(const CryptodevAead &) = delete;
    CryptodevAead &operator=(const CryptodevAead &) = delete;

    bool start_session(uint64_t session_id) override;
    bool proof(uint32_t label, uint64_t counter, const uint8_t aad[stripe::kAeadAadBytes],
               uint8_t tag[stripe::kAeadTagBytes]) override;
    bool seal(uint64_t seq, const uint8_t aad[stripe::kAeadAadBytes], uint8_t *buf, uint32_t len) override;
    bool open(uint64_t seq, const uint8_t aad[stripe::kAeadAadBytes], uint8_t *buf, uint32_t len) override;

    const char *device_name() const;
    uint64_t ops() const { return ops_count_; }     // crypto operations run
    bool queue_pair_path() const { return use_qp_; }
    uint64_t auth_failures() const { return auth_failures_; }

  private:
    CryptodevAead() = default;
    bool run(void *sess, uint32_t label, uint64_t counter, const uint8_t *aad, uint8_t *buf, uint32_t len,
             uint8_t *tag);
    bool run_qp(void *sess, const uint8_t iv[stripe::kAeadIvBytes], const uint8_t *aad, uint8_t *buf, uint32_t len,
                uint8_t *tag, bool &auth_failed);
    void drop_session_keys();

    uint8_t dev_ = 0;
    void *master_ = nullptr;  // pre-shared key, encrypt: derives session keys
    void *enc_ = nullptr;     // session key, encrypt (chunks, proofs)
    void *dec_ = nullptr;     // session key, decrypt + verify
    bool have_session_ = false;
    uint64_t ops_count_ = 0;
    bool use_qp_ = false;               // the queue-pair path
    uint16_t qp_ = 0;                   // this object's queue pair (queue-pair path)
    ::rte_mempool *mbufs_ = nullptr; // mbuf headers for the chunk's segments
    ::rte_mempool *ops_ = nullptr;   // crypto ops
    uint64_t auth_failures_ = 0;
};

} // namespace millipede::seal

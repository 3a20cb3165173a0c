// rte_cryptodev_sym_cpu_crypto_process and the session pool are still
// experimental in DPDK 22.11.
#define ALLOW_EXPERIMENTAL_API 1
#include "millipede/seal/cryptodev_aead.h"

#include <cstring>
#include <algorithm>
#include <mutex>

#include <rte_crypto_sym.h>
#include <rte_cryptodev.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "millipede/net/bytes.h"
#include "millipede/stripe/wire.h"

namespace millipede::seal {

namespace {

constexpr const char *kVdevName = "crypto_aesni_gcm_mp";

constexpr uint16_t kQueuePairs = 4;  // one per live CryptodevAead (one per thread that uses it)
constexpr uint32_t kSegBytes = 32768; // queue-pair path: one mbuf segment per 32 KiB of chunk
constexpr uint32_t kMaxSegs = (stripe::kMaxChunkBytes + kSegBytes - 1) / kSegBytes;
// Queue-pair path: the op's private area holds the IV, the AAD and the tag,
// so every buffer the device reads or writes besides the chunk is DMA-able.
constexpr uint16_t kIvOffset = sizeof(rte_crypto_op) + sizeof(rte_crypto_sym_op);
constexpr uint16_t kAadOffset = kIvOffset + 16;
constexpr uint16_t kTagOffset = kAadOffset + stripe::kAeadAadBytes;
constexpr uint16_t kOpPrivate = 16 + stripe::kAeadAadBytes + stripe::kAeadTagBytes;

struct Device {
    std::mutex mu;
    bool ready = false;
    bool started = false;
    bool cpu_crypto = false; // synchronous processing on caller memory
    uint16_t qps = 0;
    uint32_t qp_used = 0;    // bit per queue pair held by a live object
    unsigned pools = 0;      // pools created (their names must differ)
    unsigned users = 0; // live CryptodevAead objects: the last one stops the device
    uint8_t id = 0;
    rte_mempool *sessions = nullptr;
    std::string err;
};

bool has_cpu_crypto(uint8_t id) {
    rte_cryptodev_info info{};
    rte_cryptodev_info_get(id, &info);
    return (info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO) != 0;
}

// AES-256-GCM with our sizes, in place on chained mbufs (the queue-pair
// path) or on caller memory (cpu crypto).
bool does_gcm256(uint8_t id) {
    rte_cryptodev_info info{};
    rte_cryptodev_info_get(id, &info);
    if (!(info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO) && !(info.feature_flags & RTE_CRYPTODEV_FF_IN_PLACE_SGL))
        return false;
    rte_cryptodev_sym_capability_idx idx{};
    idx.type = RTE_CRYPTO_SYM_XFORM_AEAD;
    idx.algo.aead = RTE_CRYPTO_AEAD_AES_GCM;
    const rte_cryptodev_symmetric_capability *cap = rte_cryptodev_sym_capability_get(id, &idx);
    return cap && rte_cryptodev_sym_capability_check_aead(cap, stripe::kAeadKeyBytes, stripe::kAeadTagBytes,
                                                          stripe::kAeadAadBytes, stripe::kAeadIvBytes) == 0;
}

// Once per process: find or create the device, configure and start it.
Device &device() {
    static Device d;
    static std::once_flag once;
    std::call_once(once, [] {
        int found = -1;
        for (uint8_t i = 0; i < rte_cryptodev_count(); i++)
            if (does_gcm256(i)) {
                found = i;
                break;
            }
        if (found < 0) {
            // (EAL's hotplug: the vdev bus driver is a plugin, not linked in)
            if (rte_eal_hotplug_add("vdev", kVdevName, "") != 0) {
                d.err = std::string("cannot create the cryptodev ") + kVdevName +
                        " (DPDK's crypto_ipsec_mb PMD, Debian package librte-crypto-ipsec-mb23): " +
                        rte_strerror(rte_errno);
                return;
            }
            const int id = rte_cryptodev_get_dev_id(kVdevName);
            if (id < 0 || !does_gcm256(static_cast<uint8_t>(id))) {
                d.err = std::string("cryptodev ") + kVdevName + " cannot do AES-256-GCM in place";
                return;
            }
            found = id;
        }
        d.id = static_cast<uint8_t>(found);
        d.cpu_crypto = has_cpu_crypto(d.id);
        rte_cryptodev_info info{};
        rte_cryptodev_info_get(d.id, &info);
        d.qps = static_cast<uint16_t>(std::min<unsigned>(kQueuePairs, info.max_nb_queue_pairs ? info.max_nb_queue_pairs : 1));
        const int socket = rte_cryptodev_socket_id(d.id);
        rte_cryptodev_config conf{};
        conf.socket_id = socket < 0 ? SOCKET_ID_ANY : socket;
        conf.nb_queue_pairs = d.qps;
        const unsigned size = rte_cryptodev_sym_get_private_session_size(d.id);
        d.sessions = rte_cryptodev_sym_session_pool_create("mp_aead_sess", 64, size, 0, 0, conf.socket_id);
        if (!d.sessions) {
            d.err = std::string("cryptodev session pool: ") + rte_strerror(rte_errno);
            return;
        }
        rte_cryptodev_qp_conf qp{};
        qp.nb_descriptors = 64;
        qp.mp_session = d.sessions;
        bool ok = rte_cryptodev_configure(d.id, &conf) == 0;
        for (uint16_t q = 0; ok && q < d.qps; q++) ok = rte_cryptodev_queue_pair_setup(d.id, q, &qp, conf.socket_id) == 0;
        if (!ok || rte_cryptodev_start(d.id) != 0) {
            d.err = std::string("cannot start cryptodev ") + rte_cryptodev_name_get(d.id);
            return;
        }
        d.ready = true;
        d.started = true;
    });
    return d;
}

void *make_session(uint8_t dev, rte_mempool *pool, const uint8_t *key, rte_crypto_aead_operation op) {
    rte_crypto_sym_xform x{};
    x.type = RTE_CRYPTO_SYM_XFORM_AEAD;
    x.aead.op = op;
    x.aead.algo = RTE_CRYPTO_AEAD_AES_GCM;
    x.aead.key.data = key;
    x.aead.key.length = stripe::kAeadKeyBytes;
    x.aead.iv.offset = kIvOffset; // (the queue-pair path; cpu crypto passes the IV by pointer)
    x.aead.iv.length = stripe::kAeadIvBytes;
    x.aead.digest_length = stripe::kAeadTagBytes;
    x.aead.aad_length = stripe::kAeadAadBytes;
    return rte_cryptodev_sym_session_create(dev, &x, pool);
}

} // namespace

std::unique_ptr<CryptodevAead> CryptodevAead::create(const Key &key, std::string &err, Path path) {
    Device &d = device();
    if (!d.ready) {
        err = d.err;
        return nullptr;
    }
    const bool use_qp = path == Path::QUEUE_PAIR || !d.cpu_crypto;
    if (path == Path::CPU && !d.cpu_crypto) {
        err = std::string("cryptodev ") + rte_cryptodev_name_get(d.id) + " has no synchronous CPU crypto";
        return nullptr;
    }
    int qp = -1;
    unsigned pool_no = 0;
    {
        // Started while anyone uses it; stopped after, so that
        // rte_eal_cleanup() can close it (it refuses a started device).
        std::lock_guard<std::mutex> g(d.mu);
        if (!d.started) {
            if (rte_cryptodev_start(d.id) != 0) {
                err = std::string("cannot start cryptodev ") + rte_cryptodev_name_get(d.id);
                return nullptr;
            }
            d.started = true;
        }
        if (use_qp) {
            for (uint16_t q = 0; q < d.qps && qp < 0; q++)
                if (!(d.qp_used & (1u << q))) qp = q;
            if (qp < 0) {
                err = std::string("cryptodev ") + rte_cryptodev_name_get(d.id) + ": all " + std::to_string(d.qps) +
                      " queue pairs are in use";
                return nullptr;
            }
            d.qp_used |= 1u << qp;
            pool_no = d.pools++;
        }
        d.users++;
    }
    std::unique_ptr<CryptodevAead> a(new CryptodevAead());
    a->dev_ = d.id;
    if (use_qp) {
        a->use_qp_ = true;
        a->qp_ = static_cast<uint16_t>(qp);
        const int socket = rte_cryptodev_socket_id(d.id) < 0 ? SOCKET_ID_ANY : rte_cryptodev_socket_id(d.id);
        const std::string n = std::to_string(pool_no);
        // Headers only: chunk bytes are attached as external buffers.
        a->mbufs_ = rte_pktmbuf_pool_create(("mp_aead_mb" + n).c_str(), 2 * kMaxSegs + 1, 0, 0, 0, socket);
        a->ops_ = rte_crypto_op_pool_create(("mp_aead_op" + n).c_str(), RTE_CRYPTO_OP_TYPE_SYMMETRIC, 8, 0, kOpPrivate,
                                            socket);
        if (!a->mbufs_ || !a->ops_) {
            err = std::string("cryptodev buffers: ") + rte_strerror(rte_errno);
            return nullptr;
        }
    }
    a->master_ = make_session(d.id, d.sessions, key.data(), RTE_CRYPTO_AEAD_OP_ENCRYPT);
    if (!a->master_) {
        err = std::string("cryptodev ") + rte_cryptodev_name_get(d.id) + ": cannot create an AES-256-GCM session: " +
              rte_strerror(rte_errno);
        return nullptr;
    }
    return a;
}

CryptodevAead::~CryptodevAead() {
    drop_session_keys();
    if (master_) rte_cryptodev_sym_session_free(dev_, master_);
    rte_mempool_free(ops_);
    rte_mempool_free(mbufs_);
    Device &d = device();
    std::lock_guard<std::mutex> g(d.mu);
    if (use_qp_) d.qp_used &= ~(1u << qp_);
    if (--d.users == 0 && d.started) {
        rte_cryptodev_stop(d.id);
        d.started = false;
    }
}

const char *CryptodevAead::device_name() const { return rte_cryptodev_name_get(dev_); }

void CryptodevAead::drop_session_keys() {
    if (enc_) rte_cryptodev_sym_session_free(dev_, enc_);
    if (dec_) rte_cryptodev_sym_session_free(dev_, dec_);
    enc_ = dec_ = nullptr;
    have_session_ = false;
}

namespace {
void no_free(void *, void *) {} // chunk memory is the caller's
} // namespace

// The queue-pair path (devices without cpu crypto, e.g. QAT or mlx5): the
// chunk as a chain of mbufs over its own memory, 32 KiB per segment (an
// mbuf segment holds at most 64 KiB), one op, enqueue, then poll its
// completion: the calling lcore needs the result before it goes on.
bool CryptodevAead::run_qp(void *sess, const uint8_t iv[stripe::kAeadIvBytes], const uint8_t *aad, uint8_t *buf,
                           uint32_t len, uint8_t *tag, bool &auth_failed) {
    auth_failed = false;
    const uint32_t nseg = len ? (len + kSegBytes - 1) / kSegBytes : 1;
    rte_mbuf *segs[kMaxSegs + 1];
    if (nseg > kMaxSegs || rte_pktmbuf_alloc_bulk(mbufs_, segs, nseg) != 0) return false;
    rte_crypto_op *op = rte_crypto_op_alloc(ops_, RTE_CRYPTO_OP_TYPE_SYMMETRIC);
    if (!op) {
        for (uint32_t i = 0; i < nseg; i++) rte_pktmbuf_free(segs[i]);
        return false;
    }
    static thread_local rte_mbuf_ext_shared_info shinfo[kMaxSegs];
    for (uint32_t i = 0; i < nseg; i++) {
        rte_mbuf *m = segs[i];
        const uint32_t off = i * kSegBytes, n = std::min(kSegBytes, len - off);
        if (len) {
            shinfo[i].free_cb = no_free;
            shinfo[i].fcb_opaque = nullptr;
            rte_mbuf_ext_refcnt_set(&shinfo[i], 1);
            rte_pktmbuf_attach_extbuf(m, buf + off, rte_mem_virt2iova(buf + off), static_cast<uint16_t>(n), &shinfo[i]);
            m->data_off = 0;
            m->data_len = static_cast<uint16_t>(n);
        }
        if (i) segs[i - 1]->next = m;
    }
    segs[0]->nb_segs = static_cast<uint16_t>(nseg);
    segs[0]->pkt_len = len;
    rte_crypto_op_attach_sym_session(op, sess);
    rte_crypto_sym_op *sym = op->sym;
    sym->m_src = segs[0];
    sym->m_dst = nullptr;
    sym->aead.data.offset = 0;
    sym->aead.data.length = len;
    std::memcpy(rte_crypto_op_ctod_offset(op, uint8_t *, kIvOffset), iv, stripe::kAeadIvBytes);
    std::memcpy(rte_crypto_op_ctod_offset(op, uint8_t *, kAadOffset), aad, stripe::kAeadAadBytes);
    std::memcpy(rte_crypto_op_ctod_offset(op, uint8_t *, kTagOffset), tag, stripe::kAeadTagBytes);
    sym->aead.aad.data = rte_crypto_op_ctod_offset(op, uint8_t *, kAadOffset);
    sym->aead.aad.phys_addr = rte_crypto_op_ctophys_offset(op, kAadOffset);
    sym->aead.digest.data = rte_crypto_op_ctod_offset(op, uint8_t *, kTagOffset);
    sym->aead.digest.phys_addr = rte_crypto_op_ctophys_offset(op, kTagOffset);
    bool ok = rte_cryptodev_enqueue_burst(dev_, qp_, &op, 1) == 1;
    if (ok) {
        rte_crypto_op *done = nullptr;
        // Bounded: a device that never completes is a failure, not a hang.
        for (uint64_t spins = 0; rte_cryptodev_dequeue_burst(dev_, qp_, &done, 1) == 0; spins++)
            if (spins > 100'000'000) return false; // (the op stays with the device; nothing reuses it)
        ok = done == op && op->status == RTE_CRYPTO_OP_STATUS_SUCCESS;
        auth_failed = op->status == RTE_CRYPTO_OP_STATUS_AUTH_FAILED;
        if (ok) std::memcpy(tag, rte_crypto_op_ctod_offset(op, uint8_t *, kTagOffset), stripe::kAeadTagBytes);
    }
    rte_pktmbuf_free(segs[0]);
    rte_crypto_op_free(op);
    return ok;
}

bool CryptodevAead::run(void *sess, uint32_t label, uint64_t counter, const uint8_t *aad, uint8_t *buf, uint32_t len,
                        uint8_t *tag) {
    uint8_t iv[stripe::kAeadIvBytes];
    net::store_le32(iv, label);
    net::store_le64(iv + 4, counter);
    if (use_qp_) {
        ops_count_++;
        bool auth_failed = false;
        return run_qp(sess, iv, aad, buf, len, tag, auth_failed);
    }
    uint8_t none[1] = {};
    rte_crypto_vec v{};
    v.base = len ? buf : none;
    // CPU crypto works on virtual addresses; no IOVA lookup (which costs a
    // memseg walk, or a pagemap read for memory outside DPDK) per chunk.
    v.iova = 0;
    v.len = len;
    v.tot_len = len;
    rte_crypto_sgl sgl{&v, 1};
    rte_crypto_va_iova_ptr ivp{iv, 0}, digest{tag, 0}, aadp{const_cast<uint8_t *>(aad), 0};
    int32_t status = 0;
    rte_crypto_sym_vec vec{};
    vec.num = 1;
    vec.src_sgl = &sgl;
    vec.iv = &ivp;
    vec.digest = &digest;
    vec.aad = &aadp;
    vec.status = &status;
    rte_crypto_sym_ofs ofs;
    ofs.raw = 0;
    ops_count_++;
    return rte_cryptodev_sym_cpu_crypto_process(dev_, sess, ofs, &vec) == 1 && status == 0;
}

bool CryptodevAead::start_session(uint64_t session_id) {
    drop_session_keys();
    // Session key = AES-256-GCM under the pre-shared key of 32 zero bytes,
    // nonce "MLKD" || session id (the keystream: AES-CTR blocks 2 and 3).
    uint8_t k[stripe::kAeadKeyBytes] = {};
    uint8_t aad[stripe::kAeadAadBytes] = {};
    uint8_t tag[stripe::kAeadTagBytes];
    bool ok = run(master_, stripe::kNonceKdf, session_id, aad, k, sizeof k, tag);
    if (ok) {
        Device &d = device();
        enc_ = make_session(dev_, d.sessions, k, RTE_CRYPTO_AEAD_OP_ENCRYPT);
        dec_ = make_session(dev_, d.sessions, k, RTE_CRYPTO_AEAD_OP_DECRYPT);
        ok = enc_ && dec_;
    }
    explicit_bzero(k, sizeof k);
    if (!ok) drop_session_keys();
    have_session_ = ok;
    return ok;
}

bool CryptodevAead::proof(uint32_t label, uint64_t counter, const uint8_t aad[stripe::kAeadAadBytes],
                          uint8_t tag[stripe::kAeadTagBytes]) {
    return have_session_ && run(enc_, label, counter, aad, nullptr, 0, tag);
}

bool CryptodevAead::seal(uint64_t seq, const uint8_t aad[stripe::kAeadAadBytes], uint8_t *buf, uint32_t len) {
    return have_session_ && run(enc_, stripe::kNonceChunk, seq, aad, buf, len, buf + len);
}

bool CryptodevAead::open(uint64_t seq, const uint8_t aad[stripe::kAeadAadBytes], uint8_t *buf, uint32_t len) {
    if (!have_session_ || len < stripe::kAeadTagBytes) return false;
    const uint32_t n = len - static_cast<uint32_t>(stripe::kAeadTagBytes);
    if (run(dec_, stripe::kNonceChunk, seq, aad, buf, n, buf + n)) return true;
    // The device decrypted before it compared: unverified plaintext must
    // not survive in the buffer.
    std::memset(buf, 0, len);
    auth_failures_++;
    return false;
}

} // namespace millipede::seal

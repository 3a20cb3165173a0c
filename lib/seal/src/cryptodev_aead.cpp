// rte_cryptodev_sym_cpu_crypto_process and the session pool are still
// experimental in DPDK 22.11.
#define ALLOW_EXPERIMENTAL_API 1
#include "millipede/seal/cryptodev_aead.h"

#include <cstring>
#include <mutex>

#include <rte_crypto_sym.h>
#include <rte_cryptodev.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_mempool.h>

#include "millipede/net/bytes.h"

namespace millipede::seal {

namespace {

constexpr const char *kVdevName = "crypto_aesni_gcm_mp";

struct Device {
    std::mutex mu;
    bool ready = false;
    bool started = false;
    unsigned users = 0; // live CryptodevAead objects: the last one stops the device
    uint8_t id = 0;
    rte_mempool *sessions = nullptr;
    std::string err;
};

bool does_gcm256(uint8_t id) {
    rte_cryptodev_info info{};
    rte_cryptodev_info_get(id, &info);
    if (!(info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO)) return false;
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
                d.err = std::string("cryptodev ") + kVdevName + " cannot do AES-256-GCM on caller memory";
                return;
            }
            found = id;
        }
        d.id = static_cast<uint8_t>(found);
        const int socket = rte_cryptodev_socket_id(d.id);
        rte_cryptodev_config conf{};
        conf.socket_id = socket < 0 ? SOCKET_ID_ANY : socket;
        conf.nb_queue_pairs = 1; // the device wants one; chunks go through cpu_crypto_process
        const unsigned size = rte_cryptodev_sym_get_private_session_size(d.id);
        d.sessions = rte_cryptodev_sym_session_pool_create("mp_aead_sess", 64, size, 0, 0, conf.socket_id);
        if (!d.sessions) {
            d.err = std::string("cryptodev session pool: ") + rte_strerror(rte_errno);
            return;
        }
        rte_cryptodev_qp_conf qp{};
        qp.nb_descriptors = 64;
        qp.mp_session = d.sessions;
        if (rte_cryptodev_configure(d.id, &conf) != 0 || rte_cryptodev_queue_pair_setup(d.id, 0, &qp, conf.socket_id) != 0 ||
            rte_cryptodev_start(d.id) != 0) {
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
    x.aead.iv.offset = 0; // (cpu crypto passes the IV by pointer)
    x.aead.iv.length = stripe::kAeadIvBytes;
    x.aead.digest_length = stripe::kAeadTagBytes;
    x.aead.aad_length = stripe::kAeadAadBytes;
    return rte_cryptodev_sym_session_create(dev, &x, pool);
}

} // namespace

std::unique_ptr<CryptodevAead> CryptodevAead::create(const Key &key, std::string &err) {
    Device &d = device();
    if (!d.ready) {
        err = d.err;
        return nullptr;
    }
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
        d.users++;
    }
    std::unique_ptr<CryptodevAead> a(new CryptodevAead());
    a->dev_ = d.id;
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
    Device &d = device();
    std::lock_guard<std::mutex> g(d.mu);
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

bool CryptodevAead::run(void *sess, uint32_t label, uint64_t counter, const uint8_t *aad, uint8_t *buf, uint32_t len,
                        uint8_t *tag) {
    uint8_t iv[stripe::kAeadIvBytes];
    net::store_le32(iv, label);
    net::store_le64(iv + 4, counter);
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
    ops_++;
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

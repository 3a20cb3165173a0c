// The transport's flow table; see conn_table.h.
#include "millipede/dataplane/conn_table.h"

#include <cstring>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>

namespace millipede::dataplane {

namespace {
constexpr uintptr_t kTentativeBit = uintptr_t(1) << 31;

inline uint32_t ip_be(const tcp::IpAddr &a) { return conn_key_ip(a.bytes.data(), a.is_v6); }
inline uint16_t be16(uint16_t host) { return static_cast<uint16_t>((host >> 8) | (host << 8)); }

// rte_hash_crc loads the key 8 bytes at a time through a uint64_t pointer, and a ConnKey is only
// 4-byte aligned (a stack key or a key inside a segment descriptor), so that load is misaligned
// (undefined behaviour that UBSan reports). The key is three 32-bit words: hash them as such.
uint32_t conn_key_hash(const void *key, uint32_t key_len, uint32_t init) {
    (void)key_len; // always sizeof(ConnKey), set at create
    uint32_t w[3];
    std::memcpy(w, key, sizeof(w));
    return rte_hash_crc_4byte(w[2], rte_hash_crc_4byte(w[1], rte_hash_crc_4byte(w[0], init)));
}
static_assert(sizeof(ConnKey) == 3 * sizeof(uint32_t));
} // namespace

ConnKey conn_key(const tcp::Endpoints &ep) {
    return ConnKey{ip_be(ep.remote_ip), ip_be(ep.local_ip), be16(ep.remote_port), be16(ep.local_port)};
}

std::unique_ptr<ConnTable> ConnTable::create(const std::string &name, uint32_t capacity, int socket,
                                             std::string &err) {
    std::unique_ptr<ConnTable> t(new ConnTable());
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = capacity;
    p.key_len = sizeof(ConnKey);
    p.hash_func = conn_key_hash;
    p.hash_func_init_val = 0;
    p.socket_id = socket;
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD;
    t->h_ = rte_hash_create(&p);
    if (!t->h_) {
        err = "cannot create the connection table: " + std::string(rte_strerror(rte_errno));
        return nullptr;
    }
    t->tq_cap_ = capacity / 2;
    t->tq_ = std::make_unique<Tentative[]>(t->tq_cap_);
    return t;
}

ConnTable::~ConnTable() {
    if (h_) rte_hash_free(h_);
}

void ConnTable::lookup_bulk(const ConnKey *keys, unsigned n, int32_t *workers) const {
    const void *kp[64];
    void *data[64];
    uint64_t hits = 0;
    for (unsigned i = 0; i < n; i++) kp[i] = &keys[i];
    if (n == 0 || rte_hash_lookup_bulk_data(h_, kp, n, &hits, data) < 0) hits = 0;
    for (unsigned i = 0; i < n; i++)
        workers[i] = (hits >> i) & 1 ? static_cast<int32_t>(reinterpret_cast<uintptr_t>(data[i]) & 0xffff) : kMissing;
}

int32_t ConnTable::lookup(const ConnKey &k) const {
    void *d = nullptr;
    if (rte_hash_lookup_data(h_, &k, &d) < 0) return kMissing;
    return static_cast<int32_t>(reinterpret_cast<uintptr_t>(d) & 0xffff);
}

bool ConnTable::add(const ConnKey &k, uint32_t worker, bool tentative) {
    const uintptr_t v = worker | (tentative ? kTentativeBit : 0);
    return rte_hash_add_key_data(h_, &k, reinterpret_cast<void *>(v)) == 0;
}

void ConnTable::remove(const ConnKey &k) { rte_hash_del_key(h_, &k); }

bool ConnTable::add_tentative(const ConnKey &k, uint32_t worker, uint64_t now_us) {
    if (tq_count_ == tq_cap_) return false; // a flood: route by hash, do not grow the table
    if (!add(k, worker, true)) return false;
    tq_[(tq_head_ + tq_count_) % tq_cap_] = Tentative{k, now_us};
    tq_count_++;
    return true;
}

unsigned ConnTable::expire_tentative(uint64_t now_us, uint64_t age_us) {
    unsigned n = 0;
    while (tq_count_ && now_us - tq_[tq_head_].at_us >= age_us) {
        const ConnKey &k = tq_[tq_head_].key;
        void *d = nullptr;
        // Still tentative (its worker never confirmed it): the handshake
        // did not complete; the flow goes.
        if (rte_hash_lookup_data(h_, &k, &d) >= 0 && (reinterpret_cast<uintptr_t>(d) & kTentativeBit)) {
            rte_hash_del_key(h_, &k);
            n++;
        }
        tq_head_ = (tq_head_ + 1) % tq_cap_;
        tq_count_--;
    }
    return n;
}

void ConnTableHooks::on_open(const tcp::Endpoints &ep) {
    // Before its first segment leaves: the answer must find this worker. A
    // connection accepted here confirms the rx lcore's tentative entry.
    t_.add(conn_key(ep), worker_, false);
    if (n_) n_->fetch_add(1, std::memory_order_relaxed);
}

void ConnTableHooks::on_close(const tcp::Endpoints &ep) {
    t_.remove(conn_key(ep));
    if (n_) n_->fetch_sub(1, std::memory_order_relaxed);
}

bool misdelivered(const ConnTable &t, uint32_t worker, const tcp::Segment &seg) {
    const int32_t owner = t.lookup(conn_key(tcp::Endpoints{seg.dst_ip, seg.src_ip, seg.dst_port, seg.src_port}));
    return owner >= 0 && static_cast<uint32_t>(owner) != worker;
}

} // namespace millipede::dataplane

// The transport's flow table: which worker owns each TCP connection, keyed
// by the 4-tuple as it arrives (remote -> local). The RX lcore looks every
// segment up in bulk and hands it to that worker's ring; a worker enters a
// connection it opens before its SYN leaves (LegHost flow hooks) and
// removes it when the connection is gone; the RX lcore enters a SYN for
// our listening port as a *tentative* flow on the worker the balancer
// picked, which that worker confirms when the handshake completes, or which
// expires (so half-open floods cannot fill the table).
//
// Contract
// - rte_hash with reader/writer concurrency and multi-writer add: lookups
//   from any lcore (one read lock per bulk), adds and removes from any
//   lcore. Nothing here allocates after create().
// - expire_tentative() only on the RX lcore that added the tentative flows.
#pragma once

#include <atomic>
#include <cstring>
#include <cstdint>
#include <memory>
#include <string>

#include "millipede/net/ipv6.h"
#include "millipede/session/leg_host.h"
#include "millipede/tcp/connection.h"

struct rte_hash;

namespace millipede::dataplane {

// IPv4 addresses are held as on the wire (network order); an IPv6 one by
// its 32-bit key (net::ipv6_key): two IPv6 flows that differ only in
// addresses with the same key share a slot (odds 2^-32 per pair of
// addresses; such a segment reaches the wrong worker and is counted as
// misdelivered, never delivered to the wrong connection).
struct ConnKey {
    uint32_t remote_ip;
    uint32_t local_ip;
    uint16_t remote_port; // network order
    uint16_t local_port;
};
static_assert(sizeof(ConnKey) == 12);

ConnKey conn_key(const tcp::Endpoints &ep); // from a connection's endpoints (local = ours)

// The ConnKey field for an address as it lies on the wire (4 or 16 bytes).
inline uint32_t conn_key_ip(const uint8_t *wire, bool v6) {
    if (v6) return net::ipv6_key(wire);
    uint32_t v;
    std::memcpy(&v, wire, 4);
    return v;
}

class ConnTable {
  public:
    static constexpr int32_t kMissing = -1;
    static std::unique_ptr<ConnTable> create(const std::string &name, uint32_t capacity, int socket, std::string &err);
    ~ConnTable();
    ConnTable(const ConnTable &) = delete;
    ConnTable &operator=(const ConnTable &) = delete;

    // workers[i]: the owner of keys[i], or kMissing. n <= 64.
    void lookup_bulk(const ConnKey *keys, unsigned n, int32_t *workers) const;
    int32_t lookup(const ConnKey &k) const;
    // False when the table is full.
    bool add(const ConnKey &k, uint32_t worker, bool tentative);
    void remove(const ConnKey &k);

    // RX lcore: a SYN was handed to `worker` as a tentative flow at `now_us`.
    bool add_tentative(const ConnKey &k, uint32_t worker, uint64_t now_us);
    // Removes tentative flows older than `age_us` that nobody confirmed.
    unsigned expire_tentative(uint64_t now_us, uint64_t age_us);
    uint32_t tentative() const { return static_cast<uint32_t>(tq_count_); }

  private:
    ConnTable() = default;
    rte_hash *h_ = nullptr;
    struct Tentative {
        ConnKey key;
        uint64_t at_us;
    };
    std::unique_ptr<Tentative[]> tq_; // FIFO of tentative adds, bounded (RX lcore only)
    size_t tq_cap_ = 0, tq_head_ = 0, tq_count_ = 0;
};

// A worker's LegHost flow hooks: its connections enter the table (as the
// worker's) before their first segment leaves and leave it when gone.
// `connections` (optional) counts them for the balancer.
class ConnTableHooks final : public session::FlowHooks {
  public:
    ConnTableHooks(ConnTable &t, uint32_t worker, std::atomic<uint32_t> *connections = nullptr)
        : t_(t), worker_(worker), n_(connections) {}
    void on_open(const tcp::Endpoints &ep) override;
    void on_close(const tcp::Endpoints &ep) override;

  private:
    ConnTable &t_;
    uint32_t worker_;
    std::atomic<uint32_t> *n_;
};

// For a segment no connection or listener of `worker` took: true when the
// flow table gives its connection to another worker, i.e. the segment was
// delivered to the wrong one (share-nothing is broken; counted, never
// expected).
bool misdelivered(const ConnTable &t, uint32_t worker, const tcp::Segment &seg);

} // namespace millipede::dataplane

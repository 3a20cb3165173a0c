// The transport plane's state, shared by its stages (setup, rx, worker,
// session, run). Not part of the public contract. Who touches what:
//   PortState::neigh, Owner      the rx lcore (ARP/ICMP owner)
//   Worker                       its worker lcore (pub: read by anyone)
//   Session                      the session lcore
//   Impl::flags, board           any (atomics / the board's lock)
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "millipede/dataplane/conn_table.h"
#include "millipede/dataplane/frame.h"
#include "millipede/dataplane/lcores.h"
#include "millipede/dataplane/neighbour_board.h"
#include "millipede/dataplane/refs.h"
#include "millipede/dataplane/transport.h"
#include "millipede/flow/balancer.h"
#include "millipede/net/addr_parse.h"
#include "millipede/net/ipv6.h"
#include "millipede/net/neighbour.h"
#include "millipede/pipeio/codec_pool.h"
#include "millipede/pipeio/reader.h"
#include "millipede/pipeio/writer.h"
#include "millipede/seal/cryptodev_aead.h"
#include "millipede/session/leg_host.h"
#include "millipede/session/rate_limiter.h"
#include "millipede/session/rx_core.h"
#include "millipede/session/tx_core.h"
#include "millipede/tcp/connection.h"
#include "done_signal.h"
#include "tunnel_ends.h"

namespace millipede::dataplane {

inline constexpr unsigned kBurst = 32;
inline constexpr unsigned kTxCap = 512;
inline constexpr uint32_t kEthLen = 14;

struct PortState {
    uint16_t id = 0;
    unsigned index = 0; // in Impl::ports
    net::MacAddr mac;
    uint16_t mtu = 1500;
    uint32_t max_frame = 1514; // largest frame we build on it (memif: chained, beyond the MTU)
    uint16_t mss = 1460;       // what we advertise on connections over it
    uint16_t send_cap = 0;     // the largest payload we send per segment (0: the MSS)
    bool memif = false;
    // memif is shared memory between two processes of this host: nothing on
    // it can corrupt a frame, so the TCP checksum is not verified on
    // receive (as Linux trusts loopback); --verify-memif-checksums verifies.
    bool trust_l4_checksum = false;
    bool multi_seg = false;    // sends chained mbufs
    bool tx_ip_offload = false, tx_tcp_offload = false;
    uint16_t txq_count = 1;    // TX queues configured
    // Fewer TX queues than transmitting lcores: everyone but the owner
    // hands frames to the owner through this ring (counted).
    rte_ring *tx_handoff = nullptr;
    std::vector<net::IpAssignment> addrs;
    std::unique_ptr<net::NeighbourCache> neigh; // the owner's
    uint64_t rx_frames = 0, tcp_in = 0;         // the rx lcore's

    // IPv6 (all of this port's --ip addresses are IPv6): the 32-bit keys of
    // the tables (ipv6_key) name v6 addresses; `v6_names` is the owner's
    // key -> address map of the neighbours it resolves (fixed capacity).
    bool v6 = false;
    struct V6Name {
        uint32_t key = 0;
        std::array<uint8_t, 16> addr{};
    };
    std::vector<V6Name> v6_names; // reserved at set-up, the owner's

    bool ours(uint32_t ip) const {
        for (const auto &a : addrs)
            if (a.addr == ip) return true;
        return false;
    }
    const net::IpAssignment *ours6(const uint8_t ip[16]) const {
        for (const auto &a : addrs)
            if (a.v6 && net::ipv6_equal(a.addr6.data(), ip)) return &a;
        return nullptr;
    }
    const uint8_t *source_for6(const uint8_t dst[16]) const {
        for (const auto &a : addrs)
            if (a.on_link6(dst)) return a.addr6.data();
        return addrs.empty() ? nullptr : addrs[0].addr6.data();
    }
    // Owner: remember the address behind `key`. CLASH when another address
    // already holds that key (counted, that neighbour refused); FULL when
    // every name still belongs to an entry of the neighbour cache.
    enum class Naming : uint8_t { OK, CLASH, FULL };
    Naming name_v6(uint32_t key, const uint8_t addr[16]) {
        for (const auto &n : v6_names)
            if (n.key == key) return net::ipv6_equal(n.addr.data(), addr) ? Naming::OK : Naming::CLASH;
        if (v6_names.size() == v6_names.capacity()) {
            // Names of neighbours the cache has let go (expired, failed) are
            // free again; no allocation (the vector only shrinks here).
            net::NeighEntry e;
            size_t kept = 0;
            for (size_t i = 0; i < v6_names.size(); i++)
                if (neigh->lookup(v6_names[i].key, 0, e)) v6_names[kept++] = v6_names[i];
            v6_names.resize(kept);
            if (kept == v6_names.capacity()) return Naming::FULL;
        }
        V6Name n;
        n.key = key;
        std::memcpy(n.addr.data(), addr, 16);
        v6_names.push_back(n);
        return Naming::OK;
    }
    const uint8_t *v6_name(uint32_t key) const {
        for (const auto &n : v6_names)
            if (n.key == key) return n.addr.data();
        return nullptr;
    }
    uint32_t source_for(uint32_t dst) const {
        for (const auto &a : addrs)
            if (a.on_link(dst)) return a.addr;
        return addrs.empty() ? 0 : addrs[0].addr;
    }
};

// The 32-bit name the plane's tables give an address: IPv4 in host order,
// IPv6 by net::ipv6_key.
inline uint32_t ip_key(const tcp::IpAddr &a) { return a.is_v6 ? net::ipv6_key(a.bytes.data()) : a.v4_host_order(); }

// Frames waiting for one tx_burst per port per loop iteration.
// One lcore's frames for one port, in order. A device (or hand-off ring)
// that takes only part of a burst keeps the rest here for the next call: a
// full TX ring is back-pressure, not loss. Only a frame that finds the
// buffer still full after a flush is dropped (TCP re-sends it).
struct TxBuffer {
    uint16_t queue = 0;
    unsigned n = 0;
    uint64_t sent = 0, drops = 0; // this lcore's frames to the port (or its hand-off ring)
    rte_mbuf *pkts[kTxCap];
};

struct PortState;
// tx_burst what the device takes now; the rest stays in `b`. Frames the
// device's tx_prepare refuses are dropped and counted in `drops`.
void tx_flush(TxBuffer &b, const PortState &p, uint64_t &drops);
// The same onto a hand-off ring (the rx lcore transmits them).
void handoff_flush(TxBuffer &b, rte_ring *ring);
// Appends `m`, flushing first when full; drops `m` if that freed nothing.
template <class Flush> inline void tx_append(TxBuffer &b, rte_mbuf *m, uint64_t &drops, Flush &&flush) {
    if (b.n == kTxCap) flush();
    if (b.n == kTxCap) {
        rte_pktmbuf_free(m);
        drops++;
        b.drops++;
        return;
    }
    b.pkts[b.n++] = m;
}

// Reasons a received frame is not handed to TCP: one table.
#define MILLIPEDE_RX_DROPS(X)                                                                                     \
    X(NotOurs, "not_ours", "for another host, or our own frame echoed by a packet socket")                       \
    X(Malformed, "malformed", "too short, bad IPv4/IPv6 header or lengths, invalid Neighbour Discovery")        \
    X(Fragment, "fragment", "IPv4 fragment (TCP-lite does not reassemble)")                                       \
    X(BadIpChecksum, "bad_ip_checksum", "IPv4 header checksum wrong")                                             \
    X(OtherProto, "other_proto", "neither TCP, ICMP(v6) nor ARP; IPv6 with extension headers")                  \
    X(Unanswered, "unanswered", "ICMP(v6) other than an echo request or ND for us, or chained over several mbufs") \
    X(RingFull, "ring_full", "the worker's ring stayed full (back-pressure gave up)")                             \
    X(InjectedDrop, "injected_drop", "dropped by --drop-rx fault injection")
enum class RxDrop : uint8_t {
#define X(sym, name, desc) sym,
    MILLIPEDE_RX_DROPS(X)
#undef X
        Count_
};
inline constexpr unsigned kRxDropCount = static_cast<unsigned>(RxDrop::Count_);
const char *rx_drop_name(RxDrop d);

struct alignas(64) RxCounters {
    uint64_t frames = 0, to_workers = 0, to_owner = 0, new_flows = 0, unknown_flows = 0, backpressure = 0;
    uint64_t drops[kRxDropCount] = {};
};

// What a worker publishes for the others (written by its lcore only).
struct alignas(64) WorkerPublic {
    std::atomic<uint32_t> connections{0};
    std::atomic<uint64_t> busy_cycles{0};
    std::atomic<uint64_t> segments_in{0};
    std::atomic<uint64_t> bad_segments{0};
    std::atomic<uint64_t> misdelivered{0}; // segments of a connection another worker owns
    std::atomic<uint64_t> bytes_copied{0};
    std::atomic<uint64_t> bytes_referenced{0};
    std::atomic<uint64_t> injected_drops{0};
};

// Per-connection figures a worker publishes for the stats table.
struct LegRow {
    session::ConnHandle handle = 0;
    const char *state = "";
    uint64_t bytes_acked = 0, bytes_received = 0, srtt_us = 0, retransmits = 0;
    uint32_t cwnd = 0;
};
struct LegBoard {
    std::mutex m;
    LegRow rows[stats::TransferSnapshot::kMaxStreams * 2];
    uint32_t n = 0;
};

struct Impl;

// ReportOut onto a worker's report ring.
struct RingReports final : session::ReportOut {
    rte_ring *ring = nullptr;
    bool send(const session::LegReport &r) override {
        session::LegReport copy = r; // (the ring API takes a non-const pointer)
        return rte_ring_sp_enqueue_elem(ring, &copy, sizeof copy) == 0;
    }
};

struct alignas(64) Worker {
    Impl *plane = nullptr;
    unsigned index = 0;
    unsigned lcore = 0;
    rte_ring *pkts = nullptr;    // rx -> this worker: mbufs
    rte_ring *cmds = nullptr;    // session -> this worker: LegCommand
    rte_ring *reports = nullptr; // this worker -> session: LegReport
    bool with_owner = false;     // on the rx lcore itself (transmits like the owner)
    RingReports out;
    std::unique_ptr<session::LegHost> host;
    TxFrameContext txc;
    std::vector<TxBuffer> tx; // per port
    tcp::SeededRandom drop_rng{1};
    uint64_t now_us = 0;       // the sink's clock
    tcp::Endpoints last_data;  // the connection of the latest data segment (chaos)
    bool last_data_valid = false;
    uint64_t no_route = 0, neigh_handoffs = 0, tx_drops = 0, rx_errors[5] = {};
    WorkerPublic pub;
    LegBoard legs;
    uint64_t next_legs_publish = 0;
    size_t legs_published_conns = SIZE_MAX;
    std::unique_ptr<ConnTableHooks> hooks; // the flow table learns our connections before their first segment leaves
};

// The session lcore's CommandOut: one ring per worker; new connections go
// to the least-loaded worker.
struct RingCommands final : session::CommandOut {
    Impl *plane = nullptr;
    std::unique_ptr<flow::Balancer> balancer;
    bool send(uint32_t host, const session::LegCommand &c) override;
    uint32_t hosts() const override;
    uint32_t pick_host(const tcp::Endpoints &ep) override;
};

struct Session {
    // key FILE: AES-256-GCM through cryptodev; declared first so it outlives
    // the stripe cores that use it.
    std::unique_ptr<seal::CryptodevAead> aead;    // key FILE: the sender's session key
    std::unique_ptr<seal::CryptodevAead> aead_rx; // key FILE: the receiver's (duplex has both)
    RingCommands out;
    std::unique_ptr<session::TxCore> tx;
    std::unique_ptr<session::RxCore> rx;
    std::unique_ptr<TunnelEnds> tunnel; // --terminate-on ports: the tunnel's connections on our ports
    std::unique_ptr<ChunkPool> chunks;
    std::unique_ptr<pipeio::PipeReader> reader;
    std::unique_ptr<pipeio::PipeWriter> writer;
    // tx pipe side
    pipeio::Chunk *pending = nullptr; // read, not yet taken by the stripe sender
    bool input_done = false;
    uint64_t pushed = 0;
    uint64_t limit_bytes = UINT64_MAX;
    std::vector<pipeio::Chunk *> by_index; // reader chunk of each pool index
    uint64_t reader_digest = 0;            // the reader thread's running CRC-64 (its on_piece hook only)
    bool reader_sums = false;              // the reader computes the stripe's CRCs (Chunk::sums)
    session::RateLimiter rate;             // --rate / delayus (unlimited by default)
    // `compress` (docs/wire.md 2.20): tx deflates chunks between the reader
    // and the stripe sender, rx inflates delivered chunks before the writer;
    // both in order, on the pool's threads. Two pools, as a duplex process
    // runs a sender and a receiver.
    std::unique_ptr<pipeio::CodecPool> deflate; // tx, with `compress`
    std::unique_ptr<pipeio::CodecPool> inflate; // rx, native format
    pipeio::CodecJob pending_job;          // tx: the job `pending` came out of
    uint64_t fed = 0;                      // tx: stream bytes handed to the pool (leglimit)
    bool fed_done = false;                 // tx: the last chunk went into the pool
    std::unique_ptr<uint8_t[]> inflate_mem; // rx: inflate_slots buffers of inflate_bytes
    uint32_t inflate_slots = 0, inflate_bytes = 0;
    std::vector<uint32_t> inflate_payload; // rx: payload length of the chunk in each buffer
    uint64_t inflate_next = 0;             // rx: next chunk to hand to the pool
    uint64_t inflate_written = 0;          // rx: chunks whose stream bytes stdout took
    // rx: every seq below is done (written, or a parity seq passed over):
    // the pool's jobs are seqs in [inflate_done_below, inflate_next), fewer
    // than inflate_slots, so no two share an output buffer.
    uint64_t inflate_done_below = 0;
    // rx pipe side
    uint64_t inflight = 0;
    bool end_submitted = false;
    bool writer_done = false;
    // end conditions
    // Each direction's own progress and end (duplex: one may finish or
    // stall while the other still moves).
    struct DirectionEnd {
        uint64_t last_progress_us = 0, last_mark = UINT64_MAX, done_at = 0;
        bool over = false; // done (or failed): its legs are closed or closing
    };
    DirectionEnd txe, rxe;
    uint64_t refused_seen = 0, refused_at = 0;
    bool saw_sender = false;
    uint64_t next_chaos = 0;
    uint64_t chaos_breaks = 0;
    std::string last_leg_msg, last_rx_leg_msg;
    // stats
    uint64_t next_publish = 0, last_pub_t = 0, last_pub_bytes = 0, t_start = 0;
    uint64_t leg_prev_bytes[stats::TransferSnapshot::kMaxStreams] = {};
    double leg_rate[stats::TransferSnapshot::kMaxStreams] = {};
    stats::TransferSnapshot scratch;
};

struct alignas(64) LcoreStats {
    std::atomic<uint32_t> busy_permille{0};
};

struct Impl {
    TransportOptions o;
    std::string fail; // the one line, when failing outside the session
    uint64_t hz = 1, tsc0 = 0;
    LcorePlan plan;
    std::vector<std::unique_ptr<PortState>> ports;
    std::vector<uint16_t> started;
    PortState *port_by_id[RTE_MAX_ETHPORTS] = {};
    rte_mempool *rx_pool = nullptr;     // received frames (and every header we build)
    rte_mempool *attach_pool = nullptr; // extbuf segments
    bool free_memory = true;            // false: teardown leaves EAL memory to rte_eal_cleanup()
    std::unique_ptr<ConnTable> conns;
    std::unique_ptr<NeighbourBoard> neighbours;
    rte_ring *owner_ring = nullptr; // workers -> owner: frames waiting for a MAC (m->hash.usr = next hop)
    std::vector<std::unique_ptr<Worker>> workers;
    Session session;
    std::unique_ptr<flow::Balancer> rx_balancer;
    // RX lcore: new flows handed to each worker whose connection it has not
    // published yet (a burst of SYNs must spread before any handshake ends).
    struct NewFlows {
        uint32_t pending = 0, seen = 0; // seen: the worker's count when last looked at
        uint64_t last_us = 0;
    };
    std::array<NewFlows, 64> new_flows{};
    RxCounters rxc;
    // Back-pressure: frames a full worker ring did not take wait here, and
    // the ports are not polled until they are handed over.
    struct Held {
        rte_mbuf *pkts[kBurst];
        unsigned off = 0, n = 0;
    };
    std::vector<Held> held; // per worker
    unsigned held_total = 0;
    uint64_t arp_replies = 0, arp_requests = 0, icmp_replies = 0, owner_tx_drops = 0, neigh_drops = 0;
    // IPv6: solicitations sent, advertisements sent, invalid ND by reason,
    // neighbours refused for a key clash or a full name table (PortState::name_v6).
    uint64_t nd_solicits = 0, nd_adverts = 0, nd_errors[net::kNdErrorCount] = {}, nd_key_clashes = 0,
             nd_names_full = 0;
    std::vector<TxBuffer> owner_tx; // per port: the owner's queue
    tcp::SeededRandom rx_drop_rng{1};
    uint64_t rx_injected = 0;
    std::vector<LcoreStats> lcore_stats;
    std::vector<std::string> role_names; // per plan lcore (the snapshot points at them)
    stats::StatsBoard board;
    std::atomic<bool> stop{false};      // signal
    std::atomic<const char *> stop_why{nullptr}; // request_stop(why): the outcome line (else "interrupted")
    std::atomic<bool> table{false};     // SIGUSR1
    // The session ended: lcores finish. A control-only main lcore sleeps on
    // it between its 20 ms ticks and wakes at once when it is set.
    DoneSignal done;
    std::atomic<bool> owner_gone{false};
    int status = 1;
    std::string message;
    bool progress_on = false;
    uint64_t next_progress = 0;
    uint64_t next_neigh = 0;
    uint64_t next_expire = 0;

    uint64_t now_us() const {
        return static_cast<uint64_t>((unsigned __int128)(rte_get_tsc_cycles() - tsc0) * 1'000'000 / hz);
    }
    const char *who() const { return o.duplex ? "duplex" : o.tx ? "tx" : "rx"; }
    bool sends() const { return o.tx; }                // a TxCore: stdin -> legs we open
    bool receives() const { return !o.tx || o.duplex; } // an RxCore: legs accepted on listen_port -> stdout
    PortState *port_for_local(uint32_t ip) {
        for (auto &p : ports)
            if (p->ours(ip)) return p.get();
        return nullptr;
    }

    // setup (transport_setup.cpp)
    bool setup(std::string &err);
    bool setup_ports(std::string &err);
    bool setup_workers(std::string &err);
    bool setup_session(std::string &err);
    // key FILE: one AES-256-GCM object on cryptodev per direction
    bool make_aead(std::unique_ptr<seal::CryptodevAead> &out, std::string &err);
    bool setup_tx_session(std::string &err);
    bool setup_rx_session(std::string &err);
    void teardown();
    // rx + owner (transport_rx.cpp)
    unsigned rx_poll(uint64_t now);
    unsigned owner_poll(uint64_t now);
    void owner_send(PortState &p, rte_mbuf *m);
    void flush(TxBuffer &b, PortState &p);
    void send_gratuitous();
    void on_nd(PortState &p, rte_mbuf *m, uint64_t now); // IPv6 Neighbour Discovery
    // worker (transport_worker.cpp)
    unsigned worker_poll(Worker &w, uint64_t now);
    void worker_emit(Worker &w, const tcp::Segment &s);
    void publish_legs(Worker &w, uint64_t now);
    // session (transport_session.cpp)
    unsigned session_poll(uint64_t now);
    bool session_finished(uint64_t now); // sets status / message when over
    // One direction's end: Running, Done, or Failed with `why` set.
    enum class Outcome { Running, Done, Failed };
    Outcome tx_outcome(uint64_t now, std::string &why);
    Outcome rx_outcome(uint64_t now, std::string &why);
    void publish(uint64_t now, bool final);
    void report_final();
    // run (transport_run.cpp)
    int lcore_main(unsigned slot);
    void control_tick(uint64_t now);
    void wait_links(uint64_t bound_us);
    // Polls the port's link until it is `up` (or down) or now_us() passes
    // `until_us`; true when the link reached that state. Set-up and teardown only.
    bool wait_link_state(uint16_t port_id, bool up, uint64_t until_us, uint64_t poll_us);
    int run_all();
};

} // namespace millipede::dataplane

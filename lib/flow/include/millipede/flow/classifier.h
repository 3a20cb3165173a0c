// The classifier stage: bursts of packets in, each flow pinned to one worker,
// packets handed to workers through one single-producer/single-consumer
// rte_ring per worker.
//
// Contract
// - Classifier: every method is called from the one classifier lcore, except
//   worker_ring() / worker_shared() / checker(), which workers use.
// - Frames of any length: a frame chained over several mbufs (net_pcap, a
//   NIC with RX scatter) is parsed across its segments (the headers are
//   copied into a scratch buffer when they do not lie in the first one) and
//   classified like any other; nothing here reads the payload.
// - process_burst() takes ownership of every mbuf: each is enqueued to a
//   worker, or counted (reject reason, ring-full per worker, table full) and
//   released through the configured release function. It never blocks: a
//   full ring drops and counts (tap mode's documented choice).
// - Hand-over is batched per worker: a worker's packets are enqueued once a
//   ring burst (kBurst) of them has gathered, or after kStageBursts bursts,
//   or at once when process_burst() gets a partial burst (the input queue ran
//   dry), and always by the next expire() or flush(). Each rte_ring operation
//   moves cache lines between cores, so one per worker per input burst
//   dominated the cost; order and pinning are unchanged (positions are
//   assigned when a packet is staged, and staged packets count as backlog).
// - Every packet handed over carries a FlowMeta (an mbuf dynamic field): the
//   flow slot, its uid, a per-flow sequence number and its migration epoch,
//   so workers can prove order and pinning (OrderChecker). The check itself
//   is a test instrument that costs a random memory access per packet: it
//   runs only when ClassifierConfig::check_order asks for it (tests,
//   benchmarks, `tap --check-order`), never by default.
// - A flow moves to another worker (--migrate) only when none of its packets
//   is in flight on its current worker: its last packet's ring position is at
//   or below the worker's published completion count. Order is thus kept.
//   It moves only off a hot worker, within the move budget, and not again
//   within BalancerTuning::min_dwell_ns of its last move (balancer.h).
// - Per-flow state and end-of-flow notices (optional: ClassifierConfig::
//   flow_state_pool). Each new flow takes one object from the pool (a pool
//   that runs dry is counted, flow_states_exhausted, and that flow gets
//   none); every packet carries it (flow_state(), a second mbuf dynamic
//   field: the mbuf's dynamic area is 36 bytes and net_pcap's timestamp
//   takes 8 of them, so FlowMeta stays 16). When the flow ends,
//   for any reason, its worker gets a notice through the same ring, after
//   the flow's last packet: per-flow order is the ring's order, and a notice
//   is never dropped (a ring too full for it keeps it, and the next
//   hand-over retries; at most one notice per pool object, so that backlog
//   is bounded by the pool). The worker owns the object from then on and
//   returns it to the pool. Notices travel as tagged pointers (is_notice()).
// - Shards (tap --rx-shards, docs/classifier.md "Shards"): several
//   classifiers, each on its own lcore with its own flow table and its own
//   rings to the same logical workers. share_load_with() lets each one's
//   balancer see the workers' whole load: the backlog on the other shards'
//   rings (rte_ring_count, two lock-free loads per ring) and the busy cycles
//   their WorkerPorts publish, read once per burst at the refresh, no lock.
//   The dispatch rate (migration's hysteresis signal) stays per shard: it
//   is the classifier's own count, and a shard can only move its own flows.
// - Nothing on the data path allocates or throws.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include <rte_cycles.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "millipede/flow/balancer.h"
#include "millipede/flow/flow_table.h"
#include "millipede/net/parse.h"

namespace millipede::flow {

inline constexpr unsigned kBurst = 32;
inline constexpr unsigned kStageBursts = 8; // longest a staged packet waits, in input bursts

// FlowMeta::flags
enum FlowMetaFlags : uint8_t {
    kMetaUnjoinedFragment = 0x01, // an address-pair flow of fragments whose first fragment was not seen
    kMetaLaterFragment = 0x02,    // a non-first IP fragment (no L4 header)
};

// Stamped into each mbuf handed to a worker.
struct FlowMeta {
    uint32_t slot;
    uint32_t uid;
    uint32_t seq;
    uint16_t epoch;    // the flow's migration count when stamped
    uint8_t direction; // Direction
    uint8_t flags;     // FlowMetaFlags
};
static_assert(sizeof(FlowMeta) == 16);

// End-of-flow notices share the worker rings with mbufs: a pool object's
// address (aligned to at least 16) with bit 0 set and the reason above it.
inline bool is_notice(const void *entry) { return reinterpret_cast<uintptr_t>(entry) & 1u; }

// Registers the mbuf dynamic field (after rte_eal_init, before any use).
// Returns false with a message on failure.
bool register_flow_meta(std::string &err);
extern int g_flow_meta_offset;
inline FlowMeta *flow_meta(rte_mbuf *m) { return RTE_MBUF_DYNFIELD(m, g_flow_meta_offset, FlowMeta *); }

// The flow's state object (ClassifierConfig::flow_state_pool), stamped only
// when a pool is configured (the field is registered then).
bool register_flow_state(std::string &err);
extern int g_flow_state_offset;
inline void *flow_state(rte_mbuf *m) { return *RTE_MBUF_DYNFIELD(m, g_flow_state_offset, void **); }

// Figures a worker publishes for the classifier (written only by its worker).
struct alignas(64) WorkerShared {
    std::atomic<uint64_t> completed{0};   // packets fully processed, in ring order
    std::atomic<uint64_t> busy_cycles{0}; // TSC cycles spent on packets
};

// Worker-side correctness counters (each worker owns one; readers sum).
struct alignas(64) WorkerCounters {
    uint64_t packets = 0;
    uint64_t bursts = 0;
    uint64_t order_inversions = 0; // a packet whose flow sequence did not increase
    uint64_t split_flows = 0;      // flows whose two directions reached different workers
    uint64_t unrecorded_moves = 0; // flows seen on two workers without a recorded migration
    uint64_t stale_packets = 0;    // packets of a flow generation already superseded in its slot
    // TSC cycles and packets of the bursts that took under kLongBurstUs:
    // on a shared machine a burst the scheduler interrupted adds
    // milliseconds, so these give the per-packet cost that benchmarks
    // compare (WorkerShared::busy_cycles keeps every cycle).
    uint64_t short_burst_cycles = 0;
    uint64_t short_burst_packets = 0;

    // Readers sum per-worker (and per-shard) copies.
    WorkerCounters &operator+=(const WorkerCounters &o) {
        packets += o.packets;
        bursts += o.bursts;
        order_inversions += o.order_inversions;
        split_flows += o.split_flows;
        unrecorded_moves += o.unrecorded_moves;
        stale_packets += o.stale_packets;
        short_burst_cycles += o.short_burst_cycles;
        short_burst_packets += o.short_burst_packets;
        return *this;
    }
};
// A worker burst (at most kBurst packets) that takes longer was descheduled.
inline constexpr unsigned kLongBurstUs = 200;

// Per-flow-slot state shared by the workers to check order and pinning. A
// slot is only written by the worker that currently owns its flow; the
// happens-before chain (worker publishes completion, classifier reads it
// before migrating, ring hands over) makes the hand-off clean. Relaxed
// atomics keep an actual violation well-defined so that it can be counted.
class OrderChecker {
public:
    explicit OrderChecker(uint32_t slots, int socket_id);
    ~OrderChecker();
    void leave_memory_to_eal_cleanup() { slots_ = nullptr; } // as FlowTable's
    OrderChecker(const OrderChecker &) = delete;
    OrderChecker &operator=(const OrderChecker &) = delete;
    bool ready() const { return slots_ != nullptr; } // false: the slots could not be allocated
    void check(unsigned worker, const FlowMeta &m, WorkerCounters &c);
    // Starts fetching the slot check() will read for `m`.
    void prefetch(const FlowMeta &m) const {
        if (slots_ && m.slot < count_) rte_prefetch0(&slots_[m.slot]);
    }

private:
    struct Slot {
        std::atomic<uint32_t> uid;
        std::atomic<uint32_t> last_seq;
        std::atomic<uint16_t> epoch;
        std::atomic<uint8_t> owner;
        std::atomic<uint8_t> flags;
        std::atomic<uint8_t> dir_owner[2];
        uint8_t pad_[2];
    };
    static_assert(sizeof(Slot) == 16);
    Slot *slots_;
    uint32_t count_;
};

#define MILLIPEDE_CLASSIFIER_DROPS(X)                                                                              \
    X(TableFull, "table_full", "no flow slot even after evicting the oldest flow")                                 \
    X(RingFull, "ring_full", "the worker's ring was full (see per-worker drops)")

enum class ClassifierDrop : uint8_t {
#define X(sym, name, desc) sym,
    MILLIPEDE_CLASSIFIER_DROPS(X)
#undef X
        Count_
};
inline constexpr unsigned kClassifierDropCount = static_cast<unsigned>(ClassifierDrop::Count_);
const char *classifier_drop_name(ClassifierDrop d);

struct alignas(64) ClassifierStats {
    uint64_t packets = 0; // everything offered to process_burst
    uint64_t bursts = 0;
    uint64_t rejects[net::kRejectCount] = {};
    uint64_t drops[kClassifierDropCount] = {};
    uint64_t migrations = 0;
    uint64_t fragments_joined = 0;   // non-first fragments joined to their first fragment's flow
    uint64_t fragments_unjoined = 0; // non-first fragments whose first fragment was not seen
    uint64_t dispatch_cycles = 0;    // TSC cycles inside process_burst
    uint64_t flow_states_exhausted = 0; // new flows that got no state object (pool empty)
    uint64_t notices = 0;               // end-of-flow notices staged for workers
    uint64_t notices_deferred = 0;      // notices a full ring made wait for a later hand-over

    // Readers sum the shards' copies.
    ClassifierStats &operator+=(const ClassifierStats &o) {
        packets += o.packets;
        bursts += o.bursts;
        for (unsigned i = 0; i < net::kRejectCount; ++i) rejects[i] += o.rejects[i];
        for (unsigned i = 0; i < kClassifierDropCount; ++i) drops[i] += o.drops[i];
        migrations += o.migrations;
        fragments_joined += o.fragments_joined;
        fragments_unjoined += o.fragments_unjoined;
        dispatch_cycles += o.dispatch_cycles;
        flow_states_exhausted += o.flow_states_exhausted;
        notices += o.notices;
        notices_deferred += o.notices_deferred;
        return *this;
    }
};

using ReleaseFn = void (*)(rte_mbuf **pkts, unsigned n);

struct ClassifierConfig {
    unsigned workers = 1;
    Policy policy = Policy::Busy;
    bool migrate = false;
    unsigned ring_size = 4096; // per worker, power of two
    FlowTableConfig table;
    BalancerTuning tuning;
    // Releases dropped/rejected mbufs. Default rte_pktmbuf_free_bulk; the
    // benchmark replays a static trace and passes a no-op.
    ReleaseFn release = nullptr;
    uint64_t tsc_hz = 0; // for busy-share averaging; 0 = rte_get_tsc_hz()
    // Per-flow state objects and end notices (see the contract); null = off.
    // Objects must be aligned to 16 bytes (mempool objects are cache-aligned).
    rte_mempool *flow_state_pool = nullptr;
    // Workers check every packet's order and pinning (OrderChecker, counted
    // in WorkerCounters). Off: the counters stay 0 and mean nothing.
    bool check_order = false;
};

class Classifier {
public:
    static std::unique_ptr<Classifier> create(const ClassifierConfig &cfg, FlowEndSink *sink, std::string &err);
    ~Classifier();
    // As FlowTable's, for its table, rings and per-flow arrays.
    void leave_memory_to_eal_cleanup();
    Classifier(const Classifier &) = delete;
    Classifier &operator=(const Classifier &) = delete;

    // Classifies and hands over up to kBurst packets. `now_ns` drives flow
    // timestamps and expiry (the capture's time when replaying a file).
    void process_burst(rte_mbuf **pkts, unsigned n, uint64_t now_ns);

    // Ends flows idle past their timeouts (bounded work per call).
    // Also hands over every staged packet.
    void expire(uint64_t now_ns, unsigned budget = 64) {
        flush_staged();
        table_->expire(now_ns, budget);
    }

    // Hands every staged packet to its worker now: call when the input
    // goes quiet so no packet waits for the next burst.
    void flush_staged() {
        for (unsigned w = 0; w < cfg_.workers; ++w)
            if (staged_[w] || !pending_[w].empty()) hand_over(w);
    }
    // End of input: hands over staged packets, ends every flow (their
    // notices are staged and handed over too, as far as the rings take them).
    void flush() {
        flush_staged();
        table_->flush(FlowEndReason::EndOfInput);
        flush_staged();
    }
    // True when nothing is staged and no notice waits for ring room. At the
    // end of input, call flush_staged() until this holds while workers drain.
    bool all_handed_over() const {
        for (unsigned w = 0; w < cfg_.workers; ++w)
            if (staged_[w] || !pending_[w].empty()) return false;
        return true;
    }

    unsigned workers() const { return cfg_.workers; }
    rte_ring *worker_ring(unsigned w) const { return rings_[w]; }
    WorkerShared &worker_shared(unsigned w) { return shared_[w]; }
    OrderChecker *checker() { return checker_.get(); } // null unless check_order
    bool checks_order() const { return checker_ != nullptr; }
    FlowTable &table() { return *table_; }
    const ClassifierStats &stats() const { return stats_; }
    uint64_t dispatched(unsigned w) const { return dispatched_[w]; }
    uint64_t ring_drops(unsigned w) const { return ring_drops_[w]; }
    const Balancer &balancer() const { return balancer_; }
    float busy_share(unsigned w) const { return loads_[w].busy_share; }

    // Shards: the other classifiers feeding the same workers (same worker
    // count). Set once on the main lcore before any process_burst(); the
    // peers must outlive this classifier's use. Their rings and published
    // busy cycles count in this balancer's view of each worker (contract).
    bool share_load_with(std::vector<const Classifier *> peers, std::string &err);
    // A worker's busy cycles as published by its WorkerPort on this shard.
    uint64_t busy_cycles(unsigned w) const { return shared_[w].busy_cycles.load(std::memory_order_relaxed); }

private:
    // Between the flow table and the user's sink: stages end notices.
    class EndRelay : public FlowEndSink {
    public:
        Classifier *c = nullptr;
        FlowEndSink *user = nullptr;
        void on_flow_end(const FlowKey &key, const FlowEntry &entry, FlowEndReason why) override;
    };

    Classifier(const ClassifierConfig &cfg);
    void stage(unsigned w, void *entry);
    void refresh_loads(uint64_t tsc);
    void hand_over(unsigned w);
    bool resolve_fragment(const net::PacketInfo &p, FlowKey &key);
    net::Reject parse_chained(rte_mbuf *m, net::PacketInfo &p);
    void remember_fragment(const net::PacketInfo &p, const FlowKey &key);

    ClassifierConfig cfg_;
    std::unique_ptr<FlowTable> table_;
    std::unique_ptr<OrderChecker> checker_;
    Balancer balancer_;
    std::vector<rte_ring *> rings_;
    WorkerShared *shared_ = nullptr; // cache-aligned array, one per worker
    std::vector<uint64_t> enqueued_;   // ring positions handed over per worker
    std::vector<uint64_t> dispatched_; // packets offered per worker (incl. ring drops)
    std::vector<uint64_t> ring_drops_;
    std::vector<uint64_t> done_; // completion counts as read at the burst's refresh
    // Per worker: packets staged for the next enqueue (see the contract).
    std::vector<rte_mbuf *> stage_; // kStage slots per worker
    std::vector<uint32_t> staged_;
    std::vector<uint64_t> staged_since_; // burst number of the oldest staged packet
    static constexpr unsigned kStage = 2 * kBurst;
    std::vector<WorkerLoad> loads_;
    std::vector<const Classifier *> peers_; // shards feeding the same workers (share_load_with)
    std::vector<uint64_t> last_busy_;
    std::vector<uint64_t> last_dispatched_; // dispatched_ at the last rate sample

    // Minimum dwell (BalancerTuning::min_dwell_ns): per slot, when its flow
    // last moved, in units of 2^20 ns (about 1 ms; a shift, no division),
    // 0 = never moved. Read only for a flow that is about to move.
    static constexpr unsigned kMoveStampShift = 20;
    static uint32_t move_stamp(uint64_t now_ns) {
        auto t = static_cast<uint32_t>(now_ns >> kMoveStampShift);
        return t ? t : 1;
    }
    bool dwelled(uint32_t slot, uint64_t now_ns) const {
        uint32_t at = moved_at_[slot];
        return at == 0 || move_stamp(now_ns) - at >= dwell_units_;
    }
    uint32_t *moved_at_ = nullptr; // allocated when migrate is on
    uint32_t dwell_units_ = 0;
    uint64_t last_refresh_tsc_ = 0;
    static constexpr uint64_t kRateIntervalNs = 100'000; // busy share and rate samples: every 100 us
    uint64_t refresh_interval_tsc_ = 0;
    ClassifierStats stats_;

    // Non-first fragments carry no ports: a small direct-mapped cache from
    // (addresses, protocol, fragment id) to the key of the first fragment.
    struct FragmentSlot {
        uint8_t src[16], dst[16];
        uint32_t id;
        uint8_t proto;
        bool used;
        FlowKey key;
    };
    std::vector<FragmentSlot> fragments_;

    EndRelay relay_;
    void **state_ = nullptr;                  // per slot: the flow's state object (flow_state_pool)
    std::vector<std::vector<void *>> pending_; // per worker: notices waiting for ring room
    std::vector<uint8_t> header_scratch_;      // kMaxHeaderBytes: headers of a chained frame
};

// The worker side of one ring. Not thread-safe: one per worker lcore.
class WorkerPort {
public:
    WorkerPort(Classifier &c, unsigned id)
        : checker_(c.checker()), id_(id), ring_(c.worker_ring(id)), shared_(c.worker_shared(id)),
          long_burst_(rte_get_tsc_hz() / 1'000'000 * kLongBurstUs) {}

    // Dequeues a burst, checks order and pinning (if the classifier was
    // configured to), calls on_packet(mbuf, meta)
    // for each packet and on_notice(state, reason) for each end-of-flow
    // notice, in ring order, then publishes completion (ring entries, notices
    // included) and busy cycles. on_packet owns the mbuf (frees or forwards
    // it); on_notice owns the state object. Returns ring entries done.
    template <class OnPacket, class OnNotice> unsigned poll(OnPacket &&on_packet, OnNotice &&on_notice) {
        void *ents[kBurst];
        unsigned n = rte_ring_sc_dequeue_burst(ring_, ents, kBurst, nullptr);
        if (n == 0) return 0;
        uint64_t t0 = rte_rdtsc();
        // The metadata lines were just written on the classifier's core and
        // the checker's slots are random: start every miss before the first
        // is needed.
        for (unsigned i = 0; i < n; ++i)
            if (!is_notice(ents[i])) rte_prefetch0(flow_meta(static_cast<rte_mbuf *>(ents[i])));
        if (checker_)
            for (unsigned i = 0; i < n; ++i)
                if (!is_notice(ents[i])) checker_->prefetch(*flow_meta(static_cast<rte_mbuf *>(ents[i])));
        unsigned packets = 0;
        for (unsigned i = 0; i < n; ++i) {
            if (is_notice(ents[i])) {
                auto v = reinterpret_cast<uintptr_t>(ents[i]);
                on_notice(reinterpret_cast<void *>(v & ~uintptr_t(15)), static_cast<FlowEndReason>((v >> 1) & 7));
                continue;
            }
            auto *m = static_cast<rte_mbuf *>(ents[i]);
            if (i + 1 < n && !is_notice(ents[i + 1]))
                rte_prefetch0(rte_pktmbuf_mtod(static_cast<rte_mbuf *>(ents[i + 1]), void *));
            FlowMeta &meta = *flow_meta(m);
            if (checker_) checker_->check(id_, meta, counters);
            on_packet(m, meta);
            ++packets;
        }
        counters.packets += packets;
        ++counters.bursts;
        const uint64_t took = rte_rdtsc() - t0;
        if (took < long_burst_) {
            counters.short_burst_cycles += took;
            counters.short_burst_packets += packets;
        }
        shared_.busy_cycles.fetch_add(took, std::memory_order_relaxed);
        // Release: the checker's writes happen-before the classifier sees
        // this completion and may migrate one of these flows.
        shared_.completed.fetch_add(n, std::memory_order_release);
        return n;
    }
    // Without per-flow state there are no notices.
    template <class OnPacket> unsigned poll(OnPacket &&on_packet) {
        return poll(on_packet, [](void *, FlowEndReason) {});
    }

    unsigned id() const { return id_; }
    WorkerCounters counters;

private:
    OrderChecker *checker_; // null: no checks (ClassifierConfig::check_order)
    unsigned id_;
    rte_ring *ring_;
    WorkerShared &shared_;
    uint64_t long_burst_; // kLongBurstUs in TSC cycles
};

} // namespace millipede::flow

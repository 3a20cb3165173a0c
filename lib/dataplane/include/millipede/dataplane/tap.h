// The tap data plane: the DPI tap's lcore pipeline (docs/tap.md).
//
//   ports (RX queue s) and capture files (mmap reader, capture_source.h)
//       -> [rx lcore: shard s = lib/flow classifier s and its flow table]
//       -> one SP/SC ring per shard per logical worker
//       -> [worker lcores: TapWorkerHandler::on_packet / on_notice, in ring order]
//
// Shards (TapConfig::rx_shards, tap --rx-shards; docs/tap.md): S RX queues
// per port, spread by a symmetric flow hash (the port's RSS with the
// symmetric key, or net_af_packet's kernel fanout hash), so both directions
// of a flow reach one queue and so one shard; each shard has its own
// classifier, flow table (--flow-capacity / S flows) and rings, and its
// balancer sees the workers' load on every shard (Classifier::
// share_load_with). A flow lives on one shard from start to end; its
// packets and its notice reach its worker through that shard's ring. One
// shard (the default) is the plane as it was: RX queue 0, one classifier.
//
// The lcore roles: tap_layout.h (one lcore does everything; two: control |
// rx + every worker; more: control | rx lcores (min(S, lcores - 2)) |
// worker lcores), the logical workers (--workers, may exceed the lcores)
// spread round-robin over the worker lcores. What the workers do with a packet is the application's
// (tap: nDPI and flow records, app/tap_worker.h): the plane owns the loops,
// the rings, the flow table and the inputs.
//
// Contract
// - open(): after rte_eal_init(), on the main lcore. Starts the ports, maps
//   the capture files and makes their pools, or fails with one line and an
//   exit status (2: nothing to read, or shards the inputs cannot spread: a
//   capture file, a net_pcap port, a port with fewer RX queues than shards,
//   or without RSS unless its spreading is symmetric by construction,
//   net_af_packet; 1: any other failure).
// - start_pipeline(): on the main lcore after open(), before run(): makes
//   the classifier and the rings. One handler per logical worker (workers());
//   the handlers must outlive run().
// - run(): launches the lcores and runs the control loop on the main lcore
//   (calls `stats_due` there at every --stats-interval and on a stats
//   request); returns once every lcore has stopped: at the end of the input
//   (capture files; --exit-on-idle), after --duration, or when *stop became
//   true. Every flow still open then ends with "end-of-input", and every
//   notice has reached its worker's handler. Returns 0, or 1 when a capture
//   file was cut short (its line is on stderr; what it held was processed).
// - TapWorkerHandler: on_packet/on_notice are called only from the lcore
//   that polls that logical worker, never concurrently for one handler.
//   on_packet owns the mbuf (must free it); on_notice owns the state object
//   (ClassifierConfig::flow_state_pool's, returns it to the pool).
// - The accessors (classifier(), worker_counters(), ...) read counters with
//   one writer each (the rx lcore, a worker lcore) without locks: from any
//   thread, figures may lag by a burst.
// - Paced replay (TapConfig::replay_pps, tap --replay-pps): the rx lcore
//   offers the inputs' packets at that rate, as a generator on the wire
//   would: every input must be a capture (the mmap reader, which then loops
//   its file, or net_pcap ports, e.g. infinite_rx=1), and a capture file is
//   then read like a port: what a full worker ring cannot take is dropped
//   and counted, nothing waits. The budget is the TSC: by time t since the
//   rx loop began, N x t packets are due; they are read in bursts of up to
//   kBurst (smaller below 320,000 pps, so a burst comes at least every
//   100 us), round-robin over the inputs. Due packets beyond kReplayQueue
//   (the rx lcore was late, e.g. descheduled) are counted as missed, as a
//   NIC's full receive ring would; a short read (a finite capture at its
//   end, the reader's pool empty) as unavailable. The rx lcore never sleeps
//   while pacing (it spins, as with busy_poll), and record times are the
//   arrival times, not the capture's (a loop would repeat them).
// - Nothing on the data path allocates, blocks or throws. A port's packets
//   a full worker ring cannot take are dropped and counted (a mirror port
//   cannot wait); a capture file is read only while every worker ring has
//   room for what one step may hand over (a file can wait), so replaying a
//   file loses nothing however slow the workers are (unless paced: above).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "millipede/dataplane/poll_gaps.h"
#include "millipede/flow/classifier.h"

struct rte_mbuf;
struct rte_mempool;

namespace millipede::dataplane {

// What a logical worker does with its packets (see the contract).
class TapWorkerHandler {
  public:
    virtual ~TapWorkerHandler() = default;
    // `arrival_ns`: Unix time of the poll (for inputs without capture times).
    // `shard`: the classifier shard (RX queue) the packet's flow lives on.
    virtual void on_packet(rte_mbuf *m, const flow::FlowMeta &meta, uint64_t arrival_ns, unsigned shard) = 0;
    virtual void on_notice(void *state, flow::FlowEndReason why) = 0;
};

struct TapConfig {
    flow::ClassifierConfig cls;          // policy, ring size, table; workers: see workers_given
    bool workers_given = false;          // else one logical worker per worker lcore
    std::vector<uint16_t> ports;         // --port (empty: every port)
    std::vector<std::string> captures;   // regular pcap files for the mmap reader
    uint64_t exit_on_idle_ms = UINT64_MAX; // UINT64_MAX: 300 ms when every port is net_pcap, else never
    uint64_t duration_ns = 0;
    uint64_t stats_interval_ns = 0;
    unsigned mbufs = 0;                  // per input pool; 0: 8191 + shards x workers x ring size
    bool busy_poll = false;              // idle lcores spin instead of backing off
    uint64_t replay_pps = 0;             // 0: read as fast as the inputs give (see the contract)
    unsigned rx_shards = 1;              // RX queues per port, each with its own classifier (see the contract)
    // Set by signal handlers (may be set before open()); the control loop
    // reads *stop and clears *stats_request when it prints.
    std::atomic<bool> *stop = nullptr;
    std::atomic<bool> *stats_request = nullptr;
};

// What a paced replay offered (TapPlane::replay()); all 0 without one.
struct ReplayFigures {
    uint64_t pps = 0;         // the rate asked for
    double seconds = 0;       // from the rx loop's start to its stop
    uint64_t received = 0;    // packets read from the inputs
    uint64_t missed = 0;      // due while the rx lcore was late by more than kReplayQueue
    uint64_t unavailable = 0; // due, but the inputs had none to give
    uint64_t passes = 0;      // walks over the capture files (1 + loops), summed
    uint64_t offered() const { return received + missed; }
};
inline constexpr unsigned kReplayQueue = 1024; // a NIC receive ring's depth (testpmd's default)

class TapPlane {
  public:
    static std::unique_ptr<TapPlane> open(const TapConfig &cfg, std::string &err, int &status);
    ~TapPlane();
    TapPlane(const TapPlane &) = delete;
    // The destructor then stops and closes everything as before but leaves
    // the pools, rings and flow tables to rte_eal_cleanup() (see
    // flow::FlowTable::leave_memory_to_eal_cleanup): for a process that
    // calls it right after.
    void leave_memory_to_eal_cleanup();
    TapPlane &operator=(const TapPlane &) = delete;

    int socket() const;          // NUMA socket of the first input: where per-flow state should live
    unsigned shards() const;     // classifier shards (RX queues per port)
    bool capture_times() const;  // every input is a capture: mbufs carry its times (Rx timestamp field)
    unsigned workers() const;    // logical workers
    std::string lcore_roles() const; // "lcore 0: control; lcore 1: rx+worker 0"

    // `flow_state_pool` may be null (no per-flow state, no notices).
    bool start_pipeline(rte_mempool *flow_state_pool, std::vector<TapWorkerHandler *> handlers, std::string &err);
    int run(const std::function<void()> &stats_due);

    // Figures (see the contract): per shard, or summed over the shards.
    flow::Classifier &classifier(unsigned shard = 0);
    flow::ClassifierStats classifier_stats() const;  // summed
    flow::FlowTableStats table_stats() const;        // summed
    uint32_t flows_active() const;                   // summed
    PollGaps::Figures rx_gaps() const;               // the rx lcores' unpolled spells (poll_gaps.h)
    uint64_t dispatched(unsigned w) const;           // to worker w, summed
    uint64_t ring_drops(unsigned w) const;           // summed
    uint64_t busy_cycles(unsigned w) const;          // worker w's, on every shard's rings
    float busy_share(unsigned w) const;              // as the balancers see it (every shard's rings)
    flow::WorkerCounters worker_counters(unsigned w) const; // summed over w's rings
    uint64_t start_tsc() const;
    double seconds() const; // of run(), so far or in all
    uint64_t capture_packets() const; // packets the mmap reader handed out
    ReplayFigures replay() const;     // after run(); pps 0 without --replay-pps

    struct Impl;

  private:
    explicit TapPlane(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace millipede::dataplane

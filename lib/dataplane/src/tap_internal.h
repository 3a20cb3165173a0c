// The tap plane's state, shared by its parts (tap_setup.cpp, tap_run.cpp).
// Not part of the public contract. Who touches what:
//   cls[s], captures, pacer                       the rx lcore of shard s (captures and
//                                                 paced replay: shard 0, the only one)
//   worker_ports[s][w], handlers[w]               the lcore that polls logical worker w
//   rx_gaps[slot]                                 written by the rx lcore in that slot,
//                                                 read by any (PollGaps' contract)
//   input_done, shards_done, classifier_done,
//   last_rx_tsc                                   any (atomics)
//   everything else                               the main lcore, during set-up and teardown
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>

#include "millipede/dataplane/capture_source.h"
#include "millipede/dataplane/lcores.h"
#include "millipede/dataplane/poll_gaps.h"
#include "millipede/dataplane/tap.h"
#include "millipede/dataplane/tap_layout.h"
#include "millipede/flow/classifier.h"
#include "done_signal.h"

struct rte_mempool;

namespace millipede::dataplane {

struct TapPlane::Impl {
    TapConfig cfg;
    TapLayout layout; // lcore roles, shards and logical workers per lcore (tap_layout.h)
    std::vector<uint16_t> ports;              // started
    std::vector<std::unique_ptr<CaptureSource>> captures;
    bool capture_times = false; // every input is a capture file or a net_pcap port
    bool pcap_ports = false;    // there are ports and every one is net_pcap
    int socket = 0;
    rte_mempool *port_pool = nullptr;
    bool free_memory = true; // false: teardown leaves EAL memory to rte_eal_cleanup()
    std::vector<std::unique_ptr<flow::Classifier>> cls;                       // per shard
    std::vector<std::vector<std::unique_ptr<flow::WorkerPort>>> worker_ports; // [shard][logical worker]
    std::vector<TapWorkerHandler *> handlers;                    // per logical worker
    uint64_t tsc_hz = 0, start_tsc = 0, end_tsc = 0;
    uint64_t epoch_ns_at_start = 0;
    uint64_t exit_on_idle_tsc = 0; // 0: never
    std::vector<uint64_t> rx_iter; // per shard (its rx lcore)
    unsigned room_needed = 0;      // free entries every worker ring needs before a capture is read
    std::atomic<uint64_t> last_rx_tsc{0};
    std::unique_ptr<PollGaps[]> rx_gaps; // per lcore slot; only rx lcores note gaps
    // Paced replay (cfg.replay_pps; rx lcore, read by the main lcore after run()).
    struct Pacer {
        double per_tsc = 0;         // packets due per TSC cycle
        unsigned burst = 0;         // packets per paced read
        uint64_t start_tsc = 0, stop_tsc = 0;
        uint64_t consumed = 0;      // due packets accounted for: received + missed + unavailable
        uint64_t received = 0, missed = 0, unavailable = 0;
        unsigned next_input = 0;    // round-robin over ports, then captures
        bool dry = false;           // the last due read got nothing
    } pacer;
    std::atomic<bool> input_done{false};      // no more input: the rx lcore ends every flow
    std::atomic<unsigned> shards_done{0};     // shards whose packets and notices are all in the rings
    // Every shard's input is in the rings: the workers drain and stop. The
    // main lcore, when it only controls, sleeps on it between its 10 ms
    // duties and wakes at once when it is set (a file's run is tens of ms).
    DoneSignal classifier_done;
    int status = 0;

    std::vector<std::vector<uint8_t>> rss_keys; // symmetric keys given to ports (PMDs may read them again at start)

    // set-up (tap_setup.cpp)
    bool open_inputs(std::string &err, int &status);
    bool set_symmetric_rss(uint16_t port, std::string &err);
    bool make_pipeline(rte_mempool *flow_state_pool, std::vector<TapWorkerHandler *> hs, std::string &err);
    void teardown();

    // run (tap_run.cpp)
    uint64_t now_ns() const { // since the run's start: the classifier's clock for idle expiry
        return static_cast<uint64_t>(static_cast<double>(rte_rdtsc() - start_tsc) * 1e9 /
                                     static_cast<double>(tsc_hz));
    }
    uint64_t arrival_ns() const { // Unix time, for records of inputs without capture times
        return epoch_ns_at_start + now_ns();
    }
    bool stop_requested() const;
    bool captures_have_room() const;
    unsigned rx_step(unsigned shard);
    unsigned paced_rx_step(bool &waiting);
    unsigned workers_step(const std::vector<unsigned> &mine);
    bool rings_empty(const std::vector<unsigned> &mine) const;
    template <class Work> void finish_input(const std::vector<unsigned> &shards, Work &&work);
    int lcore_main(unsigned slot, const std::function<void()> *stats_due);
};

} // namespace millipede::dataplane

// The tap worker: per-flow accounting and nDPI inspection of the packets the
// classifier pins to it, and one flow record per ended flow.
//
// Contract
// - One TapWorker per logical worker, called only from the lcore that polls
//   that worker's ring (on_packet / on_notice: the tap plane's worker loop,
//   lib/dataplane tap.h, through WorkerPort::poll).
//   Several logical workers may share an lcore; none is shared by lcores.
// - Per-flow state (TapFlow) lives in an rte_mempool the classifier draws
//   from when a flow starts; it travels with the flow's packets
//   (flow::flow_state()), so a migrated flow continues its inspection on the
//   new worker (the classifier's migration rule orders the hand-over). The
//   worker that receives the flow's end notice finishes the inspection,
//   pushes the record and returns the object to the pool.
// - IP bytes and TCP flags per direction (IPFIX and eve.json report them)
//   are tallied only when the record writer asks (RecordWriter::wants_l3()).
// - Nothing here allocates per packet; nDPI itself may, inside a flow
//   (host names, TLS buffers), and that is released at the flow's end.
// - A frame chained over several mbufs (longer than one: net_pcap, RX
//   scatter) is counted whole (pkt_len) and, when it must be parsed or
//   inspected, copied into this worker's scratch buffer so nDPI sees the
//   whole payload. nDPI takes at most 65,535 bytes from the IP header on
//   (its length is 16 bits, as in ndpiReader).
// - Counters are single-writer (this worker), read by the main lcore and
//   the telemetry thread with relaxed loads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "millipede/dataplane/tap.h"
#include "millipede/dpi/inspector.h"
#include "millipede/flow/classifier.h"
#include "tap_records.h"

namespace millipede::app {

// One flow's state, followed in the same pool object by nDPI's flow state.
struct alignas(64) TapFlow {
    uint8_t live; // 0 while in the pool (the object's initial state)
    uint8_t first_dir;
    uint8_t proto;
    uint8_t ip_version;
    uint8_t flags; // RecordFlags
    uint8_t shard; // the classifier shard the flow lives on (--rx-shards)
    uint16_t migrations;
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
    uint64_t first_ns, last_ns;
    uint64_t packets[2], bytes[2];
    L3Tally l3;
    dpi::Verdict verdict;
};
inline constexpr std::size_t kTapFlowHeader = (sizeof(TapFlow) + 63) & ~std::size_t(63);
inline void *ndpi_state(TapFlow *f) { return reinterpret_cast<unsigned char *>(f) + kTapFlowHeader; }

// Creates the pool of flow objects (header + nDPI state), each initialised
// to "not live". nullptr + message on failure.
rte_mempool *make_flow_pool(unsigned count, int socket_id, std::string &err);

// Per-worker figures: single writer, relaxed readers.
struct alignas(64) TapWorkerStats {
    std::atomic<uint64_t> packets{0};
    std::atomic<uint64_t> bytes{0};
    std::atomic<uint64_t> flows_started{0};
    std::atomic<uint64_t> flows_ended{0};
    std::atomic<uint64_t> dpi_packets{0};
    std::atomic<uint64_t> detected{0}; // flows nDPI named from their packets
    std::atomic<uint64_t> guessed{0};  // flows named by giveup's guess
    std::atomic<uint64_t> unknown{0};  // flows left Unknown
    std::atomic<uint64_t> records_dropped{0}; // the record ring was full
    std::atomic<uint64_t> no_state_packets{0}; // packets of flows that got no state object
    std::atomic<uint64_t> unseen_flows{0};     // ended flows none of whose packets reached a worker
    static void bump(std::atomic<uint64_t> &c, uint64_t by = 1) {
        c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }
};

struct TapClock {
    // Capture timestamps (net_pcap puts each packet's pcap time, in
    // microseconds, in the mbuf's Rx timestamp field) when every port is a
    // capture file; otherwise the arrival time, Unix epoch from the TSC.
    int ts_offset = -1;
    uint64_t ts_flag = 0;
    uint64_t ts_scale_ns = 1000;
    uint64_t epoch_ns_at_start = 0;
    uint64_t tsc_at_start = 0;
    double ns_per_tsc = 0;
    uint64_t now_ns() const {
        return epoch_ns_at_start + static_cast<uint64_t>(static_cast<double>(rte_rdtsc() - tsc_at_start) * ns_per_tsc);
    }
};

class TapWorker final : public dataplane::TapWorkerHandler {
public:
    // `engine` null: no inspection (--no-dpi). `writer` null: no records.
    // `sharded`: more than one classifier shard, records name theirs.
    TapWorker(unsigned id, rte_mempool *pool, std::unique_ptr<dpi::Engine> engine, RecordWriter *writer,
              const TapClock &clock, bool sharded = false)
        : id_(id), sharded_(sharded), pool_(pool), engine_(std::move(engine)), writer_(writer), clock_(clock),
          frame_scratch_(new uint8_t[kFrameScratch]) {}

    // The longest frame the parser can accept whole: two VLAN tags and an
    // IPv6 header with a full 65,535-byte payload; anything past that is
    // padding that no length field covers.
    static constexpr uint32_t kFrameScratch = 22 + 40 + 65535;

    void on_packet(rte_mbuf *m, const flow::FlowMeta &meta, uint64_t burst_ns, unsigned shard) override;
    void on_notice(void *state, flow::FlowEndReason why) override;

    unsigned id() const { return id_; }
    TapWorkerStats stats;

private:
    unsigned id_;
    bool sharded_;
    rte_mempool *pool_;
    std::unique_ptr<dpi::Engine> engine_;
    RecordWriter *writer_;
    const TapClock &clock_;
    std::unique_ptr<uint8_t[]> frame_scratch_; // a chained frame, made contiguous
};

} // namespace millipede::app

// What tx and rx show the user while a transfer runs: the progress line,
// the SIGUSR1 table and the rte_telemetry commands under /millipede/.
//
// Contract
// - The data lcore (the one owning the TCP session) fills a TransferSnapshot
//   every ~100 ms and hands it to StatsBoard::publish(), which never blocks:
//   when a reader holds the board, that snapshot is skipped and the next
//   one goes through. The snapshot is fixed-size, so publishing never
//   allocates.
// - Readers (the main lcore's control loop, the telemetry thread DPDK runs
//   for its socket) call StatsBoard::read() for a consistent copy.
// - print_table()/format_progress() are pure formatting of one snapshot.
// - register_transport_telemetry() registers /millipede/transfer,
//   /millipede/streams and /millipede/lcores for the board given; call it
//   from the main lcore, after rte_eal_init(), before the transfer starts.
//   DPDK 22.11 cannot unregister a command, and its telemetry thread answers
//   requests until the process exits (rte_eal_cleanup() included), so
//   teardown is: stop every lcore that publishes, clear_transport_telemetry(),
//   then free the board, then rte_eal_cleanup(). From the clear on every
//   command answers {"state": "not running"}. clear_transport_telemetry() returns only when
//   no telemetry callback reads the board any more.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace millipede::stats {

struct StreamRow {
    uint32_t leg = 0;
    bool accepted = false; // a leg the peer opened (rx, or duplex's receiving legs): "in", else "out"
    uint16_t port_id = 0;
    uint32_t local_ip = 0, remote_ip = 0; // IPv4, host order
    bool v6 = false;                      // then the addresses are these (network order)
    uint8_t local_ip6[16] = {}, remote_ip6[16] = {};
    uint16_t local_port = 0, remote_port = 0;
    const char *state = "";  // a static string (TCP state name)
    uint64_t bytes = 0;      // tx: payload bytes the peer acknowledged; rx: bytes received in order
    double rate_mbs = 0;     // over the last snapshot interval
    uint32_t cwnd = 0;       // bytes
    uint64_t srtt_us = 0;
    uint64_t retransmits = 0; // timeout + fast
};

struct LcoreRow {
    unsigned lcore = 0;
    const char *role = ""; // a static string
    double busy = 0;       // share of the last interval spent on work, 0..1
};

struct TransferSnapshot {
    static constexpr unsigned kMaxStreams = 64;
    static constexpr unsigned kMaxLcores = 32;
    bool valid = false;
    bool tx = false;
    bool duplex = false;      // tx and rx in one process: the figures are tx's, plus rx_bytes / rx_state
    bool final = false;
    uint64_t elapsed_us = 0;
    uint64_t bytes = 0;       // tx: stdin bytes taken; rx: bytes verified and handed to stdout
    uint64_t size = 0;        // expected total (--size), 0: unknown
    double rate_mbs = 0;      // over the last snapshot interval
    uint32_t legs_up = 0, legs = 0;
    uint64_t chunks_sent = 0, chunks_resent = 0, legs_lost = 0;
    uint64_t segments_in = 0, bad_segments = 0;
    uint64_t injected_drops = 0;
    // Payload bytes dpdk-millipede's own code copied (not the kernel's
    // read/write, not the PMD's), and attached by reference instead.
    uint64_t bytes_copied = 0, bytes_referenced = 0;
    uint64_t misdelivered = 0; // segments handed to a worker that does not own their connection
    const char *state = ""; // session state name
    uint64_t rx_bytes = 0;      // duplex: bytes verified and handed to stdout
    const char *rx_state = "";  // duplex: the receiving session's state name
    StreamRow streams[kMaxStreams];
    uint32_t nstreams = 0;
    LcoreRow lcores[kMaxLcores];
    uint32_t nlcores = 0;
};

class StatsBoard {
  public:
    void publish(const TransferSnapshot &s) {
        if (!m_.try_lock()) return;
        snap_ = s;
        m_.unlock();
    }
    TransferSnapshot read() const {
        std::lock_guard<std::mutex> g(m_);
        return snap_;
    }

  private:
    mutable std::mutex m_;
    TransferSnapshot snap_;
};

// "tx: 123.4 MB of 1073.7 MB, 231.0 MB/s, 0:05 elapsed, ETA 0:04, 4/4 legs"
std::string format_progress(const TransferSnapshot &s);

// The SIGUSR1 table: one line per stream and per lcore, with a header.
void print_table(FILE *f, const TransferSnapshot &s);

// 0 on success; otherwise a negative errno from rte_telemetry.
int register_transport_telemetry(StatsBoard *board);

// Detaches the commands from the board (see the contract above).
void clear_transport_telemetry();

} // namespace millipede::stats

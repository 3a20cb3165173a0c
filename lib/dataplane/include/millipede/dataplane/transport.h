// The tx/rx data plane: stdin -> chunks -> TCP-lite legs over DPDK ports ->
// stdout, in the design's shape (docs/architecture.md):
//
//   [pipe-in thread] -chunks-> [session: stripe core] -commands-> [workers: LegHost + TX queues] -> ports
//   ports -> [rx: parse, flow table, ARP/ICMP owner] -packets-> [workers] -reports-> [session] -> [pipe-out]
//
// Full duplex (TransportOptions::duplex) runs both stripe cores on the
// session lcore, over the same ports, flow table and workers.
//
// Share-nothing: a connection lives on one worker for its life (the flow
// table sends its segments there); the stripe core and the workers talk
// only through rings of fixed-size messages (lib/session messages.h). The
// roles collapse onto fewer lcores (lcores.h). Payload is not copied on tx
// (chunks read from stdin into hugepages travel as extbuf segments) and
// copied once on rx (from the received mbufs into the reorder window).
//
// Contract
// - create(): after rte_eal_init(), on the main lcore; sets up ports,
//   queues, pools, rings, the pipe thread and the session, or fails with one
//   line of text (no exception escapes).
// - run(): launches the lcores, runs the control loop on the main lcore and
//   returns the exit status (0: every byte delivered and verified -- full
//   duplex: in both directions; 1: a failure, whose one line is in
//   message(), naming the direction in duplex). Blocking pipe I/O happens
//   only on the pipe threads.
// - request_stop()/request_table() are async-signal-safe (atomics only).
// - The StatsBoard is filled by the session lcore every ~100 ms and read by
//   the control loop and rte_telemetry's thread.
#pragma once

#include <array>
#include <atomic>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "millipede/net/addr_parse.h"
#include "millipede/stats/transfer.h"
#include "millipede/stripe/queue_ahead.h"
#include "millipede/tcp/congestion.h"

namespace millipede::dataplane {

struct TxDestination {
    uint32_t addr = 0; // IPv4 host order
    uint16_t port = 0;
    bool v6 = false;   // tx HOST was an IPv6 literal: addr6 (network order)
    std::array<uint8_t, 16> addr6{};
};

struct TransportOptions {
    bool tx = false;                      // else rx
    // Full duplex (`rx PORT tx HOST PORT`): tx is true and listen_port set;
    // stdin goes out over the tx legs while what arrives on PORT goes to
    // stdout, on the same ports, lcores and workers.
    bool duplex = false;
    std::vector<TxDestination> dests;     // tx HOST PORT (preference order)
    uint16_t listen_port = 0;             // rx PORT
    uint32_t threads = 0;                 // TCP legs in total (0: 2 per destination)
    bool checksum = false;                // viamillipede's `checksum` (compat codec; native always has CRC32C)
    uint64_t chaos = 0;                   // every N chunks sent, abort the latest data leg (0: off)
    uint32_t parity = 0;                  // tx: parity chunks per stripe (docs/wire.md 2.21; 0: off)
    // --parity-queue-ahead auto|off|BYTES (stripe::SenderConfig::parity_queue_ahead)
    stripe::QueueAhead parity_queue_ahead = stripe::QueueAhead::AUTO;
    uint64_t parity_queue_ahead_bytes = 0; // FIXED
    unsigned verbose = 0;
    char checkphrase[4] = {'y', 'o', 'e', 's'};
    bool keyed = false;                   // key FILE: AES-256-GCM per chunk (docs/wire.md 2.22)
    std::array<uint8_t, 32> key{};        // the pre-shared key (when keyed)
    bool prbs = false;
    uint64_t prbs_seed = 0;
    uint64_t leglimit = 0;                // tx: send at most N chunks (0: no limit)
    std::vector<net::IpAssignment> ips;   // --ip
    std::vector<net::StaticNeighbour> neighs; // --neigh
    bool compat = false;                  // --compat viamillipede
    uint64_t size = 1ull << 30;           // --size: PRBS stream length (tx)
    bool size_given = false;
    uint32_t chunk_bytes = 1u << 20;      // --chunk
    int progress = -1;                    // -1: when stderr is a terminal
    uint64_t connect_timeout_us = 30'000'000; // tx: no leg up this long -> give up
    uint64_t stall_timeout_us = 60'000'000;   // no progress this long -> give up
    uint64_t wait_us = 0;                     // rx: no sender within this -> give up (0: wait forever)
    // Fault injection (tests and demos: the kernel peer has no netem here):
    // drop this share of TCP frames we receive / we transmit, in parts per
    // million, decided by a generator seeded with drop_seed (deterministic).
    uint32_t drop_rx_ppm = 0;
    uint32_t drop_tx_ppm = 0;
    uint64_t drop_seed = 1;
    uint16_t mtu = 0;                     // --mtu: set on every port (0: the ports' own)
    bool offload = true;                  // --no-offload: checksums in software even if the NIC could
    unsigned workers = 0;                 // --workers: worker lcores to use (0: every one the plan allows)
    bool busy_poll = false;               // --busy-poll: idle lcores spin instead of backing off
    bool big_segments = true;             // --no-big-segments: memif segments stay within the MTU
    bool verify_memif_checksums = false;  // --verify-memif-checksums: verify TCP checksums on memif too
    uint32_t memif_mss = 0;               // --memif-mss (0: the default, kMemifMss)
    bool charmode = false;                // tx: hand over whatever each read returned, at once
    uint64_t rate = 0;                    // tx: --rate BYTES/S, or delayus as a rate (0: unlimited)
    tcp::CongestionAlgo cc = tcp::CongestionAlgo::NewReno; // --cc: every leg's controller
    std::string config_path;              // --config: host file of port settings (millipede/port/configured.h)
    bool print_config = false;            // --print-config: print each port's settings once set up, then exit
    // `compress` (docs/wire.md 2.20): tx deflates each chunk (ISA-L level 1)
    // on compress_threads worker threads before striping; rx inflates on as
    // many (it always accepts compressed chunks in the native format).
    bool compress = false;
    uint32_t compress_threads = 1;        // --compress-threads: 1..16

    bool help = false;
    // `terminate PORT` / `initiate HOST PORT` (lib/tunnel, docs/wire.md
    // 2.23): the plane then reads input_fd and writes output_fd (the
    // tunnel's pipes, or with --compat one TCP connection) instead of
    // stdin and stdout. The plane itself only uses the two fds.
    uint16_t terminate_port = 0;          // 0: not given
    std::string initiate_host;            // empty: not given
    uint16_t initiate_port = 0;
    int input_fd = 0;
    int output_fd = 1;
    // `--terminate-on ports` (multiplexed tunnel, terminate end): the
    // workers accept the tunnel's connections on terminate_port of every
    // --ip address (TCP-lite, like the legs) and the plane hands each to
    // tunnel_adopt(ctx, fd) as one end of an AF_UNIX socketpair
    // (lib/tunnel TunnelBridge::adopt) instead of the host's kernel
    // accepting them.
    bool terminate_on_ports = false;
    void (*tunnel_adopt)(void *ctx, int fd) = nullptr;
    void *tunnel_adopt_ctx = nullptr;
    // The multiplexed tunnel (native format, full duplex): both streams
    // carry its records, announced with hello feature bit 5. Otherwise the
    // words take stock viamillipede's one-connection meaning.
    bool multiplexed_tunnel() const { return !compat && duplex && (terminate_port != 0 || !initiate_host.empty()); }
};

// Segments between two dpdk-millipede memif ends: as large as an IPv4
// datagram allows, as mbuf chains (memif carries chains; see docs/wire.md).
inline constexpr uint16_t kMemifMss = 65000;

class TransportPlane {
  public:
    static std::unique_ptr<TransportPlane> create(const TransportOptions &o, std::string &err);
    ~TransportPlane();
    TransportPlane(const TransportPlane &) = delete;
    // The destructor then stops and closes everything as before but leaves
    // the chunk buffers and mbuf pools to rte_eal_cleanup() (see
    // flow::FlowTable::leave_memory_to_eal_cleanup): for a process that
    // calls it right after.
    void leave_memory_to_eal_cleanup();
    TransportPlane &operator=(const TransportPlane &) = delete;

    int run();
    const std::string &message() const;
    stats::StatsBoard &board();

    // why: the outcome line instead of "interrupted" (a string that outlives
    // run(), e.g. the tunnel's message); nullptr from a signal handler.
    void request_stop(const char *why = nullptr);
    void request_table();

    struct Impl;

  private:
    explicit TransportPlane(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace millipede::dataplane

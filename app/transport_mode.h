// `tx` and `rx`: a pipe striped over many TCP connections on DPDK ports
// (viamillipede's job, kernel-bypass).
//
// Contract
// - parse_transport_args() is pure set-up code (no EAL): it turns the words
//   after `--` (starting with the mode word) into TransportOptions or one
//   line of error text. It never exits and never throws.
// - run_transport() parses, initialises EAL itself (so a bad argument is
//   reported before EAL prints anything), runs the transfer and cleans up.
//   Exit status: 0 only when every byte was delivered (tx: the receiver
//   verified length and digest; rx: the end record verified and stdout
//   flushed), 2 for bad usage, 1 for every other failure, each with one
//   line on stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "millipede/net/addr_parse.h"

namespace millipede::app {

struct TxDestination {
    uint32_t addr = 0; // host order
    uint16_t port = 0;
};

struct TransportOptions {
    bool tx = false;                      // else rx
    std::vector<TxDestination> dests;     // tx HOST PORT (preference order)
    uint16_t listen_port = 0;             // rx PORT
    uint32_t threads = 0;                 // TCP legs in total (0: 2 per destination)
    bool checksum = false;                // viamillipede's `checksums` (or `checksum`; compat codec; native always has CRC32C)
    uint64_t chaos = 0;                   // every N chunks sent, break the latest data leg (0: off; compat: FIN, else RST)
    unsigned verbose = 0;
    char checkphrase[4] = {'y', 'o', 'e', 's'};
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

    bool help = false;
};

// Returns an empty string on success, else one line (without the program name).
std::string parse_transport_args(int argc, char **argv, TransportOptions &o);

void transport_usage(FILE *f);

// argv[0] is the mode word ("tx" or "rx"); eal_argv[0] is the program name.
int run_transport(int argc, char **argv, int eal_argc, char **eal_argv);

} // namespace millipede::app

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

#include "millipede/dataplane/transport.h"
#include "millipede/net/addr_parse.h"

namespace millipede::app {

using dataplane::TransportOptions;
using dataplane::TxDestination;

// Returns an empty string on success, else one line (without the program name).
std::string parse_transport_args(int argc, char **argv, TransportOptions &o);

void transport_usage(FILE *f);

// terminate / initiate (docs/wire.md 2.23), after the words are parsed:
// "" or one line refusing the combination. A native full-duplex tunnel
// turns charmode on and, unless --stall-timeout was given, the stall
// timeout off (an idle tunnel makes no progress).
std::string check_tunnel_words(TransportOptions &o, bool stall_given);

// argv[0] is the mode word ("tx" or "rx"); eal_argv[0] is the program name.
int run_transport(int argc, char **argv, int eal_argc, char **eal_argv);

} // namespace millipede::app

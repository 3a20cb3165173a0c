// tap's capture files on the EAL command line: checked before EAL starts,
// and the regular pcap files the plane's memory-mapped reader takes over
// from DPDK's net_pcap (docs/tap.md, "Capture files").
//
// Contract: set-up code on the main thread before rte_eal_init; reads the
// files' first bytes, allocates, reports a bad file as one line.
#pragma once

#include <string>
#include <vector>

namespace millipede::app {

// net_pcap opens its rx_pcap files while EAL probes devices, and a missing
// one ends rte_eal_init with a probe message that does not name the file.
// So every net_pcap rx_pcap= file is checked first: missing, unreadable, or
// (for a regular file) not a pcap/pcapng capture. Returns the message, or
// empty. A FIFO is left alone (reading it would consume it).
std::string check_capture_files(int eal_argc, char **eal_argv);

// The EAL arguments without the `--vdev net_pcapN,rx_pcap=FILE` whose FILE
// is a regular pcap file and that has no other argument; those FILEs go to
// `files`. With `mmap_reader` false (--capture-reader net_pcap, or --port:
// removing a device renumbers the ports after it) the arguments as given.
std::vector<char *> take_pcap_files(int eal_argc, char **eal_argv, bool mmap_reader, std::vector<std::string> &files);

} // namespace millipede::app

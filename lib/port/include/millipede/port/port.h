// EAL and ethdev set-up: ports, queues, mempools, link state.
//
// Contract: called from the main lcore during set-up and shutdown only; not
// thread-safe. Every failure returns false with a one-line message in `err`
// naming the port and the DPDK error, so the application can exit cleanly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct rte_mempool;

namespace millipede::port {

struct PortConfig {
    uint16_t port_id = 0;
    uint16_t rx_queues = 1;
    uint16_t tx_queues = 1;
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    bool promiscuous = true; // a mirror port sees traffic for other MACs
    // Enable whatever IPv4/TCP checksum offload the device offers (see
    // checksum_offloads()); the caller then marks TX mbufs and trusts RX
    // ol_flags accordingly.
    bool checksum_offload = false;
    uint16_t mtu = 0; // 0: leave the device's MTU; else set it (jumbo frames need a pool to match)
    bool tx_multi_seg = false; // send chained mbufs (when the device offers it)
    bool rx_scatter = false;   // receive frames longer than one mbuf as chains (when offered)
    // false: configure and set up the queues only; start_device() later.
    // A memif zero-copy client registers its regions from EAL's interrupt
    // thread once started, calling rte_zmalloc inside rte_memseg_walk; an
    // rte_malloc on another thread at that moment can deadlock in DPDK 22.11
    // (memory lock against heap lock). Starting after the last allocation
    // of set-up avoids it.
    bool start = true;
};

// What a device can do, for the plans made before it starts (within the
// host configuration's rx_queues / tx_queues, when one is in use:
// configured.h).
struct DeviceCaps {
    std::string driver;           // e.g. "net_memif"
    uint16_t max_rx_queues = 1, max_tx_queues = 1;
    uint32_t max_rx_pktlen = 1518;
    bool tx_multi_seg = false;    // RTE_ETH_TX_OFFLOAD_MULTI_SEGS
    bool rx_scatter = false;      // RTE_ETH_RX_OFFLOAD_SCATTER
    bool tx_tso = false;          // RTE_ETH_TX_OFFLOAD_TCP_TSO
    bool rx_lro = false;          // RTE_ETH_RX_OFFLOAD_TCP_LRO
    bool rss = false;             // any RSS hash on IP
};
DeviceCaps device_caps(uint16_t port_id);

// The IPv4/TCP checksum offloads a device offers (and the host
// configuration, when one is in use, does not switch off: configured.h):
// start_port() enables these when PortConfig::checksum_offload is set.
struct ChecksumOffloads {
    bool rx_ipv4 = false, rx_tcp = false; // RX: ol_flags says GOOD/BAD
    bool tx_ipv4 = false, tx_tcp = false; // TX: the device fills the checksums
};
ChecksumOffloads checksum_offloads(uint16_t port_id);

// A mempool on the port's NUMA socket, sized for its descriptors plus
// `in_flight` mbufs held in rings and by workers.
// `data_room` 0: DPDK's default (2048 bytes + headroom); jumbo frames need
// frame length + headroom so a frame stays in one segment. `cache`: mbufs
// each lcore keeps (configured_pool() gives the configured one).
rte_mempool *make_pool(const std::string &name, uint32_t mbufs, int socket_id, std::string &err,
                       uint16_t data_room = 0, uint32_t cache = 256);

// Configures and starts one port with `pool` for every RX queue. With a host
// configuration in use (configured.h), its settings for the port are checked
// against the device and applied over `cfg` (the mode's MTU wins).
// cfg.start false: configures only (start_device() later).
bool start_port(const PortConfig &cfg, rte_mempool *pool, std::string &err);

// Starts a port configured with start_port(cfg.start = false).
bool start_device(uint16_t port_id, bool promiscuous, std::string &err);

// Stops and closes a port started with start_port().
void stop_port(uint16_t port_id);

// net_memif's own devargs (role, zero-copy, bsize), which ethdev does not
// report; defaults for any other device.
struct MemifArgs {
    bool memif = false;
    bool client = false;
    bool zero_copy = false;
    uint32_t bsize = 2048; // net_memif's default slot size
};
MemifArgs memif_args(uint16_t port_id);

// Stops and closes `ports` (each started with start_port()). DPDK 22.11's
// memif server handles its peer's disconnect on EAL's interrupt thread;
// stopping the port at that moment disconnects it twice and frees its
// regions twice ("EAL: Error: Invalid memory", now and then a SIGSEGV). So a
// memif server first waits, up to `memif_grace_us` in all, for its link to
// go down; a peer that stays is not waited for longer.
void stop_ports(const std::vector<uint16_t> &ports, uint64_t memif_grace_us = 500'000);

// The NUMA socket of a port (0 when unknown, e.g. virtual devices).
int port_socket(uint16_t port_id);

// Every available port id.
std::vector<uint16_t> available_ports();

// The port's device name (e.g. "net_pcap0", "0000:03:00.0").
std::string port_name(uint16_t port_id);

} // namespace millipede::port

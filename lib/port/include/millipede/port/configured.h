// A host file's settings (lib/config: drivers-config profiles, `--config
// FILE`) where ports start, checked against each device's rte_eth_dev_info;
// `--print-config`; and rte_pdump, so that dpdk-dumpcap can capture ports.
//
// With a configuration in use, the functions of port.h follow it:
//   device_caps()      reports at most the configured rx_queues / tx_queues,
//                      so a mode's plan stays within them;
//   checksum_offloads() reports an offload only where rx_checksum /
//                      tx_checksum are not off;
//   start_port()       checks the port's settings against the device and
//                      applies descriptors, MTU (unless the mode sets one),
//                      TSO, LRO, RSS fields and key, and flow control;
//   configured_pool()  sizes the receive pool from mbufs / mempool_cache.
// A bad value fails start_port() / configured_pool() with one line naming the
// file, section, key, value and what the device allows, e.g.
//   host.ini [0000:03:00.0] rx_desc = 8192: port 0 (0000:03:00.0, net_ixgbe) allows 64-4096, a multiple of 8
//
// Contract: main lcore, set-up and shutdown only, like port.h. use_config()
// (or load_config()) once, after the options are parsed and before the first
// port starts; not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "millipede/config/config.h"

namespace millipede::port {

// Ports started from now on follow `cfg` in `mode` ("tap", "tx" or "rx").
// nullptr: none (dpdk-millipede's own choices).
void use_config(std::shared_ptr<const config::HostConfig> cfg, std::string mode);
const config::HostConfig *active_config();

// Loads FILE (pure: before EAL is fine) with the default profile
// directories and use_config()s it. Returns "" or one line.
std::string load_config(const std::string &file, std::string mode);

// The settings of port `port_id` (its ethdev name and driver resolved in the
// configuration), checked against its rte_eth_dev_info. Without a
// configuration: empty settings. nullopt with one line in `err` on a bad value.
std::optional<config::Resolved> port_settings(uint16_t port_id, std::string &err);

struct PoolSize {
    uint32_t mbufs = 0;
    uint32_t cache = 256;
};
// The receive pool shared by `ports`. Without a configuration, or when no
// port sets mbufs: `default_mbufs` (cache 256). Otherwise each port's mbufs
// summed (a port without keeps its share of `default_mbufs`), and the
// smallest mempool_cache given. False with one line in `err` on a bad value.
bool configured_pool(const std::vector<uint16_t> &ports, uint32_t default_mbufs, PoolSize &out, std::string &err);

// Writes the effective settings of every port start_port() started and
// stop_port() did not stop, as a host file (rte_cfgfile reads it back): one
// section per port, each value read back from the device where ethdev
// reports it, with where it came from as a comment. Sections of the host
// file that matched no port are listed as comments at the end.
void print_config(std::FILE *f, const char *who);

// Host file sections that name no DPDK port of this process.
std::vector<std::string> unmatched_sections();

// rte_pdump_init(): dpdk-dumpcap (a secondary process with the same
// --file-prefix; the primary needs hugepages, not --no-huge) may then capture
// any port. After rte_eal_init(); disable_capture() before rte_eal_cleanup().
bool enable_capture(std::string &err);
void disable_capture();

} // namespace millipede::port

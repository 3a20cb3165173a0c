// Internal to lib/port: what start_port() applied to each port, for
// print_config() and for buffers the device keeps pointing at.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "millipede/config/config.h"

struct rte_eth_dev_info;
struct rte_mempool;

namespace millipede::port::detail {

struct Applied {
    std::optional<config::Resolved> resolved; // none: started without a configuration
    uint16_t mode_rx_queues = 1, mode_tx_queues = 1; // what the mode asked for
    uint16_t rx_desc = 0, tx_desc = 0;               // asked of the device (after ethdev's adjustment)
    uint16_t mode_mtu = 0;                           // the mode's own MTU (--mtu), which wins over the file
    uint32_t pool_share = 0;                         // this port's mbufs in the pool (0: not configured)
    rte_mempool *pool = nullptr;
    bool flow_control_unsupported = false;
    // The RSS key handed to the device: PMDs read it again at every start
    // (rte_eth_conf keeps only the pointer), so it lives as long as the port.
    std::vector<uint8_t> rss_key;
};

// Ports started and not stopped, by port id.
std::map<uint16_t, Applied> &started();
// Each port's mbufs share from the last configured_pool().
std::map<uint16_t, uint32_t> &pool_shares();

// The first setting of `s` the device cannot take, as one line naming its
// origin and what port `port_id` allows; "" when every one fits.
std::string check_device(const config::PortSettings &s, uint16_t port_id, const rte_eth_dev_info &info);

// "port 0 (net_memif0, net_memif)"
std::string describe_port(uint16_t port_id, const rte_eth_dev_info &info);

} // namespace millipede::port::detail

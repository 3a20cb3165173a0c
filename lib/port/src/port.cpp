#include "millipede/port/port.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace millipede::port {

rte_mempool *make_pool(const std::string &name, uint32_t mbufs, int socket_id, std::string &err,
                       uint16_t data_room) {
    rte_mempool *mp = rte_pktmbuf_pool_create(name.c_str(), mbufs, 256, 0,
                                              data_room ? data_room : RTE_MBUF_DEFAULT_BUF_SIZE, socket_id);
    if (!mp)
        err = "cannot create mbuf pool '" + name + "' of " + std::to_string(mbufs) +
              " mbufs: " + rte_strerror(rte_errno) + " (more EAL memory with -m, or hugepages)";
    return mp;
}

int port_socket(uint16_t port_id) {
    int s = rte_eth_dev_socket_id(port_id);
    return s < 0 ? 0 : s;
}

std::vector<uint16_t> available_ports() {
    std::vector<uint16_t> ids;
    uint16_t p;
    RTE_ETH_FOREACH_DEV(p) ids.push_back(p);
    return ids;
}

std::string port_name(uint16_t port_id) {
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    if (rte_eth_dev_get_name_by_port(port_id, name) != 0) return "port" + std::to_string(port_id);
    return name;
}

ChecksumOffloads checksum_offloads(uint16_t port_id) {
    ChecksumOffloads o;
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port_id, &info) != 0) return o;
    o.rx_ipv4 = info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
    o.rx_tcp = info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
    o.tx_ipv4 = info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
    o.tx_tcp = info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    return o;
}

DeviceCaps device_caps(uint16_t port_id) {
    DeviceCaps c;
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port_id, &info) != 0) return c;
    c.driver = info.driver_name ? info.driver_name : "";
    c.max_rx_queues = info.max_rx_queues;
    c.max_tx_queues = info.max_tx_queues;
    c.max_rx_pktlen = info.max_rx_pktlen;
    c.tx_multi_seg = info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    c.rx_scatter = info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER;
    c.tx_tso = info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_TSO;
    c.rx_lro = info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_LRO;
    c.rss = (info.flow_type_rss_offloads & RTE_ETH_RSS_IP) != 0;
    return c;
}

bool start_port(const PortConfig &cfg, rte_mempool *pool, std::string &err) {
    const uint16_t p = cfg.port_id;
    const std::string who = "port " + std::to_string(p) + " (" + port_name(p) + ")";
    if (!rte_eth_dev_is_valid_port(p)) {
        err = "port " + std::to_string(p) + " does not exist (" + std::to_string(rte_eth_dev_count_avail()) +
              " ports available)";
        return false;
    }
    rte_eth_dev_info info{};
    int rc = rte_eth_dev_info_get(p, &info);
    if (rc != 0) {
        err = who + ": cannot read device info: " + rte_strerror(-rc);
        return false;
    }
    if (cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues) {
        err = who + ": wants " + std::to_string(cfg.rx_queues) + " RX / " + std::to_string(cfg.tx_queues) +
              " TX queues, device has " + std::to_string(info.max_rx_queues) + " / " +
              std::to_string(info.max_tx_queues);
        return false;
    }
    rte_eth_conf conf{};
    if (cfg.rx_queues > 1) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads & RTE_ETH_RSS_IP;
    }
    if (cfg.checksum_offload) {
        const ChecksumOffloads o = checksum_offloads(p);
        if (o.rx_ipv4) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
        if (o.rx_tcp) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
        if (o.tx_ipv4) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
        if (o.tx_tcp) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    }
    if (cfg.tx_multi_seg && (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS))
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    if (cfg.rx_scatter && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER))
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
    if (cfg.mtu) {
        if (cfg.mtu < info.min_mtu || cfg.mtu > info.max_mtu) {
            err = who + ": MTU " + std::to_string(cfg.mtu) + " is outside the device's " +
                  std::to_string(info.min_mtu) + "-" + std::to_string(info.max_mtu);
            return false;
        }
        const uint32_t frame = cfg.mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
        if (frame > info.max_rx_pktlen) {
            err = who + ": MTU " + std::to_string(cfg.mtu) + " needs " + std::to_string(frame) +
                  "-byte frames; the device takes at most " + std::to_string(info.max_rx_pktlen);
            return false;
        }
        conf.rxmode.mtu = cfg.mtu;
    }
    rc = rte_eth_dev_configure(p, cfg.rx_queues, cfg.tx_queues, &conf);
    if (rc != 0) {
        err = who + ": configure failed: " + rte_strerror(-rc);
        return false;
    }
    if (cfg.mtu && (rc = rte_eth_dev_set_mtu(p, cfg.mtu)) != 0) {
        err = who + ": cannot set MTU " + std::to_string(cfg.mtu) + ": " + rte_strerror(-rc);
        return false;
    }
    uint16_t rxd = cfg.rx_desc, txd = cfg.tx_desc;
    rte_eth_dev_adjust_nb_rx_tx_desc(p, &rxd, &txd);
    int socket = port_socket(p);
    for (uint16_t q = 0; q < cfg.rx_queues; ++q) {
        rc = rte_eth_rx_queue_setup(p, q, rxd, socket, nullptr, pool);
        if (rc != 0) {
            err = who + ": RX queue " + std::to_string(q) + " set-up failed: " + rte_strerror(-rc);
            return false;
        }
    }
    for (uint16_t q = 0; q < cfg.tx_queues; ++q) {
        rc = rte_eth_tx_queue_setup(p, q, txd, socket, nullptr);
        if (rc != 0) {
            err = who + ": TX queue " + std::to_string(q) + " set-up failed: " + rte_strerror(-rc);
            return false;
        }
    }
    return !cfg.start || start_device(p, cfg.promiscuous, err);
}

bool start_device(uint16_t port_id, bool promiscuous, std::string &err) {
    const int rc = rte_eth_dev_start(port_id);
    if (rc != 0) {
        err = "port " + std::to_string(port_id) + " (" + port_name(port_id) + "): start failed: " + rte_strerror(-rc);
        return false;
    }
    // Not every virtual device supports promiscuous mode; that is no error.
    if (promiscuous) rte_eth_promiscuous_enable(port_id);
    return true;
}

void stop_port(uint16_t port_id) {
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
}

} // namespace millipede::port

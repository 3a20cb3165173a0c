#include "millipede/port/port.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "configured_internal.h"
#include "millipede/port/configured.h"

namespace millipede::port {

namespace {

// The host configuration's settings for a port, or none (no configuration,
// or a bad value: start_port() reports that one).
config::PortSettings settings_or_none(uint16_t port_id) {
    if (!active_config()) return {};
    std::string ignored;
    auto r = port_settings(port_id, ignored);
    return r ? r->settings : config::PortSettings{};
}

} // namespace

rte_mempool *make_pool(const std::string &name, uint32_t mbufs, int socket_id, std::string &err,
                       uint16_t data_room, uint32_t cache) {
    rte_mempool *mp = rte_pktmbuf_pool_create(name.c_str(), mbufs, cache, 0,
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
    const config::PortSettings s = settings_or_none(port_id);
    if (s.rx_checksum && !*s.rx_checksum) o.rx_ipv4 = o.rx_tcp = false;
    if (s.tx_checksum && !*s.tx_checksum) o.tx_ipv4 = o.tx_tcp = false;
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
    const config::PortSettings s = settings_or_none(port_id);
    if (s.rx_queues) c.max_rx_queues = std::min(c.max_rx_queues, *s.rx_queues);
    if (s.tx_queues) c.max_tx_queues = std::min(c.max_tx_queues, *s.tx_queues);
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
    // The host configuration's settings (none without --config), checked
    // against this device.
    detail::Applied applied;
    applied.resolved = port_settings(p, err);
    if (!applied.resolved) return false;
    // A copy: `applied` moves into the registry below, and the origins
    // named in messages must stay.
    const config::PortSettings s = applied.resolved->settings;
    if (!active_config()) applied.resolved.reset();
    applied.mode_rx_queues = cfg.rx_queues;
    applied.mode_tx_queues = cfg.tx_queues;
    applied.mode_mtu = cfg.mtu;
    applied.pool = pool;
    if (auto it = detail::pool_shares().find(p); it != detail::pool_shares().end()) applied.pool_share = it->second;
    // Queue counts are the mode's (its lcores read them); device_caps()
    // already kept its plan within the configured ones.
    if ((s.rx_queues && cfg.rx_queues > *s.rx_queues) || (s.tx_queues && cfg.tx_queues > *s.tx_queues)) {
        err = who + ": the mode needs " + std::to_string(cfg.rx_queues) + " RX / " + std::to_string(cfg.tx_queues) +
              " TX queues, more than " + (s.rx_queues && cfg.rx_queues > *s.rx_queues ? s.rx_queues : s.tx_queues).origin.where() +
              " allows";
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
    if (s.rss_hash) { // the configured fields, even on one queue: what was asked is what the device holds
        conf.rxmode.mq_mode = *s.rss_hash ? RTE_ETH_MQ_RX_RSS : RTE_ETH_MQ_RX_NONE;
        conf.rx_adv_conf.rss_conf.rss_hf = *s.rss_hash;
    }
    if (conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS && s.rss_key && s.rss_key->kind != config::RssKeyKind::driver_default) {
        applied.rss_key = s.rss_key->kind == config::RssKeyKind::symmetric ? config::symmetric_rss_key(info.hash_key_size)
                                                                           : s.rss_key->bytes;
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
    if (s.tso && *s.tso) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_TCP_TSO;
    if (s.lro && *s.lro) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TCP_LRO;
    // The mode's MTU (--mtu) wins over the file's.
    const uint16_t mtu = cfg.mtu ? cfg.mtu : (s.mtu ? *s.mtu : 0);
    if (mtu) {
        if (mtu < info.min_mtu || mtu > info.max_mtu) {
            err = who + ": MTU " + std::to_string(mtu) + " is outside the device's " +
                  std::to_string(info.min_mtu) + "-" + std::to_string(info.max_mtu);
            return false;
        }
        const uint32_t frame = mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
        if (frame > info.max_rx_pktlen) {
            err = who + ": MTU " + std::to_string(mtu) + " needs " + std::to_string(frame) +
                  "-byte frames; the device takes at most " + std::to_string(info.max_rx_pktlen);
            return false;
        }
        // A configured MTU beyond one mbuf: frames arrive as chains, which
        // both modes take, when the device can scatter.
        const uint32_t room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
        if (!cfg.mtu && frame > room) {
            if (!(info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER)) {
                err = s.mtu.origin.where() + ": " + detail::describe_port(p, info) + " allows " +
                      std::to_string(info.min_mtu) + "-" + std::to_string(room - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN) +
                      " (frames of one " + std::to_string(room) + "-byte mbuf: the device has no RX scatter)";
                return false;
            }
            conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
        }
        conf.rxmode.mtu = mtu;
    }
    // The key must outlive the port (PMDs read it again at every start):
    // it is kept in the registry entry, which stays until stop_port().
    detail::Applied &kept = detail::started()[p] = std::move(applied);
    if (!kept.rss_key.empty()) {
        conf.rx_adv_conf.rss_conf.rss_key = kept.rss_key.data();
        conf.rx_adv_conf.rss_conf.rss_key_len = static_cast<uint8_t>(kept.rss_key.size());
    }
    auto fail = [&](std::string msg) {
        detail::started().erase(p);
        err = std::move(msg);
        return false;
    };
    rc = rte_eth_dev_configure(p, cfg.rx_queues, cfg.tx_queues, &conf);
    if (rc != 0) return fail(who + ": configure failed: " + rte_strerror(-rc));
    // Asking for the MTU a device already has is no change, even where the
    // driver cannot set one (memif): a printed configuration read back.
    uint16_t current_mtu = 0;
    if (mtu && (rte_eth_dev_get_mtu(p, &current_mtu) != 0 || current_mtu != mtu) &&
        (rc = rte_eth_dev_set_mtu(p, mtu)) != 0)
        return fail(who + ": cannot set MTU " + std::to_string(mtu) + ": " + rte_strerror(-rc));
    uint16_t rxd = s.rx_desc ? *s.rx_desc : cfg.rx_desc, txd = s.tx_desc ? *s.tx_desc : cfg.tx_desc;
    rte_eth_dev_adjust_nb_rx_tx_desc(p, &rxd, &txd);
    kept.rx_desc = rxd;
    kept.tx_desc = txd;
    int socket = port_socket(p);
    for (uint16_t q = 0; q < cfg.rx_queues; ++q) {
        rc = rte_eth_rx_queue_setup(p, q, rxd, socket, nullptr, pool);
        if (rc != 0) return fail(who + ": RX queue " + std::to_string(q) + " set-up failed: " + rte_strerror(-rc));
    }
    for (uint16_t q = 0; q < cfg.tx_queues; ++q) {
        rc = rte_eth_tx_queue_setup(p, q, txd, socket, nullptr);
        if (rc != 0) return fail(who + ": TX queue " + std::to_string(q) + " set-up failed: " + rte_strerror(-rc));
    }
    if (s.flow_control && *s.flow_control == config::FlowControl::off) {
        // Pause frames would stall a mirror port's sender and hide loss;
        // devices without flow control (virtual ones) send none anyway.
        rte_eth_fc_conf fc{};
        rc = rte_eth_dev_flow_ctrl_get(p, &fc);
        if (rc == -ENOTSUP) {
            kept.flow_control_unsupported = true;
        } else if (rc == 0 && fc.mode != RTE_ETH_FC_NONE) {
            fc.mode = RTE_ETH_FC_NONE;
            rc = rte_eth_dev_flow_ctrl_set(p, &fc);
            if (rc != 0 && rc != -ENOTSUP)
                return fail(s.flow_control.origin.where() + ": " + who + " cannot switch flow control off: " +
                            rte_strerror(-rc));
        }
    }
    if (!cfg.start) return true;
    if (!start_device(p, cfg.promiscuous, err)) {
        detail::started().erase(p);
        return false;
    }
    return true;
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
    detail::started().erase(port_id);
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
}

MemifArgs memif_args(uint16_t port_id) {
    MemifArgs a;
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port_id, &info) != 0 || !info.device) return a;
    a.memif = info.driver_name && std::strcmp(info.driver_name, "net_memif") == 0;
    const rte_devargs *da = rte_dev_devargs(info.device);
    if (!a.memif || !da || !da->args) return a;
    const std::string args = da->args;
    size_t pos = 0;
    while (pos <= args.size()) {
        size_t end = args.find(',', pos);
        if (end == std::string::npos) end = args.size();
        const std::string kv = args.substr(pos, end - pos);
        const size_t eq = kv.find('=');
        const std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
        if (k == "role") a.client = v == "client" || v == "slave";
        else if (k == "zero-copy") a.zero_copy = v == "yes";
        else if (k == "bsize") a.bsize = static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 0));
        pos = end + 1;
    }
    return a;
}

void stop_ports(const std::vector<uint16_t> &ports, uint64_t memif_grace_us) {
    const uint64_t hz = rte_get_timer_hz();
    const uint64_t until = rte_get_timer_cycles() + memif_grace_us * hz / 1'000'000;
    for (uint16_t id : ports) {
        const MemifArgs m = memif_args(id);
        if (!m.memif || m.client) continue;
        rte_eth_link link{};
        while (rte_eth_link_get_nowait(id, &link) == 0 && link.link_status != RTE_ETH_LINK_DOWN &&
               rte_get_timer_cycles() < until)
            rte_delay_us_sleep(1'000);
    }
    for (uint16_t id : ports) stop_port(id);
}

} // namespace millipede::port

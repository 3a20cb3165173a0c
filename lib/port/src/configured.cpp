// rte_eth_dev_conf_get() (what --print-config reads back) is experimental in
// DPDK 22.11.
#define ALLOW_EXPERIMENTAL_API 1
#include "millipede/port/configured.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pdump.h>

#include "configured_internal.h"
#include "millipede/port/port.h"

namespace millipede::port {

namespace {

struct State {
    std::shared_ptr<const config::HostConfig> cfg;
    std::string mode;
    bool capture = false;
};
State &state() {
    static State s;
    return s;
}

// The largest MTU whose frame (MTU + Ethernet header + CRC, as start_port()
// counts it) the device receives.
uint32_t max_mtu_of(const rte_eth_dev_info &info) {
    const uint32_t by_frame =
        info.max_rx_pktlen > RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN ? info.max_rx_pktlen - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN : 0;
    return std::min<uint32_t>(info.max_mtu, by_frame);
}

std::string desc_range(const rte_eth_desc_lim &l) {
    std::string s = std::to_string(l.nb_min ? l.nb_min : 1) + "-" + std::to_string(l.nb_max);
    if (l.nb_align > 1) s += ", a multiple of " + std::to_string(l.nb_align);
    return s;
}

bool desc_ok(const rte_eth_desc_lim &l, uint16_t n) {
    return n >= l.nb_min && n <= l.nb_max && (l.nb_align <= 1 || n % l.nb_align == 0);
}

const char *on_off(bool b) { return b ? "on" : "off"; }

} // namespace

namespace detail {

std::map<uint16_t, Applied> &started() {
    static std::map<uint16_t, Applied> m;
    return m;
}

std::map<uint16_t, uint32_t> &pool_shares() {
    static std::map<uint16_t, uint32_t> m;
    return m;
}

std::string describe_port(uint16_t port_id, const rte_eth_dev_info &info) {
    return "port " + std::to_string(port_id) + " (" + port_name(port_id) + ", " +
           (info.driver_name ? info.driver_name : "?") + ")";
}

std::string check_device(const config::PortSettings &s, uint16_t p, const rte_eth_dev_info &info) {
    const std::string dev = ": " + describe_port(p, info) + " allows ";
    if (s.rx_desc && !desc_ok(info.rx_desc_lim, *s.rx_desc))
        return s.rx_desc.origin.where() + dev + desc_range(info.rx_desc_lim);
    if (s.tx_desc && !desc_ok(info.tx_desc_lim, *s.tx_desc))
        return s.tx_desc.origin.where() + dev + desc_range(info.tx_desc_lim);
    if (s.rx_queues && *s.rx_queues > info.max_rx_queues)
        return s.rx_queues.origin.where() + dev + "1-" + std::to_string(info.max_rx_queues);
    if (s.tx_queues && *s.tx_queues > info.max_tx_queues)
        return s.tx_queues.origin.where() + dev + "1-" + std::to_string(info.max_tx_queues);
    if (s.mtu && (*s.mtu < info.min_mtu || *s.mtu > max_mtu_of(info)))
        return s.mtu.origin.where() + dev + std::to_string(info.min_mtu) + "-" + std::to_string(max_mtu_of(info)) +
               " (frames of at most " + std::to_string(info.max_rx_pktlen) + " bytes)";
    struct Offload {
        const config::Setting<bool> &s;
        bool offered;
    };
    const bool rx_ck = (info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM)) != 0;
    const bool tx_ck = (info.tx_offload_capa & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM)) != 0;
    for (const Offload &o : {Offload{s.rx_checksum, rx_ck}, Offload{s.tx_checksum, tx_ck},
                             Offload{s.tso, (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_TSO) != 0},
                             Offload{s.lro, (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_LRO) != 0}})
        if (o.s && *o.s && !o.offered) return o.s.origin.where() + dev + "off (the driver does not offer it)";
    if (s.rss_hash && (*s.rss_hash & ~info.flow_type_rss_offloads) != 0)
        return s.rss_hash.origin.where() + dev +
               (info.flow_type_rss_offloads ? "none or some of " + config::rss_hash_names(info.flow_type_rss_offloads)
                                            : std::string("none (no RSS)"));
    if (s.rss_key && s.rss_key->kind != config::RssKeyKind::driver_default) {
        if (info.hash_key_size == 0) return s.rss_key.origin.where() + dev + "default (no RSS key)";
        if (s.rss_key->kind == config::RssKeyKind::bytes && s.rss_key->bytes.size() != info.hash_key_size)
            return s.rss_key.origin.where() + dev + "default, symmetric or a key of " +
                   std::to_string(info.hash_key_size) + " bytes (" + std::to_string(2 * info.hash_key_size) +
                   " hex digits)";
    }
    return {};
}

} // namespace detail

void use_config(std::shared_ptr<const config::HostConfig> cfg, std::string mode) {
    state().cfg = std::move(cfg);
    state().mode = std::move(mode);
}

const config::HostConfig *active_config() { return state().cfg.get(); }

std::string load_config(const std::string &file, std::string mode) {
    std::string err;
    auto cfg = config::load_host_config(file, config::default_profile_dirs(), err);
    if (!cfg) return err;
    use_config(std::make_shared<const config::HostConfig>(std::move(*cfg)), std::move(mode));
    return {};
}

std::optional<config::Resolved> port_settings(uint16_t port_id, std::string &err) {
    if (!active_config()) return config::Resolved{};
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0) {
        err = "port " + std::to_string(port_id) + ": cannot read device info: " + rte_strerror(-rc);
        return std::nullopt;
    }
    auto r = config::resolve(*active_config(), port_name(port_id), info.driver_name ? info.driver_name : "",
                             state().mode, err);
    if (!r) return std::nullopt;
    if ((err = detail::check_device(r->settings, port_id, info)), !err.empty()) return std::nullopt;
    return r;
}

bool configured_pool(const std::vector<uint16_t> &ports, uint32_t default_mbufs, PoolSize &out, std::string &err) {
    out = PoolSize{default_mbufs, 256};
    detail::pool_shares().clear();
    if (!active_config() || ports.empty()) return true;
    const uint32_t share = std::max<uint32_t>(default_mbufs / static_cast<uint32_t>(ports.size()), 1);
    uint64_t total = 0;
    bool any = false;
    std::optional<uint32_t> cache;
    for (uint16_t p : ports) {
        auto r = port_settings(p, err);
        if (!r) return false;
        const auto &s = r->settings;
        any |= bool(s.mbufs);
        const uint32_t mine = s.mbufs ? *s.mbufs : share;
        detail::pool_shares()[p] = mine;
        total += mine;
        if (s.mempool_cache) cache = std::min(cache.value_or(UINT32_MAX), *s.mempool_cache);
    }
    if (any) out.mbufs = static_cast<uint32_t>(std::min<uint64_t>(total, UINT32_MAX));
    if (cache) out.cache = *cache;
    if (out.cache > RTE_MEMPOOL_CACHE_MAX_SIZE || uint64_t(out.cache) * 3 / 2 > out.mbufs) {
        err = "the receive pool of " + std::to_string(out.mbufs) + " mbufs cannot have a cache of " +
              std::to_string(out.cache) + " (allowed 0-" +
              std::to_string(std::min<uint32_t>(RTE_MEMPOOL_CACHE_MAX_SIZE, out.mbufs * 2 / 3)) + ")";
        return false;
    }
    if (!any) detail::pool_shares().clear();
    return true;
}

std::vector<std::string> unmatched_sections() {
    std::vector<std::string> out;
    if (!active_config()) return out;
    for (const auto &d : active_config()->devices) {
        uint16_t id = 0;
        if (rte_eth_dev_get_port_by_name(d.name.c_str(), &id) != 0) out.push_back(d.name);
    }
    return out;
}

void print_config(std::FILE *f, const char *who) {
    const config::HostConfig *cfg = active_config();
    std::fprintf(f, "; %s: effective settings of %zu port(s)%s%s\n", who, detail::started().size(),
                 cfg ? ", host file " : " (no --config)", cfg ? cfg->path.c_str() : "");
    for (auto &[p, a] : detail::started()) {
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(p, &info) != 0) continue;
        rte_eth_conf conf{};
        rte_eth_dev_conf_get(p, &conf);
        const config::PortSettings none;
        const config::PortSettings &s = a.resolved ? a.resolved->settings : none;
        const config::Profile *prof = a.resolved ? a.resolved->profile : nullptr;
        std::fprintf(f, "\n[%s]\n; port %u, driver %s", port_name(p).c_str(), p, info.driver_name ? info.driver_name : "?");
        if (prof)
            std::fprintf(f, ", profile %s (%s%s)", prof->name.c_str(), prof->path.c_str(),
                         a.resolved->profile_origin.file.empty() ? ", chosen by driver"
                                                                  : (", " + a.resolved->profile_origin.where()).c_str());
        else if (cfg)
            std::fprintf(f, ", no profile for this driver");
        std::fputc('\n', f);
        if (prof) {
            // By name when it came from a profile directory, else by the
            // path the host file gave.
            const bool from_dir = std::any_of(cfg->profile_dirs.begin(), cfg->profile_dirs.end(),
                                              [&](const std::string &d) { return prof->path.rfind(d + "/", 0) == 0; });
            std::fprintf(f, "profile = %s\n", from_dir ? prof->name.c_str() : prof->path.c_str());
        }
        // One line: key = value ; where the value came from.
        auto line = [&](const char *key, const std::string &value, const std::string &from) {
            std::fprintf(f, "%s = %s ; %s\n", key, value.c_str(), from.c_str());
        };
        auto from = [](const auto &setting, const char *otherwise) {
            return setting ? setting.origin.where() : std::string(otherwise);
        };
        auto queues = [&](const char *key, uint16_t actual, const config::Setting<uint16_t> &set, uint16_t mode_asked) {
            std::string why = set ? set.origin.where() + " (at most)" : std::string("the mode's choice");
            if (actual != mode_asked || (set && actual != *set))
                why += "; the mode uses " + std::to_string(actual);
            line(key, std::to_string(actual), why);
        };
        queues("rx_queues", info.nb_rx_queues, s.rx_queues, a.mode_rx_queues);
        queues("tx_queues", info.nb_tx_queues, s.tx_queues, a.mode_tx_queues);
        auto ring = [&](const char *key, bool rx, uint16_t asked, const config::Setting<uint16_t> &set) {
            uint16_t n = 0;
            if (rx) {
                rte_eth_rxq_info q{};
                if (rte_eth_rx_queue_info_get(p, 0, &q) == 0) n = q.nb_desc;
            } else {
                rte_eth_txq_info q{};
                if (rte_eth_tx_queue_info_get(p, 0, &q) == 0) n = q.nb_desc;
            }
            std::string why = from(set, "dpdk-millipede's default");
            if (!n) why += "; asked of the driver, which does not report its ring";
            line(key, std::to_string(n ? n : asked), why);
        };
        ring("rx_desc", true, a.rx_desc, s.rx_desc);
        ring("tx_desc", false, a.tx_desc, s.tx_desc);
        if (a.pool) {
            const unsigned ports_in_pool = static_cast<unsigned>(std::count_if(
                detail::started().begin(), detail::started().end(), [&](const auto &e) { return e.second.pool == a.pool; }));
            const std::string pool = "pool " + std::string(a.pool->name) + ": " + std::to_string(a.pool->size) +
                                     " mbufs for " + std::to_string(ports_in_pool) + " port(s)";
            if (a.pool_share) line("mbufs", std::to_string(a.pool_share), from(s.mbufs, "a share of the default") + "; " + pool);
            else std::fprintf(f, "; mbufs: not configured; %s\n", pool.c_str());
            line("mempool_cache", std::to_string(a.pool->cache_size), from(s.mempool_cache, "dpdk-millipede's default"));
        }
        uint16_t mtu = 0;
        rte_eth_dev_get_mtu(p, &mtu);
        line("mtu", std::to_string(mtu),
             a.mode_mtu ? std::string("the command line (--mtu), over any file") : from(s.mtu, "the device's"));
        const bool rx_ck = conf.rxmode.offloads & (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
        const bool tx_ck = conf.txmode.offloads & (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM);
        line("rx_checksum", on_off(rx_ck), from(s.rx_checksum, "the mode's choice"));
        line("tx_checksum", on_off(tx_ck), from(s.tx_checksum, "the mode's choice"));
        line("tso", on_off(conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_TCP_TSO), from(s.tso, "the mode's choice"));
        line("lro", on_off(conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_TCP_LRO), from(s.lro, "the mode's choice"));
        // RSS as the device reports it, else as configured.
        std::vector<uint8_t> key(info.hash_key_size ? info.hash_key_size : 1);
        rte_eth_rss_conf rss{};
        rss.rss_key = key.data();
        rss.rss_key_len = static_cast<uint8_t>(info.hash_key_size);
        const bool rss_read = info.hash_key_size && rte_eth_dev_rss_hash_conf_get(p, &rss) == 0;
        const bool rss_on = conf.rxmode.mq_mode & RTE_ETH_MQ_RX_RSS_FLAG;
        const uint64_t hf = rss_read ? rss.rss_hf : (rss_on ? conf.rx_adv_conf.rss_conf.rss_hf : 0);
        line("rss_hash", config::rss_hash_names(hf), from(s.rss_hash, "the mode's choice"));
        std::string key_text = "default", key_from = from(s.rss_key, "the driver's");
        if (rss_read && info.hash_key_size) {
            if (key == config::symmetric_rss_key(info.hash_key_size)) key_text = "symmetric";
            else if (s.rss_key && s.rss_key->kind == config::RssKeyKind::bytes) key_text = config::to_hex(key);
            else key_from += "; the driver's key: " + config::to_hex(key);
        } else if (s.rss_key) {
            key_text = config::format_rss_key(*s.rss_key);
            if (info.hash_key_size) key_from += "; the driver does not report its key";
        }
        line("rss_key", key_text, key_from);
        rte_eth_fc_conf fc{};
        const int fcr = rte_eth_dev_flow_ctrl_get(p, &fc);
        if (fcr == 0)
            line("flow_control", fc.mode == RTE_ETH_FC_NONE ? "off" : "driver",
                 from(s.flow_control, "the NIC's setting") +
                     (fc.mode == RTE_ETH_FC_NONE ? "" : std::string("; pause frames on")));
        else
            line("flow_control", "off", from(s.flow_control, "no setting") + "; " +
                                            (info.driver_name ? info.driver_name : "the driver") +
                                            " has no flow control (no pause frames)");
    }
    for (const auto &name : unmatched_sections())
        std::fprintf(f, "\n; [%s] of %s: no DPDK port of that name in this process\n", name.c_str(), cfg->path.c_str());
}

bool enable_capture(std::string &err) {
    if (state().capture) return true;
    if (rte_pdump_init() != 0) {
        err = std::string("rte_pdump_init failed (dpdk-dumpcap cannot capture): ") + rte_strerror(rte_errno);
        return false;
    }
    state().capture = true;
    return true;
}

void disable_capture() {
    if (!state().capture) return;
    rte_pdump_uninit();
    state().capture = false;
}

} // namespace millipede::port

// The tap plane's set-up and teardown: lcore plan, inputs (ports, capture
// files), the classifier and its rings. See tap.h.
#include <algorithm>
#include <cstring>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include <rte_errno.h>

#include "millipede/dataplane/capture_file.h"
#include "millipede/config/config.h"
#include "millipede/flow/rss.h"
#include "millipede/port/configured.h"
#include "millipede/port/port.h"
#include "tap_internal.h"

namespace millipede::dataplane {

TapPlane::TapPlane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TapPlane::~TapPlane() {
    if (impl_) impl_->teardown();
}

void TapPlane::leave_memory_to_eal_cleanup() { impl_->free_memory = false; }

std::unique_ptr<TapPlane> TapPlane::open(const TapConfig &cfg, std::string &err, int &status) {
    auto impl = std::make_unique<Impl>();
    impl->cfg = cfg;
    status = 1;
    if (!impl->open_inputs(err, status)) {
        impl->teardown();
        return nullptr;
    }
    return std::unique_ptr<TapPlane>(new TapPlane(std::move(impl)));
}

namespace {

// Drivers whose RX queues are spread by a symmetric flow hash without
// ethdev RSS: net_af_packet joins its queues' sockets in one
// PACKET_FANOUT_HASH group (with DEFRAG and ROLLOVER), and the kernel's
// fanout hash is __skb_get_hash_symmetric(): the flow dissector's hash
// with addresses and ports put in order first (docs/tap.md "Shards").
bool symmetric_by_construction(const char *driver) { return driver && std::strcmp(driver, "net_af_packet") == 0; }

std::string port_name(uint16_t p, const rte_eth_dev_info &info) {
    char name[RTE_ETH_NAME_MAX_LEN] = "?";
    rte_eth_dev_get_name_by_port(p, name);
    return "port " + std::to_string(p) + " (" + name + ", " + (info.driver_name ? info.driver_name : "?") + ")";
}

// Whether port `p` can spread flows symmetrically over `shards` RX queues.
bool shardable_port(uint16_t p, unsigned shards, std::string &err) {
    if (!rte_eth_dev_is_valid_port(p)) return true; // start_port() says so in its words
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(p, &info) != 0) return true;
    const std::string who = port_name(p, info);
    const std::string want = "--rx-shards " + std::to_string(shards);
    if (symmetric_by_construction(info.driver_name) && info.max_rx_queues > shards) {
        // Its kernel fanout spreads over every qpairs socket, set up or not:
        // the queues nobody reads would swallow their flows.
        err = want + ": " + who + " has qpairs=" + std::to_string(info.max_rx_queues) +
              " and the kernel spreads flows over all of them; give it qpairs=" + std::to_string(shards);
        return false;
    }
    if (shards == 1) return true;
    if (info.driver_name && std::strcmp(info.driver_name, "net_pcap") == 0) {
        err = want + ": " + who + " reads capture files, one per queue, not spread by flow (use --rx-shards 1)";
        return false;
    }
    if (info.max_rx_queues < shards) {
        err = want + ": " + who + " offers " + std::to_string(info.max_rx_queues) + " RX queue" +
              (info.max_rx_queues == 1 ? "" : "s") +
              (symmetric_by_construction(info.driver_name) ? " (add qpairs=N to its --vdev)" : "");
        return false;
    }
    constexpr uint64_t kWanted = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
    if (!(info.flow_type_rss_offloads & kWanted) && !symmetric_by_construction(info.driver_name)) {
        err = want + ": " + who +
              " has no RSS on IP (flow_type_rss_offloads), so nothing keeps both directions of a flow on one queue";
        return false;
    }
    return true;
}

} // namespace

// After start_port(), before the port starts: the symmetric key (0x6d5a
// repeated, flow/rss.h) over the hash fields the port offers of IP, TCP and
// UDP. A port without RSS (net_af_packet: symmetric by construction) is
// left as it is.
bool TapPlane::Impl::set_symmetric_rss(uint16_t p, std::string &err) {
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(p, &info) != 0) return true;
    rte_eth_rss_conf want{};
    flow::symmetric_rss_conf(want);
    want.rss_hf &= info.flow_type_rss_offloads;
    if (!want.rss_hf) return true; // shardable_port() let it through: symmetric by construction
    // A host file (--config) may choose the hash fields; any choice is
    // symmetric with this key. Another key, or none, would split flows.
    std::string cerr;
    if (auto r = port::port_settings(p, cerr)) {
        const config::PortSettings &s = r->settings;
        if (s.rss_key && s.rss_key->kind != config::RssKeyKind::symmetric) {
            err = "--rx-shards: " + s.rss_key.origin.where() + " for " + port_name(p, info) +
                  ": shards need rss_key = symmetric (or no rss_key), else a flow's two directions may part";
            return false;
        }
        if (s.rss_hash) {
            if (*s.rss_hash == 0) {
                err = "--rx-shards: " + s.rss_hash.origin.where() + " turns RSS off on " + port_name(p, info);
                return false;
            }
            want.rss_hf = *s.rss_hash;
        }
    }
    // The key must be the device's length; the pattern repeats every 2 bytes.
    rss_keys.emplace_back(info.hash_key_size ? info.hash_key_size : flow::kRssKeyLen);
    std::vector<uint8_t> &key = rss_keys.back();
    for (size_t i = 0; i < key.size(); ++i) key[i] = flow::kSymmetricRssKey[i % 2];
    want.rss_key = key.data();
    want.rss_key_len = static_cast<uint8_t>(key.size());
    const int rc = rte_eth_dev_rss_hash_update(p, &want);
    if (rc != 0) {
        err = "--rx-shards: " + port_name(p, info) + " refused the symmetric RSS key: " + rte_strerror(-rc);
        return false;
    }
    return true;
}

bool TapPlane::Impl::open_inputs(std::string &err, int &st) {
    std::vector<unsigned> ids{rte_get_main_lcore()};
    unsigned l;
    RTE_LCORE_FOREACH_WORKER(l) ids.push_back(l);
    if (cfg.rx_shards == 0) cfg.rx_shards = 1;
    layout = plan_tap_lcores(ids, cfg.rx_shards, cfg.workers_given ? cfg.cls.workers : 0);
    if (!cfg.workers_given) cfg.cls.workers = layout.plan.workers;
    const unsigned shards = cfg.rx_shards;
    if (shards > 1 && !cfg.captures.empty()) {
        // One file is one sequence of packets: nothing spreads it by flow.
        err = "--rx-shards " + std::to_string(shards) +
              " needs ports that spread flows over RX queues; a capture file is read as one queue (use --rx-shards 1)";
        st = 2;
        return false;
    }

    ports = cfg.ports.empty() ? port::available_ports() : cfg.ports;
    if (ports.empty() && cfg.captures.empty()) {
        err = "no DPDK ports: bind a NIC to a DPDK driver, or add a virtual device, e.g. --vdev "
              "'net_pcap0,rx_pcap=capture.pcap'";
        st = 2;
        return false;
    }
    // Every shard has its own ring per worker, each of which can hold mbufs.
    const unsigned mbufs = cfg.mbufs ? cfg.mbufs : 8191 + shards * cfg.cls.workers * cfg.cls.ring_size;
    socket = ports.empty() ? static_cast<int>(rte_socket_id()) : port::port_socket(ports[0]);
    if (socket < 0) socket = 0;
    pcap_ports = !ports.empty();
    if (!ports.empty()) {
        port::PoolSize pool_size; // a host file's mbufs per port, unless --mbufs
        if (!port::configured_pool(ports, mbufs, pool_size, err)) return false;
        if (cfg.mbufs) pool_size.mbufs = cfg.mbufs;
        port_pool = port::make_pool("tap_pool", pool_size.mbufs, socket, err, 0, pool_size.cache);
        if (!port_pool) return false;
        std::vector<uint16_t> started;
        for (uint16_t p : ports) {
            if (!shardable_port(p, shards, err)) {
                ports = started;
                st = 2;
                return false;
            }
            port::PortConfig pc;
            pc.port_id = p;
            pc.rx_queues = static_cast<uint16_t>(shards);
            // The tap never transmits, but some drivers (net_tap) want as
            // many TX queues as RX queues.
            if (rte_eth_dev_info info{}; shards > 1 && rte_eth_dev_info_get(p, &info) == 0 && info.max_tx_queues >= shards)
                pc.tx_queues = static_cast<uint16_t>(shards);
            pc.start = false; // make_pipeline() starts them after the last allocation (port.h)
            if (!port::start_port(pc, port_pool, err)) {
                ports = started; // teardown stops these
                return false;
            }
            started.push_back(p);
            if (shards > 1 && !set_symmetric_rss(p, err)) {
                ports = started;
                return false;
            }
            rte_eth_dev_info info{};
            rte_eth_dev_info_get(p, &info);
            if (!info.driver_name || std::strcmp(info.driver_name, "net_pcap") != 0) pcap_ports = false;
        }
    }
    if (cfg.replay_pps && !ports.empty() && !pcap_ports) {
        err = "--replay-pps replays captures (the mmap reader or net_pcap ports); a NIC port is paced by its wire";
        st = 2;
        return false;
    }
    for (size_t i = 0; i < cfg.captures.size(); ++i) {
        auto file = CaptureFile::open(cfg.captures[i], err);
        if (!file) {
            st = 2;
            return false;
        }
        auto src = CaptureSource::create(std::move(file), mbufs, socket, "tap_cap" + std::to_string(i), err);
        if (!src) return false;
        src->loop(cfg.replay_pps != 0);
        captures.push_back(std::move(src));
    }
    // A paced replay stamps arrival times: a looped capture repeats its own.
    capture_times = (ports.empty() || pcap_ports) && !cfg.replay_pps;
    return true;
}

bool TapPlane::start_pipeline(rte_mempool *flow_state_pool, std::vector<TapWorkerHandler *> handlers,
                              std::string &err) {
    return impl_->make_pipeline(flow_state_pool, std::move(handlers), err);
}

bool TapPlane::Impl::make_pipeline(rte_mempool *flow_state_pool, std::vector<TapWorkerHandler *> hs,
                                   std::string &err) {
    if (hs.size() != cfg.cls.workers) {
        err = "the tap plane needs one handler per logical worker";
        return false;
    }
    handlers = std::move(hs);
    const unsigned shards = cfg.rx_shards;
    flow::ClassifierConfig cc = cfg.cls;
    cc.table.socket_id = socket;
    cc.flow_state_pool = flow_state_pool;
    // --flow-capacity is the tap's: the symmetric hash spreads flows evenly
    // enough that each shard's table gets its share (rounded up).
    cc.table.capacity = std::max<uint32_t>(8, (cfg.cls.table.capacity + shards - 1) / shards);
    for (unsigned s = 0; s < shards; ++s) {
        // Table and ring names are EAL-wide: one set per shard.
        cc.table.name = shards == 1 ? "tap_flows" : "tap_flows_s" + std::to_string(s);
        auto c = flow::Classifier::create(cc, nullptr, err);
        if (!c) return false;
        cls.push_back(std::move(c));
    }
    for (unsigned s = 0; s < shards && shards > 1; ++s) {
        std::vector<const flow::Classifier *> peers;
        for (unsigned o = 0; o < shards; ++o)
            if (o != s) peers.push_back(cls[o].get());
        if (!cls[s]->share_load_with(std::move(peers), err)) return false;
    }
    rx_iter.assign(shards, 0);
    rx_gaps = std::make_unique<PollGaps[]>(layout.plan.lcores.size());
    for (size_t i = 0; i < layout.plan.lcores.size(); i++) rx_gaps[i].set_tsc_hz(rte_get_tsc_hz());
    worker_ports.resize(shards);
    for (unsigned s = 0; s < shards; ++s)
        for (unsigned w = 0; w < cfg.cls.workers; ++w)
            worker_ports[s].push_back(std::make_unique<flow::WorkerPort>(*cls[s], w));
    // One process_burst() stages at most a burst per worker on top of the
    // burst already staged, and hands both over: a capture is read only
    // while every ring has room for that, so no packet of a file is dropped.
    room_needed = 2 * flow::kBurst;
    if (!captures.empty() && cfg.cls.ring_size < 2 * room_needed) {
        err = "--ring-size must be at least " + std::to_string(2 * room_needed) + " to read capture files";
        return false;
    }

    timespec wall{};
    clock_gettime(CLOCK_REALTIME, &wall);
    tsc_hz = rte_get_tsc_hz();
    epoch_ns_at_start = uint64_t(wall.tv_sec) * 1'000'000'000ull + uint64_t(wall.tv_nsec);
    start_tsc = rte_rdtsc();
    const uint64_t idle_ms = cfg.exit_on_idle_ms == UINT64_MAX ? (pcap_ports ? 300 : 0) : cfg.exit_on_idle_ms;
    exit_on_idle_tsc = idle_ms * tsc_hz / 1000;
    if (cfg.replay_pps) {
        pacer.per_tsc = static_cast<double>(cfg.replay_pps) / static_cast<double>(tsc_hz);
        // At least one burst per 100 us: a low rate comes in smaller bursts.
        pacer.burst = static_cast<unsigned>(std::clamp<uint64_t>(cfg.replay_pps / 10'000, 1, flow::kBurst));
    }
    for (uint16_t p : ports)
        if (!port::start_device(p, true, err)) return false;
    return true;
}

void TapPlane::Impl::teardown() {
    port::stop_ports(ports); // a memif server lets its peer leave first (port.h)
    ports.clear();
    worker_ports.clear();
    if (!free_memory) {
        for (auto &c : cls) c->leave_memory_to_eal_cleanup();
        for (auto &c : captures) c->leave_memory_to_eal_cleanup();
        port_pool = nullptr;
    }
    cls.clear();
    // Every mbuf came back: the workers freed what they got, the classifier
    // what it dropped, and run() drained every ring.
    captures.clear();
    if (port_pool) rte_mempool_free(port_pool);
    port_pool = nullptr;
}

int TapPlane::socket() const { return impl_->socket; }
bool TapPlane::capture_times() const { return impl_->capture_times; }
unsigned TapPlane::workers() const { return impl_->cfg.cls.workers; }
unsigned TapPlane::shards() const { return impl_->cfg.rx_shards; }
std::string TapPlane::lcore_roles() const { return impl_->layout.describe(); }
flow::Classifier &TapPlane::classifier(unsigned shard) { return *impl_->cls[shard]; }

flow::ClassifierStats TapPlane::classifier_stats() const {
    flow::ClassifierStats t;
    for (const auto &c : impl_->cls) t += c->stats();
    return t;
}

flow::FlowTableStats TapPlane::table_stats() const {
    flow::FlowTableStats t;
    for (const auto &c : impl_->cls) t += c->table().stats();
    return t;
}

PollGaps::Figures TapPlane::rx_gaps() const {
    PollGaps::Figures f;
    if (impl_->rx_gaps)
        for (size_t i = 0; i < impl_->layout.plan.lcores.size(); i++) f += impl_->rx_gaps[i].figures();
    return f;
}

uint32_t TapPlane::flows_active() const {
    uint32_t n = 0;
    for (const auto &c : impl_->cls) n += c->table().active();
    return n;
}

uint64_t TapPlane::dispatched(unsigned w) const {
    uint64_t n = 0;
    for (const auto &c : impl_->cls) n += c->dispatched(w);
    return n;
}

uint64_t TapPlane::ring_drops(unsigned w) const {
    uint64_t n = 0;
    for (const auto &c : impl_->cls) n += c->ring_drops(w);
    return n;
}

uint64_t TapPlane::busy_cycles(unsigned w) const {
    uint64_t n = 0;
    for (const auto &c : impl_->cls) n += c->busy_cycles(w);
    return n;
}

float TapPlane::busy_share(unsigned w) const { return impl_->cls[0]->busy_share(w); }

flow::WorkerCounters TapPlane::worker_counters(unsigned w) const {
    flow::WorkerCounters t;
    for (const auto &per_shard : impl_->worker_ports) t += per_shard[w]->counters;
    return t;
}
uint64_t TapPlane::start_tsc() const { return impl_->start_tsc; }

double TapPlane::seconds() const {
    const uint64_t end = impl_->end_tsc ? impl_->end_tsc : rte_rdtsc();
    return static_cast<double>(end - impl_->start_tsc) / static_cast<double>(impl_->tsc_hz);
}

ReplayFigures TapPlane::replay() const {
    const Impl &m = *impl_;
    ReplayFigures r;
    if (!m.cfg.replay_pps) return r;
    r.pps = m.cfg.replay_pps;
    const uint64_t stop = m.pacer.stop_tsc ? m.pacer.stop_tsc : rte_rdtsc();
    r.seconds = m.pacer.start_tsc ? static_cast<double>(stop - m.pacer.start_tsc) / static_cast<double>(m.tsc_hz) : 0;
    r.received = m.pacer.received;
    r.missed = m.pacer.missed;
    r.unavailable = m.pacer.unavailable;
    for (const auto &c : m.captures) r.passes += c->passes();
    return r;
}

uint64_t TapPlane::capture_packets() const {
    uint64_t n = 0;
    for (const auto &c : impl_->captures) n += c->packets();
    return n;
}

} // namespace millipede::dataplane

// The tap plane's set-up and teardown: lcore plan, inputs (ports, capture
// files), the classifier and its rings. See tap.h.
#include <algorithm>
#include <cstring>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include "millipede/dataplane/capture_file.h"
#include "millipede/port/configured.h"
#include "millipede/port/port.h"
#include "tap_internal.h"

namespace millipede::dataplane {

TapPlane::TapPlane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TapPlane::~TapPlane() {
    if (impl_) impl_->teardown();
}

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

bool TapPlane::Impl::open_inputs(std::string &err, int &st) {
    std::vector<unsigned> ids{rte_get_main_lcore()};
    unsigned l;
    RTE_LCORE_FOREACH_WORKER(l) ids.push_back(l);
    plan = plan_lcores(ids, 0);
    for (unsigned slot = 0; slot < plan.lcores.size(); ++slot)
        if (plan.lcores[slot].roles & kRoleWorker) worker_lcore_slots.push_back(slot);
    if (!cfg.workers_given) cfg.cls.workers = plan.workers;

    ports = cfg.ports.empty() ? port::available_ports() : cfg.ports;
    if (ports.empty() && cfg.captures.empty()) {
        err = "no DPDK ports: bind a NIC to a DPDK driver, or add a virtual device, e.g. --vdev "
              "'net_pcap0,rx_pcap=capture.pcap'";
        st = 2;
        return false;
    }
    const unsigned mbufs = cfg.mbufs ? cfg.mbufs : 8191 + cfg.cls.workers * cfg.cls.ring_size;
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
            port::PortConfig pc;
            pc.port_id = p;
            pc.start = false; // make_pipeline() starts them after the last allocation (port.h)
            if (!port::start_port(pc, port_pool, err)) {
                ports = started; // teardown stops these
                return false;
            }
            started.push_back(p);
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
    cfg.cls.table.socket_id = socket;
    cfg.cls.table.name = "tap_flows";
    cfg.cls.flow_state_pool = flow_state_pool;
    cls = flow::Classifier::create(cfg.cls, nullptr, err);
    if (!cls) return false;
    for (unsigned w = 0; w < cfg.cls.workers; ++w) worker_ports.push_back(std::make_unique<flow::WorkerPort>(*cls, w));
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
    cls.reset();
    // Every mbuf came back: the workers freed what they got, the classifier
    // what it dropped, and run() drained every ring.
    captures.clear();
    if (port_pool) rte_mempool_free(port_pool);
    port_pool = nullptr;
}

int TapPlane::socket() const { return impl_->socket; }
bool TapPlane::capture_times() const { return impl_->capture_times; }
unsigned TapPlane::workers() const { return impl_->cfg.cls.workers; }
std::string TapPlane::lcore_roles() const { return impl_->plan.describe(); }
flow::Classifier &TapPlane::classifier() { return *impl_->cls; }
const flow::WorkerCounters &TapPlane::worker_counters(unsigned w) const { return impl_->worker_ports[w]->counters; }
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

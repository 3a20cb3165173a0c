// `tap`: classify mirrored traffic by flow, pin each flow to one worker,
// balance new flows, report. (nDPI inspection and flow records build on this.)
//
// Lcore roles (docs/architecture.md): with only the main lcore, one loop does
// RX, classification and every worker; with one more lcore that lcore does it
// all and the main lcore only controls; with more, the first non-main lcore
// receives and classifies and the rest poll the workers' rings (logical
// workers are spread over them, so --workers may exceed the lcore count).
#include <atomic>
#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include "millipede/flow/classifier.h"
#include "millipede/flow/community_id.h"
#include "millipede/port/port.h"
#include "backoff.h"
#include "modes.h"
#include "options.h"

namespace millipede::app {
namespace {

using flow::Classifier;
using flow::WorkerPort;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

struct TapOptions {
    flow::ClassifierConfig cls;
    std::vector<uint16_t> ports;
    std::string summary_path; // JSON summary at exit; "-" = stdout
    std::string flows_path;   // one JSON record per ended flow; "-" = stdout
    uint64_t exit_on_idle_ms = UINT64_MAX; // UINT64_MAX = automatic
    uint64_t duration_ns = 0;
    uint64_t stats_interval_ns = 0;
    bool workers_given = false;
};

void tap_usage(FILE *f) {
    std::fprintf(f,
                 "usage: dpdk-millipede [EAL options] -- tap [options]\n"
                 "  Classifies traffic from DPDK ports by flow and pins each flow to one worker.\n"
                 "  --policy hash|pending|busy  worker for a new flow (default busy)\n"
                 "  --migrate                   move a flow with nothing in flight to a less loaded worker\n"
                 "  --workers N                 logical workers (default: one per worker lcore)\n"
                 "  --port ID                   port to read (repeatable; default every port)\n"
                 "  --flow-capacity N           flow table size (default 1048576)\n"
                 "  --ring-size N               per-worker ring, power of two (default 4096)\n"
                 "  --idle-timeout S | tcp=S,udp=S,other=S   idle timeouts in seconds (300/120/60)\n"
                 "  --linger S                  how long a closed TCP flow lingers (default 5)\n"
                 "  --exit-on-idle MS           stop after MS ms without packets (default 300 for\n"
                 "                              net_pcap ports, never otherwise; 0 = never)\n"
                 "  --duration S                stop after S seconds\n"
                 "  --stats-interval S          print per-worker figures every S seconds\n"
                 "  --flows-out FILE|-          one JSON record per ended flow (Community ID, 5-tuple,\n"
                 "                              first/last seen, packets per direction, worker, end reason)\n"
                 "  --summary FILE|-            write a JSON summary at exit\n");
}

bool parse_idle_timeouts(std::string_view v, flow::FlowTableConfig &t) {
    if (auto all = parse_seconds_ns(v)) {
        t.idle_timeout_ns.fill(*all);
        return true;
    }
    while (!v.empty()) {
        auto comma = v.find(',');
        std::string_view item = v.substr(0, comma);
        auto eq = item.find('=');
        if (eq == std::string_view::npos) return false;
        auto ns = parse_seconds_ns(item.substr(eq + 1));
        if (!ns) return false;
        std::string_view k = item.substr(0, eq);
        if (k == "tcp") t.idle_timeout_ns[0] = *ns;
        else if (k == "udp") t.idle_timeout_ns[1] = *ns;
        else if (k == "other") t.idle_timeout_ns[2] = *ns;
        else return false;
        v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
    }
    return true;
}

// Returns an error message, empty on success.
std::string parse_tap_args(int argc, char **argv, TapOptions &o) {
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&](const char *what) -> std::optional<std::string_view> {
            if (i + 1 >= argc) return std::nullopt;
            (void)what;
            return std::string_view(argv[++i]);
        };
        if (a == "--help" || a == "-h") {
            tap_usage(stdout);
            std::exit(0);
        } else if (a == "--migrate") {
            o.cls.migrate = true;
        } else if (a == "--policy") {
            auto v = value("policy");
            auto p = v ? flow::parse_policy(*v) : std::nullopt;
            if (!p) return "--policy needs hash, pending or busy";
            o.cls.policy = *p;
        } else if (a == "--workers") {
            auto v = value("workers");
            auto n = v ? parse_uint(*v, 1, 64) : std::nullopt;
            if (!n) return "--workers needs a number from 1 to 64";
            o.cls.workers = static_cast<unsigned>(*n);
            o.workers_given = true;
        } else if (a == "--port") {
            auto v = value("port");
            auto n = v ? parse_uint(*v, 0, RTE_MAX_ETHPORTS - 1) : std::nullopt;
            if (!n) return "--port needs a port id";
            o.ports.push_back(static_cast<uint16_t>(*n));
        } else if (a == "--flow-capacity") {
            auto v = value("flow-capacity");
            auto n = v ? parse_uint(*v, 8, 1u << 30) : std::nullopt;
            if (!n) return "--flow-capacity needs a number from 8 to 2^30";
            o.cls.table.capacity = static_cast<uint32_t>(*n);
        } else if (a == "--ring-size") {
            auto v = value("ring-size");
            auto n = v ? parse_uint(*v, 32, 1u << 24) : std::nullopt;
            if (!n || (*n & (*n - 1))) return "--ring-size needs a power of two from 32";
            o.cls.ring_size = static_cast<unsigned>(*n);
        } else if (a == "--idle-timeout") {
            auto v = value("idle-timeout");
            if (!v || !parse_idle_timeouts(*v, o.cls.table)) return "--idle-timeout needs S or tcp=S,udp=S,other=S";
        } else if (a == "--linger") {
            auto v = value("linger");
            auto ns = v ? parse_seconds_ns(*v) : std::nullopt;
            if (!ns) return "--linger needs seconds";
            o.cls.table.closed_linger_ns = *ns;
        } else if (a == "--exit-on-idle") {
            auto v = value("exit-on-idle");
            auto n = v ? parse_uint(*v, 0, 86'400'000) : std::nullopt;
            if (!n) return "--exit-on-idle needs milliseconds";
            o.exit_on_idle_ms = *n;
        } else if (a == "--duration") {
            auto v = value("duration");
            auto ns = v ? parse_seconds_ns(*v) : std::nullopt;
            if (!ns) return "--duration needs seconds";
            o.duration_ns = *ns;
        } else if (a == "--stats-interval") {
            auto v = value("stats-interval");
            auto ns = v ? parse_seconds_ns(*v) : std::nullopt;
            if (!ns) return "--stats-interval needs seconds";
            o.stats_interval_ns = *ns;
        } else if (a == "--flows-out") {
            auto v = value("flows-out");
            if (!v) return "--flows-out needs a file name or -";
            o.flows_path = std::string(*v);
        } else if (a == "--summary") {
            auto v = value("summary");
            if (!v) return "--summary needs a file name or -";
            o.summary_path = std::string(*v);
        } else {
            return "unknown tap option '" + std::string(a) + "' (see tap --help)";
        }
    }
    return {};
}

// Shared by the lcore loops.
struct TapRun {
    TapOptions opt;
    std::unique_ptr<Classifier> cls;
    std::vector<std::unique_ptr<WorkerPort>> workers;
    std::vector<uint16_t> ports;
    std::atomic<bool> input_done{false};
    uint64_t tsc_hz = 0;
    uint64_t start_tsc = 0;
    uint64_t exit_on_idle_tsc = 0; // 0 = never
    uint64_t rx_packets = 0;       // classifier lcore only
};

uint64_t now_ns(const TapRun &r) {
    // Relative to the run's start; good for idle arithmetic and records.
    return static_cast<uint64_t>(static_cast<double>(rte_rdtsc() - r.start_tsc) * 1e9 / static_cast<double>(r.tsc_hz));
}


// One step of receive + classify. Returns packets received.
unsigned classify_step(TapRun &r, uint64_t &last_rx_tsc, uint64_t &iter) {
    unsigned total = 0;
    rte_mbuf *pkts[flow::kBurst];
    uint64_t now = now_ns(r);
    for (uint16_t p : r.ports) {
        unsigned n = rte_eth_rx_burst(p, 0, pkts, flow::kBurst);
        if (n) r.cls->process_burst(pkts, n, now);
        total += n;
    }
    if ((++iter & 63) == 0) r.cls->expire(now);
    uint64_t tsc = rte_rdtsc();
    if (total) {
        last_rx_tsc = tsc;
        r.rx_packets += total;
    } else {
        r.cls->flush_staged(); // the input went quiet: nothing waits for the next burst
        if (r.exit_on_idle_tsc && tsc - last_rx_tsc > r.exit_on_idle_tsc) r.input_done.store(true);
    }
    return total;
}

unsigned workers_step(TapRun &r, unsigned first, unsigned stride) {
    unsigned done = 0;
    for (unsigned w = first; w < r.workers.size(); w += stride)
        done += r.workers[w]->poll([](rte_mbuf *m, const flow::FlowMeta &) { rte_pktmbuf_free(m); });
    return done;
}

bool rings_empty(TapRun &r, unsigned first, unsigned stride) {
    for (unsigned w = first; w < r.workers.size(); w += stride)
        if (!rte_ring_empty(r.cls->worker_ring(w))) return false;
    return true;
}

bool should_stop(TapRun &r) {
    return g_stop.load(std::memory_order_relaxed) ||
           (r.opt.duration_ns && now_ns(r) > r.opt.duration_ns);
}

// Everything in one loop (one lcore).
int all_in_one_loop(TapRun &r) {
    uint64_t last_rx = rte_rdtsc(), iter = 0;
    Backoff b;
    while (!r.input_done.load() && !should_stop(r)) {
        unsigned n = classify_step(r, last_rx, iter) + workers_step(r, 0, 1);
        n ? b.reset() : b.idle();
    }
    while (!rings_empty(r, 0, 1)) workers_step(r, 0, 1);
    return 0;
}

struct WorkerLcoreArg {
    TapRun *run;
    unsigned first, stride;
};

int classifier_lcore(void *arg) {
    TapRun &r = *static_cast<TapRun *>(arg);
    uint64_t last_rx = rte_rdtsc(), iter = 0;
    Backoff b;
    while (!r.input_done.load() && !should_stop(r)) classify_step(r, last_rx, iter) ? b.reset() : b.idle();
    r.input_done.store(true);
    return 0;
}

int worker_lcore(void *arg) {
    auto &a = *static_cast<WorkerLcoreArg *>(arg);
    Backoff b;
    for (;;) {
        unsigned n = workers_step(*a.run, a.first, a.stride);
        if (n) {
            b.reset();
            continue;
        }
        if (a.run->input_done.load() && rings_empty(*a.run, a.first, a.stride)) break;
        b.idle();
    }
    return 0;
}

int collapsed_lcore(void *arg) { return all_in_one_loop(*static_cast<TapRun *>(arg)); }

void print_stats_line(TapRun &r) {
    std::fprintf(stderr, "tap: %lu pkts, %u flows active", (unsigned long)r.cls->stats().packets,
                 r.cls->table().active());
    for (unsigned w = 0; w < r.workers.size(); ++w)
        std::fprintf(stderr, " | w%u %lu pkts %.0f%% busy %lu drops", w, (unsigned long)r.workers[w]->counters.packets,
                     100.0 * r.cls->busy_share(w), (unsigned long)r.cls->ring_drops(w));
    std::fprintf(stderr, "\n");
}

// Writes one JSON line per ended flow. Runs on the classifier lcore and
// writes through a large stdio buffer; handing records to a writer thread so
// a slow disk can never stall the classifier is the tap-mode issue's work.
class FlowRecorder : public flow::FlowEndSink {
public:
    explicit FlowRecorder(FILE *out) : out_(out) {
        if (out_) std::setvbuf(out_, nullptr, _IOFBF, 1 << 20);
    }
    void on_flow_end(const flow::FlowKey &k, const flow::FlowEntry &e, flow::FlowEndReason why) override {
        if (!out_) return;
        // The initiator (first packet's sender) is the record's source.
        bool lo_first = e.first_dir == flow::kFromLo;
        net::IpAddr src{}, dst{};
        std::memcpy(src.bytes, lo_first ? k.addr_lo : k.addr_hi, 16);
        std::memcpy(dst.bytes, lo_first ? k.addr_hi : k.addr_lo, 16);
        uint16_t sport = lo_first ? k.port_lo : k.port_hi, dport = lo_first ? k.port_hi : k.port_lo;
        bool icmp = k.proto == net::kProtoICMP || k.proto == net::kProtoICMPv6;
        if (icmp) {
            sport = static_cast<uint16_t>(e.syn_seq & 0xff); // first packet's type
            dport = static_cast<uint16_t>((e.syn_seq >> 8) & 0xff); // and code
        }
        // Computed once per flow, here, never per packet.
        flow::CommunityIdText id = flow::community_id_v1(src, dst, k.ip_version, k.proto, sport, dport);
        char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
        int family = k.ip_version == 6 ? AF_INET6 : AF_INET;
        inet_ntop(family, src.bytes, a, sizeof a);
        inet_ntop(family, dst.bytes, b, sizeof b);
        std::fprintf(out_,
                     "{\"community_id\":\"%s\",\"proto\":%u,\"src\":\"%s\",\"sport\":%u,\"dst\":\"%s\","
                     "\"dport\":%u,\"first_seen_ns\":%llu,\"last_seen_ns\":%llu,\"packets_fwd\":%u,"
                     "\"packets_rev\":%u,\"worker\":%u,\"migrations\":%u,\"end\":\"%s\"%s}\n",
                     id.text, k.proto, a, icmp ? 0u : sport, b, icmp ? 0u : dport,
                     (unsigned long long)e.first_seen_ns, (unsigned long long)e.last_seen_ns,
                     e.packets[lo_first ? 0 : 1], e.packets[lo_first ? 1 : 0], e.worker, e.migrations,
                     flow::flow_end_reason_name(why), k.pad_[0] ? ",\"unjoined_fragments\":true" : "");
    }

private:
    FILE *out_;
};

void write_summary(TapRun &r, FILE *f, double seconds) {
    const auto &s = r.cls->stats();
    const auto &t = r.cls->table().stats();
    flow::WorkerCounters sum{};
    for (auto &w : r.workers) {
        sum.packets += w->counters.packets;
        sum.order_inversions += w->counters.order_inversions;
        sum.split_flows += w->counters.split_flows;
        sum.unrecorded_moves += w->counters.unrecorded_moves;
        sum.stale_packets += w->counters.stale_packets;
    }
    std::fprintf(f, "{\"mode\":\"tap\",\"policy\":\"%s\",\"migrate\":%s,\"workers\":%u,\"seconds\":%.6f,",
                 flow::policy_name(r.opt.cls.policy), r.opt.cls.migrate ? "true" : "false", r.cls->workers(), seconds);
    std::fprintf(f, "\"packets\":%lu,\"classified\":%lu,", (unsigned long)s.packets, (unsigned long)sum.packets);
    std::fprintf(f, "\"rejects\":{");
    bool first = true;
    for (unsigned i = 1; i < net::kRejectCount; ++i) { // index 0 is Reject::NONE
        if (!s.rejects[i]) continue;
        std::fprintf(f, "%s\"%s\":%lu", first ? "" : ",", net::reject_name(static_cast<net::Reject>(i)),
                     (unsigned long)s.rejects[i]);
        first = false;
    }
    std::fprintf(f, "},\"drops\":{");
    for (unsigned i = 0; i < flow::kClassifierDropCount; ++i)
        std::fprintf(f, "%s\"%s\":%lu", i ? "," : "", flow::classifier_drop_name(static_cast<flow::ClassifierDrop>(i)),
                     (unsigned long)s.drops[i]);
    std::fprintf(f, "},\"flows\":{\"tcp\":%lu,\"udp\":%lu,\"other\":%lu},", (unsigned long)t.created[0],
                 (unsigned long)t.created[1], (unsigned long)t.created[2]);
    std::fprintf(f, "\"flows_ended\":{");
    for (unsigned i = 0; i < flow::kFlowEndReasonCount; ++i)
        std::fprintf(f, "%s\"%s\":%lu", i ? "," : "", flow::flow_end_reason_name(static_cast<flow::FlowEndReason>(i)),
                     (unsigned long)t.ended[i]);
    std::fprintf(f, "},\"migrations\":%lu,\"fragments\":{\"joined\":%lu,\"unjoined\":%lu},",
                 (unsigned long)s.migrations, (unsigned long)s.fragments_joined, (unsigned long)s.fragments_unjoined);
    std::fprintf(f, "\"per_worker\":[");
    for (unsigned w = 0; w < r.workers.size(); ++w)
        std::fprintf(f, "%s{\"dispatched\":%lu,\"processed\":%lu,\"ring_drops\":%lu,\"busy_share\":%.4f}", w ? "," : "",
                     (unsigned long)r.cls->dispatched(w), (unsigned long)r.workers[w]->counters.packets,
                     (unsigned long)r.cls->ring_drops(w), r.cls->busy_share(w));
    std::fprintf(f, "],\"correctness\":{\"order_inversions\":%lu,\"split_flows\":%lu,\"unrecorded_moves\":%lu}}\n",
                 (unsigned long)sum.order_inversions, (unsigned long)sum.split_flows,
                 (unsigned long)sum.unrecorded_moves);
}

} // namespace

int run_tap(int argc, char **argv) {
    TapRun r;
    if (std::string e = parse_tap_args(argc, argv, r.opt); !e.empty()) {
        std::fprintf(stderr, "dpdk-millipede tap: %s\n", e.c_str());
        return 2;
    }
    r.ports = r.opt.ports.empty() ? port::available_ports() : r.opt.ports;
    if (r.ports.empty()) {
        std::fprintf(stderr, "dpdk-millipede tap: no DPDK ports: bind a NIC to a DPDK driver, or add a virtual "
                             "device, e.g. --vdev 'net_pcap0,rx_pcap=capture.pcap'\n");
        return 2;
    }
    // Lcore roles: see the file comment.
    std::vector<unsigned> others;
    unsigned l;
    RTE_LCORE_FOREACH_WORKER(l) others.push_back(l);
    unsigned worker_lcores = others.size() >= 2 ? static_cast<unsigned>(others.size() - 1) : 1;
    if (!r.opt.workers_given) r.opt.cls.workers = worker_lcores;

    std::string err;
    bool pcap_input = true;
    int socket = port::port_socket(r.ports[0]);
    rte_mempool *pool = port::make_pool("tap_pool", 8191 + r.opt.cls.workers * r.opt.cls.ring_size, socket, err);
    if (!pool) {
        std::fprintf(stderr, "dpdk-millipede tap: %s\n", err.c_str());
        return 1;
    }
    for (uint16_t p : r.ports) {
        port::PortConfig pc;
        pc.port_id = p;
        if (!port::start_port(pc, pool, err)) {
            std::fprintf(stderr, "dpdk-millipede tap: %s\n", err.c_str());
            return 1;
        }
        rte_eth_dev_info info{};
        rte_eth_dev_info_get(p, &info);
        if (!info.driver_name || std::strcmp(info.driver_name, "net_pcap") != 0) pcap_input = false;
    }
    r.opt.cls.table.socket_id = socket;
    r.opt.cls.table.name = "tap_flows";
    FILE *records = nullptr;
    if (!r.opt.flows_path.empty()) {
        records = r.opt.flows_path == "-" ? stdout : std::fopen(r.opt.flows_path.c_str(), "w");
        if (!records) {
            std::fprintf(stderr, "dpdk-millipede tap: cannot write %s: %s\n", r.opt.flows_path.c_str(),
                         std::strerror(errno));
            return 1;
        }
    }
    FlowRecorder sink(records);
    r.cls = Classifier::create(r.opt.cls, &sink, err);
    if (!r.cls) {
        std::fprintf(stderr, "dpdk-millipede tap: %s\n", err.c_str());
        return 1;
    }
    for (unsigned w = 0; w < r.opt.cls.workers; ++w) r.workers.push_back(std::make_unique<WorkerPort>(*r.cls, w));

    r.tsc_hz = rte_get_tsc_hz();
    r.start_tsc = rte_rdtsc();
    uint64_t idle_ms = r.opt.exit_on_idle_ms == UINT64_MAX ? (pcap_input ? 300 : 0) : r.opt.exit_on_idle_ms;
    r.exit_on_idle_tsc = idle_ms * r.tsc_hz / 1000;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    std::vector<WorkerLcoreArg> wargs;
    if (others.empty()) {
        all_in_one_loop(r);
    } else {
        if (others.size() == 1) {
            rte_eal_remote_launch(collapsed_lcore, &r, others[0]);
        } else {
            rte_eal_remote_launch(classifier_lcore, &r, others[0]);
            unsigned stride = static_cast<unsigned>(others.size() - 1);
            wargs.reserve(stride);
            for (unsigned i = 0; i < stride; ++i) wargs.push_back({&r, i, stride});
            for (unsigned i = 0; i < stride; ++i) rte_eal_remote_launch(worker_lcore, &wargs[i], others[i + 1]);
        }
        // The main lcore controls: stats lines, and waits.
        uint64_t next_stats = r.opt.stats_interval_ns;
        while (!r.input_done.load()) {
            rte_delay_us_sleep(10'000);
            if (g_stop.load()) r.input_done.store(true);
            if (r.opt.stats_interval_ns && now_ns(r) >= next_stats) {
                print_stats_line(r);
                next_stats += r.opt.stats_interval_ns;
            }
        }
        rte_eal_mp_wait_lcore();
    }
    double seconds = static_cast<double>(rte_rdtsc() - r.start_tsc) / static_cast<double>(r.tsc_hz);
    r.cls->flush();
    if (records) {
        std::fflush(records);
        if (records != stdout) std::fclose(records);
    }
    print_stats_line(r);
    if (!r.opt.summary_path.empty()) {
        FILE *f = r.opt.summary_path == "-" ? stdout : std::fopen(r.opt.summary_path.c_str(), "w");
        if (!f) {
            std::fprintf(stderr, "dpdk-millipede tap: cannot write %s: %s\n", r.opt.summary_path.c_str(),
                         std::strerror(errno));
            return 1;
        }
        write_summary(r, f, seconds);
        if (f != stdout) std::fclose(f);
    }
    for (uint16_t p : r.ports) port::stop_port(p);
    return 0;
}

} // namespace millipede::app

// `tap`: the DPI appliance. Mirrored traffic is classified by flow, each
// flow pinned to one worker, new flows balanced; workers inspect with nDPI
// and emit one JSON record per ended flow through a writer thread.
//
// Lcore roles (docs/architecture.md): with only the main lcore, one loop does
// RX, classification and every worker; with one more lcore that lcore does it
// all and the main lcore only controls; with more, the first non-main lcore
// receives and classifies and the rest poll the workers' rings (logical
// workers are spread over them, so --workers may exceed the lcore count).
// The main lcore prints stats (--stats-interval, SIGUSR1); rte_telemetry
// answers /millipede/tap/* from its own thread (see register_telemetry).
//
// Start-up order (run_tap): options are parsed and capture files checked
// before EAL starts, so --help, a bad option or a missing capture costs no
// EAL start-up and leaves no runtime files; the signal handlers go in before
// rte_eal_init, so a SIGUSR1 at any moment asks for the figures (printed once
// the run loop is up, or by the final line) and never ends the process.
#include <atomic>
#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>
#include <string>
#include <time.h>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_telemetry.h>

#include "millipede/dpi/inspector.h"
#include "millipede/flow/classifier.h"
#include "millipede/port/port.h"
#include "backoff.h"
#include "modes.h"
#include "options.h"
#include "tap_records.h"
#include "tap_worker.h"

namespace millipede::app {
namespace {

using flow::Classifier;
using flow::WorkerPort;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_dump{false}; // SIGUSR1: the main lcore prints the figures
void on_signal(int) { g_stop.store(true); }
void on_usr1(int) { g_dump.store(true); }

struct TapOptions {
    flow::ClassifierConfig cls;
    std::vector<uint16_t> ports;
    std::string summary_path; // JSON summary at exit; "-" = stdout
    std::string flows_path;   // one JSON record per ended flow; "-" = stdout
    uint64_t exit_on_idle_ms = UINT64_MAX; // UINT64_MAX = automatic
    uint64_t duration_ns = 0;
    uint64_t stats_interval_ns = 0;
    bool workers_given = false;
    bool dpi = true;
    unsigned dpi_flows = 0;           // flow state objects; 0 = automatic
    unsigned record_ring = 1u << 16; // records waiting for the writer thread
    unsigned mbufs = 0;              // receive pool; 0 = 8191 + workers x ring size
    ExportOptions exp;               // --flows-format, --ipfix*: tap_records.h
    bool help = false;
};

void tap_usage(FILE *f) {
    std::fprintf(f,
                 "usage: dpdk-millipede [EAL options] -- tap [options]\n"
                 "  A DPI tap: classifies traffic from DPDK ports (a mirror/SPAN port, or a capture file\n"
                 "  through --vdev 'net_pcap0,rx_pcap=FILE', which ends at the end of the file and flushes\n"
                 "  every flow) by flow, pins each flow to one worker; workers detect the L7 protocol with\n"
                 "  nDPI and write one JSON record per ended flow.\n"
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
                 "  --stats-interval S          print per-worker figures to stderr every S seconds\n"
                 "                              (and on SIGUSR1; rte_telemetry: /millipede/tap/stats,\n"
                 "                              /millipede/tap/workers)\n"
                 "  --flows-out FILE|-          one JSON record per ended flow (Community ID, 5-tuple,\n"
                 "                              first/last seen, packets and bytes per direction, nDPI\n"
                 "                              master/app protocol, worker, end reason), written by a\n"
                 "                              writer thread; a full record ring drops and counts\n");
    export_usage(f);
    std::fprintf(f,
                 "  --no-dpi                    classify and record without nDPI inspection\n"
                 "  --dpi-flows N               flow state objects, i.e. flows inspected at once (default\n"
                 "                              the flow capacity, at most 65536; a flow beyond gets none\n"
                 "                              and no record, counted as flow_states_exhausted)\n"
                 "  --record-ring N             records queued for the writer, power of two (default 65536)\n"
                 "  --summary FILE|-            write a JSON summary at exit\n"
                 "  --mbufs N                   mbufs in the receive pool (default 8191 + workers x ring\n"
                 "                              size); a looped capture (net_pcap infinite_rx=1) keeps\n"
                 "                              every packet of the file in it\n"
                 "  --check-order               workers prove every packet's order and pinning (the summary's\n"
                 "                              correctness counters); a test instrument that costs a memory\n"
                 "                              access per packet, off by default\n");
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
            o.help = true;
            return {};
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
        } else if (a == "--mbufs") {
            auto v = value("mbufs");
            auto n = v ? parse_uint(*v, 1024, 1u << 26) : std::nullopt;
            if (!n) return "--mbufs needs a number from 1024 to 2^26";
            o.mbufs = static_cast<unsigned>(*n);
        } else if (a == "--check-order") {
            o.cls.check_order = true;
        } else if (a == "--no-dpi") {
            o.dpi = false;
        } else if (a == "--dpi-flows") {
            auto v = value("dpi-flows");
            auto n = v ? parse_uint(*v, 64, 1u << 26) : std::nullopt;
            if (!n) return "--dpi-flows needs a number from 64 to 2^26";
            o.dpi_flows = static_cast<unsigned>(*n);
        } else if (a == "--record-ring") {
            auto v = value("record-ring");
            auto n = v ? parse_uint(*v, 64, 1u << 24) : std::nullopt;
            if (!n || (*n & (*n - 1))) return "--record-ring needs a power of two from 64 to 2^24";
            o.record_ring = static_cast<unsigned>(*n);
        } else if (a == "--summary") {
            auto v = value("summary");
            if (!v) return "--summary needs a file name or -";
            o.summary_path = std::string(*v);
        } else if (std::string err; parse_export_option(argc, argv, i, o.exp, err)) {
            if (!err.empty()) return err;
        } else {
            return "unknown tap option '" + std::string(a) + "' (see tap --help)";
        }
    }
    if (o.exp.format != FlowsFormat::Json && o.flows_path.empty()) return "--flows-format needs --flows-out";
    return {};
}

// Shared by the lcore loops, the main lcore and the telemetry thread.
struct TapRun {
    TapOptions opt;
    std::unique_ptr<Classifier> cls;
    std::vector<std::unique_ptr<WorkerPort>> workers;
    std::vector<std::unique_ptr<TapWorker>> tap_workers;
    std::unique_ptr<RecordWriter> writer;
    rte_mempool *flow_pool = nullptr;
    TapClock clock;
    std::vector<uint16_t> ports;
    std::atomic<bool> input_done{false};      // no more input: the classifier ends every flow
    std::atomic<bool> classifier_done{false}; // every packet and notice is in the workers' rings
    uint64_t tsc_hz = 0;
    uint64_t start_tsc = 0;
    uint64_t exit_on_idle_tsc = 0; // 0 = never
    uint64_t rx_packets = 0;       // classifier lcore only
};

uint64_t now_ns(const TapRun &r) {
    // Relative to the run's start: the classifier's clock for idle expiry.
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
    // Arrival time, used when packets carry no capture time: once per step.
    uint64_t now = r.clock.now_ns();
    for (unsigned w = first; w < r.workers.size(); w += stride) {
        TapWorker &tw = *r.tap_workers[w];
        done += r.workers[w]->poll([&](rte_mbuf *m, const flow::FlowMeta &meta) { tw.on_packet(m, meta, now); },
                                   [&](void *state, flow::FlowEndReason why) { tw.on_notice(state, why); });
    }
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

// End of input on the classifier lcore: end every flow, then hand every
// staged packet and notice over. Rings may be full, so this retries while
// the workers drain them (`work` runs them when they share this lcore).
template <class Work> void finish_input(TapRun &r, Work &&work) {
    r.cls->flush();
    Backoff b;
    while (!r.cls->all_handed_over()) {
        r.cls->flush_staged();
        work() ? b.reset() : b.idle();
    }
    r.classifier_done.store(true, std::memory_order_release);
}

void print_stats_line(TapRun &r);

// Everything in one loop (one lcore): also the main lcore's duties.
int all_in_one_loop(TapRun &r, bool main_duties) {
    uint64_t last_rx = rte_rdtsc(), iter = 0, next_stats = r.opt.stats_interval_ns;
    Backoff b;
    while (!r.input_done.load() && !should_stop(r)) {
        unsigned n = classify_step(r, last_rx, iter) + workers_step(r, 0, 1);
        n ? b.reset() : b.idle();
        if (main_duties) {
            // A plain load first: the exchange's locked write stays off the
            // hot loop unless SIGUSR1 actually asked.
            if (g_dump.load(std::memory_order_relaxed) && g_dump.exchange(false)) print_stats_line(r);
            if (r.opt.stats_interval_ns && (iter & 1023) == 0 && now_ns(r) >= next_stats) {
                print_stats_line(r);
                next_stats += r.opt.stats_interval_ns;
            }
        }
    }
    r.input_done.store(true);
    finish_input(r, [&] { return workers_step(r, 0, 1); });
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
    finish_input(r, [] { return 0u; });
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
        // Done only once the classifier has handed over everything, notices
        // included, and this lcore's rings are empty.
        if (a.run->classifier_done.load(std::memory_order_acquire) && rings_empty(*a.run, a.first, a.stride)) break;
        b.idle();
    }
    return 0;
}

int collapsed_lcore(void *arg) { return all_in_one_loop(*static_cast<TapRun *>(arg), false); }

// Sums and per-worker figures, read from any thread (relaxed).
struct WorkerFigures {
    uint64_t packets, bytes, flows_started, flows_ended, dpi_packets, detected, guessed, unknown;
    uint64_t ring_drops, records_dropped, no_state_packets, unseen_flows, busy_cycles;
};

WorkerFigures worker_figures(TapRun &r, unsigned w) {
    constexpr auto rl = std::memory_order_relaxed;
    const TapWorkerStats &s = r.tap_workers[w]->stats;
    return {s.packets.load(rl), s.bytes.load(rl), s.flows_started.load(rl), s.flows_ended.load(rl),
            s.dpi_packets.load(rl), s.detected.load(rl), s.guessed.load(rl), s.unknown.load(rl),
            r.cls->ring_drops(w), s.records_dropped.load(rl), s.no_state_packets.load(rl), s.unseen_flows.load(rl),
            r.cls->worker_shared(w).busy_cycles.load(rl)};
}

WorkerFigures &operator+=(WorkerFigures &a, const WorkerFigures &b) {
    a.packets += b.packets, a.bytes += b.bytes, a.flows_started += b.flows_started, a.flows_ended += b.flows_ended;
    a.dpi_packets += b.dpi_packets, a.detected += b.detected, a.guessed += b.guessed, a.unknown += b.unknown;
    a.ring_drops += b.ring_drops, a.records_dropped += b.records_dropped, a.no_state_packets += b.no_state_packets;
    a.unseen_flows += b.unseen_flows, a.busy_cycles += b.busy_cycles;
    return a;
}

void print_stats_line(TapRun &r) {
    // Busy share over the time since the previous line (main lcore only).
    static std::vector<uint64_t> last_busy;
    static uint64_t last_tsc = 0;
    uint64_t tsc = rte_rdtsc();
    if (last_busy.size() != r.workers.size()) {
        last_busy.assign(r.workers.size(), 0);
        last_tsc = r.start_tsc;
    }
    double elapsed = static_cast<double>(tsc - last_tsc);
    std::fprintf(stderr, "tap: %lu pkts, %u flows active, %lu records", (unsigned long)r.cls->stats().packets,
                 r.cls->table().active(), (unsigned long)(r.writer ? r.writer->written() : 0));
    for (unsigned w = 0; w < r.workers.size(); ++w) {
        WorkerFigures f = worker_figures(r, w);
        double busy = elapsed > 0 ? 100.0 * static_cast<double>(f.busy_cycles - last_busy[w]) / elapsed : 0.0;
        last_busy[w] = f.busy_cycles;
        std::fprintf(stderr, " | w%u %lu pkts %lu flows %.0f%% busy %lu drops", w, (unsigned long)f.packets,
                     (unsigned long)f.flows_ended, busy, (unsigned long)(f.ring_drops + f.records_dropped));
    }
    last_tsc = tsc;
    std::fprintf(stderr, "\n");
}

// rte_telemetry runs its callbacks on its own thread: they read relaxed
// counters through this pointer, which the main lcore clears (under the
// mutex) before the run's objects go away. DPDK 22.11 cannot unregister.
std::mutex g_tel_mutex;
TapRun *g_tel_run = nullptr;

int tel_stats(const char *, const char *, rte_tel_data *d) {
    std::lock_guard<std::mutex> lock(g_tel_mutex);
    if (!g_tel_run) return -1;
    TapRun &r = *g_tel_run;
    WorkerFigures sum{};
    for (unsigned w = 0; w < r.workers.size(); ++w) sum += worker_figures(r, w);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "workers", r.workers.size());
    rte_tel_data_add_dict_u64(d, "rx_packets", r.cls->stats().packets);
    rte_tel_data_add_dict_u64(d, "worker_packets", sum.packets);
    rte_tel_data_add_dict_u64(d, "flows_active", r.cls->table().active());
    rte_tel_data_add_dict_u64(d, "flows_started", sum.flows_started);
    rte_tel_data_add_dict_u64(d, "flows_ended", sum.flows_ended);
    rte_tel_data_add_dict_u64(d, "l7_detected", sum.detected);
    rte_tel_data_add_dict_u64(d, "l7_guessed", sum.guessed);
    rte_tel_data_add_dict_u64(d, "l7_unknown", sum.unknown);
    rte_tel_data_add_dict_u64(d, "ring_drops", sum.ring_drops);
    rte_tel_data_add_dict_u64(d, "records_written", r.writer ? r.writer->written() : 0);
    rte_tel_data_add_dict_u64(d, "records_dropped", sum.records_dropped);
    return 0;
}

int tel_workers(const char *, const char *, rte_tel_data *d) {
    std::lock_guard<std::mutex> lock(g_tel_mutex);
    if (!g_tel_run) return -1;
    TapRun &r = *g_tel_run;
    unsigned n = static_cast<unsigned>(r.workers.size());
    std::vector<WorkerFigures> f;
    for (unsigned w = 0; w < n; ++w) f.push_back(worker_figures(r, w));
    double elapsed = static_cast<double>(rte_rdtsc() - r.start_tsc);
    // One array per figure, indexed by worker.
    auto add = [&](const char *name, auto get) {
        rte_tel_data *a = rte_tel_data_alloc();
        if (!a) return;
        rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
        for (unsigned w = 0; w < n; ++w) rte_tel_data_add_array_u64(a, get(f[w]));
        rte_tel_data_add_dict_container(d, name, a, 0);
    };
    rte_tel_data_start_dict(d);
    add("packets", [](const WorkerFigures &x) { return x.packets; });
    add("bytes", [](const WorkerFigures &x) { return x.bytes; });
    add("flows_started", [](const WorkerFigures &x) { return x.flows_started; });
    add("flows_ended", [](const WorkerFigures &x) { return x.flows_ended; });
    add("dpi_packets", [](const WorkerFigures &x) { return x.dpi_packets; });
    add("ring_drops", [](const WorkerFigures &x) { return x.ring_drops; });
    add("records_dropped", [](const WorkerFigures &x) { return x.records_dropped; });
    add("busy_permille", [&](const WorkerFigures &x) {
        return elapsed > 0 ? static_cast<uint64_t>(1000.0 * static_cast<double>(x.busy_cycles) / elapsed) : 0;
    });
    return 0;
}

void register_telemetry(TapRun &r) {
    {
        std::lock_guard<std::mutex> lock(g_tel_mutex);
        g_tel_run = &r;
    }
    static bool registered = false; // commands outlive runs: register once
    if (registered) return;
    registered = true;
    rte_telemetry_register_cmd("/millipede/tap/stats", tel_stats,
                               "tap totals: packets, flows, L7 verdicts, drops, records. No parameters");
    rte_telemetry_register_cmd("/millipede/tap/workers", tel_workers,
                               "tap per-worker arrays: packets, bytes, flows, DPI packets, drops, busy share "
                               "(permille since start). No parameters");
}

void unregister_telemetry() {
    std::lock_guard<std::mutex> lock(g_tel_mutex);
    g_tel_run = nullptr;
}

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
        sum.short_burst_cycles += w->counters.short_burst_cycles;
        sum.short_burst_packets += w->counters.short_burst_packets;
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
    WorkerFigures tot{};
    std::vector<WorkerFigures> per;
    for (unsigned w = 0; w < r.workers.size(); ++w) {
        per.push_back(worker_figures(r, w));
        tot += per.back();
    }
    std::fprintf(f, "\"dpi\":{\"enabled\":%s,\"detected\":%lu,\"guessed\":%lu,\"unknown\":%lu,\"packets\":%lu,"
                    "\"flow_states_exhausted\":%lu,\"no_state_packets\":%lu},",
                 r.opt.dpi ? "true" : "false", (unsigned long)tot.detected, (unsigned long)tot.guessed,
                 (unsigned long)tot.unknown, (unsigned long)tot.dpi_packets, (unsigned long)s.flow_states_exhausted,
                 (unsigned long)tot.no_state_packets);
    std::fprintf(f, "\"records\":{\"flows_ended\":%lu,\"written\":%lu,\"dropped\":%lu,\"unseen_flows\":%lu,"
                    "\"notices_deferred\":%lu},",
                 (unsigned long)tot.flows_ended, (unsigned long)(r.writer ? r.writer->written() : 0),
                 (unsigned long)tot.records_dropped, (unsigned long)tot.unseen_flows,
                 (unsigned long)s.notices_deferred);
    if (r.writer) std::fprintf(f, "%s,", r.writer->export_summary_json().c_str());
    std::fprintf(f, "\"per_worker\":[");
    for (unsigned w = 0; w < r.workers.size(); ++w)
        std::fprintf(f,
                     "%s{\"dispatched\":%lu,\"processed\":%lu,\"ring_drops\":%lu,\"busy_share\":%.4f,"
                     "\"flows\":%lu,\"dpi_packets\":%lu,\"records_dropped\":%lu}",
                     w ? "," : "", (unsigned long)r.cls->dispatched(w), (unsigned long)r.workers[w]->counters.packets,
                     (unsigned long)r.cls->ring_drops(w), r.cls->busy_share(w), (unsigned long)per[w].flows_ended,
                     (unsigned long)per[w].dpi_packets, (unsigned long)per[w].records_dropped);
    // Cycles per packet: the classifier's inside process_burst, the workers'
    // on packets (flow accounting, nDPI, --check-order's checks, freeing),
    // and the workers' over the bursts no descheduling interrupted (what a
    // benchmark on a shared machine can compare; flow::kLongBurstUs).
    auto cycles_per = [](uint64_t cycles, uint64_t packets) {
        return packets ? static_cast<double>(cycles) / static_cast<double>(packets) : 0.0;
    };
    std::fprintf(f, "],\"cycles_per_packet\":{\"classifier\":%.1f,\"workers\":%.1f,\"workers_short_bursts\":%.1f},",
                 cycles_per(s.dispatch_cycles, s.packets), cycles_per(tot.busy_cycles, sum.packets),
                 cycles_per(sum.short_burst_cycles, sum.short_burst_packets));
    if (r.cls->checks_order())
        std::fprintf(f, "\"correctness\":{\"checked\":true,\"order_inversions\":%lu,\"split_flows\":%lu,"
                        "\"unrecorded_moves\":%lu}}\n",
                     (unsigned long)sum.order_inversions, (unsigned long)sum.split_flows,
                     (unsigned long)sum.unrecorded_moves);
    else
        std::fprintf(f, "\"correctness\":{\"checked\":false}}\n");
}

// The value of every `--vdev X` / `--vdev=X` among the EAL arguments.
std::vector<std::string_view> vdev_args(int argc, char **argv) {
    std::vector<std::string_view> out;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--vdev" && i + 1 < argc) out.emplace_back(argv[++i]);
        else if (a.substr(0, 7) == "--vdev=") out.push_back(a.substr(7));
    }
    return out;
}

// net_pcap opens its rx_pcap files while EAL probes devices, and a missing
// one ends rte_eal_init with a probe message that does not name the file.
// Checked here first: missing, unreadable, or (for a regular file) not a
// pcap/pcapng capture. A FIFO is left alone (reading it would consume it).
std::string check_capture_files(int eal_argc, char **eal_argv) {
    for (std::string_view v : vdev_args(eal_argc, eal_argv)) {
        std::string_view name = v.substr(0, v.find(','));
        if (name.substr(0, 8) != "net_pcap" && name.substr(0, 8) != "eth_pcap") continue;
        for (size_t at = v.find(','); at != std::string_view::npos;) {
            size_t next = v.find(',', at + 1);
            std::string_view kv = v.substr(at + 1, next == std::string_view::npos ? next : next - at - 1);
            at = next;
            if (kv.substr(0, 8) != "rx_pcap=") continue;
            std::string path(kv.substr(8));
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0) {
                if (errno == ENOENT || errno == ENOTDIR) return "no such capture " + path;
                return "cannot open capture " + path + ": " + std::strerror(errno);
            }
            if (S_ISDIR(st.st_mode)) return "capture " + path + " is a directory";
            if (::access(path.c_str(), R_OK) != 0) return "cannot read capture " + path + ": " + std::strerror(errno);
            if (!S_ISREG(st.st_mode)) continue;
            int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            unsigned char magic[4] = {};
            ssize_t got = fd >= 0 ? ::read(fd, magic, sizeof magic) : -1;
            if (fd >= 0) ::close(fd);
            if (got < 0) return "cannot read capture " + path + ": " + std::strerror(errno);
            uint32_t m = uint32_t(magic[0]) << 24 | uint32_t(magic[1]) << 16 | uint32_t(magic[2]) << 8 | magic[3];
            // pcap (microsecond and nanosecond, either byte order) and pcapng.
            bool known = m == 0xa1b2c3d4 || m == 0xd4c3b2a1 || m == 0xa1b23c4d || m == 0x4d3cb2a1 || m == 0x0a0d0d0a;
            if (got != 4 || !known) return "capture " + path + " is not a pcap or pcapng file";
        }
    }
    return {};
}

int run_tap_on_eal(const TapOptions &opt) {
    TapRun r;
    r.opt = opt;
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
    auto fail = [&](const std::string &msg) {
        std::fprintf(stderr, "dpdk-millipede tap: %s\n", msg.c_str());
        return 1;
    };
    bool pcap_input = true;
    int socket = port::port_socket(r.ports[0]);
    unsigned mbufs = r.opt.mbufs ? r.opt.mbufs : 8191 + r.opt.cls.workers * r.opt.cls.ring_size;
    rte_mempool *pool = port::make_pool("tap_pool", mbufs, socket, err);
    if (!pool) return fail(err);
    for (uint16_t p : r.ports) {
        port::PortConfig pc;
        pc.port_id = p;
        if (!port::start_port(pc, pool, err)) return fail(err);
        rte_eth_dev_info info{};
        rte_eth_dev_info_get(p, &info);
        if (!info.driver_name || std::strcmp(info.driver_name, "net_pcap") != 0) pcap_input = false;
    }
    r.opt.cls.table.socket_id = socket;
    r.opt.cls.table.name = "tap_flows";

    // Record times: the capture's (net_pcap's Rx timestamp, microseconds)
    // when every port is a capture file, else arrival on the TSC, as Unix time.
    timespec wall{};
    clock_gettime(CLOCK_REALTIME, &wall);
    r.tsc_hz = rte_get_tsc_hz();
    r.clock.tsc_at_start = rte_rdtsc();
    r.clock.epoch_ns_at_start = uint64_t(wall.tv_sec) * 1'000'000'000ull + uint64_t(wall.tv_nsec);
    r.clock.ns_per_tsc = 1e9 / static_cast<double>(r.tsc_hz);
    if (pcap_input) {
        int off = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
        int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
        if (off >= 0 && bit >= 0) {
            r.clock.ts_offset = off;
            r.clock.ts_flag = 1ull << bit;
        }
    }

    FILE *records = nullptr;
    if (!r.opt.flows_path.empty()) {
        records = r.opt.flows_path == "-" ? stdout : std::fopen(r.opt.flows_path.c_str(), "w");
        if (!records) return fail("cannot write " + r.opt.flows_path + ": " + std::strerror(errno));
    }
    unsigned dpi_flows = r.opt.dpi_flows ? r.opt.dpi_flows : std::min<uint32_t>(r.opt.cls.table.capacity, 65536);
    r.flow_pool = make_flow_pool(dpi_flows, socket, err);
    if (!r.flow_pool) return fail(err);
    r.opt.cls.flow_state_pool = r.flow_pool;
    std::vector<std::unique_ptr<dpi::Engine>> engines;
    for (unsigned w = 0; r.opt.dpi && w < r.opt.cls.workers; ++w) {
        engines.push_back(dpi::Engine::create(err));
        if (!engines.back()) return fail(err);
    }
    if (records || r.opt.exp.any()) {
        std::vector<std::string> names;
        if (!engines.empty()) names = engines[0]->names();
        r.writer = RecordWriter::create(records, r.opt.exp, std::move(names), r.opt.record_ring, socket, err);
        if (!r.writer) return fail(err);
    }
    r.cls = Classifier::create(r.opt.cls, nullptr, err);
    if (!r.cls) return fail(err);
    for (unsigned w = 0; w < r.opt.cls.workers; ++w) {
        r.workers.push_back(std::make_unique<WorkerPort>(*r.cls, w));
        r.tap_workers.push_back(std::make_unique<TapWorker>(w, r.flow_pool, r.opt.dpi ? std::move(engines[w]) : nullptr,
                                                            r.writer.get(), r.clock));
    }

    r.start_tsc = rte_rdtsc();
    uint64_t idle_ms = r.opt.exit_on_idle_ms == UINT64_MAX ? (pcap_input ? 300 : 0) : r.opt.exit_on_idle_ms;
    r.exit_on_idle_tsc = idle_ms * r.tsc_hz / 1000;
    register_telemetry(r);

    std::vector<WorkerLcoreArg> wargs;
    if (others.empty()) {
        all_in_one_loop(r, true);
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
        // The main lcore controls: stats lines (interval, SIGUSR1), stop, waits.
        uint64_t next_stats = r.opt.stats_interval_ns;
        while (!r.classifier_done.load()) {
            rte_delay_us_sleep(10'000);
            if (g_stop.load()) r.input_done.store(true);
            if (g_dump.exchange(false)) print_stats_line(r);
            if (r.opt.stats_interval_ns && now_ns(r) >= next_stats) {
                print_stats_line(r);
                next_stats += r.opt.stats_interval_ns;
            }
        }
        rte_eal_mp_wait_lcore();
    }
    double seconds = static_cast<double>(rte_rdtsc() - r.start_tsc) / static_cast<double>(r.tsc_hz);
    if (r.writer) r.writer->stop(); // every record pushed is written and flushed
    print_stats_line(r);
    int status = 0;
    if (!r.opt.summary_path.empty()) {
        FILE *f = r.opt.summary_path == "-" ? stdout : std::fopen(r.opt.summary_path.c_str(), "w");
        if (!f) {
            status = fail("cannot write " + r.opt.summary_path + ": " + std::strerror(errno));
        } else {
            write_summary(r, f, seconds);
            if (f != stdout) std::fclose(f);
        }
    }
    unregister_telemetry();
    for (uint16_t p : r.ports) port::stop_port(p);
    r.tap_workers.clear(); // nDPI engines
    rte_mempool_free(r.flow_pool); // every object came back with its flow's notice
    return status;
}

} // namespace

int run_tap(int argc, char **argv, int eal_argc, char **eal_argv) {
    TapOptions opt;
    std::string e = parse_tap_args(argc, argv, opt);
    if (opt.help) {
        tap_usage(stdout);
        return 0;
    }
    if (e.empty()) e = check_capture_files(eal_argc, eal_argv);
    if (!e.empty()) {
        std::fprintf(stderr, "dpdk-millipede tap: %s\n", e.c_str());
        return 2;
    }
    // Before EAL: a signal during start-up (EAL initialisation, probing,
    // port set-up) only sets its flag. SIGINT/SIGTERM then stop the run as
    // soon as it starts, through the normal teardown.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGUSR1, on_usr1);
    if (rte_eal_init(eal_argc, eal_argv) < 0) {
        std::fprintf(stderr, "dpdk-millipede tap: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    int status = run_tap_on_eal(opt); // every EAL object of the run is gone when it returns
    rte_eal_cleanup();
    return status;
}

} // namespace millipede::app

// `tap`: the DPI appliance. Mirrored traffic is classified by flow, each
// flow pinned to one worker, new flows balanced; workers inspect with nDPI
// and emit one JSON record per ended flow through a writer thread.
//
// This file is the mode's options and wiring. The lcore pipeline (ports and
// capture files -> classifier -> worker rings -> worker loops, the lcore
// roles, the end of input) is lib/dataplane's TapPlane (tap.h); what a
// worker does with a packet is TapWorker (tap_worker.h); the records go
// through RecordWriter (tap_records.h); the stats line, the summary and the
// telemetry commands are tap_report.h's.
//
// Capture files: a `--vdev net_pcapN,rx_pcap=FILE` whose FILE is a regular
// pcap file (and that has no other net_pcap argument) is read by the
// plane's memory-mapped reader (capture_source.h) instead of DPDK's
// net_pcap, which reads a packet at a time through libpcap and copies each
// into an mbuf; `--capture-reader net_pcap` keeps net_pcap. pcapng files,
// FIFOs and looped replays (infinite_rx=1) always go to net_pcap.
//
// Start-up order (run_tap): options are parsed and capture files checked
// before EAL starts, so --help, a bad option or a missing capture costs no
// EAL start-up and leaves no runtime files; the signal handlers go in before
// rte_eal_init, so a SIGUSR1 at any moment asks for the figures (printed once
// the run loop is up, or by the final line) and never ends the process.
#include <atomic>
#include <csignal>
#include <future>
#include <optional>
#include <cstdio>
#include <cstring>
#include <string>
#include <time.h>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf_dyn.h>

#include "millipede/dataplane/capture_flows.h"
#include "millipede/dataplane/tap.h"
#include "millipede/dpi/engine_builder.h"
#include "millipede/dpi/inspector.h"
#include "millipede/flow/classifier.h"
#include "millipede/port/configured.h"
#include "millipede/port/eal_start.h"
#include "millipede/port/interrupt_park.h"
#include "millipede/port/teardown.h"
#include "modes.h"
#include "options.h"
#include "tap_captures.h"
#include "tap_records.h"
#include "tap_report.h"
#include "tap_worker.h"

namespace millipede::app {
namespace {

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
    bool flow_capacity_given = false;
    bool dpi = true;
    unsigned dpi_flows = 0;           // flow state objects; 0 = automatic
    unsigned record_ring = 1u << 16; // records waiting for the writer thread
    unsigned mbufs = 0;              // receive pool; 0 = 8191 + shards x workers x ring size
    std::string config_path;         // --config: port settings (millipede/port/configured.h)
    uint64_t estimated_flows = 0;    // flows the capture files hold (estimated); 0: not counted
    bool print_config = false;       // --print-config: print the ports' settings and exit
    bool mmap_captures = true;       // --capture-reader: the mmap reader for regular pcap files
    bool busy_poll = false;
    uint64_t replay_pps = 0;         // --replay-pps: paced, looped replay of the captures
    unsigned rx_shards = 1;          // --rx-shards: RX queues per port, a classifier each
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
                 "  --rx-shards N               N RX queues per port (1 to 16, default 1), spread by a symmetric\n"
                 "                              flow hash (RSS with the 0x6d5a key, or net_af_packet's fanout\n"
                 "                              hash), each read by its own rx lcore and classifier with its\n"
                 "                              own flow table (--flow-capacity / N); every shard feeds every\n"
                 "                              worker. Not for capture files or net_pcap (docs/tap.md)\n"
                 "  --flow-capacity N           flow table size (default 1048576; when every input is a\n"
                 "                              capture file of 256 MiB or less, twice the flows they hold,\n"
                 "                              counted while EAL starts, at least 4096)\n"
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
                 "  --mbufs N                   mbufs in the receive pool (default 8191 + shards x workers x\n"
                 "                              ring size); a looped capture (net_pcap infinite_rx=1) keeps\n"
                 "                              every packet of the file in it\n"
                 "  --config FILE               port settings from a host file: a [default] section, then\n"
                 "                              one per device (PCI address or vdev name), each naming a\n"
                 "                              driver profile of drivers-config/ (docs/drivers-config.md);\n"
                 "                              --mbufs wins over the file's mbufs\n"
                 "  --print-config              set the ports up, print each one's effective settings to\n"
                 "                              stdout as a host file, and exit 0 (nothing is read)\n"
                 "  --capture-reader mmap|net_pcap  how a regular pcap file given as --vdev\n"
                 "                              'net_pcapN,rx_pcap=FILE' is read: memory-mapped, in bursts\n"
                 "                              (default), or by DPDK's net_pcap (pcapng, FIFOs and\n"
                 "                              infinite_rx=1 always go to net_pcap)\n"
                 "  --replay-pps N              replay the captures at N packets per second in total\n"
                 "                              (1 to 100000000; TSC-paced bursts, looped for --duration,\n"
                 "                              read like a mirror port: full rings drop and count;\n"
                 "                              records get arrival times)\n"
                 "  --busy-poll                 idle lcores spin instead of backing off\n"
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
        } else if (a == "--rx-shards") {
            auto v = value("rx-shards");
            auto n = v ? parse_uint(*v, 1, 16) : std::nullopt;
            if (!n) return "--rx-shards needs a number from 1 to 16";
            o.rx_shards = static_cast<unsigned>(*n);
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
            o.flow_capacity_given = true;
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
        } else if (a == "--config") {
            auto v = value("config");
            if (!v || v->empty()) return "--config needs a host file, e.g. --config /etc/dpdk-millipede/host.ini";
            o.config_path = std::string(*v);
        } else if (a == "--print-config") {
            o.print_config = true;
        } else if (a == "--capture-reader") {
            auto v = value("capture-reader");
            if (!v || (*v != "mmap" && *v != "net_pcap")) return "--capture-reader needs mmap or net_pcap";
            o.mmap_captures = *v == "mmap";
        } else if (a == "--replay-pps") {
            auto v = value("replay-pps");
            auto n = v ? parse_uint(*v, 1, 100'000'000) : std::nullopt;
            if (!n) return "--replay-pps needs packets per second from 1 to 100000000";
            o.replay_pps = *n;
        } else if (a == "--busy-poll") {
            o.busy_poll = true;
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

int run_tap_on_eal(const TapOptions &opt, const std::vector<std::string> &captures, dpi::EngineBuilder &engine_builder) {
    auto fail = [&](const std::string &msg, int status = 1) {
        std::fprintf(stderr, "dpdk-millipede tap: %s\n", msg.c_str());
        return status;
    };
    dataplane::TapConfig cfg;
    cfg.cls = opt.cls;
    cfg.workers_given = opt.workers_given;
    cfg.ports = opt.ports;
    cfg.captures = captures;
    cfg.exit_on_idle_ms = opt.exit_on_idle_ms;
    cfg.duration_ns = opt.duration_ns;
    cfg.stats_interval_ns = opt.stats_interval_ns;
    cfg.mbufs = opt.mbufs;
    cfg.busy_poll = opt.busy_poll;
    cfg.replay_pps = opt.replay_pps;
    cfg.rx_shards = opt.rx_shards;
    cfg.stop = &g_stop;
    cfg.stats_request = &g_dump;
    std::string err;
    int status = 1;
    auto plane = dataplane::TapPlane::open(cfg, err, status);
    if (!plane) return fail(err, status);
    if (opt.print_config) { // the ports are set up: what they run with, then out
        port::print_config(stdout, "dpdk-millipede tap");
        return std::fflush(stdout) == 0 ? 0 : 1;
    }
    const int socket = plane->socket();
    const unsigned workers = plane->workers();
    if (plane->shards() > 1) std::fprintf(stderr, "dpdk-millipede tap: %s\n", plane->lcore_roles().c_str());

    // Record times: the capture's (the Rx timestamp field, microseconds)
    // when every input is a capture file, else arrival on the TSC.
    TapClock clock;
    timespec wall{};
    clock_gettime(CLOCK_REALTIME, &wall);
    clock.tsc_at_start = rte_rdtsc();
    clock.epoch_ns_at_start = uint64_t(wall.tv_sec) * 1'000'000'000ull + uint64_t(wall.tv_nsec);
    clock.ns_per_tsc = 1e9 / static_cast<double>(rte_get_tsc_hz());
    if (plane->capture_times()) {
        int off = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
        int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
        if (off >= 0 && bit >= 0) {
            clock.ts_offset = off;
            clock.ts_flag = 1ull << bit;
        }
    }

    FILE *records = nullptr;
    if (!opt.flows_path.empty()) {
        records = opt.flows_path == "-" ? stdout : std::fopen(opt.flows_path.c_str(), "w");
        if (!records) return fail("cannot write " + opt.flows_path + ": " + std::strerror(errno));
    }
    unsigned dpi_flows = opt.dpi_flows ? opt.dpi_flows : std::min<uint32_t>(opt.cls.table.capacity, 65536);
    rte_mempool *flow_pool = make_flow_pool(dpi_flows, socket, err);
    if (!flow_pool) return fail(err);
    TapRun r;
    r.plane = plane.get();
    r.policy = opt.cls.policy;
    r.migrate = opt.cls.migrate;
    r.dpi = opt.dpi;
    r.flow_capacity = opt.cls.table.capacity;
    r.estimated_flows = opt.estimated_flows;
    // run_tap() calls rte_eal_cleanup() next, which unmaps all EAL memory:
    // freeing the tables and pools first would only zero them (tap.h).
    auto cleanup = [&] {
        unregister_telemetry();
        plane->leave_memory_to_eal_cleanup();
        plane.reset();      // ports stopped, capture mappings gone
        r.workers.clear();  // nDPI engines
        (void)flow_pool;    // left to rte_eal_cleanup() with the rest
    };
    std::vector<std::unique_ptr<dpi::Engine>> engines;
    if (opt.dpi) {
        engines = engine_builder.take(workers, err);
        if (engines.empty()) return cleanup(), fail(err);
    }
    if (records || opt.exp.any()) {
        std::vector<std::string> names;
        if (!engines.empty()) names = engines[0]->names();
        r.writer = RecordWriter::create(records, opt.exp, std::move(names), opt.record_ring, socket, err);
        if (!r.writer) return cleanup(), fail(err);
    }
    std::vector<dataplane::TapWorkerHandler *> handlers;
    for (unsigned w = 0; w < workers; ++w) {
        r.workers.push_back(std::make_unique<TapWorker>(w, flow_pool, opt.dpi ? std::move(engines[w]) : nullptr,
                                                        r.writer.get(), clock, plane->shards() > 1));
        handlers.push_back(r.workers.back().get());
    }
    if (!plane->start_pipeline(flow_pool, handlers, err)) return cleanup(), fail(err);
    register_telemetry(r);

    status = plane->run([&] { print_stats_line(r); });
    const double seconds = plane->seconds();
    if (r.writer) r.writer->stop(); // every record pushed is written and flushed
    print_stats_line(r);
    if (!opt.summary_path.empty()) {
        FILE *f = opt.summary_path == "-" ? stdout : std::fopen(opt.summary_path.c_str(), "w");
        if (!f) {
            status = fail("cannot write " + opt.summary_path + ": " + std::strerror(errno));
        } else {
            write_summary(r, f, seconds);
            if (f != stdout) std::fclose(f);
        }
    }
    cleanup();
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
    if (e.empty() && !opt.config_path.empty()) e = port::load_config(opt.config_path, "tap");
    if (!e.empty()) {
        std::fprintf(stderr, "dpdk-millipede tap: %s\n", e.c_str());
        return 2;
    }
    std::vector<std::string> captures;
    std::vector<char *> eal_args = take_pcap_files(eal_argc, eal_argv, opt.mmap_captures && opt.ports.empty(), captures);
    // Before EAL: a signal during start-up (EAL initialisation, probing,
    // port set-up) only sets its flag. SIGINT/SIGTERM then stop the run as
    // soon as it starts, through the normal teardown.
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGUSR1, on_usr1);
    // The nDPI engines need no EAL: built on a helper thread meanwhile
    // (one per --workers, else one; take() builds any more it needs).
    dpi::EngineBuilder engine_builder;
    if (opt.dpi && !opt.print_config) engine_builder.start(opt.workers_given ? opt.cls.workers : 1);
    // A tap reading only capture files sizes its tables for their flows,
    // counted (estimated) on another helper thread meanwhile.
    std::future<std::optional<dataplane::CaptureFlowEstimate>> flows_in_captures;
    if (!captures.empty() && !opt.flow_capacity_given && !opt.print_config)
        flows_in_captures = std::async(std::launch::async, [&captures] { return dataplane::estimate_capture_flows(captures); });
    if (std::string eal_err; port::init_eal(static_cast<int>(eal_args.size()), eal_args.data(), eal_err) < 0) {
        std::fprintf(stderr, "dpdk-millipede tap: EAL initialisation failed: %s\n",
                     eal_err.empty() ? rte_strerror(rte_errno) : eal_err.c_str());
        return 1;
    }
    // dpdk-dumpcap (a secondary process with this --file-prefix) may now
    // capture any port; without it the tap runs on.
    if (std::string ce; !port::enable_capture(ce)) std::fprintf(stderr, "dpdk-millipede tap: warning: %s\n", ce.c_str());
    TapOptions sized = opt;
    if (flows_in_captures.valid()) {
        const auto est = flows_in_captures.get();
        if (est && rte_eth_dev_count_avail() == 0) { // no port beside the files
            sized.cls.table.capacity = dataplane::tap_table_capacity(est->flows, opt.cls.table.capacity);
            sized.estimated_flows = est->flows;
        }
    }
    int status = run_tap_on_eal(sized, captures, engine_builder); // ports closed; its EAL memory goes with rte_eal_cleanup()
    port::disable_capture();
    port::guard_eal_teardown(status, "tap");
    port::park_interrupt_thread(100); // (interrupt_park.h: memif's stale interrupt source)
    rte_eal_cleanup();
    return status;
}

} // namespace millipede::app

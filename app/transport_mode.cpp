// `tx` / `rx`: wiring only. The options (transport_options.cpp) become a
// TransportPlane (lib/dataplane), which sets up ports, lcores and the
// session; this file starts EAL, connects signals and telemetry to the
// plane, and turns its outcome into the exit status.
#include "transport_mode.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>

#include "millipede/dataplane/transport.h"
#include "millipede/port/configured.h"
#include "millipede/port/eal_start.h"
#include "millipede/port/interrupt_park.h"
#include "millipede/port/teardown.h"
#include "millipede/stats/transfer.h"
#include "transport_tunnel.h"

namespace millipede::app {

namespace {

// Signals reach the plane through these (set once it exists); before that a
// SIGINT/SIGTERM is remembered and SIGUSR1 only asks for a table.
std::atomic<dataplane::TransportPlane *> g_plane{nullptr};
std::atomic<bool> g_stop_early{false};
// terminate / initiate: the first signal ends the tunnel cleanly (its
// connections reset, the streams ended), a second one stops the plane.
std::atomic<TransportTunnel *> g_tunnel{nullptr};

void on_signal(int) {
    if (auto *t = g_tunnel.load(); t && t->request_end()) return;
    if (auto *p = g_plane.load()) p->request_stop();
    else g_stop_early.store(true);
}
void on_usr1(int) {
    if (auto *p = g_plane.load()) p->request_table();
}

} // namespace

// DPDK's log, minus one line: DPDK 22.11's telemetry warns "No legacy
// callbacks, legacy socket not created" on every start, which would be the
// first thing a user sees, about a socket nobody asked for.
namespace {
FILE *quiet_log_stream() {
    cookie_io_functions_t io{};
    io.write = [](void *, const char *buf, size_t n) -> ssize_t {
        if (std::string_view(buf, n).find("No legacy callbacks") != std::string_view::npos) return static_cast<ssize_t>(n);
        return static_cast<ssize_t>(std::fwrite(buf, 1, n, stderr));
    };
    FILE *f = fopencookie(nullptr, "w", io);
    if (f) setvbuf(f, nullptr, _IOLBF, 1024);
    return f;
}

} // namespace

int run_transport(int argc, char **argv, int eal_argc, char **eal_argv) {
    const auto t_main = std::chrono::steady_clock::now();
    auto ms_since = [&t_main] {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_main).count();
    };
    TransportOptions o;
    std::string e = parse_transport_args(argc, argv, o);
    if (o.help) {
        transport_usage(stdout);
        return 0;
    }
    const char *who = o.duplex ? "duplex" : argc > 0 && std::strcmp(argv[0], "rx") == 0 ? "rx" : "tx";
    if (!e.empty()) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who, e.c_str());
        return 2;
    }
    // The host file is read before EAL starts: a bad value costs no start-up.
    // (Full duplex takes the file's tx settings: its ports send first.)
    if (!o.config_path.empty()) {
        if (std::string ce = port::load_config(o.config_path, o.tx ? "tx" : "rx"); !ce.empty()) {
            std::fprintf(stderr, "dpdk-millipede %s: %s\n", who, ce.c_str());
            return 2;
        }
    }
    // The tunnel's listener or plain connection: before EAL, so a busy port
    // or an unknown host costs no start-up.
    TransportTunnel tunnel;
    if (std::string te = tunnel.prepare(o); !te.empty()) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who, te.c_str());
        return 1;
    }
    // SIGUSR1's default action ends the process: a `kill -USR1` during
    // start-up (EAL initialisation, waiting for links) must only ask for the
    // table, which the control loop prints once it runs.
    std::signal(SIGUSR1, on_usr1);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    // EAL's informational lines would bury the one line that matters.
    std::vector<char *> args(eal_argv, eal_argv + eal_argc);
    bool has_log = false, has_telemetry = false;
    for (int i = 0; i < eal_argc; i++) {
        if (std::strncmp(eal_argv[i], "--log-level", 11) == 0) has_log = true;
        if (std::strcmp(eal_argv[i], "--telemetry") == 0 || std::strcmp(eal_argv[i], "--no-telemetry") == 0)
            has_telemetry = true;
    }
    static char quiet[] = "--log-level=*:warning";
    if (!has_log) args.insert(args.begin() + 1, quiet);
    (void)has_telemetry; // on unless the user says --no-telemetry: /millipede/* commands need it
    args.push_back(nullptr);
    if (FILE *log = quiet_log_stream()) rte_openlog_stream(log);
    std::string eal_err;
    if (port::init_eal(static_cast<int>(args.size() - 1), args.data(), eal_err) < 0) {
        std::fprintf(stderr, "dpdk-millipede %s: EAL initialisation failed: %s\n", who,
                     eal_err.empty() ? rte_strerror(rte_errno) : eal_err.c_str());
        return 1;
    }
    // dpdk-dumpcap (a secondary process with this --file-prefix) may now
    // capture any port; without it the run goes on.
    if (std::string ce; !port::enable_capture(ce))
        std::fprintf(stderr, "dpdk-millipede %s: warning: %s\n", who, ce.c_str());
    int status = 1;
    const double t_eal = ms_since();
    double t_setup = 0, t_run = 0;
    {
        std::string err;
        std::unique_ptr<dataplane::TransportPlane> plane = dataplane::TransportPlane::create(o, err);
        if (!plane) {
            std::fprintf(stderr, "dpdk-millipede %s: %s\n", who, err.c_str());
        } else if (o.print_config) {
            port::print_config(stdout, (std::string("dpdk-millipede ") + who).c_str());
            status = std::fflush(stdout) == 0 ? 0 : 1;
        } else {
            g_plane.store(plane.get());
            std::signal(SIGINT, on_signal);
            std::signal(SIGTERM, on_signal);
            tunnel.attach(plane.get());
            g_tunnel.store(&tunnel);
            if (g_stop_early.load()) plane->request_stop();
            const int trc = stats::register_transport_telemetry(&plane->board());
            if (trc != 0)
                std::fprintf(stderr, "dpdk-millipede %s: warning: telemetry commands not registered (%s)\n", who,
                             rte_strerror(-trc));
            t_setup = ms_since();
            status = plane->run(); // returns once every lcore it launched has stopped
            g_tunnel.store(nullptr);
            status = tunnel.finish(status, who, o.verbose);
            t_run = ms_since();
            // Before the plane and its StatsBoard are freed: from here on a
            // /millipede/* request answers "not running" (the telemetry
            // thread runs until exit).
            stats::clear_transport_telemetry();
            g_plane.store(nullptr);
            // rte_eal_cleanup() below unmaps all EAL memory: freeing the
            // chunk buffers and pools first would only zero them.
            plane->leave_memory_to_eal_cleanup();
        }
    }
    port::disable_capture();
    port::guard_eal_teardown(status, who);
    port::park_interrupt_thread(100); // (interrupt_park.h: memif's stale interrupt source)
    rte_eal_cleanup();
    if (o.verbose >= 2)
        std::fprintf(stderr, "dpdk-millipede %s: timeline: EAL ready %.0f ms, set-up done %.0f ms, transfer over %.0f ms, "
                             "exit %.0f ms\n",
                     who, t_eal, t_setup, t_run, ms_since());
    return status;
}

} // namespace millipede::app

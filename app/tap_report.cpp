// The stats line, the summary and the telemetry commands; see tap_report.h.
#include "tap_report.h"

#include <mutex>
#include <string>

#include <rte_cycles.h>
#include <rte_telemetry.h>

namespace millipede::app {

namespace {


// Sums and per-worker figures, read from any thread (relaxed).
struct WorkerFigures {
    uint64_t packets, bytes, flows_started, flows_ended, dpi_packets, detected, guessed, unknown;
    uint64_t ring_drops, records_dropped, no_state_packets, unseen_flows, busy_cycles;
};

WorkerFigures worker_figures(TapRun &r, unsigned w) {
    constexpr auto rl = std::memory_order_relaxed;
    const TapWorkerStats &s = r.workers[w]->stats;
    return {s.packets.load(rl), s.bytes.load(rl), s.flows_started.load(rl), s.flows_ended.load(rl),
            s.dpi_packets.load(rl), s.detected.load(rl), s.guessed.load(rl), s.unknown.load(rl),
            r.plane->ring_drops(w), s.records_dropped.load(rl), s.no_state_packets.load(rl), s.unseen_flows.load(rl),
            r.plane->busy_cycles(w)};
}

WorkerFigures &operator+=(WorkerFigures &a, const WorkerFigures &b) {
    a.packets += b.packets, a.bytes += b.bytes, a.flows_started += b.flows_started, a.flows_ended += b.flows_ended;
    a.dpi_packets += b.dpi_packets, a.detected += b.detected, a.guessed += b.guessed, a.unknown += b.unknown;
    a.ring_drops += b.ring_drops, a.records_dropped += b.records_dropped, a.no_state_packets += b.no_state_packets;
    a.unseen_flows += b.unseen_flows, a.busy_cycles += b.busy_cycles;
    return a;
}

} // namespace

void print_stats_line(TapRun &r) {
    // Busy share over the time since the previous line (main lcore only).
    static std::vector<uint64_t> last_busy;
    static uint64_t last_tsc = 0;
    uint64_t tsc = rte_rdtsc();
    if (last_busy.size() != r.workers.size()) {
        last_busy.assign(r.workers.size(), 0);
        last_tsc = r.plane->start_tsc();
    }
    double elapsed = static_cast<double>(tsc - last_tsc);
    std::fprintf(stderr, "tap: %lu pkts, %u flows active, %lu records", (unsigned long)r.plane->classifier_stats().packets,
                 r.plane->flows_active(), (unsigned long)(r.writer ? r.writer->written() : 0));
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

namespace {

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
    rte_tel_data_add_dict_u64(d, "shards", r.plane->shards());
    rte_tel_data_add_dict_u64(d, "rx_packets", r.plane->classifier_stats().packets);
    rte_tel_data_add_dict_u64(d, "worker_packets", sum.packets);
    rte_tel_data_add_dict_u64(d, "flows_active", r.plane->flows_active());
    rte_tel_data_add_dict_u64(d, "flows_started", sum.flows_started);
    rte_tel_data_add_dict_u64(d, "flows_ended", sum.flows_ended);
    rte_tel_data_add_dict_u64(d, "l7_detected", sum.detected);
    rte_tel_data_add_dict_u64(d, "l7_guessed", sum.guessed);
    rte_tel_data_add_dict_u64(d, "l7_unknown", sum.unknown);
    rte_tel_data_add_dict_u64(d, "ring_drops", sum.ring_drops);
    rte_tel_data_add_dict_u64(d, "records_written", r.writer ? r.writer->written() : 0);
    rte_tel_data_add_dict_u64(d, "records_dropped", sum.records_dropped);
    const dataplane::PollGaps::Figures g = r.plane->rx_gaps();
    rte_tel_data_add_dict_u64(d, "rx_gap_longest_us", g.longest_ns / 1000);
    rte_tel_data_add_dict_u64(d, "rx_gaps_over_100us", g.over_100us);
    rte_tel_data_add_dict_u64(d, "rx_gaps_over_1ms", g.over_1ms);
    rte_tel_data_add_dict_u64(d, "rx_gaps_over_10ms", g.over_10ms);
    return 0;
}

int tel_workers(const char *, const char *, rte_tel_data *d) {
    std::lock_guard<std::mutex> lock(g_tel_mutex);
    if (!g_tel_run) return -1;
    TapRun &r = *g_tel_run;
    unsigned n = static_cast<unsigned>(r.workers.size());
    std::vector<WorkerFigures> f;
    for (unsigned w = 0; w < n; ++w) f.push_back(worker_figures(r, w));
    double elapsed = static_cast<double>(rte_rdtsc() - r.plane->start_tsc());
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

} // namespace

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
    const flow::ClassifierStats s = r.plane->classifier_stats();
    const flow::FlowTableStats t = r.plane->table_stats();
    flow::WorkerCounters sum{};
    for (unsigned w = 0; w < r.workers.size(); ++w) sum += r.plane->worker_counters(w);
    std::fprintf(f, "{\"mode\":\"tap\",\"policy\":\"%s\",\"migrate\":%s,\"workers\":%u,\"seconds\":%.6f,",
                 flow::policy_name(r.policy), r.migrate ? "true" : "false", r.plane->workers(), seconds);
    // mmap_packets: those the memory-mapped capture reader gave (the rest came from ports).
    // flow_capacity: the table's size; estimated_flows: what sized it when
    // every input was a capture file (0 when not counted).
    std::fprintf(f, "\"flow_capacity\":%u,\"estimated_flows\":%lu,", r.flow_capacity,
                 (unsigned long)r.estimated_flows);
    std::fprintf(f, "\"packets\":%lu,\"classified\":%lu,\"mmap_packets\":%lu,", (unsigned long)s.packets,
                 (unsigned long)sum.packets, (unsigned long)r.plane->capture_packets());
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
                 r.dpi ? "true" : "false", (unsigned long)tot.detected, (unsigned long)tot.guessed,
                 (unsigned long)tot.unknown, (unsigned long)tot.dpi_packets, (unsigned long)s.flow_states_exhausted,
                 (unsigned long)tot.no_state_packets);
    std::fprintf(f, "\"records\":{\"flows_ended\":%lu,\"written\":%lu,\"dropped\":%lu,\"unseen_flows\":%lu,"
                    "\"notices_deferred\":%lu},",
                 (unsigned long)tot.flows_ended, (unsigned long)(r.writer ? r.writer->written() : 0),
                 (unsigned long)tot.records_dropped, (unsigned long)tot.unseen_flows,
                 (unsigned long)s.notices_deferred);
    if (r.writer) std::fprintf(f, "%s,", r.writer->export_summary_json().c_str());
    // --replay-pps: what the paced replay offered (offered = received + missed).
    if (const dataplane::ReplayFigures rp = r.plane->replay(); rp.pps)
        std::fprintf(f, "\"replay\":{\"pps\":%lu,\"seconds\":%.6f,\"offered\":%lu,\"received\":%lu,"
                        "\"missed\":%lu,\"unavailable\":%lu,\"passes\":%lu},",
                     (unsigned long)rp.pps, rp.seconds, (unsigned long)rp.offered(), (unsigned long)rp.received,
                     (unsigned long)rp.missed, (unsigned long)rp.unavailable, (unsigned long)rp.passes);
    // How long the receive queues went unpolled (docs/tap.md, "RX gaps").
    const dataplane::PollGaps::Figures g = r.plane->rx_gaps();
    std::fprintf(f, "\"rx_gaps\":{\"longest_us\":%.1f,\"over_100us\":%lu,\"over_1ms\":%lu,\"over_10ms\":%lu},",
                 static_cast<double>(g.longest_ns) / 1e3, (unsigned long)g.over_100us, (unsigned long)g.over_1ms,
                 (unsigned long)g.over_10ms);
    // --rx-shards: what each classifier shard (RX queue) saw.
    std::fprintf(f, "\"shards\":%u,\"per_shard\":[", r.plane->shards());
    for (unsigned sh = 0; sh < r.plane->shards(); ++sh) {
        const flow::ClassifierStats &cs = r.plane->classifier(sh).stats();
        const flow::FlowTableStats &ts = r.plane->classifier(sh).table().stats();
        std::fprintf(f, "%s{\"packets\":%lu,\"flows\":%lu,\"migrations\":%lu}", sh ? "," : "",
                     (unsigned long)cs.packets, (unsigned long)(ts.created[0] + ts.created[1] + ts.created[2]),
                     (unsigned long)cs.migrations);
    }
    std::fprintf(f, "],");
    std::fprintf(f, "\"per_worker\":[");
    for (unsigned w = 0; w < r.workers.size(); ++w)
        std::fprintf(f,
                     "%s{\"dispatched\":%lu,\"processed\":%lu,\"ring_drops\":%lu,\"busy_share\":%.4f,"
                     "\"flows\":%lu,\"dpi_packets\":%lu,\"records_dropped\":%lu}",
                     w ? "," : "", (unsigned long)r.plane->dispatched(w), (unsigned long)r.plane->worker_counters(w).packets,
                     (unsigned long)r.plane->ring_drops(w), r.plane->busy_share(w), (unsigned long)per[w].flows_ended,
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
    if (r.plane->classifier().checks_order())
        std::fprintf(f, "\"correctness\":{\"checked\":true,\"order_inversions\":%lu,\"split_flows\":%lu,"
                        "\"unrecorded_moves\":%lu}}\n",
                     (unsigned long)sum.order_inversions, (unsigned long)sum.split_flows,
                     (unsigned long)sum.unrecorded_moves);
    else
        std::fprintf(f, "\"correctness\":{\"checked\":false}}\n");
}

} // namespace millipede::app

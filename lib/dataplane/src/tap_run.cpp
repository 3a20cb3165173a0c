// The tap plane's lcores: each runs the stages its roles give it (lcores.h,
// tap.h), backs off when idle, and stops once the input has ended and every
// packet and end-of-flow notice has reached its worker.
#include <chrono>
#include <cstdio>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_ring.h>

#include "millipede/dataplane/capture_file.h"
#include "tap_internal.h"

namespace millipede::dataplane {

bool TapPlane::Impl::stop_requested() const {
    return (cfg.stop && cfg.stop->load(std::memory_order_relaxed)) || (cfg.duration_ns && now_ns() > cfg.duration_ns);
}

// Capture files are read only with one shard (open() refuses more).
bool TapPlane::Impl::captures_have_room() const {
    for (unsigned w = 0; w < cfg.cls.workers; ++w)
        if (rte_ring_free_count(cls[0]->worker_ring(w)) < room_needed) return false;
    return true;
}

// One step of receive + classify of one shard on its rx lcore: RX queue
// `shard` of every port (and, on shard 0 of a one-shard plane, the capture
// files). Returns packets received.
unsigned TapPlane::Impl::rx_step(unsigned shard) {
    flow::Classifier &classifier = *cls[shard];
    unsigned total = 0;
    rte_mbuf *pkts[flow::kBurst];
    const uint64_t now = now_ns();
    for (uint16_t p : ports) {
        const unsigned n = rte_eth_rx_burst(p, static_cast<uint16_t>(shard), pkts, flow::kBurst);
        if (n) classifier.process_burst(pkts, n, now);
        total += n;
    }
    bool files_left = false;
    for (auto &c : captures) {
        if (c->done()) continue;
        files_left = true;
        if (!captures_have_room()) break; // the workers catch up first: a file can wait
        const unsigned n = c->read_burst(pkts, flow::kBurst);
        if (n) classifier.process_burst(pkts, n, now);
        total += n;
    }
    if ((++rx_iter[shard] & 63) == 0) classifier.expire(now);
    const uint64_t tsc = rte_rdtsc();
    if (total) {
        last_rx_tsc.store(tsc, std::memory_order_relaxed);
    } else {
        classifier.flush_staged(); // the input went quiet: nothing waits for the next burst
        const bool ports_idle =
            ports.empty() ||
            (exit_on_idle_tsc && tsc - last_rx_tsc.load(std::memory_order_relaxed) > exit_on_idle_tsc);
        if (!files_left && ports_idle) input_done.store(true);
    }
    return total;
}

// One step of a paced replay (TapConfig::replay_pps, tap.h): one burst from
// the next input once a burst is due; else nothing, with `waiting` set.
unsigned TapPlane::Impl::paced_rx_step(bool &waiting) {
    Pacer &pc = pacer;
    const uint64_t tsc = rte_rdtsc();
    const auto due = static_cast<uint64_t>(static_cast<double>(tsc - pc.start_tsc) * pc.per_tsc);
    uint64_t owed = due > pc.consumed ? due - pc.consumed : 0;
    if (owed > kReplayQueue) {
        // Late (descheduled, or the classifier cannot keep this rate): a
        // NIC's receive ring would have overflowed. Counted, not caught up.
        pc.missed += owed - kReplayQueue;
        pc.consumed += owed - kReplayQueue;
        owed = kReplayQueue;
    }
    flow::Classifier &classifier = *cls[0]; // a paced replay reads captures: one shard
    const uint64_t now = now_ns();
    if ((++rx_iter[0] & 63) == 0) classifier.expire(now);
    waiting = owed < pc.burst;
    if (waiting) {
        // Between bursts the input is not idle (unless it ran dry), and
        // nothing staged should wait for the next burst.
        if (!pc.dry) last_rx_tsc.store(tsc, std::memory_order_relaxed);
        classifier.flush_staged();
        return 0;
    }
    rte_mbuf *pkts[flow::kBurst];
    const unsigned inputs = static_cast<unsigned>(ports.size() + captures.size());
    unsigned n = 0;
    bool files_left = false;
    for (unsigned tried = 0; tried < inputs; ++tried) {
        const unsigned i = pc.next_input;
        pc.next_input = (i + 1) % inputs;
        if (i < ports.size()) {
            n = rte_eth_rx_burst(ports[i], 0, pkts, static_cast<uint16_t>(pc.burst));
            break;
        }
        CaptureSource &c = *captures[i - ports.size()];
        if (c.done()) continue;
        files_left = true;
        n = c.read_burst(pkts, pc.burst);
        break;
    }
    pc.consumed += pc.burst;
    pc.received += n;
    pc.unavailable += pc.burst - n;
    pc.dry = n == 0;
    if (n) {
        classifier.process_burst(pkts, n, now);
        last_rx_tsc.store(tsc, std::memory_order_relaxed);
        return n;
    }
    for (auto &c : captures) files_left = files_left || !c->done();
    const bool ports_idle = ports.empty() ||
                            (exit_on_idle_tsc && tsc - last_rx_tsc.load(std::memory_order_relaxed) > exit_on_idle_tsc);
    if (!files_left && ports_idle) input_done.store(true);
    return 0;
}

// The logical workers `mine`, each over its rings from every shard. A
// flow's packets and notice come through its shard's ring only, so the
// order between shards does not matter.
unsigned TapPlane::Impl::workers_step(const std::vector<unsigned> &mine) {
    unsigned done = 0;
    const uint64_t now = arrival_ns(); // once per step: packets without a capture time
    for (unsigned w : mine) {
        TapWorkerHandler &h = *handlers[w];
        for (unsigned s = 0; s < worker_ports.size(); ++s)
            done += worker_ports[s][w]->poll(
                [&](rte_mbuf *m, const flow::FlowMeta &meta) { h.on_packet(m, meta, now, s); },
                [&](void *state, flow::FlowEndReason why) { h.on_notice(state, why); });
    }
    return done;
}

bool TapPlane::Impl::rings_empty(const std::vector<unsigned> &mine) const {
    for (unsigned w : mine)
        for (const auto &c : cls)
            if (!rte_ring_empty(c->worker_ring(w))) return false;
    return true;
}

// End of input on an rx lcore: end every flow of its shards, then hand
// every staged packet and notice over. Rings may be full, so this retries
// while the workers drain them (`work` runs them when they share this
// lcore). The workers stop once every shard is done.
template <class Work> void TapPlane::Impl::finish_input(const std::vector<unsigned> &shards, Work &&work) {
    for (unsigned s : shards) cls[s]->flush();
    Backoff b{cfg.busy_poll};
    for (;;) {
        bool all = true;
        for (unsigned s : shards)
            if (!cls[s]->all_handed_over()) {
                cls[s]->flush_staged();
                all = false;
            }
        if (all) break;
        work() ? b.reset() : b.idle();
    }
    const unsigned done = shards_done.fetch_add(static_cast<unsigned>(shards.size())) + static_cast<unsigned>(shards.size());
    if (done == cls.size()) classifier_done.set();
}

int TapPlane::Impl::lcore_main(unsigned slot, const std::function<void()> *stats_due) {
    const LcorePlan::Lcore &me = layout.plan.lcores[slot];
    const bool rx = me.roles & kRoleRx, control = me.roles & kRoleControl, work = me.roles & kRoleWorker;
    const std::vector<unsigned> &mine = me.workers;             // logical workers polled here
    const std::vector<unsigned> &my_shards = layout.shards[slot]; // classifier shards run here
    uint64_t next_stats = cfg.stats_interval_ns, iter = 0;
    auto control_duties = [&] {
        // A plain load first: the exchange's locked write stays off the hot
        // loop unless a stats request actually came. Checked every round, so
        // a request made before the run (a signal during start-up) is
        // answered by its first round, however short the run.
        if (cfg.stats_request && cfg.stats_request->load(std::memory_order_relaxed) &&
            cfg.stats_request->exchange(false))
            (*stats_due)();
        if (cfg.stats_interval_ns && (++iter & 1023) == 0 && now_ns() >= next_stats) {
            (*stats_due)();
            next_stats += cfg.stats_interval_ns;
        }
    };
    if (!rx && !work) {
        // The main lcore while others move the packets: stats lines, stop.
        while (!classifier_done.is_set()) {
            classifier_done.wait_for(std::chrono::milliseconds(10));
            if (stop_requested()) input_done.store(true);
            iter = 1023; // the interval is due for a check every 10 ms here
            control_duties();
        }
        return 0;
    }
    Backoff b{cfg.busy_poll};
    if (rx) {
        last_rx_tsc.store(rte_rdtsc(), std::memory_order_relaxed);
        const bool paced = cfg.replay_pps != 0; // one shard (open() refuses more): one rx lcore
        if (paced) pacer.start_tsc = rte_rdtsc();
        PollGaps &gaps = rx_gaps[slot];
        gaps.restart(rte_rdtsc());
        while (!input_done.load(std::memory_order_relaxed) && !stop_requested()) {
            gaps.note(rte_rdtsc());
            bool waiting = false;
            unsigned got = 0;
            if (paced) got = paced_rx_step(waiting);
            else
                for (unsigned s : my_shards) got += rx_step(s);
            const unsigned n = got + (work ? workers_step(mine) : 0);
            // A paced replay waiting for its next burst spins: a sleep would
            // overshoot the burst's time by the timer's slack.
            if (n) b.reset();
            else if (waiting) rte_pause();
            else b.idle();
            if (control) control_duties();
        }
        if (paced) pacer.stop_tsc = rte_rdtsc();
        input_done.store(true);
        finish_input(my_shards, [&] { return work ? workers_step(mine) : 0u; });
        if (work)
            while (!classifier_done.is_set() || !rings_empty(mine)) workers_step(mine);
        return 0;
    }
    for (;;) {
        if (workers_step(mine)) {
            b.reset();
            continue;
        }
        // Done only once every rx lcore has handed over everything, notices
        // included, and this lcore's rings are empty.
        if (classifier_done.is_set() && rings_empty(mine)) break;
        b.idle();
    }
    return 0;
}

namespace {
struct LaunchArg {
    TapPlane::Impl *impl;
    unsigned slot;
    const std::function<void()> *stats_due;
};
} // namespace

int TapPlane::run(const std::function<void()> &stats_due) {
    Impl &m = *impl_;
    timespec wall{};
    clock_gettime(CLOCK_REALTIME, &wall);
    m.epoch_ns_at_start = uint64_t(wall.tv_sec) * 1'000'000'000ull + uint64_t(wall.tv_nsec);
    m.start_tsc = rte_rdtsc();
    std::vector<LaunchArg> args(m.layout.plan.lcores.size());
    for (unsigned slot = 1; slot < m.layout.plan.lcores.size(); slot++) {
        args[slot] = LaunchArg{&m, slot, &stats_due};
        rte_eal_remote_launch(
            [](void *a) -> int {
                auto *la = static_cast<LaunchArg *>(a);
                return la->impl->lcore_main(la->slot, la->stats_due);
            },
            &args[slot], m.layout.plan.lcores[slot].id);
    }
    m.lcore_main(0, &stats_due);
    for (unsigned slot = 1; slot < m.layout.plan.lcores.size(); slot++) rte_eal_wait_lcore(m.layout.plan.lcores[slot].id);
    m.end_tsc = rte_rdtsc();
    for (const auto &c : m.captures)
        if (!c->error().empty()) {
            std::fprintf(stderr, "dpdk-millipede tap: %s\n", c->error().c_str());
            m.status = 1;
        }
    return m.status;
}

} // namespace millipede::dataplane

// The transport plane's lcores: each runs the stages its roles give it
// (lcores.h), backs off when idle, and stops when the session is over.
#include <chrono>

#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <unistd.h>

#include "transport_internal.h"

namespace millipede::dataplane {

struct TransportPlane::Impl : dataplane::Impl {};

TransportPlane::TransportPlane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TransportPlane::~TransportPlane() {
    if (impl_) impl_->teardown();
}

void TransportPlane::leave_memory_to_eal_cleanup() { impl_->free_memory = false; }

std::unique_ptr<TransportPlane> TransportPlane::create(const TransportOptions &o, std::string &err) {
    auto impl = std::make_unique<Impl>();
    impl->o = o;
    if (!impl->setup(err)) {
        impl->teardown();
        return nullptr;
    }
    return std::unique_ptr<TransportPlane>(new TransportPlane(std::move(impl)));
}

int TransportPlane::run() { return impl_->run_all(); }
const std::string &TransportPlane::message() const { return impl_->message; }
stats::StatsBoard &TransportPlane::board() { return impl_->board; }
void TransportPlane::request_stop(const char *why) {
    if (why) impl_->stop_why.store(why, std::memory_order_relaxed);
    impl_->stop.store(true, std::memory_order_release);
}
void TransportPlane::request_table() { impl_->table.store(true, std::memory_order_relaxed); }

// Prints what the user asked for from the latest snapshot: the progress
// line once a second, the table on SIGUSR1. Never touches the session.
void Impl::control_tick(uint64_t now) {
    const bool want_table = table.exchange(false, std::memory_order_relaxed);
    const bool line = progress_on && now >= next_progress;
    if (!want_table && !line) return;
    const stats::TransferSnapshot s = board.read();
    if (want_table) stats::print_table(stderr, s);
    if (line && s.valid) {
        next_progress = now + 1'000'000;
        std::fprintf(stderr, "%s\n", stats::format_progress(s).c_str());
    }
}

// The first frames (gratuitous ARP, the first ARP request) are lost on a
// link that is still coming up -- a memif client finishes its handshake on
// EAL's interrupt thread after the port started. Bounded: a port whose link
// stays down is reported with verbose and the transfer starts anyway (ARP
// retries and TCP take over when it comes up).
bool Impl::wait_link_state(uint16_t port_id, bool up, uint64_t until_us, uint64_t poll_us) {
    const uint16_t want = up ? RTE_ETH_LINK_UP : RTE_ETH_LINK_DOWN;
    rte_eth_link link{};
    while (rte_eth_link_get_nowait(port_id, &link) == 0 && link.link_status != want && now_us() < until_us)
        rte_delay_us_sleep(poll_us);
    return link.link_status == want;
}

void Impl::wait_links(uint64_t bound_us) {
    const uint64_t until = now_us() + bound_us;
    for (auto &p : ports) {
        if (!wait_link_state(p->id, true, until, 500) && o.verbose)
            std::fprintf(stderr, "dpdk-millipede %s: port %u: link still down after %lu ms; starting anyway\n", who(),
                         p->id, (unsigned long)(bound_us / 1000));
    }
}

int Impl::lcore_main(unsigned slot) {
    const uint32_t roles = plan.lcores[slot].roles;
    // The logical workers this lcore polls, in turn (lcores.h).
    Worker *mine[64];
    unsigned nmine = 0;
    for (unsigned wi : plan.lcores[slot].workers)
        if (nmine < 64) mine[nmine++] = workers[wi].get();
    if (roles == kRoleControl) {
        // The main lcore while others move the data: control only.
        while (!done.is_set()) {
            control_tick(now_us());
            done.wait_for(std::chrono::milliseconds(20));
        }
        return 0;
    }
    Backoff b{o.busy_poll};
    uint64_t last = rte_rdtsc(), busy = 0;
    while (!done.is_set()) {
        const uint64_t t0 = rte_rdtsc();
        const uint64_t now = now_us();
        unsigned work = 0;
        if (roles & kRoleRx) work += rx_poll(now);
        for (unsigned k = 0; k < nmine; k++) work += worker_poll(*mine[k], now);
        if (roles & kRoleRx) work += owner_poll(now); // (after the workers' frames of this round)
        if (roles & kRoleSession) {
            work += session_poll(now);
            if (session_finished(now)) done.set();
        }
        if (roles & kRoleControl) control_tick(now);
        const uint64_t t1 = rte_rdtsc();
        if (work) {
            busy += t1 - t0;
            b.reset();
        } else {
            b.idle();
        }
        if (t1 - last > hz / 10) {
            lcore_stats[slot].busy_permille.store(static_cast<uint32_t>(busy * 1000 / (t1 - last)),
                                                  std::memory_order_relaxed);
            for (unsigned k = 0; k < nmine; k++) // (shared evenly: one loop polls them all)
                mine[k]->pub.busy_cycles.fetch_add(busy / nmine, std::memory_order_relaxed);
            last = t1;
            busy = 0;
        }
    }
    // Last frames of this lcore (a FIN, the final acknowledgements).
    for (unsigned k = 0; k < nmine; k++) worker_poll(*mine[k], now_us());
    if (roles & kRoleRx) owner_poll(now_us());
    return 0;
}

namespace {
struct LaunchArg {
    Impl *impl;
    unsigned slot;
};
} // namespace

int Impl::run_all() {
    Session &s = session;
    progress_on = o.progress < 0 ? isatty(2) : o.progress == 1;
    for (const auto &l : plan.lcores) role_names.push_back(LcorePlan::role_name(l.roles));
    for (unsigned slot = 0; slot < plan.lcores.size(); slot++)
        if ((plan.lcores[slot].roles & kRoleWorker) && (plan.lcores[slot].roles & kRoleRx))
            for (unsigned wi : plan.lcores[slot].workers) workers[wi]->with_owner = true;
    if (o.verbose) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who(), plan.describe().c_str());
        if (plan.unused)
            std::fprintf(stderr, "dpdk-millipede %s: %u lcores unused (--workers %u)\n", who(), plan.unused, o.workers);
    }
    if (o.tx) wait_links(3'000'000); // rx answers whoever comes; its peer may start much later
    s.t_start = now_us();
    s.txe.last_progress_us = s.rxe.last_progress_us = s.t_start;
    if (s.deflate) s.deflate->start();
    if (s.inflate) s.inflate->start();
    if (s.reader) s.reader->start();
    if (s.writer) s.writer->start();
    send_gratuitous();
    std::vector<LaunchArg> args(plan.lcores.size());
    for (unsigned slot = 1; slot < plan.lcores.size(); slot++) {
        args[slot] = LaunchArg{this, slot};
        rte_eal_remote_launch([](void *a) -> int {
            auto *la = static_cast<LaunchArg *>(a);
            return la->impl->lcore_main(la->slot);
        }, &args[slot], plan.lcores[slot].id);
    }
    lcore_main(0);
    for (unsigned slot = 1; slot < plan.lcores.size(); slot++) rte_eal_wait_lcore(plan.lcores[slot].id);
    publish(now_us(), true);
    if (progress_on) std::fprintf(stderr, "%s\n", stats::format_progress(board.read()).c_str());
    report_final();
    return status;
}

} // namespace millipede::dataplane

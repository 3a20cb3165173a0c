// sim-measure: goodput and dead-leg recovery of lib/session on the simulated
// network, printed as JSON. Not a test: the numbers go to docs/benchmarks.md.
//
//   sim-measure [--mib N] [--rate-mbps R] [--delay-us D] [--seed S] [--legs L]
//               [--detail 1] [--rto-min-us U]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "sim.h"

using namespace millipede;

namespace {

struct Opts {
    uint64_t mib = 64;
    uint64_t rate_mbps = 100;
    uint64_t delay_us = 1000;
    uint64_t seed = 1;
    uint32_t legs = 4;
    uint64_t detail = 0;  // 1: per-run loss-recovery breakdown (where the time goes)
    uint64_t rto_min_us = 0; // 0: the library default
    uint64_t trace_ms = 0;   // >0: leg 0's state changes for 50 ms from this time, on stderr (1 % loss run)
};

sim::WorldConfig world(const Opts &o, double loss) {
    sim::WorldConfig wc;
    wc.seed = o.seed;
    sim::LinkParams lp;
    lp.rate_bps = o.rate_mbps * 1'000'000;
    lp.delay_us = o.delay_us;
    // Drop-tail buffer of ~2 BDP (at least 64 KiB).
    lp.queue_bytes = std::max<uint64_t>(64 * 1024, 2 * lp.rate_bps / 8 * 2 * o.delay_us / 1'000'000);
    lp.loss = loss;
    wc.links.assign(4, lp);
    wc.legs = o.legs;
    wc.tx.stripe.chunk_bytes = 256 * 1024;
    wc.tx.stripe.max_chunks_in_flight = 32;
    wc.rx.stripe.window_chunks = 32;
    wc.rx.stripe.max_chunk_bytes = 256 * 1024;
    for (tcp::Config *t : {&wc.tx.tcp, &wc.rx.tcp}) {
        t->send_buffer = 1024 * 1024;
        t->recv_buffer = 1024 * 1024;
        t->cc = tcp::CongestionAlgo::Cubic;
        if (o.rto_min_us) t->rto_min_us = o.rto_min_us;
    }
    wc.time_limit_us = 3'600'000'000ull;
    return wc;
}

// Where the time goes on the sender's legs: sampled after every simulator
// step (state is constant between steps), summed over the legs.
struct Breakdown {
    struct Leg {
        const tcp::Connection *c = nullptr;
        tcp::Stats last{};
        bool in_rec = false;
        uint32_t flight = 0;
        uint64_t rto = 0;
    };
    Leg leg[64];
    uint64_t last_t = 0;
    double t_unfilled = 0, t_recovery = 0, t_after_rto = 0, cwnd_time = 0, t_total = 0;
    uint64_t rto_wait = 0; // sum of the (pre-back-off) RTO waited at each expiration
    uint64_t rtos = 0, rtos_in_recovery = 0, rtos_small_flight = 0, recoveries = 0, rtx_fast = 0, rtx_rto = 0;
    uint64_t rtos_first = 0; // first expiration (not a back-off repeat)
    uint64_t lost_rtx = 0, rescues = 0, limited = 0;

    void sample(sim::World &w) {
        const uint64_t now = w.now();
        const double dt = double(now - last_t);
        last_t = now;
        for (uint32_t i = 0; i < w.tx().legs() && i < 64; i++) {
            const tcp::Connection *c = w.tx().leg_connection(i);
            Leg &l = leg[i];
            if (c != l.c) {
                l = Leg{};
                l.c = c;
            }
            if (!c || c->state() != tcp::State::Established) continue;
            const tcp::Stats st = c->stats();
            t_total += dt;
            if (l.in_rec) t_recovery += dt;
            else if (c->consecutive_rtos() == 0 && l.flight + c->send_mss() <= l.last.cwnd) t_unfilled += dt;
            if (c->consecutive_rtos() > 0) t_after_rto += dt;
            cwnd_time += dt * st.cwnd;
            if (st.rto_events > l.last.rto_events) {
                rtos += st.rto_events - l.last.rto_events;
                if (c->consecutive_rtos() == 1) {
                    rtos_first++;
                    rto_wait += l.rto;
                } else {
                    rto_wait += c->rto_us() / 2;
                }
                if (l.in_rec) rtos_in_recovery++;
                if (l.flight < 4u * c->send_mss()) rtos_small_flight++;
            }
            recoveries += st.fast_recoveries - l.last.fast_recoveries;
            rtx_fast += st.retransmits_fast - l.last.retransmits_fast;
            rtx_rto += st.retransmits_timeout - l.last.retransmits_timeout;
            lost_rtx += st.lost_retransmits - l.last.lost_retransmits;
            rescues += st.rescue_retransmits - l.last.rescue_retransmits;
            limited += st.limited_transmits - l.last.limited_transmits;
            l.last = st;
            l.in_rec = c->in_recovery();
            l.flight = c->snd_nxt() - c->snd_una();
            l.rto = c->rto_us();
        }
    }
    void print(double secs, uint32_t legs) const {
        const double leg_secs = secs * 1e6 * legs;
        printf("      \"detail\": {\"rto_events\": %llu, \"rto_first\": %llu, \"rto_in_recovery\": %llu, "
               "\"rto_flight_lt_4mss\": %llu, \"rto_wait_share\": %.3f, \"after_rto_share\": %.3f, "
               "\"fast_recoveries\": %llu, \"recovery_share\": %.3f, \"rtx_fast\": %llu, \"rtx_rto\": %llu, "
               "\"lost_retransmits\": %llu, \"rescue_retransmits\": %llu, \"limited_transmits\": %llu, "
               "\"not_cwnd_limited_share\": %.3f, \"mean_cwnd_segs\": %.1f},\n",
               (unsigned long long)rtos, (unsigned long long)rtos_first, (unsigned long long)rtos_in_recovery,
               (unsigned long long)rtos_small_flight, rto_wait / leg_secs, t_after_rto / leg_secs,
               (unsigned long long)recoveries, t_recovery / leg_secs, (unsigned long long)rtx_fast,
               (unsigned long long)rtx_rto, (unsigned long long)lost_rtx, (unsigned long long)rescues,
               (unsigned long long)limited, t_unfilled / leg_secs, t_total > 0 ? cwnd_time / t_total / 1448.0 : 0.0);
    }
};

void goodput(const Opts &o, double loss, bool last) {
    sim::WorldConfig wc = world(o, loss);
    const auto in = sim::make_input(o.mib << 20, o.seed);
    sim::World w(wc, in);
    auto bd = std::make_unique<Breakdown>();
    std::function<void(sim::World &)> obs;
    uint64_t tr_una = 0, tr_nxt = 0, tr_cwnd = 0, tr_rec = 0;
    if (o.detail || o.trace_ms) obs = [&](sim::World &wd) {
        if (wd.tx().state() == session::State::RUNNING && o.detail) bd->sample(wd);
        const tcp::Connection *c = wd.tx().leg_connection(0);
        if (o.trace_ms && loss == 0.01 && c && wd.now() >= o.trace_ms * 1000 && wd.now() < o.trace_ms * 1000 + 50'000) {
            const tcp::Stats st = c->stats();
            if (c->snd_una() != tr_una || c->snd_nxt() != tr_nxt || st.cwnd != tr_cwnd || c->in_recovery() != tr_rec)
                fprintf(stderr, "t=%llu una=%u nxt-una=%u cwnd=%u ssth=%u rec=%d srtt=%llu rto=%llu frtx=%llu\n",
                        (unsigned long long)wd.now(), c->snd_una() - c->iss(), c->snd_nxt() - c->snd_una(), st.cwnd / 1448,
                        st.ssthresh / 1448, (int)c->in_recovery(), (unsigned long long)st.srtt_us,
                        (unsigned long long)st.rto_us, (unsigned long long)st.retransmits_fast);
            tr_una = c->snd_una();
            tr_nxt = c->snd_nxt();
            tr_cwnd = st.cwnd;
            tr_rec = c->in_recovery();
        }
    };
    const sim::Outcome out = w.run(obs);
    const double secs = out.end_us / 1e6;
    const double capacity = 4.0 * o.rate_mbps * 1e6;
    const double gp = in.size() * 8.0 / secs;
    uint64_t rtx = 0;
    for (size_t i = 0; i < w.net().links(); i++) rtx += w.net().link(uint32_t(i)).st.lost;
    if (o.detail) {
        uint64_t qd = 0;
        for (size_t i = 0; i < w.net().links(); i++) qd += w.net().link(uint32_t(i)).st.queue_drops;
        printf("      \"queue_drops\": %llu,\n", (unsigned long long)qd);
        bd->print(secs, o.legs);
    }
    printf("    {\"loss_pct\": %.1f, \"ok\": %s, \"seconds\": %.3f, \"goodput_mbps\": %.1f, "
           "\"share_of_capacity\": %.3f, \"packets_lost\": %llu, \"legs_lost\": %llu, \"chunks_resent\": %llu}%s\n",
           loss * 100, out.ok ? "true" : "false", secs, gp / 1e6, gp / capacity,
           static_cast<unsigned long long>(rtx), static_cast<unsigned long long>(w.tx().stats().legs_lost),
           static_cast<unsigned long long>(w.tx().stripe().stats().chunks_resent), last ? "" : ",");
}

void recovery(const Opts &o) {
    sim::WorldConfig wc = world(o, 0);
    const uint64_t total = o.mib << 20;
    wc.links[1].down_after_bytes = total / 8 + 12345; // mid-chunk, never revives
    const auto in = sim::make_input(total, o.seed);
    uint64_t rto = 0, srtt = 0, last_resend = 0, first_resend = 0, resent = 0;
    sim::World w(wc, in);
    const sim::Outcome out = w.run([&](sim::World &wd) {
        if (wd.net().link(1).st.died_at == UINT64_MAX) {
            if (const tcp::Connection *c = wd.tx().leg_connection(1))
                if (c->consecutive_rtos() == 0 && c->state() == tcp::State::Established) {
                    rto = c->rto_us();
                    srtt = c->stats().srtt_us;
                }
            return;
        }
        const uint64_t r = wd.tx().stripe().stats().chunks_resent;
        if (r > resent) {
            if (!first_resend) first_resend = wd.now();
            last_resend = wd.now();
        }
        resent = r;
    });
    const uint64_t died = w.net().link(1).st.died_at;
    const uint64_t dead = w.tx().stats().last_leg_lost_us;
    printf("  \"recovery\": {\"ok\": %s, \"rto_us\": %llu, \"srtt_us\": %llu, \"leg_died_us\": %llu, "
           "\"declared_dead_after_us\": %llu, \"first_resend_after_us\": %llu, \"last_resend_after_us\": %llu, "
           "\"chunks_resent\": %llu, \"declared_dead_rtos\": %.2f, \"all_resent_rtos\": %.2f, \"seconds\": %.3f}\n",
           out.ok ? "true" : "false", static_cast<unsigned long long>(rto), static_cast<unsigned long long>(srtt),
           static_cast<unsigned long long>(died), static_cast<unsigned long long>(dead - died),
           static_cast<unsigned long long>(first_resend - died), static_cast<unsigned long long>(last_resend - died),
           static_cast<unsigned long long>(resent), double(dead - died) / rto, double(last_resend - died) / rto,
           out.end_us / 1e6);
}

} // namespace

int main(int argc, char **argv) {
    Opts o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
        if (!std::strcmp(argv[i], "--mib")) o.mib = v;
        else if (!std::strcmp(argv[i], "--rate-mbps")) o.rate_mbps = v;
        else if (!std::strcmp(argv[i], "--delay-us")) o.delay_us = v;
        else if (!std::strcmp(argv[i], "--seed")) o.seed = v;
        else if (!std::strcmp(argv[i], "--legs")) o.legs = static_cast<uint32_t>(v);
        else if (!std::strcmp(argv[i], "--detail")) o.detail = v;
        else if (!std::strcmp(argv[i], "--trace-ms")) o.trace_ms = v;
        else if (!std::strcmp(argv[i], "--rto-min-us")) o.rto_min_us = v;
        else {
            fprintf(stderr, "usage: sim-measure [--mib N] [--rate-mbps R] [--delay-us D] [--seed S] [--legs L]\n"
                            "                   [--detail 0|1] [--rto-min-us U]\n");
            return 2;
        }
    }
    printf("{\n  \"conditions\": {\"links\": 4, \"legs\": %u, \"link_rate_mbps\": %llu, \"one_way_delay_us\": %llu, "
           "\"transfer_mib\": %llu, \"chunk_kib\": 256, \"tcp_buffers_kib\": 1024, \"cc\": \"cubic\", \"seed\": %llu},\n",
           o.legs, static_cast<unsigned long long>(o.rate_mbps), static_cast<unsigned long long>(o.delay_us),
           static_cast<unsigned long long>(o.mib), static_cast<unsigned long long>(o.seed));
    printf("  \"goodput\": [\n");
    goodput(o, 0.0, false);
    goodput(o, 0.01, false);
    goodput(o, 0.05, true);
    printf("  ],\n");
    recovery(o);
    printf("}\n");
    return 0;
}

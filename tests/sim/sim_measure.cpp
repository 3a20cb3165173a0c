// sim-measure: goodput and dead-leg recovery of lib/session on the simulated
// network, printed as JSON. Not a test: the numbers go to docs/benchmarks.md.
//
//   sim-measure [--mib N] [--rate-mbps R] [--delay-us D] [--seed S] [--legs L]
//               [--detail 1] [--rto-min-us U] [--cc reno|cubic|bbr]
//               [--loss-pct 0,1,5] [--recovery 0|1] [--fair 0|1]
//               [--fair-seconds S] [--trace-ms T] [--pacing 0|1]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include <vector>

#include "millipede/tcp/bbr.h"
#include "scenarios.h"

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
    uint64_t pacing = 0;     // --pacing 1: tcp::Config::pacing on both ends
    uint64_t trace_ms = 0;   // >0: leg 0's state changes for 50 ms from this time, on stderr (1 % loss
                             // run); with --fair 1, every leg's model every trace_ms ms
    tcp::CongestionAlgo cc = tcp::CongestionAlgo::Cubic;
    std::vector<double> loss_pct{0, 1, 5};
    uint64_t recovery = 1;     // the dead-leg recovery run
    uint64_t fair = 0;         // the shared-bottleneck run instead of the others
    uint64_t fair_seconds = 30;

    sim::PathSpec path() const {
        sim::PathSpec p;
        p.rate_mbps = rate_mbps;
        p.delay_us = delay_us;
        p.legs = legs;
        p.seed = seed;
        p.cc = cc;
        p.rto_min_us = rto_min_us;
        p.pacing = pacing != 0;
        return p;
    }
};

sim::WorldConfig world(const Opts &o, double loss) {
    const sim::PathSpec p = o.path();
    return sim::world_for(p, std::vector<sim::LinkParams>(4, sim::link_for(p, loss)));
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
    const tcp::Connection *c0 = w.tx().leg_connection(0);
    const tcp::Stats st0 = c0 ? c0->stats() : tcp::Stats{};
    if (o.detail)
        printf("      \"leg0\": {\"rack_lost\": %llu, \"tlp_probes\": %llu, \"pacing_waits\": %llu, "
               "\"rto_events\": %llu, \"fast_recoveries\": %llu},\n",
               (unsigned long long)st0.rack_lost, (unsigned long long)st0.tlp_probes,
               (unsigned long long)st0.pacing_waits, (unsigned long long)st0.rto_events,
               (unsigned long long)st0.fast_recoveries);
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

void fairness(const Opts &o) {
    const uint64_t secs = std::max<uint64_t>(o.fair_seconds, 4);
    const uint64_t warmup = secs / 3;
    // --trace-ms T: every T ms, each BBR leg's model and the rate each flow
    // got in the interval, on stderr (why legs diverge).
    uint64_t next_trace = o.trace_ms * 1000;
    std::vector<uint64_t> last_acked(o.legs + 1, 0);
    std::function<void(sim::World &)> obs;
    if (o.trace_ms) obs = [&](sim::World &w) {
        if (w.now() < next_trace) return;
        const double dt = double(o.trace_ms) / 1e3;
        fprintf(stderr, "t=%.2f", w.now() / 1e6);
        for (uint32_t i = 0; i <= o.legs; i++) {
            const tcp::Connection *c = i < o.legs ? w.tx().leg_connection(i) : w.cross_sender(0);
            if (!c) continue;
            const uint64_t a = c->bytes_acked();
            const double mbps = double(a - std::min(a, last_acked[i])) * 8 / dt / 1e6; // 0 after a reconnect
            last_acked[i] = a;
            const auto *b = dynamic_cast<const tcp::BbrCC *>(&c->congestion());
            if (!b) {
                fprintf(stderr, " | cubic %.1f cw=%u rto=%llu fr=%llu", mbps, c->stats().cwnd / 1448,
                        (unsigned long long)c->stats().rto_events, (unsigned long long)c->stats().fast_recoveries);
                continue;
            }
            const auto pk = [](uint64_t v) { return v == tcp::BbrCC::kInfinite ? -1.0 : double(v) / 1448; };
            fprintf(stderr, " | L%u %.1f %s mx=%.1f bw=%.1f st=%.1f cw=%.1f hi=%.1f lo=%.1f rtt=%llu", i, mbps,
                    tcp::BbrCC::mode_name(b->mode()), b->max_bw() * 8 / 1e6, b->bw() * 8 / 1e6,
                    b->bw_shortterm() == tcp::BbrCC::kInfiniteBw ? -1.0 : b->bw_shortterm() * 8 / 1e6,
                    double(b->cwnd()) / 1448, pk(b->inflight_longterm()), pk(b->inflight_shortterm()),
                    (unsigned long long)b->min_rtt_us());
        }
        fprintf(stderr, "\n");
        next_trace += o.trace_ms * 1000;
    };
    const sim::FairnessResult r =
        sim::run_fairness(o.path(), warmup * 1'000'000, (secs - warmup) * 1'000'000, obs);
    if (!r.measured) {
        printf("  \"fairness\": {\"error\": \"the run ended before the window did: %s\"}\n", r.why.c_str());
        return;
    }
    const double equal = r.link_utilisation / (o.legs + 1); // an equal split of what the flows got
    double worst = 0, least = 1e9;
    printf("  \"fairness\": {\"flows\": %u, \"warmup_s\": %llu, \"window_s\": %llu, \"link_utilisation\": %.3f, "
           "\"fair_share\": %.3f, \"equal_split_of_achieved\": %.3f, \"cubic_flow_share\": %.3f, \"leg_shares\": [",
           o.legs + 1, (unsigned long long)warmup, (unsigned long long)(secs - warmup), r.link_utilisation,
           r.fair_share, equal, r.cross_share);
    for (size_t i = 0; i < r.leg_share.size(); i++) {
        printf("%s%.3f", i ? ", " : "", r.leg_share[i]);
        worst = std::max(worst, r.leg_share[i] / equal);
        least = std::min(least, r.leg_share[i] / equal);
    }
    printf("], \"max_leg_over_equal_split\": %.3f, \"min_leg_over_equal_split\": %.3f, \"queue_drops\": %llu, "
           "\"legs_lost\": %llu",
           worst, least, (unsigned long long)r.queue_drops, (unsigned long long)r.legs_lost);
    if (o.detail) {
        printf(", \"legs\": [");
        for (size_t i = 0; i < r.leg_stats.size(); i++) {
            const tcp::Stats &s = r.leg_stats[i];
            printf("%s{\"fast_recoveries\": %llu, \"rack_lost\": %llu, \"rto_events\": %llu, \"srtt_us\": %llu, "
                   "\"cwnd\": %u}",
                   i ? ", " : "", (unsigned long long)s.fast_recoveries, (unsigned long long)s.rack_lost,
                   (unsigned long long)s.rto_events, (unsigned long long)s.srtt_us, s.cwnd);
        }
        printf("]");
    }
    printf("}\n");
}

} // namespace

int main(int argc, char **argv) {
    Opts o;
    const auto usage = [] {
        fprintf(stderr, "usage: sim-measure [--mib N] [--rate-mbps R] [--delay-us D] [--seed S] [--legs L]\n"
                        "                   [--detail 0|1] [--rto-min-us U] [--cc reno|cubic|bbr]\n"
                        "                   [--loss-pct P[,P...]] [--recovery 0|1] [--fair 0|1] [--fair-seconds S]\n"
                        "                   [--trace-ms T] [--pacing 0|1]\n");
        return 2;
    };
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--cc")) {
            if (!tcp::parse_congestion_algo(argv[i + 1], o.cc)) {
                fprintf(stderr, "sim-measure: --cc must be reno, cubic or bbr, not '%s'\n", argv[i + 1]);
                return 2;
            }
            continue;
        }
        if (!std::strcmp(argv[i], "--loss-pct")) {
            o.loss_pct.clear();
            const char *p = argv[i + 1];
            while (*p) {
                char *end = nullptr;
                const double v = std::strtod(p, &end);
                if (end == p || v < 0 || v >= 100) {
                    fprintf(stderr, "sim-measure: bad --loss-pct list '%s'\n", argv[i + 1]);
                    return 2;
                }
                o.loss_pct.push_back(v);
                p = *end == ',' ? end + 1 : end;
            }
            continue;
        }
        const uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
        if (!std::strcmp(argv[i], "--mib")) o.mib = v;
        else if (!std::strcmp(argv[i], "--rate-mbps")) o.rate_mbps = v;
        else if (!std::strcmp(argv[i], "--delay-us")) o.delay_us = v;
        else if (!std::strcmp(argv[i], "--seed")) o.seed = v;
        else if (!std::strcmp(argv[i], "--legs")) o.legs = static_cast<uint32_t>(v);
        else if (!std::strcmp(argv[i], "--detail")) o.detail = v;
        else if (!std::strcmp(argv[i], "--trace-ms")) o.trace_ms = v;
        else if (!std::strcmp(argv[i], "--rto-min-us")) o.rto_min_us = v;
        else if (!std::strcmp(argv[i], "--pacing")) o.pacing = v;
        else if (!std::strcmp(argv[i], "--recovery")) o.recovery = v;
        else if (!std::strcmp(argv[i], "--fair")) o.fair = v;
        else if (!std::strcmp(argv[i], "--fair-seconds")) o.fair_seconds = v;
        else return usage();
    }
    if (argc % 2 == 0) return usage();
    const sim::PathSpec p = o.path();
    printf("{\n  \"conditions\": {\"links\": %d, \"legs\": %u, \"link_rate_mbps\": %llu, \"one_way_delay_us\": %llu, "
           "\"transfer_mib\": %llu, \"chunk_kib\": 256, \"tcp_buffers_kib\": %u, \"cc\": \"%s\", \"seed\": %llu},\n",
           o.fair ? 1 : 4, o.legs, static_cast<unsigned long long>(o.rate_mbps),
           static_cast<unsigned long long>(o.delay_us), static_cast<unsigned long long>(o.mib),
           sim::tcp_buffer_for(p) / 1024, tcp::congestion_algo_name(o.cc), static_cast<unsigned long long>(o.seed));
    if (o.fair) {
        fairness(o);
        printf("}\n");
        return 0;
    }
    printf("  \"goodput\": [\n");
    for (size_t i = 0; i < o.loss_pct.size(); i++) goodput(o, o.loss_pct[i] / 100.0, i + 1 == o.loss_pct.size());
    printf("  ]%s\n", o.recovery ? "," : "");
    if (o.recovery) recovery(o);
    printf("}\n");
    return 0;
}

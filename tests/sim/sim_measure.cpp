// sim-measure: goodput and dead-leg recovery of lib/session on the simulated
// network, printed as JSON. Not a test: the numbers go to docs/benchmarks.md.
//
//   sim-measure [--mib N] [--rate-mbps R] [--delay-us D] [--seed S]
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
    }
    wc.time_limit_us = 3'600'000'000ull;
    return wc;
}

void goodput(const Opts &o, double loss, bool last) {
    sim::WorldConfig wc = world(o, loss);
    const auto in = sim::make_input(o.mib << 20, o.seed);
    sim::World w(wc, in);
    const sim::Outcome out = w.run();
    const double secs = out.end_us / 1e6;
    const double capacity = 4.0 * o.rate_mbps * 1e6;
    const double gp = in.size() * 8.0 / secs;
    uint64_t rtx = 0, rto = 0;
    for (size_t i = 0; i < w.net().links(); i++) rtx += w.net().link(uint32_t(i)).st.lost;
    for (uint32_t i = 0; i < w.tx().legs(); i++)
        if (const tcp::Connection *c = w.tx().leg_connection(i)) rto += c->stats().rto_events;
    printf("    {\"loss_pct\": %.1f, \"ok\": %s, \"seconds\": %.3f, \"goodput_mbps\": %.1f, "
           "\"share_of_capacity\": %.3f, \"packets_lost\": %llu, \"legs_lost\": %llu, \"chunks_resent\": %llu}%s\n",
           loss * 100, out.ok ? "true" : "false", secs, gp / 1e6, gp / capacity,
           static_cast<unsigned long long>(rtx), static_cast<unsigned long long>(w.tx().stats().legs_lost),
           static_cast<unsigned long long>(w.tx().stripe().stats().chunks_resent), last ? "" : ",");
    (void)rto;
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
        else {
            fprintf(stderr, "usage: sim-measure [--mib N] [--rate-mbps R] [--delay-us D] [--seed S] [--legs L]\n");
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

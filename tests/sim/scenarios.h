// Congestion-control scenarios on the simulated network, shared by
// sim-measure (the numbers in docs/benchmarks.md) and cc_goals_test (the
// same runs as assertions):
//  - goodput: 4 links, one leg each, random loss, a transfer of N MiB;
//  - fairness: the legs on one bottleneck link with one competing CUBIC
//    flow; each flow's share of the link over a steady-state window.
// Buffers (TCP, stripe window, drop-tail queue) scale with the bandwidth-
// delay product so that long paths are limited by the controller, not by
// a window.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "sim.h"

namespace sim {

struct PathSpec {
    uint64_t rate_mbps = 100;
    uint64_t delay_us = 1000; // one way
    uint32_t legs = 4;
    uint64_t seed = 1;
    tcp::CongestionAlgo cc = tcp::CongestionAlgo::Cubic;
    uint64_t rto_min_us = 0; // 0: the library default
    bool pacing = false;     // tcp::Config::pacing (NewReno and CUBIC)
};

// The bandwidth-delay product of one link (bytes).
inline uint64_t link_bdp(const PathSpec &p) { return p.rate_mbps * 1'000'000 / 8 * 2 * p.delay_us / 1'000'000; }

// TCP buffers: 1 MiB, or 4 BDP (rounded up to a power of two) on long
// paths: SACKed data holds send-buffer space until the hole below it is
// repaired, and a sender whose buffer is full sends nothing new after a
// retransmission, so RACK cannot see it lost (an RTO then).
inline uint32_t tcp_buffer_for(const PathSpec &p) {
    uint64_t b = 1 << 20;
    while (b < 4 * link_bdp(p) && b < (256u << 20)) b <<= 1;
    return static_cast<uint32_t>(b);
}

inline LinkParams link_for(const PathSpec &p, double loss) {
    LinkParams lp;
    lp.rate_bps = p.rate_mbps * 1'000'000;
    lp.delay_us = p.delay_us;
    // Drop-tail buffer of ~2 BDP (at least 64 KiB).
    lp.queue_bytes = std::max<uint64_t>(64 * 1024, 2 * link_bdp(p));
    lp.loss = loss;
    return lp;
}

inline WorldConfig world_for(const PathSpec &p, std::vector<LinkParams> links) {
    WorldConfig wc;
    wc.seed = p.seed;
    wc.links = std::move(links);
    wc.legs = p.legs;
    const uint32_t buf = tcp_buffer_for(p);
    const uint32_t chunk = 256 * 1024;
    // Enough chunks in flight to fill every leg's TCP buffer.
    const uint32_t chunks = std::max<uint32_t>(32, uint32_t(uint64_t(buf) * p.legs / chunk + 4));
    wc.tx.stripe.chunk_bytes = chunk;
    wc.tx.stripe.max_chunks_in_flight = chunks;
    wc.rx.stripe.window_chunks = chunks;
    wc.rx.stripe.max_chunk_bytes = chunk;
    for (tcp::Config *t : {&wc.tx.tcp, &wc.rx.tcp}) {
        t->send_buffer = buf;
        t->recv_buffer = buf;
        t->cc = p.cc;
        if (p.rto_min_us) t->rto_min_us = p.rto_min_us;
        t->pacing = p.pacing;
    }
    wc.time_limit_us = 3'600'000'000ull;
    return wc;
}

struct GoodputResult {
    bool ok = false;
    double seconds = 0, goodput_mbps = 0, share = 0; // share of 4 links' capacity
    uint64_t packets_lost = 0, queue_drops = 0;
    tcp::Stats leg0{};
};

// `observe` (optional) runs after every simulator step.
inline GoodputResult run_goodput(const PathSpec &p, double loss, uint64_t mib,
                                 const std::function<void(World &)> &observe = nullptr) {
    const WorldConfig wc = world_for(p, std::vector<LinkParams>(4, link_for(p, loss)));
    const auto in = make_input(mib << 20, p.seed);
    World w(wc, in);
    GoodputResult r;
    tcp::Stats last0{};
    const Outcome out = w.run([&](World &wd) {
        if (const tcp::Connection *c = wd.tx().leg_connection(0)) last0 = c->stats();
        if (observe) observe(wd);
    });
    r.ok = out.ok;
    r.seconds = out.end_us / 1e6;
    r.goodput_mbps = r.seconds > 0 ? in.size() * 8.0 / r.seconds / 1e6 : 0;
    r.share = r.goodput_mbps / (4.0 * p.rate_mbps);
    for (size_t i = 0; i < w.net().links(); i++) {
        r.packets_lost += w.net().link(uint32_t(i)).st.lost;
        r.queue_drops += w.net().link(uint32_t(i)).st.queue_drops;
    }
    r.leg0 = last0;
    return r;
}

struct FairnessResult {
    std::vector<double> leg_share; // of the link's capacity, over the window
    double cross_share = 0;        // the CUBIC flow's
    double fair_share = 0;         // 1 / (legs + 1)
    double link_utilisation = 0;
    uint64_t queue_drops = 0;
    uint64_t legs_lost = 0; // legs the stripe declared dead (and reconnected) in the window
    bool measured = false; // the run lasted through the window
    std::vector<tcp::Stats> leg_stats; // at the end of the window
    std::string why;       // how the run ended (the sender stops at the time limit)
};

// The legs and one CUBIC flow on one link of `p`'s rate and delay; shares
// measured from warmup_us to warmup_us + window_us. `observe` (optional)
// runs after every simulator step.
inline FairnessResult run_fairness(const PathSpec &p, uint64_t warmup_us, uint64_t window_us,
                                   const std::function<void(World &)> &observe = nullptr) {
    PathSpec one = p;
    WorldConfig wc = world_for(one, {link_for(one, 0)});
    CrossFlowSpec cf;
    cf.link = 0;
    cf.tcp.send_buffer = cf.tcp.recv_buffer = tcp_buffer_for(one);
    cf.tcp.cc = tcp::CongestionAlgo::Cubic;
    wc.cross.push_back(cf);
    const uint64_t end_us = warmup_us + window_us;
    wc.time_limit_us = end_us + 1'000'000; // the observer's sample at end_us happens inside
    // More input than the legs can carry in the time (they stop at the limit).
    const auto in = make_input(p.rate_mbps * 1'000'000 / 8 * (end_us / 1000) / 1000 + (1 << 20), p.seed);
    World w(wc, in);
    // Bytes each leg carried, summed over its connections: a leg the stripe
    // declares dead is reconnected, and the new connection counts from 0.
    struct LegCount {
        const tcp::Connection *conn = nullptr;
        uint64_t base = 0, last = 0;
        uint64_t total() const { return base + last; }
    };
    std::vector<LegCount> count(p.legs);
    std::vector<uint64_t> at_start(p.legs, 0), at_end(p.legs, 0);
    std::vector<tcp::Stats> r_legs;
    uint64_t cross_start = 0, cross_end = 0, lost_start = 0, lost_end = 0;
    bool started = false, ended = false;
    const Outcome out = w.run([&](World &wd) {
        for (uint32_t i = 0; i < p.legs; i++) {
            const tcp::Connection *c = wd.tx().leg_connection(i);
            if (c != count[i].conn) {
                count[i].base += count[i].last;
                count[i].last = 0;
                count[i].conn = c;
            }
            if (c) count[i].last = c->bytes_acked();
        }
        const auto grab = [&](std::vector<uint64_t> &v, uint64_t &cross, uint64_t &lost) {
            for (uint32_t i = 0; i < p.legs; i++) v[i] = count[i].total();
            if (const tcp::Connection *c = wd.cross_sender(0)) cross = c->bytes_acked();
            lost = wd.tx().stats().legs_lost;
        };
        if (!started && wd.now() >= warmup_us) {
            grab(at_start, cross_start, lost_start);
            started = true;
        }
        if (!ended && wd.now() >= end_us) {
            grab(at_end, cross_end, lost_end);
            ended = true;
            for (uint32_t i = 0; i < p.legs; i++)
                if (const tcp::Connection *c = wd.tx().leg_connection(i)) r_legs.push_back(c->stats());
        }
        if (observe) observe(wd);
    });
    FairnessResult r;
    r.measured = started && ended;
    r.legs_lost = lost_end - lost_start;
    r.leg_stats = r_legs;
    r.why = out.why;
    const double capacity = double(p.rate_mbps) * 1e6 / 8 * (double(window_us) / 1e6);
    double total = 0;
    for (uint32_t i = 0; i < p.legs; i++) {
        r.leg_share.push_back(double(at_end[i] - at_start[i]) / capacity);
        total += r.leg_share.back();
    }
    r.cross_share = double(cross_end - cross_start) / capacity;
    r.fair_share = 1.0 / (p.legs + 1);
    r.link_utilisation = total + r.cross_share;
    r.queue_drops = w.net().link(0).st.queue_drops;
    return r;
}

} // namespace sim

// parity-stall: the longest output stall after a leg is cut, with and
// without `parity K`, on the simulated network of tests/sim (lib/session's
// TxSession/RxSession over TCP-lite, virtual clock). JSON on stdout.
//
//   parity-stall [--legs 4] [--k 1] [--mib 32] [--chunk 65536]
//                [--rate-mbps 100] [--delay-us 1000] [--cut-at-mib 4] [--window 16] [--in-flight 16]
//                [--tcp-buffer 262144]
//                [--queue-ahead auto|off|BYTES] [--seed 1]
//
// Each of the `legs` legs has its own link (rate, one-way delay). After
// `cut-at-mib` MiB went over link 1 (in the middle of a chunk), that link
// dies for good. The stall is the longest stretch of virtual time in which
// the receiver's output did not grow, among those that end after the cut.
// Runs: parity 0 (re-send after the sender declares the leg dead) and
// parity K (the receiver rebuilds from the stripe's parity); --queue-ahead
// sets the parity run's SenderConfig::parity_queue_ahead: auto (the
// default: per leg, from its measured bandwidth-delay product), off (no
// bound) or a fixed number of bytes.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sim.h"

using namespace millipede;

namespace {

// "[a, b, ...]" of item(0) .. item(n - 1), each already JSON text.
template <class Item> std::string json_list(uint32_t n, Item item) {
    std::string s = "[";
    for (uint32_t i = 0; i < n; i++) {
        if (i) s += ", ";
        s += item(i);
    }
    return s + "]";
}

struct Opts {
    uint32_t legs = 4, k = 1, chunk = 65536, window = 0; // window 0: max(16, 2 legs + 1)
    uint32_t in_flight = 16; // SenderConfig::max_chunks_in_flight
    uint32_t tcp_buffer = 256 * 1024; // each leg's TCP send and receive buffer, both ends
    stripe::QueueAhead queue_ahead = stripe::QueueAhead::AUTO; // parity runs
    uint64_t queue_ahead_bytes = 0;                             // FIXED
    bool cwnd_validation = true;                                // tcp::Config::cwnd_validation
    uint64_t mib = 32, rate_mbps = 100, delay_us = 1000, cut_at_mib = 4, seed = 1;
};

struct Run {
    bool ok = false;
    std::string why;
    uint64_t died_us = 0, stall_us = 0, stall_from_us = 0, declared_dead_after_us = 0, end_us = 0, before_us = 0;
    uint64_t resent = 0, covered = 0, rebuilt = 0, parity_sent = 0;
    // Instrumentation of the longest stall after the cut: the data chunk the
    // output waited for (its stripe seq) and, when the stall began, how long
    // each link's drop-tail queue toward the receiver took to drain (µs of
    // backlog: bytes queued ahead of anything handed to TCP then).
    uint64_t stall_waited_seq = 0;
    std::vector<uint64_t> stall_backlog_us;
    // parity: each leg's queue-ahead bound at the end (and, auto, its
    // estimate: min round trip, max delivery rate), and how often a leg's
    // next chunk was held by it
    std::string queue_ahead_json = "null";
    // each leg's TCP (cwnd bytes, smoothed RTT µs) when half the output was written
    std::string tcp_at_half_json = "null";
};

Run run(const Opts &o, uint32_t k) {
    sim::WorldConfig wc;
    wc.seed = o.seed;
    wc.legs = o.legs;
    wc.links.assign(o.legs, sim::LinkParams{});
    for (auto &l : wc.links) {
        l.rate_bps = o.rate_mbps * 1'000'000;
        l.delay_us = o.delay_us;
    }
    wc.links[1 % o.legs].down_after_bytes = (o.cut_at_mib << 20) / o.legs + o.chunk / 2 + 12345;
    wc.tx.stripe.parity_k = k;
    wc.tx.stripe.chunk_bytes = o.chunk;
    if (k) {
        wc.tx.stripe.parity_queue_ahead = o.queue_ahead;
        wc.tx.stripe.parity_queue_ahead_bytes = o.queue_ahead_bytes;
    }
    wc.tx.stripe.max_chunks_in_flight = o.in_flight;
    for (tcp::Config *t : {&wc.tx.tcp, &wc.rx.tcp}) {
        t->send_buffer = t->recv_buffer = o.tcp_buffer;
        t->cwnd_validation = o.cwnd_validation;
    }
    wc.rx.stripe.window_chunks = o.window ? o.window : std::max<uint32_t>(16, 2 * o.legs + 1);
    wc.rx.stripe.max_chunk_bytes = o.chunk;
    const auto in = sim::make_input(o.mib << 20, o.seed);
    sim::World w(wc, in);
    uint64_t last_growth = 0, last_size = 0, longest = 0, longest_from = 0, before = 0;
    const auto &link = w.net().link(1 % o.legs);
    std::vector<uint64_t> backlog_at_growth(o.legs, 0);
    Run r;
    const sim::Outcome out = w.run([&](sim::World &wd) {
        const uint64_t now = wd.now();
        if (wd.output().size() != last_size) {
            if (link.st.died_at != UINT64_MAX && now > link.st.died_at && now - last_growth > longest) {
                longest = now - last_growth;
                longest_from = last_growth;
                r.stall_backlog_us = backlog_at_growth;
                const uint64_t data_index = last_size / o.chunk, n = o.legs - k;
                r.stall_waited_seq = k ? data_index / n * o.legs + data_index % n : data_index;
            }
            // (before the cut, from the first byte out: the steady-state rhythm)
            if (link.st.died_at == UINT64_MAX && last_size > 0) before = std::max(before, now - last_growth);
            if (last_size < (o.mib << 19) && wd.output().size() >= (o.mib << 19)) {
                auto tcp_list = [&](auto field) {
                    return json_list(o.legs, [&](uint32_t i) {
                        const tcp::Connection *c = wd.tx().leg_connection(i);
                        return c ? std::to_string(field(c->stats())) : std::string("null");
                    });
                };
                r.tcp_at_half_json =
                    "{\"cwnd\": " + tcp_list([](const auto &st) { return st.cwnd; }) +
                    ", \"srtt_us\": " + tcp_list([](const auto &st) { return st.srtt_us; }) +
                    ", \"cwnd_growth_held\": " + tcp_list([](const auto &st) { return st.cwnd_growth_held; }) +
                    ", \"recoveries\": " + tcp_list([](const auto &st) { return st.fast_recoveries + st.rto_events; }) +
                    "}";
            }
            last_size = wd.output().size();
            last_growth = now;
            for (uint32_t i = 0; i < o.legs; i++) {
                const auto &li = wd.net().link(i);
                backlog_at_growth[i] = li.up && li.free_at[0] > now ? li.free_at[0] - now : 0;
            }
        }
    });
    r.ok = out.ok;
    r.why = out.why;
    r.died_us = link.st.died_at;
    r.stall_us = longest;
    r.stall_from_us = longest_from;
    r.before_us = before;
    const uint64_t dead = w.tx().stats().last_leg_lost_us;
    r.declared_dead_after_us = dead >= r.died_us && r.died_us != UINT64_MAX ? dead - r.died_us : 0;
    r.end_us = out.end_us;
    r.resent = w.tx().stripe().stats().chunks_resent;
    r.covered = w.tx().stripe().stats().parity_covered;
    r.rebuilt = w.rx().stripe().stats().parity_rebuilt;
    r.parity_sent = w.tx().stripe().stats().parity_chunks_sent;
    if (k) {
        const auto &st = w.tx().stripe();
        const std::string b = json_list(o.legs, [&](uint32_t i) {
            const uint64_t bound = st.queue_ahead_bound(i);
            return bound == UINT64_MAX ? std::string("null") : std::to_string(bound);
        });
        const std::string rtt = json_list(o.legs, [&](uint32_t i) {
            const stripe::QueueAheadEstimator *e = st.queue_ahead_estimate(i);
            return e ? std::to_string(e->min_rtt_us()) : std::string("null");
        });
        const std::string rate = json_list(o.legs, [&](uint32_t i) {
            const stripe::QueueAheadEstimator *e = st.queue_ahead_estimate(i);
            if (!e) return std::string("null");
            char mbps[32];
            snprintf(mbps, sizeof mbps, "%.1f", e->max_rate_bytes_per_s() * 8 / 1e6);
            return std::string(mbps);
        });
        r.queue_ahead_json = "{\"bound_bytes_at_end\": " + b + ", \"min_rtt_us\": " + rtt + ", \"max_rate_mbps\": " +
                             rate + ", \"holds\": " + std::to_string(st.stats().parity_queue_ahead_holds) + "}";
    }
    return r;
}

std::string backlog_json(const std::vector<uint64_t> &v) {
    std::string j = "[";
    for (size_t i = 0; i < v.size(); i++) j += (i ? ", " : "") + std::to_string(v[i]);
    return j + "]";
}

} // namespace

int main(int argc, char **argv) {
    Opts o;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--no-cwnd-validation")) {
            o.cwnd_validation = false;
            continue;
        }
        if (!std::strcmp(argv[i], "--help") || i + 1 >= argc) {
            fprintf(stderr, "usage: parity-stall [--legs N] [--k K] [--mib M] [--chunk BYTES] [--rate-mbps R] "
                            "[--delay-us D] [--cut-at-mib C] [--window W] [--in-flight C] [--tcp-buffer BYTES] [--queue-ahead auto|off|BYTES] [--seed S] [--no-cwnd-validation]\n");
            return std::strcmp(argv[i], "--help") ? 2 : 0;
        }
        if (!std::strcmp(argv[i], "--queue-ahead")) {
            const std::string v = argv[++i];
            if (v == "auto") o.queue_ahead = stripe::QueueAhead::AUTO;
            else if (v == "off") o.queue_ahead = stripe::QueueAhead::OFF;
            else {
                o.queue_ahead = stripe::QueueAhead::FIXED;
                o.queue_ahead_bytes = std::strtoull(v.c_str(), nullptr, 10);
                if (o.queue_ahead_bytes == 0) {
                    fprintf(stderr, "parity-stall: --queue-ahead needs auto, off or a byte count > 0\n");
                    return 2;
                }
            }
            continue;
        }
        const uint64_t v = std::strtoull(argv[++i], nullptr, 10);
        const std::string a = argv[i - 1];
        if (a == "--legs") o.legs = static_cast<uint32_t>(v);
        else if (a == "--k") o.k = static_cast<uint32_t>(v);
        else if (a == "--mib") o.mib = v;
        else if (a == "--chunk") o.chunk = static_cast<uint32_t>(v);
        else if (a == "--rate-mbps") o.rate_mbps = v;
        else if (a == "--delay-us") o.delay_us = v;
        else if (a == "--cut-at-mib") o.cut_at_mib = v;
        else if (a == "--seed") o.seed = v;
        else if (a == "--window") o.window = static_cast<uint32_t>(v);
        else if (a == "--in-flight") o.in_flight = static_cast<uint32_t>(v);
        else if (a == "--tcp-buffer") o.tcp_buffer = static_cast<uint32_t>(std::min<uint64_t>(v, 1u << 30));
        else {
            fprintf(stderr, "parity-stall: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (o.legs < 2 || o.legs > 64 || o.k == 0 || o.k >= o.legs || o.chunk == 0 || o.chunk > (2u << 20) || o.mib == 0 ||
        o.cut_at_mib >= o.mib || o.in_flight < 2 || o.in_flight > 4096 || o.tcp_buffer < 4096) {
        fprintf(stderr, "parity-stall: need 2 <= legs <= 64, 1 <= k < legs, 1 <= chunk <= 2 MiB, cut-at-mib < mib, 2 <= in-flight <= 4096, tcp-buffer >= 4096\n");
        return 2;
    }
    const std::string qa_text = o.queue_ahead == stripe::QueueAhead::AUTO  ? "auto"
                                : o.queue_ahead == stripe::QueueAhead::OFF ? "off"
                                                                           : std::to_string(o.queue_ahead_bytes);
    printf("{\n  \"tool\": \"parity-stall\",\n  \"simulated\": true,\n"
           "  \"scenario\": {\"legs\": %u, \"links\": %u, \"rate_mbps_per_link\": %llu, \"one_way_delay_us\": %llu, "
           "\"mib\": %llu, \"chunk\": %u, \"in_flight\": %u, \"window\": %u, \"tcp_buffer\": %u, \"cut_link\": 1, \"cut_after_mib\": %llu, \"revives\": false, \"parity_queue_ahead\": \"%s\", \"seed\": %llu},\n"
           "  \"runs\": [\n",
           o.legs, o.legs, static_cast<unsigned long long>(o.rate_mbps), static_cast<unsigned long long>(o.delay_us),
           static_cast<unsigned long long>(o.mib), o.chunk, o.in_flight, o.window ? o.window : std::max<uint32_t>(16, 2 * o.legs + 1), o.tcp_buffer, static_cast<unsigned long long>(o.cut_at_mib),
           qa_text.c_str(), static_cast<unsigned long long>(o.seed));
    bool all_ok = true;
    const uint32_t ks[2] = {0, o.k};
    for (int i = 0; i < 2; i++) {
        const Run r = run(o, ks[i]);
        all_ok &= r.ok;
 printf("    {\"parity\": %u, \"ok\": %s, \"longest_stall_before_cut_us\": %llu, \"longest_stall_after_cut_us\": %llu, \"stall_started_after_cut_us\": "
               "%lld, \"leg_declared_dead_after_us\": %llu, \"seconds\": %.3f, \"goodput_mbps\": %.1f, "
               "\"chunks_resent\": %llu, \"chunks_covered_by_parity\": %llu, \"chunks_rebuilt\": %llu, "
               "\"parity_chunks_sent\": %llu, \"stall_waited_for_seq\": %llu, \"link_backlog_us_at_stall_start\": %s, \"queue_ahead\": %s, \"tcp_at_half\": %s%s%s%s}%s\n",
               ks[i], r.ok ? "true" : "false", static_cast<unsigned long long>(r.before_us),
               static_cast<unsigned long long>(r.stall_us),
               static_cast<long long>(r.stall_from_us) - static_cast<long long>(r.died_us),
               static_cast<unsigned long long>(r.declared_dead_after_us), r.end_us / 1e6,
               r.end_us ? (o.mib << 20) * 8.0 / r.end_us : 0.0, static_cast<unsigned long long>(r.resent),
               static_cast<unsigned long long>(r.covered), static_cast<unsigned long long>(r.rebuilt),
               static_cast<unsigned long long>(r.parity_sent), static_cast<unsigned long long>(r.stall_waited_seq),
               backlog_json(r.stall_backlog_us).c_str(), r.queue_ahead_json.c_str(), r.tcp_at_half_json.c_str(), r.ok ? "" : ", \"why\": \"", r.ok ? "" : r.why.c_str(),
               r.ok ? "" : "\"", i == 0 ? "," : "");
    }
    printf("  ]\n}\n");
    return all_ok ? 0 : 1;
}

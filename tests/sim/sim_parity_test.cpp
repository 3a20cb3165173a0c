// Parity across legs (`parity K`, docs/wire.md 2.21) on the simulated
// network: every seed draws N+K legs, one per link, and kills up to K of the
// links at random points (in the middle of a chunk, some for good, some
// reviving), under loss, reordering and duplication. The output must be
// byte-exact and confirmed, and no chunk may be sent twice: the receiver
// rebuilds what the dead legs took from the stripes' parity.
//
//   MILLIPEDE_SIM_SEEDS=N   run seeds 1..N (default 1000)
//   MILLIPEDE_SIM_SEED=S    run only seed S and print its mix and outcome
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "../stripe/fake_aead.h"
#include "sim.h"

using namespace millipede;
using sim::Rng;

namespace {

struct ParityCase {
    sim::WorldConfig wc;
    size_t size = 0;
    uint32_t kills = 0;
    std::string mix;
};

// fixed_or_off: instead of the default queue-ahead rule (AUTO: per leg,
// from its measured bandwidth-delay product), no bound (seed % 4 == 0) or a
// fixed one of 1..3 chunks, from the seed (so every other draw is the
// seed's usual mix).
ParityCase make_parity_case(uint64_t seed, bool fixed_or_off, stripe::Aead *tx_key = nullptr,
                            stripe::Aead *rx_key = nullptr) {
    Rng r(seed * 0x2545f4914f6cdd1dull + 11);
    ParityCase c;
    sim::WorldConfig &wc = c.wc;
    wc.seed = seed;
    const uint32_t legs = static_cast<uint32_t>(r.range(2, 6));
    const uint32_t k = static_cast<uint32_t>(r.range(1, std::min<uint32_t>(3, legs - 1)));
    wc.legs = legs;
    wc.links.assign(legs, sim::LinkParams{}); // one leg per link: a dead link kills exactly one leg
    const bool loss = r.chance(0.5), reorder = r.chance(0.35), dup = r.chance(0.3);
    static const uint64_t rates[] = {10'000'000, 50'000'000, 100'000'000};
    for (auto &l : wc.links) {
        l.rate_bps = rates[r.below(3)];
        l.delay_us = r.range(100, 3000);
        l.queue_bytes = r.range(64, 256) * 1024;
        l.loss = loss ? 0.005 + r.uniform() * 0.03 : 0;
        l.reorder = reorder ? 0.1 + r.uniform() * 0.3 : 0;
        l.reorder_us = r.range(1000, 5000);
        l.dup = dup ? 0.01 + r.uniform() * 0.04 : 0;
    }
    const uint32_t chunk = r.chance(0.2) ? static_cast<uint32_t>(r.range(1, 300))
                                         : static_cast<uint32_t>(r.range(1024, 64 * 1024));
    c.size = static_cast<size_t>(r.range(1, 256 * 1024));
    if (r.chance(0.3)) c.size = static_cast<size_t>(r.range(1, 3 * legs)) * chunk; // whole stripes or not
    // Up to K links die, each after carrying a random share of its part.
    c.kills = static_cast<uint32_t>(r.range(1, k));
    std::string kills;
    for (uint32_t i = 0, done = 0; done < c.kills && i < 4 * legs; i++) {
        sim::LinkParams &v = wc.links[r.below(legs)];
        if (v.down_after_bytes != UINT64_MAX) continue;
        v.down_after_bytes = 1 + r.below(std::max<size_t>(1, c.size / legs + c.size / 8));
        v.revive_after_us = r.chance(0.5) ? r.range(100'000, 2'000'000) : UINT64_MAX;
        kills += " after " + std::to_string(v.down_after_bytes) + "B" +
                 (v.revive_after_us == UINT64_MAX ? " for good" : " reviving");
        done++;
    }
    wc.tx.stripe.parity_k = k;
    // key FILE (2.22): every data chunk sealed (the test double), its tag
    // taking 16 bytes of the chunk; parity covers the sealed bytes and a
    // rebuilt chunk must open.
    const uint32_t chunk_keyed = std::max<uint32_t>(chunk, 17);
    if (tx_key) {
        wc.tx.stripe.aead = tx_key;
        wc.rx.stripe.aead = rx_key;
    }
    wc.tx.stripe.chunk_bytes = tx_key ? chunk_keyed : chunk;
    wc.tx.stripe.max_chunks_in_flight = static_cast<uint32_t>(r.range(2, 12));
    wc.tx.stripe.backoff_initial_us = r.range(20, 200) * 1000;
    wc.tx.stripe.backoff_max_us = 1'000'000;
    wc.tx.stripe.flush_partial_us = r.chance(0.2) ? 10'000 : 0;
    if (fixed_or_off && seed % 4 == 0) {
        wc.tx.stripe.parity_queue_ahead = stripe::QueueAhead::OFF;
    } else if (fixed_or_off) {
        wc.tx.stripe.parity_queue_ahead = stripe::QueueAhead::FIXED;
        wc.tx.stripe.parity_queue_ahead_bytes = uint64_t{chunk} * (seed % 4);
    }
    wc.tx.watchdog.connect_timeout_us = 1'000'000;
    wc.rx.stripe.window_chunks = static_cast<uint32_t>(r.range(2 * legs, 4 * legs));
    wc.rx.stripe.max_chunk_bytes = std::max<uint32_t>(wc.tx.stripe.chunk_bytes, static_cast<uint32_t>(r.range(1024, 64 * 1024)));
    wc.rx.stripe.max_legs = 64;
    for (tcp::Config *t : {&wc.tx.tcp, &wc.rx.tcp}) {
        t->sack = r.chance(0.8);
        t->timestamps = r.chance(0.8);
        t->send_buffer = static_cast<uint32_t>(r.range(8, 256) * 1024);
        t->recv_buffer = static_cast<uint32_t>(r.range(8, 256) * 1024);
        t->mss = static_cast<uint16_t>(r.range(536, 1460));
        t->delayed_ack_us = r.chance(0.3) ? 0 : 40'000;
        t->time_wait_us = 100'000;
    }
    wc.reader_bytes_per_ms = r.chance(0.15) ? r.range(100, 2000) : 0;
    wc.time_limit_us = 900'000'000;
    char b[512];
    snprintf(b, sizeof b,
             "%slegs=%u (N=%u K=%u) size=%zu chunk=%u in_flight=%u window=%u queue_ahead=%s loss=%d reorder=%d dup=%d "
             "kills:%s",
             tx_key ? "keyed " : "", legs, legs - k, k, c.size, wc.tx.stripe.chunk_bytes, wc.tx.stripe.max_chunks_in_flight, wc.rx.stripe.window_chunks,
             !fixed_or_off ? "auto" : seed % 4 == 0 ? "off" : std::to_string(wc.tx.stripe.parity_queue_ahead_bytes).c_str(), loss, reorder, dup, kills.c_str());
    c.mix = b;
    return c;
}

struct ParityTally {
    uint64_t seeds = 0, legs_lost = 0, resent = 0, rebuilt = 0, covered = 0, parity_sent = 0, bytes = 0;
    uint64_t beyond_k = 0; // seeds where more than K legs died (the watchdog also gave up a lossy live leg)
};

bool run_parity_seed(uint64_t seed, bool queue_ahead, ParityTally &t, std::string &err, bool verbose,
                     bool keyed = false) {
    stripe_test::FakeAead tx_key(seed), rx_key(seed);
    ParityCase c = make_parity_case(seed, queue_ahead, keyed ? &tx_key : nullptr, keyed ? &rx_key : nullptr);
    const auto in = sim::make_input(c.size, seed);
    sim::World w(c.wc, in);
    const sim::Outcome o = w.run();
    const auto &ts = w.tx().stripe().stats();
    const auto &rs = w.rx().stripe().stats();
    t.seeds++;
    t.bytes += c.size;
    t.legs_lost += w.tx().stats().legs_lost;
    t.resent += ts.chunks_resent;
    t.rebuilt += rs.parity_rebuilt;
    t.covered += ts.parity_covered;
    t.parity_sent += ts.parity_chunks_sent;
    if (verbose)
        printf("seed %llu: %s\n  %s; virtual %.3f s; legs lost %llu, chunks re-sent %llu, covered %llu, rebuilt %llu, "
               "stripes %llu (short %llu), parity sent %llu\n",
               static_cast<unsigned long long>(seed), c.mix.c_str(), o.ok ? "ok" : o.why.c_str(), w.now() / 1e6,
               static_cast<unsigned long long>(w.tx().stats().legs_lost),
               static_cast<unsigned long long>(ts.chunks_resent), static_cast<unsigned long long>(ts.parity_covered),
               static_cast<unsigned long long>(rs.parity_rebuilt), static_cast<unsigned long long>(ts.parity_stripes),
               static_cast<unsigned long long>(ts.parity_short_stripes),
               static_cast<unsigned long long>(ts.parity_chunks_sent));
    if (verbose) {
        for (uint32_t i = 0; i < w.tx().legs(); i++)
            printf("  tx leg %u: stripe state %d\n", i, int(w.tx().stripe().leg_state(i)));
        printf("  tx in flight %zu, sealed %llu, sent %llu, acked %llu; rx next %llu, buffered %llu, out %zu, blocked:",
               w.tx().stripe().chunks_in_flight(), static_cast<unsigned long long>(ts.chunks_sealed),
               static_cast<unsigned long long>(ts.chunks_sent), static_cast<unsigned long long>(ts.chunks_acked),
               static_cast<unsigned long long>(w.rx().stripe().next_seq()),
               static_cast<unsigned long long>(w.rx().stripe().buffered_bytes()), w.output().size());
        for (uint32_t i = 0; i < 64; i++)
            if (w.rx().stripe().leg_blocked(i)) printf(" %u", i);
        printf("\n");
    }
    std::string why;
    if (!o.ok)
        why = o.why;
    else if (ts.chunks_resent != 0 && w.tx().stats().legs_lost <= c.wc.tx.stripe.parity_k)
        why = "byte-exact, but " + std::to_string(ts.chunks_resent) + " chunk(s) were re-sent with " +
              std::to_string(w.tx().stats().legs_lost) + " leg(s) lost";
    // More legs than K can die: under loss the watchdog may give up a live
    // leg too. Then a stripe may lose more than K chunks, and re-sending
    // them is right; only byte-exactness is required.
    t.beyond_k += w.tx().stats().legs_lost > c.wc.tx.stripe.parity_k;
    if (why.empty()) return true;
    err = "parity seed " + std::to_string(seed) + " failed: " + why + "\n  mix: " + c.mix +
          "\n  re-run: MILLIPEDE_SIM_SEED=" + std::to_string(seed) + " <build>/tests/sim/sim_parity_test" +
          (queue_ahead ? " --gtest_filter=*FixedOrOff*" : keyed ? " --gtest_filter=*Keyed*" : "");
    return false;
}

uint64_t env_u64(const char *name, uint64_t dflt) {
    const char *v = std::getenv(name);
    return v && *v ? std::strtoull(v, nullptr, 10) : dflt;
}

void run_parity_seeds(bool queue_ahead, uint64_t default_seeds, bool keyed = false) {
    ParityTally t;
    if (const char *one = std::getenv("MILLIPEDE_SIM_SEED"); one && *one) {
        std::string err;
        EXPECT_TRUE(run_parity_seed(std::strtoull(one, nullptr, 10), queue_ahead, t, err, true, keyed)) << err;
        return;
    }
    const uint64_t n = env_u64("MILLIPEDE_SIM_SEEDS", default_seeds);
    uint64_t failures = 0;
    for (uint64_t seed = 1; seed <= n; seed++) {
        std::string err;
        if (!run_parity_seed(seed, queue_ahead, t, err, false, keyed)) {
            ADD_FAILURE() << err;
            if (++failures >= 10) break;
        }
    }
    printf("sim parity seeds%s: %llu seeds, %.1f MB; legs lost %llu, chunks covered by parity %llu, rebuilt %llu, "
           "parity chunks sent %llu, chunks re-sent %llu; seeds with more than K legs lost %llu\n",
           queue_ahead ? " (queue-ahead fixed or off)" : keyed ? " (keyed, queue-ahead auto)" : " (queue-ahead auto)", static_cast<unsigned long long>(t.seeds), t.bytes / 1e6,
           static_cast<unsigned long long>(t.legs_lost), static_cast<unsigned long long>(t.covered),
           static_cast<unsigned long long>(t.rebuilt), static_cast<unsigned long long>(t.parity_sent),
           static_cast<unsigned long long>(t.resent), static_cast<unsigned long long>(t.beyond_k));
    if (n >= 200 && failures == 0) {
        // The kills really cost chunks, and parity brought them back.
        EXPECT_GT(t.legs_lost, n / 4);
        EXPECT_GT(t.rebuilt, n / 10);
        EXPECT_LT(t.beyond_k, n / 20); // the exception stays rare
    }
}

// The default queue-ahead rule (AUTO).
TEST(SimParity, LegsDieNothingResent) { run_parity_seeds(false, 1000); }

// The same mixes with the queue ahead of each leg fixed at 1..3 chunks, or
// not bounded (--parity-queue-ahead BYTES|off): still nothing re-sent.
TEST(SimParity, QueueAheadFixedOrOffLegsDieNothingResent) { run_parity_seeds(true, 300); }

// key FILE with parity: the same mixes with every data chunk sealed (a test
// double for AES-256-GCM); the parity covers the sealed bytes, the rebuilt
// chunks open, and still nothing is re-sent. (Compression is not simulated:
// the sim's sender reads the pipe itself, compressed chunks come from the
// dataplane's pool; tests/stripe/parity_combo_test.cpp covers them.)
TEST(SimParity, KeyedLegsDieNothingResent) { run_parity_seeds(false, 300, true); }

} // namespace

namespace {

// tools/bench/parity_stall.cpp's long fat path (docs/benchmarks.md, "Parity
// across legs"): 4 legs on their own 100 Mbit/s links, 25 ms one way, a
// 256 KiB drop-tail queue, 4 MiB TCP buffers, 128 chunks in flight, link 1
// cut for good after ~4 MiB; `parity 1` with the given queue-ahead rule.
// Returns the virtual time the transfer took; `paced_leg0` is whether leg
// 0's TCP had a pacing rate when half the output was written.
uint64_t long_path_parity_run(stripe::QueueAhead qa, bool &paced_leg0) {
    constexpr uint64_t kMib = 64, kChunk = 65536;
    sim::WorldConfig wc;
    wc.seed = 1;
    wc.legs = 4;
    wc.links.assign(4, sim::LinkParams{});
    for (auto &l : wc.links) {
        l.rate_bps = 100'000'000;
        l.delay_us = 25'000;
    }
    wc.links[1].down_after_bytes = (4ull << 20) / 4 + kChunk / 2 + 12345;
    wc.tx.stripe.parity_k = 1;
    wc.tx.stripe.chunk_bytes = kChunk;
    wc.tx.stripe.parity_queue_ahead = qa;
    wc.tx.stripe.max_chunks_in_flight = 128;
    for (tcp::Config *t : {&wc.tx.tcp, &wc.rx.tcp}) t->send_buffer = t->recv_buffer = 4 << 20;
    wc.rx.stripe.window_chunks = 128;
    wc.rx.stripe.max_chunk_bytes = kChunk;
    const auto in = sim::make_input(kMib << 20, 1);
    sim::World w(wc, in);
    paced_leg0 = false;
    bool seen_half = false;
    const sim::Outcome o = w.run([&](sim::World &wd) {
        if (seen_half || wd.output().size() < (kMib << 19)) return;
        seen_half = true;
        const tcp::Connection *c = wd.tx().leg_connection(0);
        paced_leg0 = c && c->pacing_rate() > 0;
    });
    EXPECT_TRUE(o.ok) << o.why;
    EXPECT_EQ(w.output(), in);
    return o.end_us;
}

} // namespace

TEST(SimParity, QueueAheadBoundDoesNotSlowALongFatPath) {
    // The bound releases data to a leg in steps as TCP acknowledges it;
    // unpaced, each step left as a line-rate burst that overflowed the
    // link's queue in slow start (auto took 132.9 Mbit/s against 185.3 for
    // off). The session paces the legs when a bound is active
    // (session::legs_paced()); auto must then be no slower than off by
    // more than 5 %.
    bool paced_auto = false, paced_off = true;
    const uint64_t t_auto = long_path_parity_run(stripe::QueueAhead::AUTO, paced_auto);
    const uint64_t t_off = long_path_parity_run(stripe::QueueAhead::OFF, paced_off);
    EXPECT_TRUE(paced_auto);
    EXPECT_FALSE(paced_off);
    EXPECT_LE(t_auto, t_off + t_off / 20) << "auto " << t_auto << " us, off " << t_off << " us";
}

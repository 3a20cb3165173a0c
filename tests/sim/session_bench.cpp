// CPU cost of lib/session's state machines: 1 GiB through a TxSession and an
// RxSession (TCP-lite + striping, native codec), no faults, no delay, no
// sleep. Segments are serialized and parsed as on a NIC with checksum
// offload (the checksum is neither computed nor verified; the cost of doing
// it in software is the second benchmark). Reports cycles per byte.
//
//   session_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include "millipede/session/rx_session.h"
#include "millipede/session/tx_session.h"

using namespace millipede;

namespace {

// Set by a run whose transfer did not complete: main() then exits 1.
bool g_incomplete = false;

struct Wire {
    // Preallocated packet slots, reused: the harness must not dominate.
    struct Pkt {
        std::vector<uint8_t> b;
        size_t n = 0;
        tcp::IpAddr src, dst;
    };
    std::vector<Pkt> q[2];
    size_t count[2] = {0, 0};
    Wire() {
        for (auto &v : q) {
            v.resize(4096);
            for (auto &p : v) p.b.resize(2048);
        }
    }
    void push(int to, const tcp::Segment &s) {
        if (count[to] == q[to].size()) return; // cannot happen with these windows
        Pkt &p = q[to][count[to]++];
        p.n = tcp::serialize(s, p.b);
        p.src = s.src_ip;
        p.dst = s.dst_ip;
    }
};

void run(benchmark::State &state, bool sw_checksum) {
    const size_t total = size_t(1) << 30;
    std::vector<uint8_t> input(1 << 20);
    for (size_t i = 0; i < input.size(); i++) input[i] = uint8_t(i * 131 + 7);
    uint64_t cycles = 0, bytes = 0;
    double cpu_ns = 0;
    auto thread_ns = [] {
        timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e9 + ts.tv_nsec;
    };
    for (auto _ : state) {
        Wire w;
        const tcp::IpAddr a = tcp::IpAddr::v4(0x0a000001), b = tcp::IpAddr::v4(0x0a000002);
        session::TxConfig tc;
        for (int i = 0; i < 4; i++) tc.legs.push_back({a, 0, b, 8834});
        tc.stripe.chunk_bytes = 1 << 20;
        tc.stripe.max_chunks_in_flight = 16;
        session::RxConfig rc;
        rc.local_ips = {b};
        rc.port = 8834;
        rc.stripe.window_chunks = 16;
        for (tcp::Config *t : {&tc.tcp, &rc.tcp}) {
            t->checksum_offload = !sw_checksum;
            t->send_buffer = t->recv_buffer = 1 << 20;
            t->delayed_ack_us = 0;
        }
        session::TxSession tx(tc, [&](const tcp::Segment &s) { w.push(1, s); }, tcp::SeededRandom(1));
        session::RxSession rx(rc, [&](const tcp::Segment &s) { w.push(0, s); }, tcp::SeededRandom(2));
        size_t fed = 0, out = 0;
        uint64_t now = 1;
        bool eof = false;
        const uint64_t t0 = __rdtsc();
        const double c0 = thread_ns();
        while (tx.state() == session::State::RUNNING || rx.state() == session::State::RUNNING) {
            while (fed < total) {
                const size_t k = tx.push_input(input.data() + fed % input.size(),
                                               std::min(total - fed, input.size() - fed % input.size()), now);
                if (!k) break;
                fed += k;
            }
            if (fed == total && !eof) {
                tx.finish_input(now);
                eof = true;
            }
            tx.poll(now);
            for (int to : {1, 0}) {
                const size_t n = w.count[to];
                w.count[to] = 0;
                for (size_t i = 0; i < n; i++) {
                    Wire::Pkt &p = w.q[to][i];
                    tcp::Segment seg;
                    if (tcp::parse_segment({p.b.data(), p.n}, p.src, p.dst, seg, sw_checksum) != tcp::ParseResult::Ok)
                        continue;
                    if (to == 1)
                        rx.on_segment(seg, now);
                    else
                        tx.on_segment(seg, now);
                }
                if (to == 1) {
                    rx.poll(now);
                    for (auto o = rx.output(); !o.empty(); o = rx.output()) {
                        out += o.size();
                        rx.output_consumed(o.size());
                    }
                    rx.poll(now);
                }
            }
            now += 20;
        }
        cycles += __rdtsc() - t0;
        cpu_ns += thread_ns() - c0;
        bytes += out;
        if (out != total || !tx.confirmed()) {
            // The run stops and prints no figures (an incomplete transfer
            // would make its cycles per byte meaningless), and the process
            // exits non-zero (main below): a failure, not a skip.
            // SkipWithError is Google Benchmark's only call that ends a run
            // with an error; nothing here is skipped.
            g_incomplete = true;
            state.SkipWithError("transfer incomplete: the receiver did not get every byte, or the sender's end was "
                                "not confirmed");
            break;
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(bytes));
    // TSC cycles over wall time (inflated when the core is shared) and the
    // thread's CPU time: compare runs on an idle machine by cycles_per_byte.
    state.counters["cycles_per_byte"] = bytes ? double(cycles) / double(bytes) : 0;
    state.counters["cpu_ns_per_byte"] = bytes ? cpu_ns / double(bytes) : 0;
}

void BM_Session1GiB_ChecksumOffload(benchmark::State &state) { run(state, false); }
void BM_Session1GiB_SoftwareChecksum(benchmark::State &state) { run(state, true); }

BENCHMARK(BM_Session1GiB_ChecksumOffload)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Session1GiB_SoftwareChecksum)->Iterations(1)->Unit(benchmark::kMillisecond);

} // namespace

int main(int argc, char **argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    if (g_incomplete) {
        std::fprintf(stderr, "session_bench: a transfer was incomplete; no figure of that run is valid\n");
        return 1;
    }
    return 0;
}

// bench-classifier: the flow classifier against DPDK's rte_distributor (burst
// mode) on real lcores, over one synthetic trace held in memory.
//
//   bench-classifier [EAL options] -- [bench options]      (--help for the list)
//
// Lcore roles: the first non-main lcore is the dispatcher (the millipede
// classifier, then the rte_distributor), the main lcore and any further
// lcores poll the logical workers round-robin. Both systems replay the same
// mbufs (a static trace: nothing is ever freed), and the workers of both run
// the same checks (flow::OrderChecker), so the correctness counters compare.
// The trace is reused pass after pass; a guard makes sure no trace mbuf is
// re-dispatched while its previous use is still queued or being processed.
// Every wait is bounded, and a watchdog ends the process if a run overstays.
//
// Output: one JSON object on stdout. Progress and errors go to stderr.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

#include <rte_cycles.h>
#include <rte_distributor.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>

#include "millipede/flow/classifier.h"
#include "millipede/flow/flow_key.h"
#include "millipede/net/parse.h"

namespace {

using namespace millipede;

// ---------------------------------------------------------------- options

struct Options {
    uint32_t flows = 1'000'000;
    uint32_t packets = 4'000'000;
    double zipf = 1.0;
    unsigned size = 64; // Ethernet frame incl. 4-byte FCS, as in RFC 2544
    unsigned workers = 8;
    flow::Policy policy = flow::Policy::Busy;
    bool migrate = false;
    unsigned rounds = 5;
    unsigned ring_size = 4096;
    unsigned work_cycles = 0;
    double udp_share = 0.5;
    uint64_t seed = 1;
    bool run_millipede = true, run_distributor = true;
    unsigned timeout_s = 300;
    std::optional<float> busy_weight, migrate_margin, move_budget;
    std::optional<uint64_t> min_dwell_ms;
};

void usage(FILE *f) {
    std::fprintf(f,
                 "usage: bench-classifier [EAL options] -- [options]\n"
                 "  Replays a synthetic in-memory trace through the millipede flow classifier and\n"
                 "  through rte_distributor (burst mode) on real lcores; prints one JSON object.\n"
                 "  Needs at least 2 lcores: the first non-main lcore dispatches, the main lcore\n"
                 "  (and any further lcores) polls the logical workers.\n"
                 "  e.g. bench-classifier --lcores 0@0,1@1 --file-prefix benchc --no-pci -- --migrate\n"
                 "\n"
                 "  --flows N          flows in the trace (default 1000000)\n"
                 "  --packets N        trace length in packets (default 4000000); must exceed all\n"
                 "                     worker rings together (2 x workers x ring size)\n"
                 "  --zipf S           Zipf exponent of the flow popularity (default 1.0; 0 = uniform)\n"
                 "  --size B           frame size incl. FCS, 64..1518 (default 64)\n"
                 "  --workers N        logical workers, 1..63 (default 8)\n"
                 "  --policy P         hash|pending|busy (default busy)\n"
                 "  --migrate          let idle flows move to a less loaded worker\n"
                 "  --rounds N         passes over the trace (default 5)\n"
                 "  --ring-size N      classifier worker ring, power of two (default 4096)\n"
                 "  --work-cycles N    per-packet inspection work on the workers, TSC cycles (default 0)\n"
                 "  --udp-share F      fraction of UDP flows, the rest TCP (default 0.5)\n"
                 "  --seed N           trace seed (default 1)\n"
                 "  --only millipede|distributor   run one system only\n"
                 "  --busy-weight F    override BalancerTuning::busy_weight\n"
                 "  --migrate-margin F override BalancerTuning::migrate_margin\n"
                 "  --move-budget F    override BalancerTuning::move_budget (moves per packet, at most)\n"
                 "  --min-dwell-ms N   override BalancerTuning::min_dwell_ns, in milliseconds\n"
                 "  --timeout S        watchdog: abort the whole run after S seconds (default 300)\n"
                 "  --help             this text\n");
}

std::optional<uint64_t> to_uint(std::string_view s, uint64_t lo, uint64_t hi) {
    if (s.empty() || s.size() > 19) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v < lo || v > hi) return std::nullopt;
    return v;
}

std::optional<double> to_double(std::string_view s, double lo, double hi) {
    std::string t(s);
    char *end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end || !std::isfinite(v) || v < lo || v > hi) return std::nullopt;
    return v;
}

// Returns an error message, empty on success.
std::string parse_options(int argc, char **argv, Options &o) {
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        std::string_view v;
        auto need = [&]() {
            if (i + 1 >= argc) return false;
            v = argv[++i];
            return true;
        };
        if (a == "--help" || a == "-h") {
            usage(stdout);
            std::exit(0);
        } else if (a == "--migrate") {
            o.migrate = true;
        } else if (a == "--flows") {
            auto n = need() ? to_uint(v, 1, 1u << 24) : std::nullopt;
            if (!n) return "--flows needs a number from 1 to 16777216";
            o.flows = static_cast<uint32_t>(*n);
        } else if (a == "--packets") {
            auto n = need() ? to_uint(v, 1, 1u << 30) : std::nullopt;
            if (!n) return "--packets needs a number from 1 to 2^30";
            o.packets = static_cast<uint32_t>(*n);
        } else if (a == "--zipf") {
            auto d = need() ? to_double(v, 0.0, 10.0) : std::nullopt;
            if (!d) return "--zipf needs an exponent from 0 to 10";
            o.zipf = *d;
        } else if (a == "--size") {
            auto n = need() ? to_uint(v, 64, 1518) : std::nullopt;
            if (!n) return "--size needs a frame size from 64 to 1518";
            o.size = static_cast<unsigned>(*n);
        } else if (a == "--workers") {
            auto n = need() ? to_uint(v, 1, 63) : std::nullopt;
            if (!n) return "--workers needs a number from 1 to 63";
            o.workers = static_cast<unsigned>(*n);
        } else if (a == "--policy") {
            auto p = need() ? flow::parse_policy(v) : std::nullopt;
            if (!p) return "--policy needs hash, pending or busy";
            o.policy = *p;
        } else if (a == "--rounds") {
            auto n = need() ? to_uint(v, 1, 1000) : std::nullopt;
            if (!n) return "--rounds needs a number from 1 to 1000";
            o.rounds = static_cast<unsigned>(*n);
        } else if (a == "--ring-size") {
            auto n = need() ? to_uint(v, 32, 1u << 20) : std::nullopt;
            if (!n || (*n & (*n - 1))) return "--ring-size needs a power of two from 32 to 2^20";
            o.ring_size = static_cast<unsigned>(*n);
        } else if (a == "--work-cycles") {
            auto n = need() ? to_uint(v, 0, 1'000'000) : std::nullopt;
            if (!n) return "--work-cycles needs a number from 0 to 1000000";
            o.work_cycles = static_cast<unsigned>(*n);
        } else if (a == "--udp-share") {
            auto d = need() ? to_double(v, 0.0, 1.0) : std::nullopt;
            if (!d) return "--udp-share needs a fraction from 0 to 1";
            o.udp_share = *d;
        } else if (a == "--seed") {
            auto n = need() ? to_uint(v, 0, UINT64_MAX / 10) : std::nullopt;
            if (!n) return "--seed needs a number";
            o.seed = *n;
        } else if (a == "--only") {
            if (!need() || (v != "millipede" && v != "distributor")) return "--only needs millipede or distributor";
            o.run_millipede = v == "millipede";
            o.run_distributor = v == "distributor";
        } else if (a == "--busy-weight") {
            auto d = need() ? to_double(v, 0.0, 1e6) : std::nullopt;
            if (!d) return "--busy-weight needs a non-negative number";
            o.busy_weight = static_cast<float>(*d);
        } else if (a == "--migrate-margin") {
            auto d = need() ? to_double(v, 0.0, 1e6) : std::nullopt;
            if (!d) return "--migrate-margin needs a non-negative number";
            o.migrate_margin = static_cast<float>(*d);
        } else if (a == "--move-budget") {
            auto d = need() ? to_double(v, 0.0, 1.0) : std::nullopt;
            if (!d) return "--move-budget needs a fraction from 0 to 1";
            o.move_budget = static_cast<float>(*d);
        } else if (a == "--min-dwell-ms") {
            auto n = need() ? to_uint(v, 0, 3'600'000) : std::nullopt;
            if (!n) return "--min-dwell-ms needs milliseconds from 0 to 3600000";
            o.min_dwell_ms = *n;
        } else if (a == "--timeout") {
            auto n = need() ? to_uint(v, 1, 86400) : std::nullopt;
            if (!n) return "--timeout needs seconds from 1 to 86400";
            o.timeout_s = static_cast<unsigned>(*n);
        } else {
            return "unknown option '" + std::string(a) + "' (see --help)";
        }
    }
    if (uint64_t(o.packets) < 2ull * o.workers * o.ring_size)
        return "--packets must be at least 2 x workers x ring size (" + std::to_string(2ull * o.workers * o.ring_size) +
               ") so that a trace mbuf is never queued twice";
    return {};
}

// ---------------------------------------------------------------- watchdog

// Ends the process if the run overstays: a dead lcore, or a DPDK call that
// spins forever (rte_distributor's handshakes wait for their peer), cannot
// hang the benchmark.
class Watchdog {
public:
    explicit Watchdog(unsigned seconds) {
        thread_ = std::thread([this, seconds] {
            std::unique_lock<std::mutex> lk(mu_);
            if (!cv_.wait_for(lk, std::chrono::seconds(seconds), [this] { return done_; })) {
                std::fprintf(stderr, "bench-classifier: watchdog: run exceeded %u s, aborting\n", seconds);
                std::fflush(stderr);
                _exit(3);
            }
        });
    }
    ~Watchdog() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

// ---------------------------------------------------------------- trace

struct Trace {
    rte_mempool *pool = nullptr;
    std::vector<rte_mbuf *> pkts;  // replay order
    std::vector<uint32_t> flow_of; // flow id per packet (the distributor's sequence stamps)
    std::vector<uint8_t> dir_of;   // canonical direction per packet
    uint32_t flows_seen = 0;
    uint32_t tcp_packets = 0;
    double top_flow_share = 0;
};

void put16(uint8_t *p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t *p, uint32_t v) {
    put16(p, static_cast<uint16_t>(v >> 16));
    put16(p + 2, static_cast<uint16_t>(v));
}

uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

struct FlowTuple {
    uint32_t client, server;
    uint16_t cport, sport;
    uint8_t proto;
};

FlowTuple flow_tuple(uint32_t id, const Options &o) {
    uint64_t h = mix64(id ^ (o.seed << 32));
    FlowTuple t;
    t.client = 0x0a000000u | (id & 0x00ffffffu); // unique per flow: keys never collide
    t.server = 0xc0a80000u | static_cast<uint32_t>(h & 0xffff);
    t.cport = static_cast<uint16_t>(1024 + (h >> 16) % 64000);
    static constexpr uint16_t kPorts[] = {443, 80, 53, 8080, 22, 25, 123, 3306};
    t.sport = kPorts[(h >> 40) & 7];
    double u = static_cast<double>(h >> 11) * 0x1.0p-53;
    t.proto = u < o.udp_share ? net::kProtoUDP : net::kProtoTCP;
    return t;
}

// Builds an Ethernet/IPv4/TCP or UDP frame of `len` bytes (FCS excluded).
void build_frame(uint8_t *f, unsigned len, const FlowTuple &t, bool reply, uint32_t seq) {
    std::memset(f, 0, len);
    uint32_t src = reply ? t.server : t.client, dst = reply ? t.client : t.server;
    uint16_t sp = reply ? t.sport : t.cport, dp = reply ? t.cport : t.sport;
    // Ethernet: locally administered MACs.
    static constexpr uint8_t kMacA[6] = {0x02, 0, 0, 0, 0, 1}, kMacB[6] = {0x02, 0, 0, 0, 0, 2};
    std::memcpy(f, reply ? kMacA : kMacB, 6);
    std::memcpy(f + 6, reply ? kMacB : kMacA, 6);
    put16(f + 12, net::kEtherTypeIPv4);
    uint8_t *ip = f + 14;
    unsigned ip_len = len - 14;
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(ip_len));
    put16(ip + 4, static_cast<uint16_t>(seq));
    put16(ip + 6, 0x4000); // DF
    ip[8] = 64;
    ip[9] = t.proto;
    put32(ip + 12, src);
    put32(ip + 16, dst);
    uint32_t sum = 0;
    for (unsigned i = 0; i < 20; i += 2) sum += (uint32_t(ip[i]) << 8) | ip[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    put16(ip + 10, static_cast<uint16_t>(~sum));
    uint8_t *l4 = ip + 20;
    put16(l4, sp);
    put16(l4 + 2, dp);
    if (t.proto == net::kProtoTCP) {
        put32(l4 + 4, seq * 1448u);
        put32(l4 + 8, 1);
        l4[12] = 5 << 4;
        l4[13] = net::kTcpAck | net::kTcpPsh; // mid-connection: no SYN/FIN/RST state changes
        put16(l4 + 14, 65535);
    } else {
        put16(l4 + 4, static_cast<uint16_t>(ip_len - 20));
    }
    // L4 checksums are left 0: the classifier does not verify them (a tap
    // sees offloaded, unfilled checksums too).
}

// Zipf(s) over [0, n): the CDF once, then a binary search per packet.
class Zipf {
public:
    Zipf(uint32_t n, double s) : cdf_(n) {
        double acc = 0;
        for (uint32_t i = 0; i < n; ++i) {
            acc += 1.0 / std::pow(static_cast<double>(i + 1), s);
            cdf_[i] = acc;
        }
        for (auto &c : cdf_) c /= acc;
        cdf_.back() = 1.0;
    }
    uint32_t operator()(double u) const {
        return static_cast<uint32_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
    }
    double top_share() const { return cdf_[0]; }

private:
    std::vector<double> cdf_;
};

bool build_trace(const Options &o, Trace &t, std::string &err) {
    unsigned frame_len = o.size - 4;
    // A small data room and no headroom: the trace only needs the frame, so
    // millions of mbufs fit (about 256 bytes each with the mbuf header).
    uint16_t room = static_cast<uint16_t>(RTE_ALIGN_CEIL(frame_len, RTE_CACHE_LINE_SIZE));
    t.pool = rte_pktmbuf_pool_create("bench_trace", o.packets, 0, 0, room, static_cast<int>(rte_socket_id()));
    if (!t.pool) {
        err = "cannot create the trace mempool of " + std::to_string(o.packets) + " mbufs: " + rte_strerror(rte_errno) +
              " (give EAL more memory: hugepages or -m)";
        return false;
    }
    t.pkts.resize(o.packets);
    t.flow_of.resize(o.packets);
    t.dir_of.resize(o.packets);
    if (rte_pktmbuf_alloc_bulk(t.pool, t.pkts.data(), o.packets) != 0) {
        err = "cannot allocate the trace mbufs";
        return false;
    }
    // Allocation order follows memory order, so replay walks memory forwards.
    std::sort(t.pkts.begin(), t.pkts.end());
    Zipf zipf(o.flows, o.zipf);
    t.top_flow_share = zipf.top_share();
    std::mt19937_64 rng(o.seed);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    std::vector<uint8_t> seen(o.flows, 0);
    // Flow ids are Zipf ranks scattered over the id space, so popular flows
    // are not neighbours in any table.
    uint32_t mult = 2654435761u;
    for (uint32_t i = 0; i < o.packets; ++i) {
        uint32_t rank = zipf(uni(rng));
        uint32_t id = static_cast<uint32_t>((uint64_t(rank) * mult) % o.flows);
        if (std::gcd(uint64_t(mult), uint64_t(o.flows)) != 1) id = rank;
        FlowTuple ft = flow_tuple(id, o);
        bool reply = (rng() & 1) != 0;
        rte_mbuf *m = t.pkts[i];
        m->data_off = 0;
        auto *f = rte_pktmbuf_mtod(m, uint8_t *);
        build_frame(f, frame_len, ft, reply, i);
        m->data_len = static_cast<uint16_t>(frame_len);
        m->pkt_len = frame_len;
        net::PacketInfo p;
        if (net::parse_packet(f, frame_len, p) != net::Reject::NONE) {
            err = "internal: a built frame does not parse";
            return false;
        }
        flow::FlowKey k;
        t.dir_of[i] = flow::make_flow_key(p, k);
        // What a NIC's symmetric RSS would give: the distributor's tag.
        m->hash.usr = flow::flow_hash(k);
        t.flow_of[i] = id;
        t.flows_seen += !seen[id];
        seen[id] = 1;
        t.tcp_packets += ft.proto == net::kProtoTCP;
    }
    return true;
}

// ---------------------------------------------------------------- shared run state

struct Inspect {
    unsigned work_cycles;
    uint64_t sink = 0;
    // A fixed amount of "inspection": read the L4 header, then burn cycles.
    inline void operator()(rte_mbuf *m) {
        uint64_t w;
        std::memcpy(&w, rte_pktmbuf_mtod_offset(m, const uint8_t *, 34), 8);
        sink += w;
        if (work_cycles) {
            uint64_t t0 = rte_rdtsc();
            while (rte_rdtsc() - t0 < work_cycles) rte_pause();
        }
    }
};

struct PhaseResult {
    const char *name = "";
    bool ran = false, aborted = false;
    std::string abort_reason;
    uint64_t packets = 0, dispatch_cycles = 0, wall_cycles = 0, first_pass_cycles = 0;
    uint64_t first_pass_packets = 0;
    uint64_t drops = 0, migrations = 0, reuse_waits = 0;
    uint64_t processed_total = 0, worker_wall_cycles = 0;
    std::vector<uint64_t> offered, processed, ring_drops, busy_cycles;
    uint64_t order_inversions = 0, split_flows = 0, unrecorded_moves = 0, stale_packets = 0;
    uint64_t flows_created = 0;
    uint64_t returned = 0;
};

struct Common {
    const Options *opt;
    Trace *trace;
    uint64_t tsc_hz;
    uint64_t deadline_tsc; // bounded waits inside a phase
    std::vector<unsigned> worker_lcores; // lcores polling logical workers (main first)
    unsigned dispatch_lcore;
};

constexpr unsigned kSegments = 4;

// What a NIC's RX path provides: the PMD has just written the mbuf header
// and the frame has just arrived (DDIO), so both are in cache when a burst is
// handed over. A static trace of millions of mbufs is cold instead; the
// replay loop therefore starts fetching the mbufs (both header lines and the
// frame) of a burst `kRxAhead` bursts before handing it over. This runs on
// the dispatching core and is inside the measured wall time (the Mpps), but
// outside the dispatcher's own cycle count. The frame sits right after the
// mbuf header (data_off is 0 in the trace pool), so no header read is needed.
constexpr unsigned kRxAhead = 2;
inline void rx_prefetch(rte_mbuf *const *p, unsigned n) {
    for (unsigned j = 0; j < n; ++j) {
        const char *m = reinterpret_cast<const char *>(p[j]);
        rte_prefetch0(m);
        rte_prefetch0(m + RTE_CACHE_LINE_SIZE);
        rte_prefetch0(m + sizeof(rte_mbuf));
    }
}
inline void rx_prefetch_ahead(const std::vector<rte_mbuf *> &pkts, uint32_t i) {
    uint64_t a = uint64_t(i) + kRxAhead * flow::kBurst;
    if (a < pkts.size()) rx_prefetch(&pkts[a], static_cast<unsigned>(std::min<uint64_t>(flow::kBurst, pkts.size() - a)));
}

// Splits [0, packets) into kSegments burst-aligned segments.
std::vector<uint32_t> segment_bounds(uint32_t packets) {
    std::vector<uint32_t> b(kSegments + 1);
    uint32_t seg = (packets + kSegments - 1) / kSegments;
    seg = (seg + flow::kBurst - 1) / flow::kBurst * flow::kBurst;
    for (unsigned s = 0; s <= kSegments; ++s) b[s] = std::min<uint64_t>(uint64_t(s) * seg, packets);
    return b;
}

// ---------------------------------------------------------------- millipede

struct MillipedeRun {
    Common *c;
    std::unique_ptr<flow::Classifier> cls;
    std::vector<std::unique_ptr<flow::WorkerPort>> ports;
    std::atomic<bool> dispatch_done{false};
    std::atomic<bool> abort{false};
    std::string abort_reason;
    uint64_t t_start = 0, t_end = 0, first_pass_end = 0, first_pass_packets = 0, reuse_waits = 0;
    std::atomic<uint64_t> worker_t_start{0};
    std::vector<uint64_t> worker_end_tsc;
};

uint64_t enqueued(const flow::Classifier &cls, unsigned w) { return cls.dispatched(w) - cls.ring_drops(w); }

int millipede_dispatch(void *arg) {
    auto &r = *static_cast<MillipedeRun *>(arg);
    const Options &o = *r.c->opt;
    auto &pkts = r.c->trace->pkts;
    auto bounds = segment_bounds(o.packets);
    std::vector<std::vector<uint64_t>> seg_enq(kSegments, std::vector<uint64_t>(o.workers, 0));
    const double ns_per_tsc = 1e9 / static_cast<double>(r.c->tsc_hz);
    uint64_t iter = 0;
    r.t_start = rte_rdtsc();
    for (unsigned round = 0; round < o.rounds && !r.abort.load(std::memory_order_relaxed); ++round) {
        for (unsigned s = 0; s < kSegments; ++s) {
            if (round > 0) {
                // Reuse guard: every packet dispatched from this segment in the
                // previous pass must be completed before its mbufs go out again.
                bool waited = false;
                for (unsigned w = 0; w < o.workers; ++w) {
                    while (r.cls->worker_shared(w).completed.load(std::memory_order_acquire) < seg_enq[s][w]) {
                        waited = true;
                        if (rte_rdtsc() > r.c->deadline_tsc) {
                            r.abort_reason = "worker " + std::to_string(w) + " stopped completing packets";
                            r.abort.store(true);
                            goto out;
                        }
                        rte_pause();
                    }
                }
                r.reuse_waits += waited;
            }
            for (uint32_t i = bounds[s]; i < bounds[s + 1]; i += flow::kBurst) {
                unsigned n = std::min<uint32_t>(flow::kBurst, bounds[s + 1] - i);
                rx_prefetch_ahead(pkts, i);
                uint64_t now = static_cast<uint64_t>(static_cast<double>(rte_rdtsc() - r.t_start) * ns_per_tsc);
                r.cls->process_burst(&pkts[i], n, now);
                if ((++iter & 63) == 0) r.cls->expire(now);
            }
            for (unsigned w = 0; w < o.workers; ++w) seg_enq[s][w] = enqueued(*r.cls, w);
        }
        if (round == 0) {
            r.first_pass_end = rte_rdtsc();
            r.first_pass_packets = r.cls->stats().packets;
        }
    }
out:
    // Staged packets go out with the next partial burst or expire() call;
    // the trace ends here, so hand them over (an empty expiry budget).
    r.cls->expire(static_cast<uint64_t>(static_cast<double>(rte_rdtsc() - r.t_start) * ns_per_tsc), 0);
    r.t_end = rte_rdtsc();
    r.dispatch_done.store(true, std::memory_order_release);
    return 0;
}

struct WorkerArg {
    void *run;
    unsigned first, stride, index;
};

int millipede_workers(void *arg) {
    auto &a = *static_cast<WorkerArg *>(arg);
    auto &r = *static_cast<MillipedeRun *>(a.run);
    Inspect inspect{r.c->opt->work_cycles};
    auto on_packet = [&](rte_mbuf *m, const flow::FlowMeta &) { inspect(m); }; // the trace is static: no free
    uint64_t spins = 0;
    for (;;) {
        unsigned got = 0;
        for (unsigned w = a.first; w < r.ports.size(); w += a.stride) got += r.ports[w]->poll(on_packet);
        if (got) continue;
        if (r.dispatch_done.load(std::memory_order_acquire)) {
            bool empty = true;
            for (unsigned w = a.first; w < r.ports.size(); w += a.stride)
                empty = empty && rte_ring_empty(r.cls->worker_ring(w));
            if (empty) break;
        }
        if ((++spins & 1023) == 0 && rte_rdtsc() > r.c->deadline_tsc) break;
        rte_pause();
    }
    r.worker_end_tsc[a.index] = rte_rdtsc();
    return static_cast<int>(inspect.sink & 0); // keep the reads
}

PhaseResult run_millipede(Common &c, std::string &err) {
    const Options &o = *c.opt;
    PhaseResult res;
    res.name = "millipede";
    MillipedeRun r;
    r.c = &c;
    flow::ClassifierConfig cfg;
    cfg.workers = o.workers;
    cfg.policy = o.policy;
    cfg.migrate = o.migrate;
    cfg.ring_size = o.ring_size;
    cfg.table.capacity = std::max<uint32_t>(1u << 20, static_cast<uint32_t>(rte_align32pow2(o.flows)));
    cfg.table.socket_id = static_cast<int>(rte_lcore_to_socket_id(c.dispatch_lcore));
    cfg.table.name = "bench_flows";
    if (o.busy_weight) cfg.tuning.busy_weight = *o.busy_weight;
    if (o.migrate_margin) cfg.tuning.migrate_margin = *o.migrate_margin;
    if (o.move_budget) cfg.tuning.move_budget = *o.move_budget;
    if (o.min_dwell_ms) cfg.tuning.min_dwell_ns = *o.min_dwell_ms * 1'000'000ull;
    cfg.release = [](rte_mbuf **, unsigned) {}; // static trace: never free
    cfg.tsc_hz = c.tsc_hz;
    cfg.check_order = true; // the correctness counters compare with rte_distributor's
    r.cls = flow::Classifier::create(cfg, nullptr, err);
    if (!r.cls) return res;
    for (unsigned w = 0; w < o.workers; ++w) r.ports.push_back(std::make_unique<flow::WorkerPort>(*r.cls, w));
    unsigned stride = static_cast<unsigned>(c.worker_lcores.size());
    r.worker_end_tsc.assign(stride, 0);
    std::vector<WorkerArg> args(stride);
    for (unsigned i = 0; i < stride; ++i) args[i] = {&r, i, stride, i};

    c.deadline_tsc = rte_rdtsc() + c.tsc_hz * o.timeout_s;
    uint64_t w_start = rte_rdtsc();
    for (unsigned i = 1; i < stride; ++i) rte_eal_remote_launch(millipede_workers, &args[i], c.worker_lcores[i]);
    rte_eal_remote_launch(millipede_dispatch, &r, c.dispatch_lcore);
    millipede_workers(&args[0]); // main lcore
    rte_eal_mp_wait_lcore();

    res.ran = true;
    res.aborted = r.abort.load();
    res.abort_reason = r.abort_reason;
    const auto &s = r.cls->stats();
    res.packets = s.packets;
    res.dispatch_cycles = s.dispatch_cycles;
    res.wall_cycles = r.t_end - r.t_start;
    res.first_pass_cycles = r.first_pass_end ? r.first_pass_end - r.t_start : 0;
    res.first_pass_packets = r.first_pass_packets;
    for (unsigned i = 0; i < flow::kClassifierDropCount; ++i) res.drops += s.drops[i];
    for (unsigned i = 0; i < net::kRejectCount; ++i) res.drops += s.rejects[i];
    res.migrations = s.migrations;
    res.reuse_waits = r.reuse_waits;
    uint64_t w_end = *std::max_element(r.worker_end_tsc.begin(), r.worker_end_tsc.end());
    res.worker_wall_cycles = w_end - w_start;
    for (unsigned w = 0; w < o.workers; ++w) {
        res.offered.push_back(r.cls->dispatched(w));
        res.processed.push_back(r.ports[w]->counters.packets);
        res.ring_drops.push_back(r.cls->ring_drops(w));
        res.busy_cycles.push_back(r.cls->worker_shared(w).busy_cycles.load());
        res.processed_total += r.ports[w]->counters.packets;
        const auto &k = r.ports[w]->counters;
        res.order_inversions += k.order_inversions;
        res.split_flows += k.split_flows;
        res.unrecorded_moves += k.unrecorded_moves;
        res.stale_packets += k.stale_packets;
    }
    const auto &ts = r.cls->table().stats();
    for (unsigned i = 0; i < flow::kFlowClassCount; ++i) res.flows_created += ts.created[i];
    return res;
}

// ---------------------------------------------------------------- rte_distributor

struct alignas(64) DistWorkerStats {
    std::atomic<uint64_t> processed{0};
    uint64_t busy_cycles = 0;
};

struct DistRun {
    Common *c;
    rte_distributor *d = nullptr;
    std::unique_ptr<flow::OrderChecker> checker;
    std::vector<flow::WorkerCounters> counters;
    std::unique_ptr<DistWorkerStats[]> wstats;
    std::vector<uint32_t> seq; // per flow id
    std::atomic<bool> dispatch_done{false};
    std::atomic<bool> abort{false};
    std::atomic<unsigned> workers_left{0};
    std::string abort_reason;
    uint64_t t_start = 0, t_end = 0, first_pass_end = 0, first_pass_packets = 0, reuse_waits = 0;
    uint64_t dispatch_cycles = 0, packets = 0, returned = 0;
    std::vector<uint64_t> worker_end_tsc;
};

uint64_t dist_processed(DistRun &r) {
    uint64_t sum = 0;
    for (unsigned w = 0; w < r.c->opt->workers; ++w) sum += r.wstats[w].processed.load(std::memory_order_acquire);
    return sum;
}

int dist_dispatch(void *arg) {
    auto &r = *static_cast<DistRun *>(arg);
    const Options &o = *r.c->opt;
    auto &t = *r.c->trace;
    auto bounds = segment_bounds(o.packets);
    std::vector<uint64_t> seg_sent(kSegments, 0);
    rte_mbuf *ret[64];
    r.t_start = rte_rdtsc();
    for (unsigned round = 0; round < o.rounds && !r.abort.load(std::memory_order_relaxed); ++round) {
        for (unsigned s = 0; s < kSegments; ++s) {
            if (round > 0) {
                bool waited = false;
                while (dist_processed(r) < seg_sent[s]) {
                    waited = true;
                    rte_distributor_process(r.d, nullptr, 0); // push out partial bursts
                    if (rte_rdtsc() > r.c->deadline_tsc) {
                        r.abort_reason = "distributor workers stopped completing packets";
                        r.abort.store(true);
                        goto out;
                    }
                }
                r.reuse_waits += waited;
            }
            for (uint32_t i = bounds[s]; i < bounds[s + 1]; i += flow::kBurst) {
                unsigned n = std::min<uint32_t>(flow::kBurst, bounds[s + 1] - i);
                rx_prefetch_ahead(t.pkts, i);
                uint64_t t0 = rte_rdtsc();
                rte_mbuf **b = &t.pkts[i];
                // The same per-flow stamp as the classifier's, so the same
                // checks apply: the flow id is the slot, epoch 0 (the
                // distributor records no migrations).
                for (unsigned j = 0; j < n; ++j) {
                    uint32_t id = t.flow_of[i + j];
                    flow::FlowMeta &m = *flow::flow_meta(b[j]);
                    m.slot = id;
                    m.uid = 1;
                    m.seq = ++r.seq[id];
                    m.epoch = 0;
                    m.direction = t.dir_of[i + j];
                    m.flags = 0;
                }
                unsigned done = 0;
                while (done < n) {
                    // Returns early only while no worker has asked for packets.
                    done += static_cast<unsigned>(rte_distributor_process(r.d, b + done, n - done));
                    if (done < n && rte_rdtsc() > r.c->deadline_tsc) {
                        r.abort_reason = "no distributor worker asked for packets";
                        r.abort.store(true);
                        goto out;
                    }
                }
                r.returned += static_cast<uint64_t>(rte_distributor_returned_pkts(r.d, ret, 64));
                r.dispatch_cycles += rte_rdtsc() - t0;
                r.packets += n;
            }
            seg_sent[s] = r.packets;
        }
        if (round == 0) {
            r.first_pass_end = rte_rdtsc();
            r.first_pass_packets = r.packets;
        }
    }
    {
        // Flush, bounded: rte_distributor_flush() would spin without limit.
        uint64_t t0 = rte_rdtsc();
        while (dist_processed(r) < r.packets && rte_rdtsc() < r.c->deadline_tsc) {
            rte_distributor_process(r.d, nullptr, 0);
            r.returned += static_cast<uint64_t>(rte_distributor_returned_pkts(r.d, ret, 64));
        }
        if (dist_processed(r) < r.packets) {
            r.abort_reason = "distributor flush did not complete";
            r.abort.store(true);
        } else {
            // Nothing is outstanding any more, so this returns (after its
            // fixed 10 ms pause, hence outside the timed loop).
            r.dispatch_cycles += rte_rdtsc() - t0;
            r.t_end = rte_rdtsc();
            rte_distributor_flush(r.d);
            goto flushed;
        }
        r.dispatch_cycles += rte_rdtsc() - t0;
    }
out:
    r.t_end = rte_rdtsc();
flushed:
    r.dispatch_done.store(true, std::memory_order_release);
    // Keep answering handshakes until every worker lcore has left: a worker's
    // last rte_distributor_request_pkt() spins until the distributor has
    // taken its returns. Bounded like every other wait.
    while (r.workers_left.load(std::memory_order_acquire) < r.c->worker_lcores.size() &&
           rte_rdtsc() < r.c->deadline_tsc + r.c->tsc_hz) {
        rte_distributor_process(r.d, nullptr, 0);
        r.returned += static_cast<uint64_t>(rte_distributor_returned_pkts(r.d, ret, 64));
    }
    return 0;
}

int dist_workers(void *arg) {
    auto &a = *static_cast<WorkerArg *>(arg);
    auto &r = *static_cast<DistRun *>(a.run);
    unsigned nw = r.c->opt->workers;
    Inspect inspect{r.c->opt->work_cycles};
    // One lcore serves many logical workers, so nothing here may block:
    // each logical worker asks once (rte_distributor_request_pkt) and then
    // only polls. rte_distributor_poll_pkt() hands the cache line back when
    // it takes the packets, which is all the distributor needs to send the
    // next burst (it then treats the previous one as done). Requesting again
    // per burst, to return packets, spins inside DPDK until the distributor
    // has taken the previous request, while the distributor may be spinning
    // in release() for another logical worker of this same lcore: a deadlock.
    // So packets are not returned (the trace is static; nothing needs them).
    std::vector<std::array<rte_mbuf *, 8>> bufs(nw);
    for (unsigned w = a.first; w < nw; w += a.stride) rte_distributor_request_pkt(r.d, w, nullptr, 0);
    uint64_t spins = 0;
    for (;;) {
        unsigned got = 0;
        for (unsigned w = a.first; w < nw; w += a.stride) {
            int n = rte_distributor_poll_pkt(r.d, w, bufs[w].data());
            if (n <= 0) continue; // -1: nothing yet; 0: an empty line
            uint64_t t0 = rte_rdtsc();
            rte_mbuf **p = bufs[w].data();
            for (int i = 0; i < n; ++i) {
                if (i + 1 < n) rte_prefetch0(flow::flow_meta(p[i + 1]));
                r.checker->check(w, *flow::flow_meta(p[i]), r.counters[w]);
                inspect(p[i]);
            }
            r.counters[w].packets += static_cast<unsigned>(n);
            ++r.counters[w].bursts;
            r.wstats[w].busy_cycles += rte_rdtsc() - t0;
            r.wstats[w].processed.fetch_add(static_cast<unsigned>(n), std::memory_order_release);
            got += static_cast<unsigned>(n);
        }
        if (got) continue;
        if (r.dispatch_done.load(std::memory_order_acquire)) break;
        if ((++spins & 1023) == 0 && rte_rdtsc() > r.c->deadline_tsc) break;
        rte_pause();
    }
    r.worker_end_tsc[a.index] = rte_rdtsc();
    r.workers_left.fetch_add(1, std::memory_order_release);
    return static_cast<int>(inspect.sink & 0);
}

PhaseResult run_distributor(Common &c, std::string &err) {
    const Options &o = *c.opt;
    PhaseResult res;
    res.name = "rte_distributor";
    DistRun r;
    r.c = &c;
    r.d = rte_distributor_create("bench_dist", rte_lcore_to_socket_id(c.dispatch_lcore), o.workers,
                                 RTE_DIST_ALG_BURST);
    if (!r.d) {
        err = std::string("cannot create rte_distributor: ") + rte_strerror(rte_errno);
        return res;
    }
    r.checker = std::make_unique<flow::OrderChecker>(o.flows, static_cast<int>(rte_socket_id()));
    r.counters.resize(o.workers);
    r.wstats.reset(new DistWorkerStats[o.workers]);
    r.seq.assign(o.flows, 0);
    unsigned stride = static_cast<unsigned>(c.worker_lcores.size());
    r.worker_end_tsc.assign(stride, 0);
    std::vector<WorkerArg> args(stride);
    for (unsigned i = 0; i < stride; ++i) args[i] = {&r, i, stride, i};

    c.deadline_tsc = rte_rdtsc() + c.tsc_hz * o.timeout_s;
    uint64_t w_start = rte_rdtsc();
    for (unsigned i = 1; i < stride; ++i) rte_eal_remote_launch(dist_workers, &args[i], c.worker_lcores[i]);
    rte_eal_remote_launch(dist_dispatch, &r, c.dispatch_lcore);
    dist_workers(&args[0]);
    rte_eal_mp_wait_lcore();

    res.ran = true;
    res.aborted = r.abort.load();
    res.abort_reason = r.abort_reason;
    res.packets = r.packets;
    res.dispatch_cycles = r.dispatch_cycles;
    res.wall_cycles = r.t_end - r.t_start;
    res.first_pass_cycles = r.first_pass_end ? r.first_pass_end - r.t_start : 0;
    res.first_pass_packets = r.first_pass_packets;
    res.reuse_waits = r.reuse_waits;
    res.returned = r.returned;
    uint64_t w_end = *std::max_element(r.worker_end_tsc.begin(), r.worker_end_tsc.end());
    res.worker_wall_cycles = w_end - w_start;
    for (unsigned w = 0; w < o.workers; ++w) {
        uint64_t p = r.wstats[w].processed.load();
        res.offered.push_back(p); // the distributor hands out what it is asked for: offered = processed
        res.processed.push_back(p);
        res.ring_drops.push_back(0);
        res.busy_cycles.push_back(r.wstats[w].busy_cycles);
        res.processed_total += p;
        res.order_inversions += r.counters[w].order_inversions;
        res.split_flows += r.counters[w].split_flows;
        res.unrecorded_moves += r.counters[w].unrecorded_moves;
        res.stale_packets += r.counters[w].stale_packets;
    }
    // Lost in flight (a dead worker): the distributor never drops otherwise.
    res.drops = res.packets > res.processed_total ? res.packets - res.processed_total : 0;
    return res;
}

// ---------------------------------------------------------------- machine probes

// The two costs that bound this benchmark on a given machine, measured the
// same way every run so that results can be compared across machines: the
// latency of a random memory access (flow-table state that is not cached)
// and of moving one cache line between the dispatching and a worker lcore
// (every ring operation and metadata hand-over does that).
double probe_random_access(size_t bytes, uint64_t seed) {
    size_t lines = bytes / RTE_CACHE_LINE_SIZE;
    auto *buf = static_cast<uint64_t *>(rte_malloc("bench_probe", bytes, RTE_CACHE_LINE_SIZE));
    if (!buf) return -1;
    std::vector<uint32_t> order(lines);
    std::iota(order.begin(), order.end(), 0u);
    std::mt19937_64 rng(seed);
    for (size_t i = lines - 1; i > 0; --i) std::swap(order[i], order[rng() % i]); // Sattolo: one cycle
    constexpr size_t kStride = RTE_CACHE_LINE_SIZE / sizeof(uint64_t);
    for (size_t i = 0; i < lines; ++i) buf[size_t(order[i]) * kStride] = size_t(order[(i + 1) % lines]) * kStride;
    size_t at = 0;
    for (size_t i = 0; i < lines; ++i) at = buf[at]; // warm TLB and caches
    constexpr unsigned kSteps = 1u << 20;
    uint64_t t0 = rte_rdtsc();
    for (unsigned i = 0; i < kSteps; ++i) at = buf[at];
    uint64_t t1 = rte_rdtsc();
    volatile size_t keep = at;
    (void)keep;
    rte_free(buf);
    return static_cast<double>(t1 - t0) / kSteps;
}

struct alignas(64) PingPong {
    std::atomic<uint64_t> v{0};
};
constexpr uint64_t kPingPongs = 100000;

int pong(void *arg) {
    auto &p = *static_cast<PingPong *>(arg);
    uint64_t deadline = rte_rdtsc() + 5 * rte_get_tsc_hz();
    for (uint64_t i = 1; i < 2 * kPingPongs; i += 2) {
        while (p.v.load(std::memory_order_acquire) != i)
            if (rte_rdtsc() > deadline) return -1;
        p.v.store(i + 1, std::memory_order_release);
    }
    return 0;
}

// One-way cache-line transfer between the main lcore and `other`, in TSC
// cycles (half a round trip), or -1 if the other lcore did not answer.
double probe_line_transfer(unsigned other) {
    PingPong p;
    rte_eal_remote_launch(pong, &p, other);
    uint64_t deadline = rte_rdtsc() + 5 * rte_get_tsc_hz();
    uint64_t t0 = rte_rdtsc();
    bool ok = true;
    for (uint64_t i = 0; i < 2 * kPingPongs && ok; i += 2) {
        p.v.store(i + 1, std::memory_order_release);
        while (p.v.load(std::memory_order_acquire) != i + 2)
            if (rte_rdtsc() > deadline) {
                ok = false;
                break;
            }
    }
    uint64_t t1 = rte_rdtsc();
    rte_eal_wait_lcore(other);
    return ok ? static_cast<double>(t1 - t0) / (2.0 * kPingPongs) : -1;
}

// ---------------------------------------------------------------- output

double imbalance(const std::vector<uint64_t> &v) {
    if (v.empty()) return 0;
    uint64_t sum = 0, mx = 0;
    for (uint64_t x : v) {
        sum += x;
        mx = std::max(mx, x);
    }
    return sum ? static_cast<double>(mx) * static_cast<double>(v.size()) / static_cast<double>(sum) : 0;
}

void print_phase(FILE *f, const PhaseResult &r, uint64_t tsc_hz) {
    auto mpps = [&](uint64_t pkts, uint64_t cycles) {
        return cycles ? static_cast<double>(pkts) * static_cast<double>(tsc_hz) / static_cast<double>(cycles) / 1e6
                      : 0.0;
    };
    std::fprintf(f, "{\"mpps\":%.3f,\"cycles_per_packet\":%.1f,", mpps(r.packets, r.wall_cycles),
                 r.packets ? static_cast<double>(r.dispatch_cycles) / static_cast<double>(r.packets) : 0.0);
    std::fprintf(f, "\"mpps_first_pass\":%.3f,\"mpps_later_passes\":%.3f,",
                 mpps(r.first_pass_packets, r.first_pass_cycles),
                 mpps(r.packets - r.first_pass_packets, r.wall_cycles - r.first_pass_cycles));
    std::fprintf(f, "\"delivered_mpps\":%.3f,", mpps(r.processed_total, r.worker_wall_cycles));
    std::fprintf(f, "\"seconds\":%.3f,\"packets\":%" PRIu64 ",\"processed\":%" PRIu64 ",\"drops\":%" PRIu64 ",",
                 static_cast<double>(r.wall_cycles) / static_cast<double>(tsc_hz), r.packets, r.processed_total,
                 r.drops);
    std::fprintf(f, "\"imbalance_offered\":%.4f,\"imbalance_processed\":%.4f,", imbalance(r.offered),
                 imbalance(r.processed));
    if (std::strcmp(r.name, "millipede") == 0)
        std::fprintf(f, "\"migrations\":%" PRIu64 ",\"migration_share\":%.5f,\"flows_created\":%" PRIu64 ",",
                     r.migrations, r.packets ? static_cast<double>(r.migrations) / static_cast<double>(r.packets) : 0.0,
                     r.flows_created);
    else
        std::fprintf(f, "\"returned\":%" PRIu64 ",", r.returned);
    std::fprintf(f, "\"reuse_waits\":%" PRIu64 ",", r.reuse_waits);
    std::fprintf(f, "\"per_worker\":[");
    for (size_t w = 0; w < r.offered.size(); ++w)
        std::fprintf(f,
                     "%s{\"offered\":%" PRIu64 ",\"processed\":%" PRIu64 ",\"ring_drops\":%" PRIu64
                     ",\"busy_fraction\":%.4f}",
                     w ? "," : "", r.offered[w], r.processed[w], r.ring_drops[w],
                     r.worker_wall_cycles ? static_cast<double>(r.busy_cycles[w]) /
                                                static_cast<double>(r.worker_wall_cycles)
                                          : 0.0);
    std::fprintf(f,
                 "],\"correctness\":{\"order_inversions\":%" PRIu64 ",\"split_flows\":%" PRIu64
                 ",\"unrecorded_moves\":%" PRIu64 "},\"stale_packets\":%" PRIu64,
                 r.order_inversions, r.split_flows, r.unrecorded_moves, r.stale_packets);
    if (r.aborted) std::fprintf(f, ",\"aborted\":\"%s\"", r.abort_reason.c_str());
    std::fprintf(f, "}");
}

} // namespace

int main(int argc, char **argv) {
    // --help before EAL, so it works without hugepages or privileges.
    for (int i = 1; i < argc; ++i)
        if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
            int j = 1;
            while (j < argc && std::strcmp(argv[j], "--")) ++j;
            if (i > j || j == argc) {
                usage(stdout);
                return 0;
            }
        }
    // Bench options are validated before EAL starts: a typo fails fast.
    int sep = 1;
    while (sep < argc && std::strcmp(argv[sep], "--")) ++sep;
    Options o;
    if (std::string e = parse_options(sep < argc ? argc - sep - 1 : 0, argv + sep + 1, o); !e.empty()) {
        std::fprintf(stderr, "bench-classifier: %s\n", e.c_str());
        return 2;
    }
    Watchdog dog(o.timeout_s * 3 + 120); // build + two phases; phases have their own bounded waits
    int eal_argc = sep;
    int rc = rte_eal_init(eal_argc, argv);
    if (rc < 0) {
        std::fprintf(stderr, "bench-classifier: EAL init failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    Common c;
    c.opt = &o;
    c.tsc_hz = rte_get_tsc_hz();
    c.worker_lcores.push_back(rte_get_main_lcore());
    std::vector<unsigned> others;
    unsigned l;
    RTE_LCORE_FOREACH_WORKER(l) others.push_back(l);
    if (others.empty()) {
        std::fprintf(stderr, "bench-classifier: needs at least 2 lcores (e.g. --lcores 0@0,1@1): one dispatches, "
                             "the main lcore polls the workers\n");
        rte_eal_cleanup();
        return 2;
    }
    c.dispatch_lcore = others[0];
    for (size_t i = 1; i < others.size(); ++i) c.worker_lcores.push_back(others[i]);
    std::string err;
    if (!flow::register_flow_meta(err)) {
        std::fprintf(stderr, "bench-classifier: %s\n", err.c_str());
        return 1;
    }
    Trace trace;
    c.trace = &trace;
    uint64_t t0 = rte_rdtsc();
    if (!build_trace(o, trace, err)) {
        std::fprintf(stderr, "bench-classifier: %s\n", err.c_str());
        return 1;
    }
    std::fprintf(stderr, "bench-classifier: trace of %u packets over %u flows (%u seen) built in %.1f s\n", o.packets,
                 o.flows, trace.flows_seen, static_cast<double>(rte_rdtsc() - t0) / static_cast<double>(c.tsc_hz));

    double lat_l2 = probe_random_access(1u << 20, o.seed), lat_mem = probe_random_access(256u << 20, o.seed);
    double transfer = probe_line_transfer(c.dispatch_lcore);

    PhaseResult mp, dr;
    if (o.run_millipede) {
        mp = run_millipede(c, err);
        if (!mp.ran) {
            std::fprintf(stderr, "bench-classifier: %s\n", err.c_str());
            return 1;
        }
    }
    if (o.run_distributor) {
        dr = run_distributor(c, err);
        if (!dr.ran) {
            std::fprintf(stderr, "bench-classifier: %s\n", err.c_str());
            return 1;
        }
    }

    // lcore mapping as "lcore@cpu" for the record.
    std::string lcores;
    auto cpu_of = [](unsigned lc) {
        rte_cpuset_t set = rte_lcore_cpuset(lc);
        std::string s;
        for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu)
            if (CPU_ISSET(cpu, &set)) {
                if (!s.empty()) s += '+';
                s += std::to_string(cpu);
            }
        return s;
    };
    lcores += "{\"dispatch\":\"" + std::to_string(c.dispatch_lcore) + "@" + cpu_of(c.dispatch_lcore) +
              "\",\"workers\":[";
    for (size_t i = 0; i < c.worker_lcores.size(); ++i)
        lcores += (i ? ",\"" : "\"") + std::to_string(c.worker_lcores[i]) + "@" + cpu_of(c.worker_lcores[i]) + "\"";
    lcores += "]}";

    FILE *f = stdout;
    std::fprintf(f,
                 "{\"config\":{\"flows\":%u,\"flows_seen\":%u,\"packets\":%u,\"zipf\":%.3f,\"top_flow_share\":%.4f,"
                 "\"size\":%u,\"workers\":%u,\"policy\":\"%s\",\"migrate\":%s,\"rounds\":%u,\"ring_size\":%u,"
                 "\"work_cycles\":%u,\"udp_share\":%.2f,\"tcp_packets\":%u,\"seed\":%" PRIu64 ",",
                 o.flows, trace.flows_seen, o.packets, o.zipf, trace.top_flow_share, o.size, o.workers,
                 flow::policy_name(o.policy), o.migrate ? "true" : "false", o.rounds, o.ring_size, o.work_cycles,
                 o.udp_share, trace.tcp_packets, o.seed);
    flow::BalancerTuning tuning;
    std::fprintf(f,
                 "\"busy_weight\":%.2f,\"migrate_margin\":%.2f,\"hot_above\":%.3f,\"cool_below\":%.3f,"
                 "\"move_budget\":%.4f,\"move_burst\":%.0f,\"min_dwell_ms\":%.1f,",
                 o.busy_weight.value_or(tuning.busy_weight), o.migrate_margin.value_or(tuning.migrate_margin),
                 tuning.hot_above, tuning.cool_below, o.move_budget.value_or(tuning.move_budget), tuning.move_burst,
                 o.min_dwell_ms ? static_cast<double>(*o.min_dwell_ms)
                                : static_cast<double>(tuning.min_dwell_ns) / 1e6);
    std::fprintf(f, "\"lcores\":%s,\"tsc_hz\":%" PRIu64 ",\"hugepages\":%s,", lcores.c_str(), c.tsc_hz,
                 rte_eal_has_hugepages() ? "true" : "false");
    std::fprintf(f,
                 "\"machine\":{\"random_access_cycles_1MiB\":%.1f,\"random_access_cycles_256MiB\":%.1f,"
                 "\"line_transfer_cycles\":%.1f}}",
                 lat_l2, lat_mem, transfer);
    if (mp.ran) {
        std::fprintf(f, ",\"millipede\":");
        print_phase(f, mp, c.tsc_hz);
    }
    if (dr.ran) {
        std::fprintf(f, ",\"rte_distributor\":");
        print_phase(f, dr, c.tsc_hz);
    }
    std::fprintf(f, "}\n");
    std::fflush(f);
    bool aborted = (mp.ran && mp.aborted) || (dr.ran && dr.aborted);
    // No rte_eal_cleanup(): the distributor's workers may still hold a
    // pending request; exiting is the clean end for a benchmark.
    return aborted ? 1 : 0;
}

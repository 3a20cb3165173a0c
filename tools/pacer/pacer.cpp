// millipede-pacer: a paced packet generator for RFC 2544 trials.
//
// dpdk-testpmd (txonly, flowgen, io) sends as fast as the port accepts; it
// has no rate limit on a virtual port such as memif (`set port X queue Y
// rate Z` needs rte_eth_set_queue_rate_limit, which memif does not have).
// A throughput search needs a generator that offers a chosen rate, so this
// one paces its transmissions with a token bucket on the TSC and counts what
// it offered, what the port took and what the port refused (a full memif
// ring: the device under test did not drain its receive ring, which on a
// wire would have been a drop at the DUT).
//
// Traffic: UDP/IPv4 frames of one size (64..1518 bytes on the wire,
// FCS included) or simple IMIX (64/594/1518 in 7:4:1), cycling over --flows
// flows (source address 10.128.0.0 + flow index), or the frames of a second
// port (a net_pcap capture with infinite_rx=1) replayed at the paced rate.
//
// Control: one command per line on stdin, one JSON line per answer on stdout:
//   trial PPS SECONDS   offer PPS packets/s for SECONDS
//   max SECONDS         offer as fast as the generator can (its ceiling)
//   quit
// A "ready" line comes first, once the link is up.
//
// Threads: everything runs on the main lcore (one CPU); between commands it
// blocks on stdin. Every wait has a deadline (--link-timeout, trial length).
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_udp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "millipede/port/port.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

constexpr uint16_t kMaxBurst = 64;
constexpr uint32_t kFcs = 4;
constexpr uint32_t kMaxFrame = 1518;  // on the wire, FCS included
constexpr uint32_t kHeaders = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
// Simple IMIX, frame sizes on the wire: 7 x 64, 4 x 594, 1 x 1518, interleaved.
constexpr std::array<uint16_t, 12> kImix = {64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 64, 594};

struct Options {
    uint16_t port = 0;
    int source_port = -1;  // replay this port's frames instead of synthesizing
    uint32_t flows = 1000;
    uint32_t size = 64;    // 0 = IMIX
    uint16_t burst = 32;
    uint32_t mbufs = 16383;
    double link_timeout_s = 30;
    double depth_us = 1000;  // lateness the bucket makes up (at least two bursts)
    bool pause = true;       // rte_pause() while waiting for tokens
};

void usage(FILE *f) {
    std::fprintf(f,
                 "usage: millipede-pacer [EAL options] -- [options]\n"
                 "  Paced UDP/IPv4 generator for RFC 2544 trials (tools/bench/tap_rfc2544.sh drives it).\n"
                 "  Reads commands on stdin, answers one JSON line each on stdout:\n"
                 "    trial PPS SECONDS   offer PPS packets/s for SECONDS (token bucket on the TSC)\n"
                 "    max SECONDS         offer as fast as possible (the generator's ceiling)\n"
                 "    quit\n"
                 "  --port ID            port to send on (default 0)\n"
                 "  --flows N            flows, 1..4194304 (default 1000): source 10.128.0.0 + index\n"
                 "  --size BYTES|imix    frame size on the wire incl. FCS, 64..1518 (default 64);\n"
                 "                       imix = 64/594/1518 bytes in 7:4:1\n"
                 "  --source-port ID     replay the frames this port receives (e.g. net_pcap with\n"
                 "                       infinite_rx=1) instead of synthesizing; --flows/--size unused\n"
                 "  --burst N            packets per tx burst and token bucket depth, 1..64 (default 32)\n"
                 "  --mbufs N            mbufs in the pool (default 16383)\n"
                 "  --depth-us US        token bucket depth in microseconds of the rate, at least two\n"
                 "                       bursts (default 1000): a descheduled generator catches up this\n"
                 "                       much in back-to-back bursts, the rest counts as tokens_lost\n"
                 "  --link-timeout S     wait at most S seconds for the link (default 30)\n"
                 "  --no-pause           spin without the PAUSE instruction while waiting for tokens\n");
}

bool parse_u64(std::string_view s, uint64_t lo, uint64_t hi, uint64_t &out) {
    if (s.empty() || s.size() > 19) return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v < lo || v > hi) return false;
    out = v;
    return true;
}

// Returns an error message, empty on success; sets help when --help was given.
std::string parse_args(int argc, char **argv, Options &o, bool &help) {
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--help" || a == "-h") {
            help = true;
            return {};
        }
        if (a == "--no-pause") {
            o.pause = false;
            continue;
        }
        if (i + 1 >= argc) return "option " + std::string(a) + " needs a value (see --help)";
        std::string_view v = argv[++i];
        uint64_t n = 0;
        if (a == "--port") {
            if (!parse_u64(v, 0, RTE_MAX_ETHPORTS - 1, n)) return "--port: not a port id: " + std::string(v);
            o.port = static_cast<uint16_t>(n);
        } else if (a == "--source-port") {
            if (!parse_u64(v, 0, RTE_MAX_ETHPORTS - 1, n)) return "--source-port: not a port id: " + std::string(v);
            o.source_port = static_cast<int>(n);
        } else if (a == "--flows") {
            if (!parse_u64(v, 1, 1u << 22, n)) return "--flows: want 1..4194304, got " + std::string(v);
            o.flows = static_cast<uint32_t>(n);
        } else if (a == "--size") {
            if (v == "imix") o.size = 0;
            else if (parse_u64(v, 64, kMaxFrame, n)) o.size = static_cast<uint32_t>(n);
            else return "--size: want 64..1518 or imix, got " + std::string(v);
        } else if (a == "--burst") {
            if (!parse_u64(v, 1, kMaxBurst, n)) return "--burst: want 1..64, got " + std::string(v);
            o.burst = static_cast<uint16_t>(n);
        } else if (a == "--mbufs") {
            if (!parse_u64(v, 1023, 1u << 24, n)) return "--mbufs: want 1023..16777216, got " + std::string(v);
            o.mbufs = static_cast<uint32_t>(n);
        } else if (a == "--depth-us") {
            if (!parse_u64(v, 0, 1000000, n)) return "--depth-us: want 0..1000000, got " + std::string(v);
            o.depth_us = static_cast<double>(n);
        } else if (a == "--link-timeout") {
            if (!parse_u64(v, 1, 3600, n)) return "--link-timeout: want 1..3600 seconds, got " + std::string(v);
            o.link_timeout_s = static_cast<double>(n);
        } else {
            return "unknown option " + std::string(a) + " (see --help)";
        }
    }
    if (o.source_port >= 0 && o.source_port == o.port) return "--source-port must differ from --port";
    return {};
}

// Writes the frame template into every mbuf of the pool once: Ethernet,
// IPv4, UDP and a zero payload up to the largest frame. A memif (or NIC)
// transmit copies the frame out and frees the mbuf, so the template
// survives and each packet only needs its length and flow fields rewritten.
void write_template(rte_mempool *, void *, void *obj, unsigned) {
    auto *m = static_cast<rte_mbuf *>(obj);
    auto *p = static_cast<uint8_t *>(m->buf_addr) + RTE_PKTMBUF_HEADROOM;
    std::memset(p, 0, kMaxFrame - kFcs);
    auto *eth = reinterpret_cast<rte_ether_hdr *>(p);
    eth->dst_addr = {{0x02, 0, 0, 0, 0, 0x02}};
    eth->src_addr = {{0x02, 0, 0, 0, 0, 0x01}};
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    auto *ip = reinterpret_cast<rte_ipv4_hdr *>(eth + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    ip->dst_addr = rte_cpu_to_be_32(RTE_IPV4(198, 18, 0, 1));  // RFC 2544's benchmarking range
    auto *udp = reinterpret_cast<rte_udp_hdr *>(ip + 1);
    udp->src_port = rte_cpu_to_be_16(1024);
    udp->dst_port = rte_cpu_to_be_16(7);  // echo: nothing for nDPI to name, every flow alike
}

struct Counters {
    uint64_t offered = 0;   // released by the token bucket
    uint64_t sent = 0;      // taken by rte_eth_tx_burst
    uint64_t refused = 0;   // offered but not taken (freed): a drop at the DUT's receive ring
    uint64_t bytes = 0;     // wire bytes offered, FCS included
    uint64_t no_mbuf = 0;   // bursts cut short by an empty pool
    uint64_t no_source = 0; // polls of the source port that gave nothing
    uint64_t tokens_lost = 0;  // tokens over the bucket depth: the generator fell behind
};

class Generator {
public:
    Generator(const Options &o, rte_mempool *pool) : o_(o), pool_(pool) {}

    // Fills up to n packets into out; returns how many.
    uint16_t fill(rte_mbuf **out, uint16_t n, Counters &c) {
        return o_.source_port >= 0 ? fill_replay(out, n, c) : fill_synthetic(out, n, c);
    }

    void drop_stash() {
        if (stash_left_) rte_pktmbuf_free_bulk(stash_ + stash_pos_, stash_left_);
        stash_left_ = 0;
    }

private:
    uint16_t fill_synthetic(rte_mbuf **out, uint16_t n, Counters &c) {
        if (rte_pktmbuf_alloc_bulk(pool_, out, n) != 0) {
            ++c.no_mbuf;
            return 0;
        }
        for (uint16_t i = 0; i < n; ++i) {
            const uint32_t wire = o_.size ? o_.size : kImix[imix_pos_++ % kImix.size()];
            const uint32_t frame = wire - kFcs;
            rte_mbuf *m = out[i];
            m->data_len = static_cast<uint16_t>(frame);
            m->pkt_len = frame;
            auto *ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr *, sizeof(rte_ether_hdr));
            ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(frame - sizeof(rte_ether_hdr)));
            ip->src_addr = rte_cpu_to_be_32(RTE_IPV4(10, 128, 0, 0) + flow_);
            ip->hdr_checksum = 0;
            ip->hdr_checksum = rte_ipv4_cksum(ip);
            auto *udp = reinterpret_cast<rte_udp_hdr *>(ip + 1);
            udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(frame - sizeof(rte_ether_hdr) - sizeof(rte_ipv4_hdr)));
            udp->dgram_cksum = 0;  // optional in IPv4 (RFC 768)
            c.bytes += wire;
            if (++flow_ == o_.flows) flow_ = 0;
        }
        return n;
    }

    uint16_t fill_replay(rte_mbuf **out, uint16_t n, Counters &c) {
        uint16_t got = 0;
        while (got < n) {
            if (stash_left_ == 0) {
                stash_pos_ = 0;
                stash_left_ = rte_eth_rx_burst(static_cast<uint16_t>(o_.source_port), 0, stash_, kMaxBurst);
                if (stash_left_ == 0) {
                    ++c.no_source;
                    break;
                }
            }
            const uint16_t take = std::min<uint16_t>(static_cast<uint16_t>(n - got), stash_left_);
            for (uint16_t i = 0; i < take; ++i) {
                out[got + i] = stash_[stash_pos_ + i];
                c.bytes += out[got + i]->pkt_len + kFcs;
            }
            got = static_cast<uint16_t>(got + take);
            stash_pos_ = static_cast<uint16_t>(stash_pos_ + take);
            stash_left_ = static_cast<uint16_t>(stash_left_ - take);
        }
        return got;
    }

    const Options &o_;
    rte_mempool *pool_;
    uint32_t flow_ = 0;
    size_t imix_pos_ = 0;
    rte_mbuf *stash_[kMaxBurst] = {};
    uint16_t stash_pos_ = 0, stash_left_ = 0;
};

// Offers `pps` packets per second (0 = unpaced) for `seconds`, in whole
// bursts of --burst packets: a burst leaves once the bucket holds that many
// tokens, as a NIC poll would find them. The bucket holds --depth-us of
// tokens (at least two bursts): on a shared machine the generator is
// descheduled now and then and makes that much up in back-to-back bursts
// (with a depth of two bursts, this 2-vCPU VM under load offered 70 kpps as
// 31-50 kpps, even into net_null). When it falls further behind, the excess
// is counted (tokens_lost), not sent later, so the offered rate never
// exceeds the target and a slow generator shows as offered_pps < target_pps.
Counters run_trial(Generator &gen, const Options &o, double pps, double seconds, double &elapsed_s) {
    Counters c;
    rte_mbuf *burst[kMaxBurst];
    const uint64_t hz = rte_get_tsc_hz();
    const double per_cycle = pps / static_cast<double>(hz);
    const double depth = std::max(2.0 * o.burst, pps * o.depth_us / 1e6);
    const uint64_t start = rte_rdtsc();
    const uint64_t end = start + static_cast<uint64_t>(seconds * static_cast<double>(hz));
    uint64_t last = start;
    double tokens = 0;
    for (;;) {
        const uint64_t now = rte_rdtsc();
        if (now >= end || g_stop) break;
        uint16_t want = o.burst;
        if (pps > 0) {
            tokens += static_cast<double>(now - last) * per_cycle;
            last = now;
            if (tokens > depth) {
                c.tokens_lost += static_cast<uint64_t>(tokens - depth);
                tokens = depth;
            }
            if (tokens < o.burst) {
                if (o.pause) rte_pause();
                continue;
            }
        }
        const uint16_t n = gen.fill(burst, want, c);
        if (n == 0) continue;
        tokens -= n;
        c.offered += n;
        uint16_t done = rte_eth_tx_burst(o.port, 0, burst, n);
        c.sent += done;
        if (done < n) {
            // A wire would have dropped these at the DUT: count and free.
            c.refused += n - done;
            rte_pktmbuf_free_bulk(burst + done, n - done);
        }
    }
    elapsed_s = static_cast<double>(rte_rdtsc() - start) / static_cast<double>(hz);
    return c;
}

bool wait_link(uint16_t port, double timeout_s) {
    const uint64_t hz = rte_get_tsc_hz();
    const uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(timeout_s * static_cast<double>(hz));
    while (rte_rdtsc() < deadline && !g_stop) {
        rte_eth_link link{};
        if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) return true;
        rte_delay_ms(10);
    }
    return false;
}

void print_result(const char *cmd, double target, double seconds, const Counters &c, double elapsed) {
    std::printf("{\"cmd\":\"%s\",\"target_pps\":%.0f,\"seconds\":%.6f,\"requested_seconds\":%.3f,"
                "\"offered\":%lu,\"sent\":%lu,\"refused\":%lu,\"bytes\":%lu,\"offered_pps\":%.0f,"
                "\"tokens_lost\":%lu,\"no_mbuf\":%lu,\"no_source\":%lu}\n",
                cmd, target, elapsed, seconds, (unsigned long)c.offered, (unsigned long)c.sent,
                (unsigned long)c.refused, (unsigned long)c.bytes,
                elapsed > 0 ? static_cast<double>(c.offered) / elapsed : 0.0, (unsigned long)c.tokens_lost,
                (unsigned long)c.no_mbuf, (unsigned long)c.no_source);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char **argv) {
    // Options after "--" are checked before EAL starts: a bad one costs no hugepages.
    int sep = 0;
    while (sep < argc && std::strcmp(argv[sep], "--") != 0) ++sep;
    Options o;
    bool help = false;
    if (sep < argc) {
        std::string err = parse_args(argc - sep - 1, argv + sep + 1, o, help);
        if (help) {
            usage(stdout);
            return 0;
        }
        if (!err.empty()) {
            std::fprintf(stderr, "millipede-pacer: %s\n", err.c_str());
            return 2;
        }
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);

    int eal_argc = sep;
    if (rte_eal_init(eal_argc, argv) < 0) {
        std::fprintf(stderr, "millipede-pacer: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    int rc = 0;
    std::string err;
    rte_mempool *pool = nullptr;
    do {
        pool = millipede::port::make_pool("pacer_pool", o.mbufs, millipede::port::port_socket(o.port), err);
        if (!pool) {
            rc = 1;
            break;
        }
        rte_mempool_obj_iter(pool, write_template, nullptr);
        millipede::port::PortConfig pc;
        pc.port_id = o.port;
        pc.promiscuous = false;
        if (!millipede::port::start_port(pc, pool, err)) {
            rc = 1;
            break;
        }
        if (o.source_port >= 0) {
            millipede::port::PortConfig sc;
            sc.port_id = static_cast<uint16_t>(o.source_port);
            if (!millipede::port::start_port(sc, pool, err)) {
                rc = 1;
                break;
            }
        }
        if (!wait_link(o.port, o.link_timeout_s)) {
            err = "port " + std::to_string(o.port) + " (" + millipede::port::port_name(o.port) +
                  "): link not up within " + std::to_string(static_cast<int>(o.link_timeout_s)) + " s";
            rc = 1;
            break;
        }
    } while (false);
    if (rc != 0) {
        std::fprintf(stderr, "millipede-pacer: %s\n", err.c_str());
        rte_eal_cleanup();
        return rc;
    }

    std::printf("{\"ready\":true,\"port\":%u,\"driver\":\"%s\",\"flows\":%u,\"size\":\"%s\",\"burst\":%u,"
                "\"source_port\":%d,\"tsc_hz\":%lu,\"lcore\":%u}\n",
                o.port, millipede::port::device_caps(o.port).driver.c_str(), o.flows,
                o.size ? std::to_string(o.size).c_str() : "imix", o.burst, o.source_port,
                (unsigned long)rte_get_tsc_hz(), rte_lcore_id());
    std::fflush(stdout);

    Generator gen(o, pool);
    char line[256];
    while (!g_stop && std::fgets(line, sizeof line, stdin)) {
        char cmd[16] = {};
        double a = 0, b = 0;
        int n = std::sscanf(line, "%15s %lf %lf", cmd, &a, &b);
        if (n <= 0) continue;
        std::string_view c = cmd;
        if (c == "quit") break;
        double elapsed = 0;
        if (c == "trial" && n == 3 && a > 0 && b > 0 && b <= 3600) {
            Counters r = run_trial(gen, o, a, b, elapsed);
            print_result("trial", a, b, r, elapsed);
        } else if (c == "max" && n >= 2 && a > 0 && a <= 3600) {
            Counters r = run_trial(gen, o, 0, a, elapsed);
            print_result("max", 0, a, r, elapsed);
        } else {
            std::printf("{\"error\":\"bad command (want: trial PPS SECONDS | max SECONDS | quit)\"}\n");
            std::fflush(stdout);
        }
    }
    gen.drop_stash();
    millipede::port::stop_port(o.port);
    if (o.source_port >= 0) millipede::port::stop_port(static_cast<uint16_t>(o.source_port));
    rte_eal_cleanup();
    return 0;
}

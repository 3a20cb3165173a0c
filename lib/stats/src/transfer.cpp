#include "millipede/stats/transfer.h"

#include <cinttypes>
#include <cstdlib>
#include <cstring>

#include <rte_telemetry.h>

#include "millipede/net/addr_parse.h"
#include "millipede/net/ipv6.h"

namespace millipede::stats {
namespace {

std::string clock_text(uint64_t secs) {
    char b[32];
    if (secs >= 3600)
        std::snprintf(b, sizeof b, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, secs / 3600, secs / 60 % 60, secs % 60);
    else
        std::snprintf(b, sizeof b, "%" PRIu64 ":%02" PRIu64, secs / 60, secs % 60);
    return b;
}

std::string endpoint_text(uint32_t ip, uint16_t port) {
    return net::format_ipv4(ip) + ":" + std::to_string(port);
}

// IPv6 as RFC 5952 section 6 writes an address with a port: [addr]:port.
// (Appended piece by piece: "[" + std::string trips GCC 12's -Wrestrict.)
std::string endpoint6_text(const uint8_t ip[16], uint16_t port) {
    std::string s(1, '[');
    s += net::format_ipv6(ip);
    s += "]:";
    s += std::to_string(port);
    return s;
}
// "out": a leg this process opened and sends on; "in": one the peer opened.
// Duplex lists both kinds, and their leg numbers overlap.
const char *direction(const StreamRow &r) { return r.accepted ? "in" : "out"; }

std::string local_text(const StreamRow &r) {
    return r.v6 ? endpoint6_text(r.local_ip6, r.local_port) : endpoint_text(r.local_ip, r.local_port);
}
std::string remote_text(const StreamRow &r) {
    return r.v6 ? endpoint6_text(r.remote_ip6, r.remote_port) : endpoint_text(r.remote_ip, r.remote_port);
}

// Telemetry callbacks have no user argument, and DPDK 22.11 cannot
// unregister a command: the commands reach the board through this pointer,
// which clear_transport_telemetry() sets to null before the board is freed.
// A callback holds g_board_mutex while it copies the snapshot, so clearing
// waits for a copy under way and no callback sees the board after that.
std::mutex g_board_mutex;
StatsBoard *g_board = nullptr;

// A consistent copy of the registered board's snapshot; false once cleared.
bool read_board(TransferSnapshot &out) {
    std::lock_guard<std::mutex> g(g_board_mutex);
    if (!g_board) return false;
    out = g_board->read();
    return true;
}

// The answer of every /millipede/* command before registration ends and
// after clear_transport_telemetry(): {"state": "not running"}.
int not_running(rte_tel_data *d) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "state", "not running");
    return 0;
}

int tel_transfer(const char *, const char *, rte_tel_data *d) {
    TransferSnapshot s;
    if (!read_board(s)) return not_running(d);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "mode", s.duplex ? "duplex" : s.tx ? "tx" : "rx");
    rte_tel_data_add_dict_string(d, "state", s.valid ? s.state : "starting");
    rte_tel_data_add_dict_u64(d, "elapsed_us", s.elapsed_us);
    rte_tel_data_add_dict_u64(d, "bytes", s.bytes);
    if (s.duplex) {
        rte_tel_data_add_dict_u64(d, "rx_bytes", s.rx_bytes);
        rte_tel_data_add_dict_string(d, "rx_state", s.valid ? s.rx_state : "starting");
    }
    rte_tel_data_add_dict_u64(d, "size", s.size);
    rte_tel_data_add_dict_u64(d, "rate_kBps", static_cast<uint64_t>(s.rate_mbs * 1000));
    rte_tel_data_add_dict_u64(d, "legs", s.legs);
    rte_tel_data_add_dict_u64(d, "legs_up", s.legs_up);
    rte_tel_data_add_dict_u64(d, "legs_lost", s.legs_lost);
    rte_tel_data_add_dict_u64(d, "chunks_sent", s.chunks_sent);
    rte_tel_data_add_dict_u64(d, "chunks_resent", s.chunks_resent);
    rte_tel_data_add_dict_u64(d, "segments_in", s.segments_in);
    rte_tel_data_add_dict_u64(d, "bad_segments", s.bad_segments);
    rte_tel_data_add_dict_u64(d, "injected_drops", s.injected_drops);
    rte_tel_data_add_dict_u64(d, "bytes_copied", s.bytes_copied);
    rte_tel_data_add_dict_u64(d, "bytes_referenced", s.bytes_referenced);
    rte_tel_data_add_dict_u64(d, "copies_per_kbyte", s.bytes ? s.bytes_copied * 1000 / s.bytes : 0);
    rte_tel_data_add_dict_u64(d, "misdelivered", s.misdelivered);
    return 0;
}

// One column per figure (DPDK 22.11 telemetry nests arrays only), or with a
// parameter N the one stream N as a flat dict.
int tel_streams(const char *, const char *params, rte_tel_data *d) {
    TransferSnapshot s;
    if (!read_board(s)) return not_running(d);
    rte_tel_data_start_dict(d);
    if (params && *params) {
        char *end = nullptr;
        const unsigned long leg = std::strtoul(params, &end, 10);
        if (end == params || *end) return -EINVAL;
        for (uint32_t i = 0; i < s.nstreams; i++) {
            const StreamRow &r = s.streams[i];
            if (r.leg != leg) continue;
            rte_tel_data_add_dict_u64(d, "leg", r.leg);
            rte_tel_data_add_dict_string(d, "direction", direction(r));
            rte_tel_data_add_dict_u64(d, "port", r.port_id);
            rte_tel_data_add_dict_string(d, "local", local_text(r).c_str());
            rte_tel_data_add_dict_string(d, "remote", remote_text(r).c_str());
            rte_tel_data_add_dict_string(d, "state", r.state);
            rte_tel_data_add_dict_u64(d, "bytes", r.bytes);
            rte_tel_data_add_dict_u64(d, "rate_kBps", static_cast<uint64_t>(r.rate_mbs * 1000));
            rte_tel_data_add_dict_u64(d, "cwnd", r.cwnd);
            rte_tel_data_add_dict_u64(d, "srtt_us", r.srtt_us);
            rte_tel_data_add_dict_u64(d, "retransmits", r.retransmits);
            return 0;
        }
        return -ENOENT;
    }
    struct Column {
        const char *name;
        rte_tel_value_type type;
        rte_tel_data *a;
    } cols[] = {{"leg", RTE_TEL_U64_VAL, nullptr},        {"port", RTE_TEL_U64_VAL, nullptr},
                {"local", RTE_TEL_STRING_VAL, nullptr},   {"remote", RTE_TEL_STRING_VAL, nullptr},
                {"state", RTE_TEL_STRING_VAL, nullptr},   {"bytes", RTE_TEL_U64_VAL, nullptr},
                {"rate_kBps", RTE_TEL_U64_VAL, nullptr},  {"cwnd", RTE_TEL_U64_VAL, nullptr},
                {"srtt_us", RTE_TEL_U64_VAL, nullptr},    {"retransmits", RTE_TEL_U64_VAL, nullptr},
                {"direction", RTE_TEL_STRING_VAL, nullptr}};
    for (auto &c : cols) {
        c.a = rte_tel_data_alloc();
        if (!c.a) return -ENOMEM;
        rte_tel_data_start_array(c.a, c.type);
    }
    for (uint32_t i = 0; i < s.nstreams; i++) {
        const StreamRow &r = s.streams[i];
        rte_tel_data_add_array_u64(cols[0].a, r.leg);
        rte_tel_data_add_array_u64(cols[1].a, r.port_id);
        rte_tel_data_add_array_string(cols[2].a, local_text(r).c_str());
        rte_tel_data_add_array_string(cols[3].a, remote_text(r).c_str());
        rte_tel_data_add_array_string(cols[4].a, r.state);
        rte_tel_data_add_array_u64(cols[5].a, r.bytes);
        rte_tel_data_add_array_u64(cols[6].a, static_cast<uint64_t>(r.rate_mbs * 1000));
        rte_tel_data_add_array_u64(cols[7].a, r.cwnd);
        rte_tel_data_add_array_u64(cols[8].a, r.srtt_us);
        rte_tel_data_add_array_u64(cols[9].a, r.retransmits);
        rte_tel_data_add_array_string(cols[10].a, direction(r));
    }
    for (auto &c : cols) rte_tel_data_add_dict_container(d, c.name, c.a, 0);
    return 0;
}

int tel_lcores(const char *, const char *, rte_tel_data *d) {
    TransferSnapshot s;
    if (!read_board(s)) return not_running(d);
    rte_tel_data *lc = rte_tel_data_alloc(), *role = rte_tel_data_alloc(), *busy = rte_tel_data_alloc();
    if (!lc || !role || !busy) {
        rte_tel_data_free(lc);
        rte_tel_data_free(role);
        rte_tel_data_free(busy);
        return -ENOMEM;
    }
    rte_tel_data_start_array(lc, RTE_TEL_U64_VAL);
    rte_tel_data_start_array(role, RTE_TEL_STRING_VAL);
    rte_tel_data_start_array(busy, RTE_TEL_U64_VAL);
    for (uint32_t i = 0; i < s.nlcores; i++) {
        rte_tel_data_add_array_u64(lc, s.lcores[i].lcore);
        rte_tel_data_add_array_string(role, s.lcores[i].role);
        rte_tel_data_add_array_u64(busy, static_cast<uint64_t>(s.lcores[i].busy * 100 + 0.5));
    }
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_container(d, "lcore", lc, 0);
    rte_tel_data_add_dict_container(d, "role", role, 0);
    rte_tel_data_add_dict_container(d, "busy_percent", busy, 0);
    return 0;
}

} // namespace

std::string format_progress(const TransferSnapshot &s) {
    char b[256];
    std::string out = s.tx ? "tx: " : "rx: ";
    std::snprintf(b, sizeof b, "%.1f MB", s.bytes / 1e6);
    out += b;
    if (s.size) {
        std::snprintf(b, sizeof b, " of %.1f MB (%.0f%%)", s.size / 1e6, 100.0 * std::min(s.bytes, s.size) / s.size);
        out += b;
    }
    std::snprintf(b, sizeof b, ", %.1f MB/s, %s elapsed", s.rate_mbs, clock_text(s.elapsed_us / 1'000'000).c_str());
    out += b;
    if (s.size && !s.final) {
        if (s.bytes < s.size && s.rate_mbs > 0.01)
            out += ", ETA " + clock_text(static_cast<uint64_t>((s.size - s.bytes) / (s.rate_mbs * 1e6)) + 1);
        else if (s.bytes < s.size)
            out += ", ETA -";
    }
    if (s.tx)
        std::snprintf(b, sizeof b, ", %u/%u legs", s.legs_up, s.legs);
    else
        std::snprintf(b, sizeof b, ", %u legs", s.legs_up);
    out += b;
    if (s.duplex) {
        std::snprintf(b, sizeof b, "; rx: %.1f MB, %s", s.rx_bytes / 1e6, s.rx_state);
        out += b;
    }
    if (s.final) out += " (end)";
    return out;
}

void print_table(FILE *f, const TransferSnapshot &s) {
    if (!s.valid) {
        std::fprintf(f, "dpdk-millipede %s: starting, no figures yet\n", s.duplex ? "duplex" : s.tx ? "tx" : "rx");
        return;
    }
    std::fprintf(f, "dpdk-millipede %s, %s: %s\n", s.duplex ? "duplex" : s.tx ? "tx" : "rx", s.state,
                 format_progress(s).c_str());
    std::fprintf(f, "  chunks sent %" PRIu64 " resent %" PRIu64 ", legs lost %" PRIu64 ", segments in %" PRIu64
                    " (bad %" PRIu64 ")\n",
                 s.chunks_sent, s.chunks_resent, s.legs_lost, s.segments_in, s.bad_segments);
    std::fprintf(f, "  own copies per byte %.3f (%" PRIu64 " bytes copied, %" PRIu64 " attached by reference), "
                    "misdelivered segments %" PRIu64 "\n",
                 s.bytes ? double(s.bytes_copied) / double(s.bytes) : 0.0, s.bytes_copied, s.bytes_referenced,
                 s.misdelivered);
    std::fprintf(f, "  %-4s %-3s %-4s %-21s %-21s %-12s %14s %9s %9s %9s %8s\n", "leg", "dir", "port", "local", "remote",
                 "state", "bytes", "MB/s", "cwnd", "srtt_us", "retrans");
    for (uint32_t i = 0; i < s.nstreams; i++) {
        const StreamRow &r = s.streams[i];
        std::fprintf(f, "  %-4u %-3s %-4u %-21s %-21s %-12s %14" PRIu64 " %9.1f %9u %9" PRIu64 " %8" PRIu64 "\n", r.leg,
                     direction(r), r.port_id, local_text(r).c_str(),
                     remote_text(r).c_str(), r.state, r.bytes, r.rate_mbs, r.cwnd,
                     r.srtt_us, r.retransmits);
    }
    std::fprintf(f, "  %-6s %-22s %s\n", "lcore", "role", "busy");
    for (uint32_t i = 0; i < s.nlcores; i++)
        std::fprintf(f, "  %-6u %-22s %5.1f%%\n", s.lcores[i].lcore, s.lcores[i].role, 100 * s.lcores[i].busy);
    std::fflush(f);
}

// Help texts must stay under RTE_TEL_MAX_STRING_LEN (128) or registration fails.
int register_transport_telemetry(StatsBoard *board) {
    {
        std::lock_guard<std::mutex> g(g_board_mutex);
        g_board = board;
    }
    static bool registered = false; // commands cannot be registered twice
    if (registered) return 0;
    registered = true;
    int rc = rte_telemetry_register_cmd("/millipede/transfer", tel_transfer,
                                        "tx/rx: bytes, rate, legs, chunks of the running transfer");
    if (rc == 0)
        rc = rte_telemetry_register_cmd("/millipede/streams", tel_streams,
                                        "tx/rx: per TCP stream figures as columns. Parameter: a leg number");
    if (rc == 0)
        rc = rte_telemetry_register_cmd("/millipede/lcores", tel_lcores, "tx/rx: per lcore role and busy share");
    return rc;
}

void clear_transport_telemetry() {
    std::lock_guard<std::mutex> g(g_board_mutex);
    g_board = nullptr;
}

} // namespace millipede::stats

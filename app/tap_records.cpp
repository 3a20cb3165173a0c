#include "tap_records.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <netdb.h>
#include <time.h>

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_telemetry.h>

#include "millipede/dpi/inspector.h"
#include "millipede/export/eve.h"
#include "millipede/flow/community_id.h"
#include "millipede/flow/flow_table.h"
#include "millipede/net/parse.h"
#include "options.h"

namespace millipede::app {

namespace fe = flow_export;

bool parse_export_option(int argc, char **argv, int &i, ExportOptions &o, std::string &err) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::optional<std::string_view> {
        if (i + 1 >= argc) return std::nullopt;
        return std::string_view(argv[++i]);
    };
    if (a == "--flows-format") {
        auto v = value();
        if (v == "json") o.format = FlowsFormat::Json;
        else if (v == "eve") o.format = FlowsFormat::Eve;
        else err = "--flows-format needs json or eve";
    } else if (a == "--ipfix") {
        auto v = value();
        std::string host, port;
        if (!v) {
            err = "--ipfix needs HOST:PORT";
        } else if (!fe::split_host_port(*v, host, port, err)) {
            err = "--ipfix: " + err;
        } else {
            // Resolved now, so a name that does not resolve is a bad option
            // (status 2, before EAL); the exporter resolves it again.
            addrinfo hints{}, *res = nullptr;
            hints.ai_socktype = SOCK_DGRAM;
            hints.ai_flags = AI_NUMERICSERV;
            if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
                err = "--ipfix: cannot resolve " + host + ": " + gai_strerror(rc);
            else freeaddrinfo(res);
            o.ipfix = std::string(*v);
        }
    } else if (a == "--ipfix-domain") {
        auto v = value();
        auto n = v ? parse_uint(*v, 0, UINT32_MAX) : std::nullopt;
        if (!n) err = "--ipfix-domain needs an observation domain id from 0 to 4294967295";
        else o.ipfix_domain = static_cast<uint32_t>(*n);
    } else if (a == "--ipfix-pen") {
        auto v = value();
        auto n = v ? parse_uint(*v, 1, UINT32_MAX) : std::nullopt;
        if (!n) err = "--ipfix-pen needs a Private Enterprise Number from 1 to 4294967295";
        else o.ipfix_enterprise = static_cast<uint32_t>(*n);
    } else if (a == "--ipfix-biflow") {
        o.ipfix_biflow = true;
    } else if (a == "--ipfix-template-interval") {
        auto v = value();
        auto ns = v ? parse_seconds_ns(*v) : std::nullopt;
        if (!ns || *ns < 1'000'000'000ull) err = "--ipfix-template-interval needs seconds, at least 1";
        else o.ipfix_template_interval_ns = *ns;
    } else {
        return false;
    }
    return true;
}

void export_usage(FILE *f) {
    std::fprintf(f,
                 "  --flows-format json|eve     --flows-out records as tap's JSON (default) or as Suricata\n"
                 "                              eve.json flow events (event_type \"flow\")\n"
                 "  --ipfix HOST:PORT           also send every record as IPFIX (RFC 7011) over UDP to a\n"
                 "                              collector ([IPv6]:PORT for an IPv6 address); a message the\n"
                 "                              socket cannot take within 5 ms is dropped and counted\n"
                 "  --ipfix-biflow              one RFC 5103 biflow record per flow (the responder's\n"
                 "                              counters in reverse elements) instead of one record per\n"
                 "                              direction, which every collector (nfdump 1.7 too) reads\n"
                 "  --ipfix-domain N            IPFIX observation domain id (default 0)\n"
                 "  --ipfix-template-interval S re-send the IPFIX templates every S seconds (default 60)\n"
                 "  --ipfix-pen N               Private Enterprise Number of the application-name and\n"
                 "                              Community ID elements (default 32473, RFC 5612's example)\n");
}

namespace {
// rte_telemetry calls from its own thread; the writer registers itself and
// stop() clears the pointer under the mutex before the exporter goes away.
// DPDK 22.11 cannot unregister a command.
std::mutex g_export_tel_mutex;
const RecordWriter *g_export_tel_writer = nullptr;
const fe::IpfixExporter *g_export_tel_ipfix = nullptr;

int tel_export(const char *, const char *, rte_tel_data *d) {
    std::lock_guard<std::mutex> lock(g_export_tel_mutex);
    if (!g_export_tel_writer) return -1;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "records_written", g_export_tel_writer->written());
    const fe::IpfixExporter *x = g_export_tel_ipfix;
    rte_tel_data_add_dict_u64(d, "ipfix_enabled", x ? 1 : 0);
    if (x) {
        constexpr auto rl = std::memory_order_relaxed;
        const auto &s = x->stats();
        rte_tel_data_add_dict_string(d, "ipfix_collector", x->peer().c_str());
        rte_tel_data_add_dict_u64(d, "ipfix_messages", s.messages.load(rl));
        rte_tel_data_add_dict_u64(d, "ipfix_records", s.records.load(rl));
        rte_tel_data_add_dict_u64(d, "ipfix_template_messages", s.template_messages.load(rl));
        rte_tel_data_add_dict_u64(d, "ipfix_dropped_messages", s.dropped_messages.load(rl));
        rte_tel_data_add_dict_u64(d, "ipfix_dropped_records", s.dropped_records.load(rl));
        rte_tel_data_add_dict_u64(d, "ipfix_refused", s.refused.load(rl));
    }
    return 0;
}
} // namespace

namespace {
// A chained frame whose headers reach past its first segment (rare: tiny
// segments, or long IPv6 extension chains): parse a copy of them.
[[gnu::noinline]] bool parse_gathered(const rte_mbuf *m, net::PacketInfo &p) {
    uint8_t copy[net::kMaxHeaderBytes];
    uint32_t len = std::min<uint32_t>(rte_pktmbuf_pkt_len(m), sizeof copy);
    const auto *h = static_cast<const uint8_t *>(rte_pktmbuf_read(m, 0, len, copy));
    net::Reject r;
    return h && net::parse_packet_prefix(h, len, rte_pktmbuf_pkt_len(m), p, r) && r == net::Reject::NONE;
}
} // namespace

void tally_l3(L3Tally &t, unsigned d, const rte_mbuf *m) {
    net::PacketInfo p;
    net::Reject r;
    bool ok = net::parse_packet_prefix(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m),
                                       rte_pktmbuf_pkt_len(m), p, r)
                  ? r == net::Reject::NONE
                  : parse_gathered(m, p);
    if (!ok) return;
    t.ip_bytes[d] += p.ip_total_len;
    t.tcp_flags[d] |= p.tcp_flags;
}

const char *ip_proto_name(uint8_t proto) {
    switch (proto) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 47: return "gre";
    case 50: return "esp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    default: return nullptr;
    }
}

std::unique_ptr<RecordWriter> RecordWriter::create(FILE *out, const ExportOptions &exp, std::vector<std::string> names,
                                                   unsigned capacity, int socket_id, std::string &err) {
    std::unique_ptr<RecordWriter> w(new RecordWriter());
    w->out_ = out;
    w->format_ = exp.format;
    w->names_ = std::move(names);
    if (!exp.ipfix.empty()) {
        fe::IpfixExporterConfig cfg;
        cfg.destination = exp.ipfix;
        cfg.ipfix.observation_domain = exp.ipfix_domain;
        cfg.ipfix.enterprise = exp.ipfix_enterprise;
        cfg.template_interval_ns = exp.ipfix_template_interval_ns;
        cfg.ipfix.biflow = exp.ipfix_biflow;
        w->ipfix_ = fe::IpfixExporter::open(cfg, err);
        if (!w->ipfix_) return nullptr;
    }
    w->wants_l3_ = w->ipfix_ || (out && exp.format == FlowsFormat::Eve);
    // Multi-producer: logical workers on several lcores push; one consumer.
    w->ring_ = rte_ring_create_elem("tap_records", sizeof(FlowRecord), capacity, socket_id, RING_F_SC_DEQ);
    if (!w->ring_) {
        err = "cannot create the flow record ring of " + std::to_string(capacity) +
              " records: " + rte_strerror(rte_errno);
        return nullptr;
    }
    if (out) std::setvbuf(out, nullptr, _IOFBF, 1 << 20);
    {
        std::lock_guard<std::mutex> lock(g_export_tel_mutex);
        g_export_tel_writer = w.get();
        g_export_tel_ipfix = w->ipfix_.get();
    }
    static bool registered = false; // commands outlive runs: register once
    if (!registered) {
        registered = true;
        // DPDK refuses a help text of 128 bytes or more (RTE_TEL_MAX_STRING_LEN).
        if (int rc = rte_telemetry_register_cmd("/millipede/tap/export", tel_export,
                                                "tap export: records written; IPFIX collector, messages, records, "
                                                "drops, refusals. No parameters");
            rc != 0)
            std::fprintf(stderr, "dpdk-millipede tap: telemetry /millipede/tap/export not registered: %s\n",
                         std::strerror(-rc));
    }
    w->thread_ = std::thread([p = w.get()] { p->run(); });
    return w;
}

std::string RecordWriter::export_summary_json() const {
    std::string s = "\"export\":{\"format\":\"";
    s += format_ == FlowsFormat::Eve ? "eve" : "json";
    s += '"';
    if (ipfix_) {
        constexpr auto rl = std::memory_order_relaxed;
        const auto &st = ipfix_->stats();
        const auto &cfg = ipfix_->encoder().config();
        char b[512];
        int e = st.last_errno.load(rl);
        std::snprintf(b, sizeof b,
                      ",\"ipfix\":{\"collector\":\"%s\",\"shape\":\"%s\",\"domain\":%u,\"enterprise\":%u,\"messages\":%llu,"
                      "\"records\":%llu,\"template_messages\":%llu,\"dropped_messages\":%llu,"
                      "\"dropped_records\":%llu,\"refused\":%llu,\"sequence\":%u,\"last_error\":\"%s\"}",
                      ipfix_->peer().c_str(), cfg.biflow ? "biflow" : "uniflow", cfg.observation_domain, cfg.enterprise,
                      (unsigned long long)st.messages.load(rl), (unsigned long long)st.records.load(rl),
                      (unsigned long long)st.template_messages.load(rl),
                      (unsigned long long)st.dropped_messages.load(rl), (unsigned long long)st.dropped_records.load(rl),
                      (unsigned long long)st.refused.load(rl), ipfix_->encoder().sequence(),
                      e ? std::strerror(e) : "");
        s += b;
    }
    s += '}';
    return s;
}

RecordWriter::~RecordWriter() {
    stop();
    rte_ring_free(ring_);
}

bool RecordWriter::push(const FlowRecord &r) {
    // DPDK 22.11 takes a non-const pointer but only reads the element.
    return rte_ring_mp_enqueue_elem(ring_, const_cast<FlowRecord *>(&r), sizeof r) == 0;
}

void RecordWriter::stop() {
    if (!thread_.joinable()) return;
    stop_.store(true, std::memory_order_release);
    thread_.join();
    {
        // Telemetry stops answering; the figures stay for the summary.
        std::lock_guard<std::mutex> lock(g_export_tel_mutex);
        if (g_export_tel_writer == this) g_export_tel_writer = nullptr, g_export_tel_ipfix = nullptr;
    }
    if (out_) {
        std::fflush(out_);
        if (out_ != stdout) std::fclose(out_);
    }
}

void RecordWriter::write(const FlowRecord &r, std::string &line) {
    if (out_ && format_ == FlowsFormat::Json) {
        line = format_record(r, names_, wants_l3_);
        std::fwrite(line.data(), 1, line.size(), out_);
    }
    bool eve = out_ && format_ == FlowsFormat::Eve;
    if (!eve && !ipfix_) return;
    net::IpAddr src{}, dst{};
    std::memcpy(src.bytes, r.src, 16);
    std::memcpy(dst.bytes, r.dst, 16);
    // Computed here, once per flow, off the polling lcores.
    flow::CommunityIdText id = flow::community_id_v1(src, dst, r.ip_version, r.proto, r.sport, r.dport);
    std::string label = (r.flags & kRecDpiOff) ? std::string() : dpi::label(names_, {r.l7_master, r.l7_app});
    fe::FlowView v = flow_view(r, names_, label, id.text);
    if (eve) {
        line.clear();
        fe::append_eve(line, v);
        std::fwrite(line.data(), 1, line.size(), out_);
    }
    if (ipfix_) ipfix_->add(v, fe::ExportClock::now());
}

void RecordWriter::run() {
    FlowRecord batch[64];
    std::string line;
    line.reserve(1024);
    bool dirty = false;
    for (;;) {
        // Read the flag before draining: whatever was pushed before stop()
        // is in the ring when the flag is seen, so one more empty pass ends.
        bool stopping = stop_.load(std::memory_order_acquire);
        unsigned n = rte_ring_sc_dequeue_burst_elem(ring_, batch, sizeof(FlowRecord), 64, nullptr);
        for (unsigned i = 0; i < n; ++i) write(batch[i], line);
        if (n) {
            written_.fetch_add(n, std::memory_order_relaxed);
            dirty = true;
            continue;
        }
        // Quiet: let `tail -f` see complete lines, and the collector the
        // records of the message being filled; templates when due.
        if (dirty && out_) std::fflush(out_);
        if (ipfix_) ipfix_->flush(fe::ExportClock::now());
        dirty = false;
        if (stopping) break;
        timespec ts{0, 1'000'000};
        nanosleep(&ts, nullptr);
    }
}

namespace {
void append_time(std::string &s, const char *key, uint64_t ns) {
    char b[64];
    std::snprintf(b, sizeof b, ",\"%s\":%llu.%06llu", key, (unsigned long long)(ns / 1'000'000'000ull),
                  (unsigned long long)(ns % 1'000'000'000ull / 1000));
    s += b;
}
} // namespace

std::string format_record(const FlowRecord &r, const std::vector<std::string> &names, bool l3) {
    net::IpAddr src{}, dst{};
    std::memcpy(src.bytes, r.src, 16);
    std::memcpy(dst.bytes, r.dst, 16);
    bool icmp = r.proto == 1 || r.proto == 58;
    // Computed here, once per flow, off the polling lcores.
    flow::CommunityIdText id = flow::community_id_v1(src, dst, r.ip_version, r.proto, r.sport, r.dport);
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    int family = r.ip_version == 6 ? AF_INET6 : AF_INET;
    inet_ntop(family, r.src, a, sizeof a);
    inet_ntop(family, r.dst, b, sizeof b);
    const char *pname = ip_proto_name(r.proto);
    std::string s;
    s.reserve(512);
    char buf[512];
    std::snprintf(buf, sizeof buf, "{\"community_id\":\"%s\",\"proto\":", id.text);
    s += buf;
    if (pname) {
        s += '"';
        s += pname;
        s += '"';
    } else {
        s += std::to_string(r.proto); // no common name: the IP protocol number
    }
    std::snprintf(buf, sizeof buf, ",\"ip_proto\":%u,\"src\":\"%s\",\"sport\":%u,\"dst\":\"%s\",\"dport\":%u", r.proto, a,
                  icmp ? 0u : r.sport, b, icmp ? 0u : r.dport);
    s += buf;
    if (icmp) {
        std::snprintf(buf, sizeof buf, ",\"icmp_type\":%u,\"icmp_code\":%u", r.sport, r.dport);
        s += buf;
    }
    append_time(s, "first_seen", r.first_ns);
    append_time(s, "last_seen", r.last_ns);
    std::snprintf(buf, sizeof buf,
                  ",\"c2s_packets\":%llu,\"c2s_bytes\":%llu,\"s2c_packets\":%llu,\"s2c_bytes\":%llu",
                  (unsigned long long)r.packets[0], (unsigned long long)r.bytes[0], (unsigned long long)r.packets[1],
                  (unsigned long long)r.bytes[1]);
    s += buf;
    if (l3) {
        std::snprintf(buf, sizeof buf, ",\"c2s_ip_bytes\":%llu,\"s2c_ip_bytes\":%llu",
                      (unsigned long long)r.l3.ip_bytes[0], (unsigned long long)r.l3.ip_bytes[1]);
        s += buf;
        if (r.proto == 6) {
            std::snprintf(buf, sizeof buf, ",\"c2s_tcp_flags\":%u,\"s2c_tcp_flags\":%u", r.l3.tcp_flags[0],
                          r.l3.tcp_flags[1]);
            s += buf;
        }
    }
    if (!(r.flags & kRecDpiOff)) {
        auto name = [&](uint16_t i) { return i < names.size() ? names[i].c_str() : "Unknown"; };
        std::string l7 = dpi::label(names, {r.l7_master, r.l7_app});
        std::snprintf(buf, sizeof buf,
                      ",\"l7\":\"%s\",\"l7_master\":\"%s\",\"l7_app\":\"%s\",\"l7_guessed\":%s,\"dpi_packets\":%u",
                      l7.c_str(), name(r.l7_master), name(r.l7_app), (r.flags & kRecGuessed) ? "true" : "false",
                      r.dpi_packets);
        s += buf;
    }
    if (r.flags & kRecSharded) {
        std::snprintf(buf, sizeof buf, ",\"shard\":%u", r.shard);
        s += buf;
    }
    std::snprintf(buf, sizeof buf, ",\"worker\":%u,\"migrations\":%u,\"end\":\"%s\"%s}\n", r.worker, r.migrations,
                  flow::flow_end_reason_name(static_cast<flow::FlowEndReason>(r.end)),
                  (r.flags & kRecUnjoinedFragments) ? ",\"unjoined_fragments\":true" : "");
    s += buf;
    return s;
}

fe::FlowView flow_view(const FlowRecord &r, const std::vector<std::string> &names, const std::string &label,
                       std::string_view community_id) {
    fe::FlowView v;
    v.ip_version = r.ip_version;
    v.proto = r.proto;
    std::memcpy(v.src, r.src, 16);
    std::memcpy(v.dst, r.dst, 16);
    v.icmp = r.proto == 1 || r.proto == 58;
    if (v.icmp) {
        v.icmp_type = static_cast<uint8_t>(r.sport);
        v.icmp_code = static_cast<uint8_t>(r.dport);
    } else {
        v.sport = r.sport;
        v.dport = r.dport;
    }
    v.first_ns = r.first_ns;
    v.last_ns = r.last_ns;
    for (int d = 0; d < 2; ++d) {
        v.packets[d] = r.packets[d];
        v.frame_bytes[d] = r.bytes[d];
        v.ip_bytes[d] = r.l3.ip_bytes[d];
        v.tcp_flags[d] = r.l3.tcp_flags[d];
    }
    switch (static_cast<flow::FlowEndReason>(r.end)) {
    case flow::FlowEndReason::Fin: v.end = fe::EndReason::Fin; break;
    case flow::FlowEndReason::Rst: v.end = fe::EndReason::Rst; break;
    case flow::FlowEndReason::Idle: v.end = fe::EndReason::Idle; break;
    case flow::FlowEndReason::Evicted: v.end = fe::EndReason::Evicted; break;
    case flow::FlowEndReason::Reused: v.end = fe::EndReason::Reused; break;
    default: v.end = fe::EndReason::EndOfInput; break;
    }
    v.dpi = !(r.flags & kRecDpiOff);
    if (v.dpi) {
        // Both arms string_view: a std::string arm would make the result a
        // temporary copy, and the view would dangle.
        auto name = [&](uint16_t i) { return i < names.size() ? std::string_view(names[i]) : std::string_view("Unknown"); };
        v.app_guessed = r.flags & kRecGuessed;
        v.app_label = label;
        v.app_master = name(r.l7_master);
        v.app_app = name(r.l7_app);
    }
    v.community_id = community_id;
    return v;
}

} // namespace millipede::app

#include "tap_records.h"

#include <arpa/inet.h>
#include <cstring>
#include <time.h>

#include <rte_errno.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "millipede/dpi/inspector.h"
#include "millipede/flow/community_id.h"
#include "millipede/flow/flow_table.h"

namespace millipede::app {

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

std::unique_ptr<RecordWriter> RecordWriter::create(FILE *out, std::vector<std::string> names, unsigned capacity,
                                                   int socket_id, std::string &err) {
    std::unique_ptr<RecordWriter> w(new RecordWriter());
    w->out_ = out;
    w->names_ = std::move(names);
    // Multi-producer: logical workers on several lcores push; one consumer.
    w->ring_ = rte_ring_create_elem("tap_records", sizeof(FlowRecord), capacity, socket_id, RING_F_SC_DEQ);
    if (!w->ring_) {
        err = "cannot create the flow record ring of " + std::to_string(capacity) +
              " records: " + rte_strerror(rte_errno);
        return nullptr;
    }
    std::setvbuf(out, nullptr, _IOFBF, 1 << 20);
    w->thread_ = std::thread([p = w.get()] { p->run(); });
    return w;
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
    std::fflush(out_);
    if (out_ != stdout) std::fclose(out_);
}

void RecordWriter::run() {
    FlowRecord batch[64];
    bool dirty = false;
    for (;;) {
        // Read the flag before draining: whatever was pushed before stop()
        // is in the ring when the flag is seen, so one more empty pass ends.
        bool stopping = stop_.load(std::memory_order_acquire);
        unsigned n = rte_ring_sc_dequeue_burst_elem(ring_, batch, sizeof(FlowRecord), 64, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            std::string line = format_record(batch[i], names_);
            std::fwrite(line.data(), 1, line.size(), out_);
        }
        if (n) {
            written_.fetch_add(n, std::memory_order_relaxed);
            dirty = true;
            continue;
        }
        if (stopping) break;
        if (dirty) {
            std::fflush(out_); // quiet: let `tail -f` see complete lines
            dirty = false;
        }
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

std::string format_record(const FlowRecord &r, const std::vector<std::string> &names) {
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
    if (!(r.flags & kRecDpiOff)) {
        auto name = [&](uint16_t i) { return i < names.size() ? names[i].c_str() : "Unknown"; };
        std::string l7 = dpi::label(names, {r.l7_master, r.l7_app});
        std::snprintf(buf, sizeof buf,
                      ",\"l7\":\"%s\",\"l7_master\":\"%s\",\"l7_app\":\"%s\",\"l7_guessed\":%s,\"dpi_packets\":%u",
                      l7.c_str(), name(r.l7_master), name(r.l7_app), (r.flags & kRecGuessed) ? "true" : "false",
                      r.dpi_packets);
        s += buf;
    }
    std::snprintf(buf, sizeof buf, ",\"worker\":%u,\"migrations\":%u,\"end\":\"%s\"%s}\n", r.worker, r.migrations,
                  flow::flow_end_reason_name(static_cast<flow::FlowEndReason>(r.end)),
                  (r.flags & kRecUnjoinedFragments) ? ",\"unjoined_fragments\":true" : "");
    s += buf;
    return s;
}

} // namespace millipede::app

// Flow records of tap mode: fixed-size structs from the workers, written out
// by one writer thread as JSON lines (tap's own, or Suricata eve.json flow
// events) and/or sent as IPFIX to a collector (lib/export).
//
// Contract
// - push() is called by worker lcores (any number, concurrently: the ring
//   is multi-producer). It never blocks and never allocates: a full ring
//   returns false and the caller counts the record as dropped.
// - The writer is one std::thread (not an lcore): it takes records off the
//   ring, computes each Community ID, formats the JSON line and writes it
//   to the file or stdout, and hands the record to the IPFIX exporter. Only
//   it touches the FILE and the socket. When the ring is empty it flushes
//   the file, sends the IPFIX message being filled (and the templates when
//   due) and sleeps 1 ms: a slow disk or network slows it, never a polling
//   lcore. A collector that cannot keep up costs IPFIX messages (counted,
//   lib/export/ipfix_exporter.h), not a stalled writer.
// - stop() (main thread) returns once every record pushed before it was
//   written, sent and flushed.
// - The export figures are read from any thread: export_summary_json() and
//   the rte_telemetry command /millipede/tap/export (registered by create(),
//   answered until stop()).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "millipede/export/flow_view.h"
#include "millipede/export/ipfix_exporter.h"

struct rte_mbuf;
struct rte_ring;

namespace millipede::app {

enum RecordFlags : uint8_t {
    kRecGuessed = 0x01,           // nDPI gave up and guessed (ports, addresses)
    kRecUnjoinedFragments = 0x02, // fragments whose first fragment was never seen
    kRecDpiOff = 0x04,            // inspection disabled (--no-dpi)
    kRecSharded = 0x08,           // the tap runs several classifier shards: the JSON record names its own
};

// What the exporters report beyond tap's own counters, per direction ([0]
// initiator to responder): IP datagram bytes (IPFIX octetDeltaCount counts
// the IP header and payload, not the frame) and the OR of the TCP flags.
struct L3Tally {
    uint64_t ip_bytes[2];
    uint8_t tcp_flags[2];
    uint8_t pad_[6];
};

// Worker lcores, per packet, only when the writer wants_l3(): adds packet `m`
// (direction `d`) to `t`. It parses the headers again (the classifier's
// parse is not kept in the mbuf): from the first segment, or, when a chained
// frame's headers run past it, from a copy of them. A frame the parser
// rejects adds nothing. Never allocates.
void tally_l3(L3Tally &t, unsigned d, const rte_mbuf *m);

// One ended flow. src is the initiator: the sender of the first packet the
// worker saw. Times are nanoseconds since the Unix epoch.
struct FlowRecord {
    uint8_t src[16];
    uint8_t dst[16];
    uint64_t first_ns;
    uint64_t last_ns;
    uint64_t packets[2]; // [0] initiator to responder (c2s), [1] back (s2c)
    uint64_t bytes[2];   // frame bytes as received (L2 header included)
    L3Tally l3;          // zero unless RecordWriter::wants_l3()
    uint32_t dpi_packets;
    uint16_t sport, dport; // ICMP/ICMPv6: the first packet's type and code
    uint16_t l7_master, l7_app;
    uint16_t worker, migrations;
    uint8_t proto, ip_version, end, flags;
    uint8_t shard; // the classifier shard (RX queue) that classified the flow
    uint8_t pad_[3];
};
static_assert(sizeof(FlowRecord) % 4 == 0, "rte_ring element sizes are multiples of 4");

// Where records go besides --flows-out, and in which form: tap's export
// options (`--flows-format`, `--ipfix`, `--ipfix-*`), parsed here so that
// tap_mode.cpp only forwards them.
enum class FlowsFormat : uint8_t { Json, Eve };
struct ExportOptions {
    FlowsFormat format = FlowsFormat::Json;
    std::string ipfix; // HOST:PORT; empty = no IPFIX export
    uint32_t ipfix_domain = 0;
    uint32_t ipfix_enterprise = flow_export::kExamplePen;
    uint64_t ipfix_template_interval_ns = 60'000'000'000ull;
    bool ipfix_biflow = false; // one RFC 5103 record per flow instead of one per direction
    bool any() const { return !ipfix.empty(); }
};

// argv[i] is one of the export options: consumes its value (advances i) and
// returns true, or sets `err` (one line) and returns true. False when argv[i]
// is not an export option. --ipfix's host is resolved here, before EAL.
bool parse_export_option(int argc, char **argv, int &i, ExportOptions &o, std::string &err);
void export_usage(FILE *f); // the options' lines for `tap --help`

class RecordWriter {
public:
    // `out` (may be null: IPFIX only) is written by the writer thread only
    // (closed by stop() unless it is stdout). `names` are nDPI's protocol
    // names by id. `capacity` is the ring size in records (power of two).
    static std::unique_ptr<RecordWriter> create(FILE *out, const ExportOptions &exp, std::vector<std::string> names,
                                                unsigned capacity, int socket_id, std::string &err);
    ~RecordWriter();
    RecordWriter(const RecordWriter &) = delete;
    RecordWriter &operator=(const RecordWriter &) = delete;

    bool push(const FlowRecord &r); // worker lcores; false = ring full
    void stop();                    // main thread
    uint64_t written() const { return written_.load(std::memory_order_relaxed); }
    // Whether the workers must count IP bytes and TCP flags (IPFIX and eve
    // report them; they cost a parse of every packet).
    bool wants_l3() const { return wants_l3_; }
    // `"export":{...}` for tap's --summary: format, and per IPFIX
    // collector messages, records, templates, drops. Any thread.
    std::string export_summary_json() const;

private:
    RecordWriter() = default;
    void run();
    void write(const FlowRecord &r, std::string &line);

    FILE *out_ = nullptr;
    FlowsFormat format_ = FlowsFormat::Json;
    bool wants_l3_ = false;
    std::vector<std::string> names_;
    std::unique_ptr<flow_export::IpfixExporter> ipfix_;
    rte_ring *ring_ = nullptr;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> written_{0};
};

// One tap JSON line (with '\n') for a record; with `l3` also its IP bytes
// and TCP flags per direction. Exposed for tests and the writer.
std::string format_record(const FlowRecord &r, const std::vector<std::string> &names, bool l3 = false);
// The record as lib/export's exporters see it; the views point into
// `names` and `community_id`.
flow_export::FlowView flow_view(const FlowRecord &r, const std::vector<std::string> &names,
                                const std::string &label, std::string_view community_id);

const char *ip_proto_name(uint8_t proto); // "tcp", "udp", "icmp", ... or nullptr

} // namespace millipede::app

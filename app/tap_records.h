// Flow records of tap mode: fixed-size structs from the workers, JSON lines
// out of a writer thread.
//
// Contract
// - push() is called by worker lcores (any number, concurrently: the ring
//   is multi-producer). It never blocks and never allocates: a full ring
//   returns false and the caller counts the record as dropped.
// - The writer is one std::thread (not an lcore): it takes records off the
//   ring, computes each Community ID, formats one JSON line and writes it
//   to the file or stdout. Only it touches the FILE. When the ring is empty
//   it flushes what it wrote and sleeps 1 ms: a slow disk slows it, never
//   a polling lcore.
// - stop() (main thread) returns once every record pushed before it was
//   written and the output flushed.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

struct rte_ring;

namespace millipede::app {

enum RecordFlags : uint8_t {
    kRecGuessed = 0x01,           // nDPI gave up and guessed (ports, addresses)
    kRecUnjoinedFragments = 0x02, // fragments whose first fragment was never seen
    kRecDpiOff = 0x04,            // inspection disabled (--no-dpi)
};

// One ended flow. src is the initiator: the sender of the first packet the
// worker saw. Times are nanoseconds since the Unix epoch.
struct FlowRecord {
    uint8_t src[16];
    uint8_t dst[16];
    uint64_t first_ns;
    uint64_t last_ns;
    uint64_t packets[2]; // [0] initiator to responder (c2s), [1] back (s2c)
    uint64_t bytes[2];   // frame bytes as received (L2 header included)
    uint32_t dpi_packets;
    uint16_t sport, dport; // ICMP/ICMPv6: the first packet's type and code
    uint16_t l7_master, l7_app;
    uint16_t worker, migrations;
    uint8_t proto, ip_version, end, flags;
};
static_assert(sizeof(FlowRecord) % 4 == 0, "rte_ring element sizes are multiples of 4");

class RecordWriter {
public:
    // `out` is written by the writer thread only (closed by stop() unless it
    // is stdout). `names` are nDPI's protocol names by id. `capacity` is the
    // ring size in records (power of two).
    static std::unique_ptr<RecordWriter> create(FILE *out, std::vector<std::string> names, unsigned capacity,
                                                int socket_id, std::string &err);
    ~RecordWriter();
    RecordWriter(const RecordWriter &) = delete;
    RecordWriter &operator=(const RecordWriter &) = delete;

    bool push(const FlowRecord &r); // worker lcores; false = ring full
    void stop();                    // main thread
    uint64_t written() const { return written_.load(std::memory_order_relaxed); }

private:
    RecordWriter() = default;
    void run();

    FILE *out_ = nullptr;
    std::vector<std::string> names_;
    rte_ring *ring_ = nullptr;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> written_{0};
};

// One JSON line (with '\n') for a record; exposed for tests and the writer.
std::string format_record(const FlowRecord &r, const std::vector<std::string> &names);

const char *ip_proto_name(uint8_t proto); // "tcp", "udp", "icmp", ... or nullptr

} // namespace millipede::app

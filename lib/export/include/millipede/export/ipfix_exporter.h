// An IPFIX Exporting Process over UDP (RFC 7011 10.3): records packed into
// messages by IpfixEncoder, sent to one collector from a connected,
// non-blocking datagram socket; the templates at start and again every
// template interval (RFC 7011 8.4: over UDP templates are re-sent
// periodically, as a collector may start, or restart, at any time).
//
// Contract
// - open() resolves the destination and connects the socket; a bad
//   destination is an error message, not an exception.
// - add() and flush() are called by one thread only (tap's writer thread).
//   They never block longer than IpfixExporterConfig::send_wait_ms per
//   message: a message the socket cannot take by then (its buffer full:
//   the network or the collector is slower than the flows end) is dropped
//   and counted with its records, and so is one the kernel refuses (e.g.
//   one it cannot send for another error). Nothing is retried later and
//   nothing queues without bound. An ICMP error that an earlier datagram
//   caused (ECONNREFUSED: nobody listens at the destination) is counted as
//   `refused` and the message is sent all the same: UDP cannot tell which
//   of the datagrams sent were lost.
// - stats() may be read from any thread (relaxed atomics, single writer).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "millipede/export/flow_view.h"
#include "millipede/export/ipfix.h"

namespace millipede::flow_export {

// "HOST:PORT" or "[IPv6]:PORT" into its parts. False, with a message naming
// what is wrong, when it is not one of those forms or the port is not 1-65535.
bool split_host_port(std::string_view text, std::string &host, std::string &port, std::string &err);

struct IpfixExporterConfig {
    std::string destination; // HOST:PORT
    IpfixConfig ipfix;
    uint64_t template_interval_ns = 60'000'000'000ull;
    unsigned send_wait_ms = 5;
};

struct IpfixExporterStats {
    std::atomic<uint64_t> messages{0};          // data messages sent
    std::atomic<uint64_t> records{0};           // data records in them
    std::atomic<uint64_t> template_messages{0}; // template messages sent
    std::atomic<uint64_t> dropped_messages{0};  // messages (data or templates) not sent
    std::atomic<uint64_t> dropped_records{0};   // data records in them
    std::atomic<uint64_t> refused{0};           // ICMP errors reported back (nobody listening)
    std::atomic<int> last_errno{0};             // the last error a send reported; 0 = none yet
};

// Export Time and the template timer's clock, passed in so tests control them.
struct ExportClock {
    uint32_t unix_s;  // IPFIX Export Time
    uint64_t mono_ns; // CLOCK_MONOTONIC: when templates are due
    static ExportClock now();
};

class IpfixExporter {
public:
    static std::unique_ptr<IpfixExporter> open(const IpfixExporterConfig &cfg, std::string &err);
    // Exports over `fd`, a connected datagram socket it now owns (tests: one
    // end of a socketpair); cfg.destination is only a label then.
    static std::unique_ptr<IpfixExporter> adopt(int fd, const IpfixExporterConfig &cfg);
    ~IpfixExporter();
    IpfixExporter(const IpfixExporter &) = delete;
    IpfixExporter &operator=(const IpfixExporter &) = delete;

    // Queues the flow's record; sends the message first when it is full, and
    // the templates first when they are due.
    void add(const FlowView &f, const ExportClock &now);
    // Sends what is queued, and the templates when they are due.
    void flush(const ExportClock &now);

    const IpfixExporterStats &stats() const { return stats_; }
    const std::string &peer() const { return peer_; } // numeric address:port after resolution
    const IpfixEncoder &encoder() const { return encoder_; }

private:
    explicit IpfixExporter(const IpfixExporterConfig &cfg) : cfg_(cfg), encoder_(cfg.ipfix) {}
    bool send(const uint8_t *data, std::size_t len);
    void send_templates_if_due(const ExportClock &now);
    void send_pending(const ExportClock &now);

    IpfixExporterConfig cfg_;
    IpfixEncoder encoder_;
    int fd_ = -1;
    std::string peer_;
    bool templates_sent_ = false;
    uint64_t next_templates_ns_ = 0;
    IpfixExporterStats stats_;
};

} // namespace millipede::flow_export

// TCP-lite passive open: a Listener owns a BOUNDED table of half-open
// (SYN-RECEIVED) entries and produces Connections when the handshake's third
// segment arrives (RFC 9293 3.10.7.2 LISTEN, 3.5 figure 6).
//
// Contract: single-threaded, owned by one lcore like Connection; no EAL. The
// table is allocated in the constructor; SYNs beyond it are dropped and
// counted (no SYN cookies). Transmit is the injected sink, called from
// on_segment, on_bytes and on_timer only. The caller demultiplexes: segments
// for established connections go to those Connections, the rest here.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "millipede/tcp/connection.h"

namespace millipede::tcp {

struct ListenerStats {
    uint64_t syns_received = 0;
    uint64_t syn_acks_sent = 0;
    uint64_t syn_ack_retransmits = 0;
    uint64_t half_open_expired = 0;
    uint64_t connections_created = 0;
    uint64_t rsts_sent = 0;
    uint64_t bad_checksums = 0;
    std::array<uint64_t, kDropCount> drops{};
};

class Listener {
public:
    // `local_ip` is copied into produced connections' endpoints; `port` is the
    // listening port. `max_half_open` bounds the SYN-RECEIVED table.
    Listener(const Config &cfg, IpAddr local_ip, uint16_t port, size_t max_half_open, SegmentSink sink, Random rng);

    // Processes one segment addressed to the listening port. Returns a new
    // connection (already ESTABLISHED, its Established event queued and any
    // data in the ACK already delivered) when this segment completes a
    // handshake; nullptr otherwise. Creating a Connection allocates (set-up).
    std::unique_ptr<Connection> on_segment(const Segment &seg, uint64_t now_us);
    std::unique_ptr<Connection> on_bytes(std::span<const uint8_t> bytes, const IpAddr &src, const IpAddr &dst,
                                         uint64_t now_us);

    // Retransmits SYN-ACKs with exponential back-off and expires entries after
    // cfg.syn_retries (RFC 6298 5.5 applied to the SYN-ACK).
    void on_timer(uint64_t now_us);
    uint64_t next_timer_deadline() const;

    size_t half_open() const { return used_; }
    size_t max_half_open() const { return table_.size(); }
    const ListenerStats &stats() const { return stats_; }

private:
    struct HalfOpen {
        bool used = false;
        PassiveOpen po;
        uint64_t deadline = UINT64_MAX;
        uint64_t rto_us = 0;
        uint32_t retries = 0;
    };
    void send_syn_ack(const HalfOpen &h, uint64_t now_us);
    void send_rst_for(const Segment &seg);
    HalfOpen *find(const Segment &seg);
    void count(Drop d) { stats_.drops[static_cast<size_t>(d)]++; }

    Config cfg_;
    IpAddr local_ip_;
    uint16_t port_;
    SegmentSink sink_;
    Random rng_;
    std::vector<HalfOpen> table_; // fixed size, allocated once
    size_t used_ = 0;
    ListenerStats stats_;
};

} // namespace millipede::tcp

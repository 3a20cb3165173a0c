// TCP-lite passive open: a Listener owns a BOUNDED table of half-open
// (SYN-RECEIVED) entries and produces Connections when the handshake's third
// segment arrives (RFC 9293 3.10.7.2 LISTEN, 3.5 figure 6).
//
// Contract: single-threaded, owned by one lcore like Connection; no EAL. The
// table is allocated in the constructor and never grows. Transmit is the
// injected sink, called from on_segment, on_bytes and on_timer only. The
// caller demultiplexes: segments for established connections go to those
// Connections, the rest here.
//
// SYN flood defence (RFC 4987 3.6, SYN cookies): a SYN that finds the
// half-open table full keeps no state. Its SYN-ACK's ISS is a cookie, a keyed
// hash (SipHash-2-4, a 128-bit key drawn from the injected Random at
// construction) of both endpoints, the SYN's sequence number, a 64 s period
// and the index of the peer's MSS (rounded down to one of kCookieMss), with
// that index in its low 3 bits: 29 bits an attacker must guess; when the
// SYN offered timestamps, the low 6 bits of the SYN-ACK's TSval carry its
// window scale and SACK-permitted (the peer echoes them in TSecr), as Linux
// does; without timestamps the SYN-ACK offers neither. An ACK that matches no
// entry but carries a cookie of this or the previous period (the handshake's
// third segment, 64 to 128 s) becomes a Connection like any other. A flood
// therefore cannot keep a real sender out: its SYN is answered whatever the
// table holds, and its ACK needs nothing from the table.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
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
    uint64_t syn_cookies_sent = 0;     // SYN-ACKs with a cookie (the table was full)
    uint64_t syn_cookies_accepted = 0; // connections made from a cookie
    uint64_t syn_cookies_rejected = 0; // ACKs matching no entry and no valid cookie (answered with RST)
    std::array<uint64_t, kDropCount> drops{};
};

// SipHash-2-4 (Aumasson and Bernstein, 2012) of `msg` under `key` (k0, k1 as
// the paper's little-endian key words). Public for its test vectors.
uint64_t siphash24(const std::array<uint64_t, 2> &key, std::span<const uint8_t> msg);

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

    // The MSS values a SYN cookie can carry: a peer's MSS is rounded down
    // to one of these (RFC 4987 3.6 "a small set of MSS values").
    static constexpr std::array<uint16_t, 8> kCookieMss = {536, 1220, 1360, 1400, 1440, 1460, 4312, 8960};
    static constexpr uint64_t kCookiePeriodUs = 64'000'000;

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
    void send_syn_ack(const PassiveOpen &po, uint32_t ts_val);
    void send_rst_for(const Segment &seg);
    // The keyed hash of one connection (its SYN had sequence number `irs`)
    // and `extra` (the period and MSS index, or the timestamp domain).
    uint32_t cookie_hash(const IpAddr &local, const IpAddr &remote, uint16_t remote_port, uint32_t irs,
                         uint64_t extra) const;
    void answer_with_cookie(const Segment &syn, uint64_t now_us);
    std::unique_ptr<Connection> connection_from_cookie(const Segment &ack, uint64_t now_us);
    HalfOpen *find(const Segment &seg);
    void count(Drop d) { stats_.drops[static_cast<size_t>(d)]++; }

    Config cfg_;
    IpAddr local_ip_;
    uint16_t port_;
    SegmentSink sink_;
    Random rng_;
    std::array<uint64_t, 2> cookie_key_{};
    std::vector<HalfOpen> table_; // fixed size, allocated once
    size_t used_ = 0;
    ListenerStats stats_;
};

} // namespace millipede::tcp

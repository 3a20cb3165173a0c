// TxSession: the sending end of a millipede transfer. N TCP-lite legs
// (lib/tcp) carry one StripeSender's records (lib/stripe); this class is the
// glue the simulator and the DPDK app share.
//
// Contract
// - Single-threaded: every method is called from the owner's thread (the
//   worker lcore that owns the legs; in the DPDK app the pipe thread hands
//   stdin bytes over through a ring and this lcore calls push_input()). Not
//   thread-safe. No EAL, no wall clock: `now_us` is the caller's monotonic
//   microsecond clock; randomness (ISNs, the session id) comes from the
//   injected Random.
// - Set-up (the constructor) validates the config and throws
//   std::invalid_argument with a message; it allocates the stripe sender's
//   chunk buffers. A TCP connection (its send/receive rings) is allocated
//   when a leg (re)connects, which happens at start and after a leg died —
//   never per segment or per byte. The data path (push_input, on_segment,
//   on_bytes, poll) never throws and does not allocate in steady state.
// - Output: every outgoing TCP segment, with its IP endpoints in
//   Segment::src_ip/dst_ip, goes to the injected SegmentSink, synchronously,
//   from on_segment, on_bytes and poll only. The sink must not call back
//   into the session; payload spans are valid only during the call.
// - Input: on_segment() takes a parsed segment whose checksum was verified
//   (or offloaded); on_bytes() parses and verifies it. Segments for no leg
//   are answered with RST (RFC 9293 3.10.7.1).
// - Call poll(now) after each batch of input (segments, pipe bytes) and
//   whenever now >= next_deadline(). poll() runs TCP timers, turns stripe
//   events into connections (CONNECT_LEG: a fresh connection on a new
//   ephemeral port), writes chunks into the legs' send buffers and
//   transmits.
// - Dead legs: a reset or timed-out connection, or one the Watchdog
//   declares dead (RTO expirations without progress, see config.h), is
//   aborted and reported to the stripe sender, which re-queues its
//   unacknowledged chunks on the other legs and reconnects with back-off.
//   viamillipede mode: a leg the receiver closes (FIN) or resets is first
//   credited with every byte its peer acknowledged up to and including that
//   segment; when that covers the end header the session is DONE (a stock
//   receiver exits right after the end record, and its ACK of the end
//   header often rides in its FIN), and a leg closed after the end header
//   went out with everything it carried acknowledged is not a lost leg.
// - End: state() is DONE when the receiver verified the stream (native
//   codec; in viamillipede mode when the end header was handed to a leg),
//   FAILED with message() otherwise. Then the legs close (FIN, or RST on
//   failure); finished() is true once they are closed or linger_us passed:
//   the owner may exit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "millipede/session/config.h"
#include "millipede/stripe/sender.h"
#include "millipede/tcp/connection.h"

namespace millipede::session {

struct TxStats {
    uint64_t segments_in = 0;
    uint64_t bad_segments = 0;      // failed to parse (checksum, truncated)
    uint64_t unknown_segments = 0;  // for no leg (answered with RST)
    uint64_t connects = 0;          // connections opened
    uint64_t connect_failures = 0;  // refused / SYN timed out / connect_timeout_us
    uint64_t legs_lost = 0;         // established legs that died (reset, timed out, watchdog)
    uint64_t watchdog_kills = 0;    // of which the Watchdog declared dead
    uint64_t last_leg_lost_us = 0;  // when the last one died
    uint64_t retired = 0;           // compat: connections closed with FIN instead of RST (see retire())
    // compat: legs the receiver ended (FIN, reset) once everything they
    // carried was acknowledged, after the end header went out: a stock
    // receiver exiting after the end record. Not in legs_lost.
    uint64_t legs_ended_by_receiver = 0;
};

enum class TxLegState : uint8_t { IDLE, CONNECTING, ESTABLISHED, CLOSING };

class TxSession {
  public:
    TxSession(const TxConfig &cfg, tcp::SegmentSink sink, tcp::Random rng);
    ~TxSession();
    TxSession(const TxSession &) = delete;
    TxSession &operator=(const TxSession &) = delete;

    // ---- pipe side (see StripeSender: 0 from push_input is back-pressure)
    size_t input_space() const { return stripe_.input_space(); }
    size_t push_input(const uint8_t *p, size_t n, uint64_t now_us) { return stripe_.push_input(p, n, now_us); }
    void flush_input(uint64_t now_us) { stripe_.flush_input(now_us); }
    void finish_input(uint64_t now_us) { stripe_.finish_input(now_us); }

    // ---- network side
    void on_segment(const tcp::Segment &seg, uint64_t now_us);
    // Parses (verifying the checksum against the pseudo-header) and calls
    // on_segment(); false when the segment was dropped as malformed.
    bool on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst, uint64_t now_us);

    // ---- fault injection (the `chaos` word), viamillipede mode: close leg
    // `leg` with FIN once everything written on it is acknowledged, then
    // reconnect it and re-send the chunk it cut (StripeSender::break_leg; a
    // stock receiver survives a FIN, not a reset). False when it cannot:
    // native mode (abort the connection instead), a leg not carrying data,
    // or the one carrying the end record.
    bool break_leg(uint32_t leg) { return stripe_.break_leg(leg); }

    // ---- time
    void poll(uint64_t now_us);
    uint64_t next_deadline() const; // UINT64_MAX: nothing scheduled

    // ---- status
    State state() const { return state_; }
    bool confirmed() const { return stripe_.confirmed(); }
    bool finished() const { return finished_; }
    const char *message() const; // outcome, or "running"
    const char *last_leg_message() const { return leg_msg_; } // latest leg failure, for logs
    const TxStats &stats() const { return stats_; }
    const stripe::StripeSender &stripe() const { return stripe_; }
    uint32_t legs() const;
    TxLegState leg_state(uint32_t leg) const;
    // The leg's current connection (nullptr when none): for stats and tests.
    const tcp::Connection *leg_connection(uint32_t leg) const;

  private:
    struct Leg;
    struct Io;
    void start_leg(uint32_t i, uint64_t now);
    void handle_conn(uint32_t i, uint64_t now);
    void drain(uint32_t i, uint64_t now);
    void lose_leg(uint32_t i, uint64_t now, bool watchdog, const char *why);
    void retire(uint32_t i, uint64_t now);
    void poll_retired(uint64_t now);
    void end(uint64_t now);
    uint16_t next_port(const LegSpec &spec);
    int32_t find_leg(const tcp::Segment &seg) const;

    TxConfig cfg_;
    tcp::SegmentSink sink_;
    tcp::Random rng_;
    stripe::StripeSender stripe_;
    std::vector<Leg> legs_;
    // viamillipede has no chunk acknowledgements: a connection given up
    // (watchdog, recycle) may still hold data its peer acknowledged but has
    // not read, which a RST would destroy. Such a connection is closed with
    // FIN instead and kept here until TCP finishes with it.
    std::vector<std::unique_ptr<tcp::Connection>> retired_;
    std::unique_ptr<Io> io_;
    State state_ = State::RUNNING;
    bool finished_ = false;
    uint64_t linger_until_ = UINT64_MAX;
    uint64_t first_closed_at_ = UINT64_MAX; // after DONE: the first leg that closed in order
    uint32_t port_cursor_ = 0;
    char leg_msg_[256] = "";
    TxStats stats_;
};

} // namespace millipede::session

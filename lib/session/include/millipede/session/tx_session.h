// TxSession: the sending end of a millipede transfer in one thread. N
// TCP-lite legs (lib/tcp) carry one StripeSender's records (lib/stripe):
// a TxCore (tx_core.h) and one LegHost (leg_host.h) joined by in-process
// queues. The simulator and the tests drive it; the DPDK application runs
// the same core and hosts with the hosts on worker lcores.
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
#include "millipede/session/leg_host.h"
#include "millipede/session/tx_core.h"
#include "millipede/stripe/sender.h"
#include "millipede/tcp/connection.h"

namespace millipede::session {

class TxSession {
  public:
    TxSession(const TxConfig &cfg, tcp::SegmentSink sink, tcp::Random rng);
    ~TxSession();
    TxSession(const TxSession &) = delete;
    TxSession &operator=(const TxSession &) = delete;

    // ---- pipe side (see StripeSender: 0 from push_input is back-pressure)
    size_t input_space() const { return core_->input_space(); }
    size_t push_input(const uint8_t *p, size_t n, uint64_t now_us) { return core_->push_input(p, n, now_us); }
    void flush_input(uint64_t now_us) { core_->flush_input(now_us); }
    void finish_input(uint64_t now_us) { core_->finish_input(now_us); }

    // ---- network side
    void on_segment(const tcp::Segment &seg, uint64_t now_us);
    // Parses (verifying the checksum against the pseudo-header) and calls
    // on_segment(); false when the segment was dropped as malformed.
    bool on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst, uint64_t now_us);

    // ---- fault injection: see TxCore::break_leg().
    bool break_leg(uint32_t leg) { return core_->break_leg(leg); }

    // ---- time
    void poll(uint64_t now_us);
    uint64_t next_deadline() const; // UINT64_MAX: nothing scheduled

    // ---- status
    State state() const { return core_->state(); }
    bool confirmed() const { return core_->confirmed(); }
    bool finished() const { return core_->finished(); }
    const char *message() const { return core_->message(); } // outcome, or "running"
    const char *last_leg_message() const { return core_->last_leg_message(); } // latest leg failure, for logs
    const TxStats &stats() const;
    const stripe::StripeSender &stripe() const { return core_->stripe(); }
    uint32_t legs() const { return core_->legs(); }
    TxLegState leg_state(uint32_t leg) const { return core_->leg_state(leg); }
    // The leg's current connection (nullptr when none): for stats and tests.
    const tcp::Connection *leg_connection(uint32_t leg) const;
    const TxCore &core() const { return *core_; }
    const LegHost &host() const { return *host_; }

  private:
    struct Queues;
    void pump(uint64_t now);

    tcp::Random rng_;
    std::unique_ptr<Queues> q_;
    std::unique_ptr<LegHost> host_;
    std::unique_ptr<TxCore> core_;
    mutable TxStats merged_;
};

} // namespace millipede::session

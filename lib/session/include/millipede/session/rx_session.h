// RxSession: the receiving end of a millipede transfer. TCP-lite listeners
// (lib/tcp) accept the sender's legs; one StripeReceiver (lib/stripe)
// reorders their chunks into the output stream.
//
// Contract
// - Single-threaded, owner's thread only (the worker lcore that owns the
//   connections; in the DPDK app it hands output() to the pipe-out thread
//   through a ring). Not thread-safe. `now_us` is the caller's monotonic
//   clock; randomness (ISNs) comes from the injected Random.
// - Set-up (the constructor) validates the config (std::invalid_argument)
//   and allocates the listeners' half-open tables and the reorder window
//   (window_chunks x max_chunk_bytes). An accepted connection allocates its
//   rings (set-up of that leg, not per segment). The data path never throws
//   and does not allocate in steady state.
// - Output segments go to the injected SegmentSink synchronously from
//   on_segment, on_bytes and poll only; the sink must not call back into
//   the session.
// - Each accepted connection becomes a stripe receiver leg (an index below
//   stripe.max_legs; a connection beyond that is refused with RST). Bytes
//   are read from the TCP receive ring without copying (peek/consume) and
//   only as far as the stripe receiver takes them: while it is blocked (its
//   reorder window is full because output() is not drained) the bytes stay
//   in the TCP receive buffer, the advertised window closes, and the sender
//   stops. Draining output() reopens it.
// - Pipe side: output() is the next run of in-order, verified bytes;
//   output_consumed(n) after writing n of them; then poll().
// - Call poll(now) after each batch of input and output and whenever
//   now >= next_deadline().
// - End: DONE once the end record verified and all output was consumed;
//   FAILED with message() otherwise. A refused leg (wrong checkphrase,
//   foreign session) is logged in last_leg_message() and closed; it does not
//   end the session. After DONE the legs are still served (a sender whose
//   end acknowledgement was lost asks again on a new leg); finished() turns
//   true once the sender closed its legs with FIN (it has its confirmation)
//   and every connection is closed (a leg without FIN straggler_us after
//   the sender's first is dropped: its link is dead), or linger_us passed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "millipede/session/config.h"
#include "millipede/stripe/receiver.h"
#include "millipede/tcp/connection.h"
#include "millipede/tcp/listener.h"

namespace millipede::session {

struct RxStats {
    uint64_t segments_in = 0;
    uint64_t bad_segments = 0;     // failed to parse (checksum, truncated)
    uint64_t unknown_segments = 0; // not for our port (answered with RST)
    uint64_t accepted = 0;         // connections accepted
    uint64_t refused_no_slot = 0;  // accepted beyond stripe.max_legs, reset
    uint64_t legs_lost = 0;        // reset, timed out, watchdog, or closed by the sender mid-stream
    uint64_t watchdog_kills = 0;
    uint64_t legs_closed = 0;      // closed on the stripe receiver's request (refused, protocol error)
    uint64_t blocked_reads = 0;    // the stripe receiver took less than was readable (back-pressure)
};

class RxSession {
  public:
    RxSession(const RxConfig &cfg, tcp::SegmentSink sink, tcp::Random rng);
    ~RxSession();
    RxSession(const RxSession &) = delete;
    RxSession &operator=(const RxSession &) = delete;

    // ---- network side
    void on_segment(const tcp::Segment &seg, uint64_t now_us);
    bool on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst, uint64_t now_us);

    // ---- pipe side
    std::span<const uint8_t> output() const { return stripe_.output(); }
    void output_consumed(size_t n) { stripe_.output_consumed(n); }

    // ---- time
    void poll(uint64_t now_us);
    uint64_t next_deadline() const;

    // ---- status
    State state() const { return state_; }
    bool finished() const { return finished_; }
    const char *message() const { return stripe_.message(); }
    const char *last_leg_message() const; // latest refused/closed/lost leg
    const RxStats &stats() const { return stats_; }
    const stripe::StripeReceiver &stripe() const { return stripe_; }
    size_t connections() const; // legs with a connection now
    const tcp::Connection *leg_connection(uint32_t leg) const;

  private:
    struct Leg;
    struct Io;
    void accept(std::unique_ptr<tcp::Connection> c, uint64_t now);
    void handle_conn(uint32_t i, uint64_t now);
    void feed(uint32_t i, uint64_t now);
    void drop_leg(uint32_t i, uint64_t now, bool watchdog, const char *why);
    int32_t find_leg(const tcp::Segment &seg) const;

    RxConfig cfg_;
    tcp::SegmentSink sink_;
    tcp::Random rng_;
    std::vector<std::unique_ptr<tcp::Listener>> listeners_;
    stripe::StripeReceiver stripe_;
    std::vector<Leg> legs_;
    std::unique_ptr<Io> io_;
    State state_ = State::RUNNING;
    bool finished_ = false;
    bool sender_closed_ = false;
    uint64_t sender_closed_at_ = UINT64_MAX; // first FIN of a sender that finished
    uint64_t linger_until_ = UINT64_MAX;
    char leg_msg_[256] = "";
    RxStats stats_;
};

} // namespace millipede::session

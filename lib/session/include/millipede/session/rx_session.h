// RxSession: the receiving end of a millipede transfer in one thread.
// TCP-lite listeners (lib/tcp) accept the sender's legs; one StripeReceiver
// (lib/stripe) reorders their chunks into the output stream: an RxCore
// (rx_core.h) and one LegHost (leg_host.h) joined by in-process queues.
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
#include "millipede/session/leg_host.h"
#include "millipede/session/rx_core.h"
#include "millipede/stripe/receiver.h"
#include "millipede/tcp/connection.h"

namespace millipede::session {

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
    std::span<const uint8_t> output() const { return core_->output(); }
    void output_consumed(size_t n) { core_->output_consumed(n); }

    // ---- time
    void poll(uint64_t now_us);
    uint64_t next_deadline() const;

    // ---- status
    State state() const { return core_->state(); }
    bool finished() const { return core_->finished(); }
    const char *message() const { return core_->message(); }
    const char *last_leg_message() const { return core_->last_leg_message(); } // latest refused/closed/lost leg
    const RxStats &stats() const;
    const stripe::StripeReceiver &stripe() const { return core_->stripe(); }
    size_t connections() const { return core_->connections(); } // legs with a connection now
    const tcp::Connection *leg_connection(uint32_t leg) const;
    const RxCore &core() const { return *core_; }
    const LegHost &host() const { return *host_; }

  private:
    struct Queues;
    void pump(uint64_t now);

    tcp::Random rng_;
    std::unique_ptr<Queues> q_;
    std::unique_ptr<LegHost> host_;
    std::unique_ptr<RxCore> core_;
    mutable RxStats merged_;
};

} // namespace millipede::session

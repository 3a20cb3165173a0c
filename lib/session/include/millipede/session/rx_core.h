// RxCore: the receiving session without its connections. Hosts (workers)
// accept the sender's legs and report their bytes; one StripeReceiver
// reorders the chunks into the output stream. RxSession (rx_session.h) is
// this core and one host in one thread, for the simulator and tests.
//
// Contract
// - Single-threaded: the session lcore calls everything. Not thread-safe.
//   Pure: no EAL; time is `now_us`.
// - Set-up validates (std::invalid_argument) and allocates the reorder
//   window (window_chunks x max_chunk_bytes) and the per-leg span queues;
//   afterwards nothing allocates or throws.
// - Input: INPUT spans are read in place (the one copy on the receive path
//   is the stripe receiver's, into its window) and CONSUMEd only as far as
//   the stripe receiver took them: while it is blocked the bytes stay in the
//   connection, its window closes and the sender stops.
// - Feed every report to on_report() in each host's order; call poll(now)
//   after each batch of reports or output and whenever now >= next_deadline().
// - Pipe side, end of the session and finished(): as RxSession's contract.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "millipede/session/config.h"
#include "millipede/session/messages.h"
#include "millipede/stripe/receiver.h"

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

class RxCore {
  public:
    RxCore(const RxConfig &cfg, CommandOut &out);
    ~RxCore();
    RxCore(const RxCore &) = delete;
    RxCore &operator=(const RxCore &) = delete;

    void on_report(const LegReport &r, uint64_t now_us);

    // ---- pipe side
    std::span<const uint8_t> output() const { return stripe_.output(); }
    // Output taken can finish the stream (the stripe receiver turns DONE in
    // poll once every byte is out): the next poll is due at once.
    void output_consumed(size_t n) {
        stripe_.output_consumed(n);
        poll_due_ = true;
    }

    // Compressed sessions (StripeReceiver, "compressed sessions"): the
    // stream bytes the owner made of the delivered chunks, in order.
    void digest_output(const uint8_t *p, size_t n) {
        stripe_.digest_output(p, n);
        poll_due_ = true;
    }

    void poll(uint64_t now_us);
    uint64_t next_deadline() const;

    // ---- status
    State state() const { return state_; }
    bool finished() const { return finished_; }
    const char *message() const;
    const char *last_leg_message() const { return leg_msg_[0] ? leg_msg_ : stripe_.last_leg_message(); }
    const RxStats &stats() const { return stats_; }
    const stripe::StripeReceiver &stripe() const { return stripe_; }
    size_t connections() const;
    uint32_t legs() const;
    ConnHandle leg_handle(uint32_t leg) const;
    const tcp::Endpoints *leg_endpoints(uint32_t leg) const; // nullptr when the leg has no connection

  private:
    struct Leg;
    struct Io;
    int32_t leg_of(ConnHandle h) const;
    bool send(Leg &l, CommandType t, uint64_t n = 0); // a pending CONSUME of the leg goes first
    bool send_consume(Leg &l);
    void accept(const LegReport &r, uint64_t now);
    void handle_leg(uint32_t i, uint64_t now);
    void feed(uint32_t i, uint64_t now);
    void drop_leg(uint32_t i, uint64_t now, const char *why);
    void internal_failure(const char *what);

    RxConfig cfg_;
    CommandOut &out_;
    stripe::StripeReceiver stripe_;
    std::vector<Leg> legs_;
    std::unique_ptr<Io> io_;
    State state_ = State::RUNNING;
    bool finished_ = false;
    bool poll_due_ = false;
    bool sender_closed_ = false;
    uint64_t sender_closed_at_ = UINT64_MAX; // first FIN of a sender that finished
    uint64_t linger_until_ = UINT64_MAX;
    char leg_msg_[256] = "";
    char fail_msg_[160] = "";
    RxStats stats_;
};

} // namespace millipede::session

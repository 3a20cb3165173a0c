// TxCore: the sending session without its connections. One StripeSender
// cuts the pipe into chunks and schedules them over legs; each leg's TCP
// connection lives on a LegHost (a worker), reached only through messages
// (messages.h). TxSession (tx_session.h) is this core and one host in one
// thread, for the simulator and tests; the DPDK application puts hosts on
// worker lcores.
//
// Contract
// - Single-threaded: the session lcore calls everything. Not thread-safe.
//   Pure: no EAL; time is `now_us`, randomness (session id, nothing else)
//   the injected Random.
// - Set-up validates (std::invalid_argument) and allocates the stripe
//   sender's chunk buffers; afterwards nothing allocates or throws.
// - Feed every report of every host to on_report() in the order each host
//   sent them; call poll(now) after each batch of reports or pipe input and
//   whenever now >= next_deadline(). Commands leave through CommandOut; a
//   refused command fails the session with a message (queues are sized so
//   that this cannot happen: see messages.h).
// - Legs, dead legs, completion and the end of the session behave as
//   TxSession's contract describes; a leg is (re)connected on a host that
//   CommandOut::pick_host() chooses, and stays there for that connection's
//   life.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "millipede/session/config.h"
#include "millipede/session/messages.h"
#include "millipede/stripe/sender.h"

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
    uint64_t retired = 0;           // compat: connections closed with FIN instead of RST
    // compat: legs the receiver ended (FIN, reset) once everything they
    // carried was acknowledged, after the end header went out: a stock
    // receiver exiting after the end record. Not in legs_lost.
    uint64_t legs_ended_by_receiver = 0;
    // After the transfer ended: connections still in SYN-SENT half a SYN
    // timeout after their SYN (its SYN-ACK lost), dropped without a sound.
    uint64_t connects_abandoned = 0;
};

enum class TxLegState : uint8_t { IDLE, CONNECTING, ESTABLISHED, CLOSING };

class TxCore {
  public:
    TxCore(const TxConfig &cfg, CommandOut &out, tcp::Random rng);
    ~TxCore();
    TxCore(const TxCore &) = delete;
    TxCore &operator=(const TxCore &) = delete;

    // ---- pipe side (see StripeSender: 0 from push_input is back-pressure)
    size_t input_space() const { return stripe_.input_space(); }
    size_t push_input(const uint8_t *p, size_t n, uint64_t now_us) { return stripe_.push_input(p, n, now_us); }
    void flush_input(uint64_t now_us) { stripe_.flush_input(now_us); }
    void finish_input(uint64_t now_us) { stripe_.finish_input(now_us); }
    stripe::StripeSender &stripe_mut() { return stripe_; }

    // ---- hosts
    void on_report(const LegReport &r, uint64_t now_us);

    // ---- time
    void poll(uint64_t now_us);
    uint64_t next_deadline() const; // UINT64_MAX: nothing scheduled

    // ---- status
    State state() const { return state_; }
    bool confirmed() const { return stripe_.confirmed(); }
    bool finished() const { return finished_; }
    const char *message() const;
    const char *last_leg_message() const { return leg_msg_; }
    const TxStats &stats() const { return stats_; }
    // Fault injection (the `chaos` word): native, leg `leg`'s connection is
    // reset as a dead link's would be and its loss handled like any other;
    // viamillipede mode, the leg stops being written to and, once what it
    // carried is acknowledged, closes with FIN and reconnects, the chunk it
    // cut going again on the fresh connection (StripeSender::break_leg: a
    // stock receiver survives a FIN, not a reset). False when it cannot.
    bool break_leg(uint32_t leg);
    // The leg that was last given chunk bytes (-1: none yet): chaos's victim.
    int32_t last_data_leg() const { return last_data_leg_; }
    const stripe::StripeSender &stripe() const { return stripe_; }
    uint32_t legs() const;
    TxLegState leg_state(uint32_t leg) const;
    ConnHandle leg_handle(uint32_t leg) const;
    const tcp::Endpoints *leg_endpoints(uint32_t leg) const; // nullptr when the leg has no connection
    // Legs whose connection lives on `host` now, as this core knows it
    // (ahead of what the host has published: a CONNECT may still be queued).
    uint32_t legs_on_host(uint32_t host) const;

  private:
    struct Leg;
    struct Io;
    int32_t leg_of(const LegReport &r) const;
    bool send(const Leg &l, const LegCommand &c);
    bool send_to(uint32_t host, const LegCommand &c);
    void start_leg(uint32_t i, uint64_t now);
    void give_up(uint32_t i);
    // `delivered`: payload the peer acknowledged up to and including the
    // segment that ended the leg (viamillipede's only proof of delivery).
    void lose_leg(uint32_t i, uint64_t now, bool watchdog, const char *why, uint64_t delivered = 0);
    void end(uint64_t now);
    uint64_t handshake_deadline(const Leg &l) const;
    void abort_leg(uint32_t i);
    uint16_t next_port(const LegSpec &spec);
    void internal_failure(const char *what);

    TxConfig cfg_;
    CommandOut &out_;
    tcp::Random rng_;
    stripe::StripeSender stripe_;
    std::vector<Leg> legs_;
    std::unique_ptr<Io> io_;
    // viamillipede: connections given up with FIN (RETIRE) until they close.
    std::vector<ConnHandle> retired_;
    State state_ = State::RUNNING;
    bool finished_ = false;
    uint64_t linger_until_ = UINT64_MAX;
    uint64_t first_closed_at_ = UINT64_MAX; // after DONE: the first leg that closed in order
    uint32_t port_cursor_ = 0;
    uint32_t next_id_ = 1;
    int32_t last_data_leg_ = -1;
    char leg_msg_[256] = "";
    char fail_msg_[160] = "";
    TxStats stats_;
};

} // namespace millipede::session

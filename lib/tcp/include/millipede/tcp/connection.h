// TCP-lite connection: one RFC 9293 connection state machine.
//
// Contract:
//  - Single-threaded. The caller (one lcore) owns the object; nothing inside is
//    thread-safe and nothing blocks. No EAL, no wall clock, no threads: time is
//    the `now_us` argument of every call (monotonic microseconds), randomness
//    (ISN, timestamp offset) comes from the injected `Random`.
//  - Transmit is the injected SegmentSink. It is called synchronously from
//    connect, send, recv (window update), shutdown_write, abort, on_segment,
//    on_bytes and on_timer — and from nothing else. The sink must not call back
//    into the connection; payload spans in the Segment point into the send ring
//    and are valid only during the call (copy or serialize() them).
//  - Events (Established, PeerFin, and exactly one terminal event: Closed,
//    Reset or TimedOut with a CloseReason) are queued; drain with poll_event().
//  - Memory: the send and receive queues (buffers.h) are allocated in the
//    constructor (sizes from Config); afterwards the data path never
//    allocates and never throws. The constructor throws std::invalid_argument
//    on a bad Config.
//  - Zero copy: send_ref() queues a reference to memory the caller owns
//    (Config::ref_ops counts the references; every segment carrying those
//    bytes names them in its pieces), and payload handed in as pieces with
//    a ref is held by reference until consume(). Bytes without a ref are
//    copied into the connection's arena, as before.
//  - Call on_timer(now) when now >= next_timer_deadline().
//  - Pacing: a controller with a pacing rate (BBR), or NewReno and CUBIC
//    with Config::pacing, holds data back until its next send time (after
//    a burst of send_quantum()); next_timer_deadline() then includes that
//    time, so a caller that honours the deadline honours the pacing rate
//    (next_send_us() and pacing_rate() expose both for a data plane that
//    schedules transmit itself).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "millipede/tcp/buffers.h"
#include "millipede/tcp/congestion.h"
#include "millipede/tcp/segment.h"
#include "millipede/tcp/tx_records.h"
#include "millipede/net/splitmix.h"
#include "millipede/tcp/windowed_filter.h"

namespace millipede::tcp {

enum class Drop : uint8_t {
#define MILLIPEDE_TCP_DROP(sym, name, desc) sym,
#include "millipede/tcp/drops.def"
#undef MILLIPEDE_TCP_DROP
    COUNT
};
inline constexpr size_t kDropCount = static_cast<size_t>(Drop::COUNT);
const char *drop_name(Drop d);
const char *drop_description(Drop d);

enum class CloseReason : uint8_t {
#define MILLIPEDE_TCP_CLOSE(sym, name, desc) sym,
#include "millipede/tcp/close_reasons.def"
#undef MILLIPEDE_TCP_CLOSE
    COUNT
};
const char *close_reason_name(CloseReason r);

enum class State : uint8_t {
    Closed,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
};
const char *state_name(State s);

enum class EventType : uint8_t {
    Established, // handshake complete
    PeerFin,     // in-order FIN: end of the peer's byte stream (EOF after recv drains)
    Closed,      // terminal: orderly close or local abort (reason NORMAL / ABORTED / FIN_WAIT2_TIMEOUT)
    Reset,       // terminal: RESET_BY_PEER or REFUSED
    TimedOut,    // terminal: TIMED_OUT, SYN_TIMED_OUT, KEEPALIVE_TIMEOUT, PERSIST_TIMEOUT
};

struct Event {
    EventType type;
    CloseReason reason = CloseReason::NONE;
};

using SegmentSink = std::function<void(const Segment &)>;
using Random = std::function<uint32_t()>;

// Deterministic generator for tests and the simulator (SplitMix64).
struct SeededRandom {
    uint64_t state;
    explicit SeededRandom(uint64_t seed) : state(seed) {}
    uint32_t operator()() {
        return static_cast<uint32_t>(net::splitmix64_next(state) >> 16);
    }
};

struct Config {
    uint32_t send_buffer = 256 * 1024; // send ring bytes
    uint32_t recv_buffer = 256 * 1024; // receive ring bytes (the largest window we offer)
    uint16_t mss = 1460;               // our MSS option and our cap on sent payload
    // A lower cap on the payload we send per segment than the MSS we offer
    // (0: none). A link may carry larger frames one way than the other
    // (memif in copy mode: see docs/wire.md).
    uint16_t send_mss_cap = 0;
    bool window_scale = true;          // offer RFC 7323 window scale
    bool sack = true;                  // offer SACK-permitted (RFC 2018)
    bool timestamps = true;            // offer RFC 7323 timestamps
    CongestionAlgo cc = CongestionAlgo::NewReno;
    // RACK-TLP loss detection (RFC 8985) with SACK, on top of RFC 6675's
    // DupThresh rule; off: RFC 6675 and the RTO only.
    bool rack = true;
    uint32_t initial_cwnd_segments = 10; // RFC 6928
    // Congestion window validation for NewReno and CUBIC (RFC 7661's aim,
    // the rule Linux applies in tcp_is_cwnd_limited): the window grows on an
    // ACK only if it was fully used in the last round trip, or, in slow
    // start, while it is below twice the most that was in flight. A sender
    // the application keeps below its window would otherwise inflate it and
    // later send the whole inflated window as one burst. Off: grow on every
    // ACK (RFC 5681 alone). BBR tracks the same state itself.
    bool cwnd_validation = true;
    // Pacing for NewReno and CUBIC, as Linux paces them (tcp_update_pacing_rate
    // with the fq qdisc or internal pacing): rate = ratio x max(cwnd, flight)
    // / SRTT, ratio 200 % while cwnd < ssthresh / 2 (slow start) and 120 %
    // after, bursts of up to max(2 x 64 KiB, 1 ms at that rate) back to back
    // (Linux's TSQ allowance). Without it a window that grows while the
    // application held data back (or any sudden opening) leaves as one
    // line-rate burst, which a shallow bottleneck queue drops: slow start
    // ends early and congestion avoidance takes minutes to recover on a
    // long path (docs/benchmarks.md, "Parity across legs"). An SRTT of
    // kUnpacedSrttUs or less is unpaced: the burst allowance then covers the
    // whole window, so pacing could hold nothing back (memif, LAN). BBR
    // always paces, by its own model; this option does not apply to it.
    // Off by default: on, the BBR legs of tests/sim cc_goals took more than
    // 1.2 shares beside a paced CUBIC flow (seed 5), and only the striping
    // session's parity queue-ahead bound is measured to need it; lib/session
    // turns it on for its legs then (session::legs_paced()).
    bool pacing = false;
    uint64_t rto_initial_us = 1'000'000; // RFC 6298 2.1
    uint64_t rto_min_us = 200'000;       // RFC 6298 2.4 says 1 s; Linux uses 200 ms
    uint64_t rto_max_us = 60'000'000;    // RFC 6298 2.5
    uint32_t max_retransmits = 8;        // consecutive RTOs before TIMED_OUT (RFC 9293 3.8.3 R2)
    uint32_t syn_retries = 6;
    uint64_t delayed_ack_us = 40'000;    // 0: ACK every segment at once (RFC 9293 3.8.6.3)
    bool nagle = false;                  // RFC 9293 3.7.4
    uint64_t time_wait_us = 1'000'000;   // "2 MSL", short on purpose
    uint64_t fin_wait2_timeout_us = 60'000'000; // 0: wait forever
    bool keepalive = false;              // RFC 9293 3.8.4 / RFC 1122 4.2.3.6
    uint64_t keepalive_idle_us = 7'200'000'000ull;
    uint64_t keepalive_interval_us = 75'000'000;
    uint32_t keepalive_probes = 9;
    uint32_t challenge_ack_limit = 1000; // per second, RFC 5961 7 (0: unlimited)
    bool checksum_offload = false;       // mark outgoing segments for TX offload
    // A link whose frames never leave shared memory (memif between two
    // processes). offer: this end does not verify TCP checksums there and
    // says so in its SYN / SYN-ACK (Options::checksum_trust). use: when the
    // peer said so, this end leaves outgoing checksums partial as for TX
    // offload, as Linux leaves them on loopback. Both false elsewhere.
    bool checksum_trust_offer = false;
    bool checksum_trust_use = false;
    // Reference counting for send_ref() and for received pieces that carry
    // a ref (buffers.h); null: every byte is copied. Must outlive the
    // connection.
    const RefOps *ref_ops = nullptr;
    // Extents each queue may hold (0: derived from the buffer sizes, enough
    // for segments of 256 bytes on average).
    uint32_t max_extents = 0;
};

// Loss-based pacing (Config::pacing), Linux's constants: the rate in per
// cent of max(cwnd, flight) / SRTT in slow start (cwnd < ssthresh / 2,
// net.ipv4.tcp_pacing_ss_ratio) and otherwise (tcp_pacing_ca_ratio); the
// burst allowance is the larger of kPacingBurstBytes (two 64 KiB TSO frames,
// what TCP Small Queues lets a flow queue) and kPacingBurstUs at the rate
// (sk_pacing_shift 10: ~1 ms).
inline constexpr uint32_t kPacingSlowStartRatioPct = 200;
inline constexpr uint32_t kPacingAvoidanceRatioPct = 120;
inline constexpr uint32_t kPacingBurstBytes = 2 * 65536;
inline constexpr uint64_t kPacingBurstUs = 1000;
// At or below this SRTT a 1 ms burst at >= 120 % of cwnd / SRTT holds more
// than the window, so pacing could never delay a segment: unpaced.
inline constexpr uint64_t kUnpacedSrttUs = kPacingBurstUs;

// The rate and burst of Config::pacing for a loss-based controller (bytes
// per second, 0: unpaced; bytes), from cwnd, ssthresh, the bytes in flight
// and SRTT (0: no sample yet, unpaced).
uint64_t loss_based_pacing_rate(uint32_t cwnd, uint32_t ssthresh, uint32_t flight, uint64_t srtt_us);
uint32_t loss_based_send_quantum(uint64_t rate);

struct Endpoints {
    IpAddr local_ip, remote_ip;
    uint16_t local_port = 0, remote_port = 0;
};

struct Stats {
    uint64_t bytes_sent = 0;     // payload bytes transmitted, retransmissions included
    uint64_t bytes_acked = 0;    // payload bytes acknowledged by the peer
    uint64_t bytes_received = 0; // payload bytes accepted in order
    uint64_t segments_in = 0;
    uint64_t segments_out = 0;
    uint64_t retransmits_timeout = 0; // segments re-sent after RTO
    uint64_t retransmits_fast = 0;    // segments re-sent by fast retransmit / SACK recovery
    uint64_t rto_events = 0;
    uint64_t fast_recoveries = 0;
    uint64_t lost_retransmits = 0;    // retransmissions found lost by SACKs of later data (then re-sent)
    uint64_t rescue_retransmits = 0;  // RFC 6675 NextSeg rule 4
    uint64_t limited_transmits = 0;   // RFC 3042 new segments on the first two duplicate ACKs
    uint64_t cwnd_growth_held = 0;    // ACKs that did not grow cwnd: it was not fully used (Config::cwnd_validation)
    uint64_t rack_lost = 0;           // segments RACK marked lost (RFC 8985 6.2)
    uint64_t tlp_probes = 0;          // tail loss probes sent (RFC 8985 7.3)
    uint64_t pacing_waits = 0;        // times output stopped for the pacing rate
    uint64_t out_of_order_segments = 0;
    uint64_t bad_checksums = 0;
    uint64_t duplicate_segments = 0;
    uint64_t challenge_acks = 0;
    uint64_t zero_window_probes = 0;
    uint64_t keepalive_probes = 0;
    uint64_t srtt_us = 0, rttvar_us = 0, rto_us = 0;
    uint32_t cwnd = 0, ssthresh = 0;
    uint32_t peer_rwnd = 0; // SND.WND, scaled
    uint32_t our_rwnd = 0;  // window we would advertise now
    std::array<uint64_t, kDropCount> drops{};
};

// Negotiated state a Listener hands to the connection it creates.
struct PassiveOpen {
    Endpoints ep;
    uint32_t iss = 0, irs = 0;
    Options peer_syn; // options of the peer's SYN
    uint16_t peer_window = 0;
    uint32_t ts_offset = 0;
    uint64_t syn_ack_sent_us = 0;
};

class Connection {
public:
    static constexpr size_t kMaxOooIntervals = 16;  // receive-side holes we track
    static constexpr size_t kMaxScoreboard = 16;    // SACKed intervals we track (RFC 6675)
    static constexpr size_t kMaxRtx = 32;           // retransmitted ranges watched for loss, per recovery
    static constexpr size_t kMaxPieces = 16;        // payload pieces per outgoing segment

    // Active open (call connect()).
    Connection(const Config &cfg, const Endpoints &ep, SegmentSink sink, Random rng);
    // Passive open, used by Listener: starts in SYN-RECEIVED.
    Connection(const Config &cfg, const PassiveOpen &po, SegmentSink sink, Random rng);
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    void set_sink(SegmentSink sink) { sink_ = std::move(sink); }

    // --- application ---
    // Sends SYN (RFC 9293 3.10.1). Only from Closed before any other use.
    bool connect(uint64_t now_us);
    // Appends to the send ring; returns bytes accepted (0 when full or after
    // shutdown_write). May transmit.
    size_t send(std::span<const uint8_t> data, uint64_t now_us);
    // Copies in-order bytes out; frees receive space and may send a window
    // update (RFC 9293 3.8.6.2.2).
    size_t recv(std::span<uint8_t> out, uint64_t now_us);
    size_t writable_bytes() const;
    size_t readable_bytes() const { return rcv_readable_; }
    // Like send() but only appends to the send queue, transmitting nothing:
    // a caller that writes a record in several pieces (header, payload)
    // calls flush() once afterwards so the pieces leave as full segments.
    size_t send_corked(std::span<const uint8_t> data);
    // Queues a reference to `n` bytes at `p` owned by the caller (ref != 0,
    // counted through Config::ref_ops) without copying, like send_corked().
    // The bytes must stay unchanged until the last reference is released.
    size_t send_ref(const uint8_t *p, size_t n, BufRef ref);
    // Transmits what send_corked() queued (what send() would have sent).
    void flush(uint64_t now_us);
    // Zero-copy read: the first in-order readable bytes as up to `max`
    // spans (received buffers, or the arena); returns the count. Their total
    // may be less than readable_bytes(). Valid until the next call into the
    // connection.
    size_t peek(std::span<const uint8_t> *out, size_t max) const { return peek(0, out, max); }
    // The same, starting `skip` readable bytes in (a reader that hands spans
    // on before consuming them).
    size_t peek(size_t skip, std::span<const uint8_t> *out, size_t max) const;
    // The same, at most two spans (kept for small control readers).
    void peek(std::span<const uint8_t> &first, std::span<const uint8_t> &second) const;
    // Frees the first `n` readable bytes (after peek()); returns the number
    // freed. Sends a window update exactly like recv() would.
    size_t consume(size_t n, uint64_t now_us);
    // True once the peer's FIN has been received in order (EOF after draining).
    bool peer_closed() const { return peer_fin_; }
    // Queues our FIN after the buffered data (RFC 9293 3.10.4).
    void shutdown_write(uint64_t now_us);
    // Sends RST and ends the connection (RFC 9293 3.10.5); event Closed/ABORTED.
    void abort(uint64_t now_us);

    // --- network ---
    // Parses (verifying the checksum against the pseudo-header) and processes.
    // A bad checksum is counted and the segment dropped.
    void on_bytes(std::span<const uint8_t> bytes, const IpAddr &src, const IpAddr &dst, uint64_t now_us);
    // Processes one parsed segment (RFC 9293 3.10.7).
    void on_segment(const Segment &seg, uint64_t now_us);

    // --- time ---
    void on_timer(uint64_t now_us);
    // Earliest deadline of any armed timer; UINT64_MAX when none.
    uint64_t next_timer_deadline() const;

    // --- observation ---
    bool poll_event(Event &ev);
    State state() const { return state_; }
    CloseReason close_reason() const { return close_reason_; }
    bool is_closed() const { return state_ == State::Closed; }
    Stats stats() const;
    uint64_t bytes_acked() const { return stats_.bytes_acked; } // payload below SND.UNA, cheaply
    const Endpoints &endpoints() const { return ep_; }
    // Negotiated parameters (valid once established).
    uint16_t send_mss() const { return eff_mss_; }
    uint8_t snd_wscale() const { return snd_wscale_; }
    // Outgoing checksums left partial: both SYNs carried checksum_trust and
    // Config::checksum_trust_use is set (see Config).
    bool omits_checksums() const { return omit_checksums_; }
    uint8_t rcv_wscale() const { return rcv_wscale_; }
    bool sack_enabled() const { return sack_ok_; }
    bool timestamps_enabled() const { return ts_ok_; }
    uint32_t snd_una() const { return snd_una_; }
    uint32_t snd_nxt() const { return snd_nxt_; }
    uint32_t rcv_nxt() const { return rcv_nxt_; }
    uint32_t iss() const { return iss_; }
    uint32_t irs() const { return irs_; }
    bool in_recovery() const { return in_recovery_; }
    // Liveness, for callers that fail over faster than the RFC 9293 3.8.3
    // retry bound (e.g. a striping session re-sending a dead leg's data on
    // other legs): RTO expirations since the last acknowledgement of new
    // data (SYN retransmissions in SYN-SENT); zero-window probes sent since
    // the peer last answered; and the current RTO (backed off, RFC 6298 5.5).
    uint32_t consecutive_rtos() const { return rto_retries_; }
    uint32_t unanswered_probes() const { return persist_unanswered_; }
    uint64_t rto_us() const { return rto_us_; }
    // RFC 6298 SRTT and RTTVAR (0 before the first sample).
    uint64_t srtt_us() const { return have_rtt_ ? srtt_us_ : 0; }
    uint64_t rttvar_us() const { return have_rtt_ ? rttvar_us_ : 0; }
    const CongestionControl &congestion() const { return *cc_; }
    const TxRecords &tx_records() const { return txr_; }
    // Pacing (contract above): bytes per second (0: not paced), and the
    // earliest time the next paced data segment may leave.
    // The controller's rate (BBR), else with Config::pacing the loss-based
    // rate (loss_based_pacing_rate()).
    uint64_t pacing_rate() const;
    // The largest burst that may leave back to back at pacing_rate() (bytes).
    uint32_t send_quantum() const;
    uint64_t next_send_us() const { return next_send_us_; }
    // RACK.min_RTT (RFC 8985 6.1), UINT64_MAX before the first sample.
    uint64_t min_rtt_us() const { return min_rtt_.get(); }

private:
    struct Interval {
        uint32_t left, right;
    };
    // A range retransmitted during SACK recovery. `mark` is SND.MAX when it
    // was (re)sent: SACKs covering data above `mark` were sent after it, so
    // enough of them arriving while the range is still a hole means the
    // retransmission itself was lost (RFC 8985 2/6.2 reasoning, on sequence
    // numbers instead of send times).
    struct RtxRange {
        uint32_t left, right, mark;
        bool lost;
    };

    void init_common();
    void negotiate(const Options &peer_syn, bool we_offered_all);
    // Input helpers.
    void input_syn_sent(const Segment &seg, uint64_t now);
    void input_synchronized(const Segment &seg, uint64_t now);
    bool acceptable(uint32_t seq, uint32_t len) const;
    bool process_ack(const Segment &seg, uint64_t now); // false: drop the rest
    // [seq, seq + len) of the segment's payload, already trimmed to the window.
    void process_data(const Segment &seg, uint32_t seq, uint32_t len, bool fin, uint64_t now);
    void on_new_ack(uint32_t ack, const Segment &seg, uint64_t now);
    void on_dup_ack(uint64_t now);
    // RFC 6675 5 step 4 / RFC 8985 6.2: enter loss recovery; `retransmit`
    // sends the first hole at once (the DupThresh path).
    void enter_recovery(uint64_t now, bool retransmit);
    // RFC 8985 6 and the rate sample (tx_records.h), then the model-based
    // controller's per-ACK update.
    void rack_and_rate(const Segment &seg, uint64_t now);
    void rack_detect(uint64_t now, uint32_t *newly_lost);
    void on_record_lost(const TxRecord &r, uint64_t now);
    // Config::pacing applies (NewReno, CUBIC; BBR paces by its own model).
    bool loss_based_paced() const;
    // send_quantum() for a pacing rate already computed (one per segment).
    uint32_t send_quantum_at(uint64_t rate) const;
    // Re-sends the lowest segment RACK marked lost; the sequence space used.
    uint32_t resend_first_lost(uint64_t now);
    CcConnState conn_state() const;
    // RFC 8985 7.2: (re)arm the probe timeout.
    void arm_tlp(uint64_t now);
    void on_tlp(uint64_t now);
    bool rack_on() const { return cfg_.rack && sack_ok_; }
    // Pacing: true when a paced data segment may leave now; else arms the
    // pacing timer.
    bool pacing_allows(uint64_t now);
    void paced(uint32_t len, uint64_t now);
    void rtt_sample(uint64_t r_us);
    void fin_acked(uint64_t now);

    // Output helpers.
    void output(uint64_t now);
    void output_sack_recovery(uint64_t now);
    enum class Tx : uint8_t { New, Timeout, Fast, Probe };
    // Sends [seq, seq + len) (and FIN); returns the sequence space used,
    // which is less when the bytes span more than kMaxPieces pieces.
    uint32_t send_data_segment(uint32_t seq, uint32_t len, bool fin, uint64_t now, Tx kind);
    // Sends from `seq` at most one MSS, not past `limit` (data, then FIN if
    // the range covers it); returns the sequence space used.
    uint32_t send_range(uint32_t seq, uint32_t limit, uint64_t now, Tx kind);
    bool update_scoreboard_blocks(const Segment &seg);
    void note_retransmit(uint32_t left, uint32_t right);
    void detect_lost_retransmits();
    bool resend_lost_retransmit(uint64_t now);
    bool send_rescue(uint64_t now);
    uint32_t sacked_in(uint32_t left, uint32_t right) const;
    void send_control(uint8_t flags, uint32_t seq, uint64_t now, bool with_options);
    void send_ack(uint64_t now) { send_control(flag::ACK, snd_nxt_, now, false); }
    void send_challenge_ack(uint64_t now);
    void send_rst(uint32_t seq, uint32_t ack, bool with_ack, uint64_t now);
    void fill_common(Segment &s, uint64_t now);
    uint16_t window_to_advertise();
    uint32_t ts_now(uint64_t now) const { return static_cast<uint32_t>(now / 1000) + ts_offset_; }

    // Timers and teardown.
    void on_rto(uint64_t now);
    void on_persist(uint64_t now);
    void on_keepalive(uint64_t now);
    void arm_rto(uint64_t now);
    void enter_time_wait(uint64_t now);
    void terminate(EventType type, CloseReason reason);
    void push_event(EventType type, CloseReason reason = CloseReason::NONE);
    void count(Drop d) { stats_.drops[static_cast<size_t>(d)]++; }

    // Sender queries.
    uint32_t data_start_seq() const { return snd_data_seq_; }
    uint32_t data_end_seq() const { return snd_data_seq_ + static_cast<uint32_t>(snd_q_.buffered()); }
    bool fin_sent() const { return fin_queued_ && seq_gt_(snd_max_, data_end_seq()); }
    static bool seq_gt_(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
    uint32_t cwnd() const;
    uint32_t sacked_above(uint32_t seq) const;
    bool is_lost(uint32_t seq) const;
    uint32_t pipe() const;
    bool is_sacked(uint32_t seq, uint32_t *run_end) const;

    Config cfg_;
    Endpoints ep_;
    SegmentSink sink_;
    Random rng_;
    std::unique_ptr<CongestionControl> cc_;
    State state_ = State::Closed;
    CloseReason close_reason_ = CloseReason::NONE;

    // Send sequence space (RFC 9293 3.3.1).
    uint32_t iss_ = 0, snd_una_ = 0, snd_nxt_ = 0, snd_max_ = 0;
    uint32_t snd_wnd_ = 0, snd_wl1_ = 0, snd_wl2_ = 0, max_snd_wnd_ = 0;
    uint32_t snd_data_seq_ = 0; // sequence number of the send queue's first byte
    SendQueue snd_q_;           // unacked + unsent bytes
    std::array<Piece, kMaxPieces> tx_pieces_{}; // the payload of the segment being handed to the sink
    bool fin_queued_ = false;

    // Receive sequence space.
    uint32_t irs_ = 0, rcv_nxt_ = 0, rcv_adv_ = 0; // rcv_adv_: right edge last advertised
    uint32_t last_ack_sent_ = 0;
    RecvQueue rcv_q_;         // unread in-order bytes, then out-of-order extents
    size_t rcv_capacity_ = 0; // nominal (Config.recv_buffer)
    size_t rcv_readable_ = 0;
    bool peer_fin_ = false;
    std::array<Interval, kMaxOooIntervals> ooo_{};
    size_t ooo_count_ = 0;
    Interval last_ooo_{0, 0}; // most recent OOO block, reported first (RFC 2018 4)

    // Negotiated options.
    uint16_t peer_mss_ = 536, eff_mss_ = 536;
    uint8_t snd_wscale_ = 0, rcv_wscale_ = 0, rcv_wscale_offer_ = 0;
    bool sack_ok_ = false, ts_ok_ = false;
    bool omit_checksums_ = false; // Config::checksum_trust_use and the peer's SYN said so
    uint32_t ts_offset_ = 0, ts_recent_ = 0;

    // RTT / RTO (RFC 6298).
    uint64_t srtt_us_ = 0, rttvar_us_ = 0, rto_us_ = 0;
    bool have_rtt_ = false;
    bool rtt_timing_ = false;
    uint32_t rtt_seq_ = 0;
    uint64_t rtt_start_us_ = 0;
    uint32_t rto_retries_ = 0;

    // Loss recovery.
    uint32_t dupacks_ = 0;
    bool in_recovery_ = false;
    uint32_t recover_ = 0;  // RFC 6582 "recover" (one past highest sent at entry)
    uint32_t high_rxt_ = 0; // RFC 6675 HighRxt
    uint32_t recovery_cwnd_ = 0; // NewReno inflated window during recovery
    std::array<Interval, kMaxScoreboard> sb_{};
    size_t sb_count_ = 0;
    std::array<RtxRange, kMaxRtx> rtx_{};
    size_t rtx_count_ = 0;
    bool rescue_used_ = false; // RFC 6675 RescueRxt: one rescue retransmission per recovery

    // Persist / keepalive.
    bool in_persist_ = false;
    uint32_t persist_backoff_ = 0;
    uint32_t persist_unanswered_ = 0;
    bool syn_retransmitted_ = false;
    uint32_t keepalive_sent_ = 0;

    // Delayed ACK.
    bool ack_now_ = false;
    uint32_t unacked_segs_ = 0;

    // RFC 5961 7 challenge ACK rate limit.
    uint64_t challenge_window_start_ = 0;
    uint32_t challenge_in_window_ = 0;

    // Timers (UINT64_MAX = disarmed).
    uint64_t t_rto_ = UINT64_MAX, t_persist_ = UINT64_MAX, t_delack_ = UINT64_MAX;
    uint64_t t_keepalive_ = UINT64_MAX, t_close_ = UINT64_MAX; // TIME-WAIT / FIN-WAIT-2
    uint64_t t_probe_ = UINT64_MAX; // rescue retransmission in SACK recovery
    uint64_t t_rack_ = UINT64_MAX;  // RACK reordering timer (RFC 8985 6.3)
    uint64_t t_tlp_ = UINT64_MAX;   // tail loss probe (RFC 8985 7.2)
    uint64_t t_pace_ = UINT64_MAX;  // the pacing rate lets the next segment go

    // Transmit records, RACK and rate samples (tx_records.h).
    TxRecords txr_;
    WindowedMin<uint64_t> min_rtt_; // RACK.min_RTT, over kMinRttWindowUs
    bool tlp_outstanding_ = false;
    uint32_t tlp_end_seq_ = 0;      // RFC 8985 7.3 TLP.end_seq
    uint64_t next_send_us_ = 0;     // pacing
    bool cwnd_limited_ = false, cwnd_limited_round_ = false; // C.is_cwnd_limited
    uint64_t cwnd_round_end_ = 0;
    bool window_full_ = false, window_full_round_ = false; // cwnd stopped a full segment (cwnd_may_grow)
    uint32_t flight_peak_ = 0, flight_peak_round_ = 0; // most in flight, this and the last round
    bool cwnd_may_grow() const;

    std::array<Event, 8> events_{};
    size_t ev_head_ = 0, ev_count_ = 0;
    Stats stats_;
};

} // namespace millipede::tcp

// BBR congestion control, version 3 (draft-ietf-ccwg-bbr): a model of the
// path (bottleneck bandwidth from delivery-rate samples, round-trip
// propagation time from a min-RTT filter, and how much data in flight the
// path has shown it can take without excessive loss), and a state machine
// (Startup, Drain, ProbeBW DOWN / CRUISE / REFILL / UP, ProbeRTT) that
// sets the pacing rate and cwnd from that model. Section numbers in the
// comments are the draft's.
//
// One deliberate difference from the draft (BbrParams::shortterm_on_any_loss
// restores it): the short-term model (BBR.bw_shortterm and
// BBR.inflight_shortterm, 5.5.10.3) is cut only after a round trip whose
// loss rate exceeded BBR.LossThresh, not after any round with a loss. The
// draft's response to a round with X % loss is to slow down by about X %
// until the next bandwidth probe (5.3.3, "Design Considerations for
// Choosing Constant Parameters"),
// which on a path with random (non-congestive) loss, the WAN legs this
// library is for, keeps the rate well below the bottleneck; the long-term
// bound (BBR.inflight_longterm) still reacts to loss above the threshold
// while probing, which is what keeps queues and loss bounded when the loss
// is congestive.
//
// Contract: as CongestionControl (congestion.h): owned by one connection,
// single-threaded, no allocation, time is the caller's clock in
// microseconds, sizes in bytes, rates in bytes per second.
#pragma once

#include <cstdint>
#include <limits>

#include "millipede/tcp/congestion.h"
#include "millipede/net/splitmix.h"
#include "millipede/tcp/windowed_filter.h"

namespace millipede::tcp {

struct BbrParams {
    double loss_thresh = 0.02;            // BBR.LossThresh (2.7)
    double beta = 0.7;                    // BBR.Beta
    double headroom = 0.15;               // BBR.Headroom
    uint32_t min_pipe_cwnd_segments = 4;  // BBR.MinPipeCwnd
    double startup_pacing_gain = 2.77;    // BBR.StartupPacingGain (4 ln 2)
    double default_cwnd_gain = 2.0;       // BBR.DefaultCwndGain
    double drain_pacing_gain = 0.5;       // BBR.DrainPacingGain
    double probe_rtt_cwnd_gain = 0.5;     // BBR.ProbeRTTCwndGain
    double pacing_margin = 0.01;          // BBR.PacingMarginPercent / 100
    uint64_t min_rtt_filter_len_us = 10'000'000;  // BBR.MinRTTFilterLen
    uint64_t probe_rtt_interval_us = 5'000'000;   // BBR.ProbeRTTInterval
    uint64_t probe_rtt_duration_us = 200'000;     // BBR.ProbeRTTDuration
    uint32_t extra_acked_filter_len = 10;         // BBR.ExtraAckedFilterLen (round trips)
    uint32_t startup_full_loss_count = 6;         // BBRStartupFullLossCnt (5.3.1.3)
    // The draft's response: cut the short-term model after any round with
    // a loss (see the header comment).
    bool shortterm_on_any_loss = false;
};

class BbrCC final : public CongestionControl {
  public:
    enum class Mode : uint8_t { Startup, Drain, ProbeBwDown, ProbeBwCruise, ProbeBwRefill, ProbeBwUp, ProbeRtt };
    // 2.9 BBR.ack_phase.
    enum class AckPhase : uint8_t { Init, Refilling, ProbeStarting, ProbeFeedback, ProbeStopping };
    static constexpr double kInfiniteBw = std::numeric_limits<double>::infinity();
    static constexpr uint64_t kInfinite = UINT64_MAX;

    explicit BbrCC(const BbrParams &p = BbrParams{}) : p_(p) {}

    void init(uint32_t mss, uint32_t initial_cwnd_segments, uint64_t now_us) override;
    // Not used: BBR reads every ACK through on_ack_sample().
    void on_ack(uint32_t, uint32_t, uint64_t, uint64_t) override {}
    // 5.6.4.4: entering fast recovery saves the cwnd (and the model, for an
    // undo); BBR keeps computing cwnd from its model during recovery.
    void on_congestion_event(uint32_t flight_bytes, uint64_t now_us) override;
    // 5.6.4.4: RTO: cwnd allows one segment, then grows by what is ACKed.
    void on_rto(uint32_t flight_bytes, uint64_t now_us) override;
    // 5.6.4.4 RestoreCwnd().
    void on_recovery_exit(uint64_t now_us) override;
    uint32_t cwnd() const override { return cwnd_; }
    uint32_t ssthresh() const override { return UINT32_MAX; } // BBR has none
    const char *name() const override { return "bbr"; }

    bool model_based() const override { return true; }
    bool on_ack_sample(const RateSample &rs, const CcConnState &c, uint64_t now_us) override;
    void on_packet_lost(const LostPacket &p, const CcConnState &c, uint64_t now_us) override;
    void on_transmit(const CcConnState &c, uint64_t now_us) override;
    uint64_t pacing_rate() const override { return static_cast<uint64_t>(pacing_rate_); }
    uint32_t send_quantum() const override { return send_quantum_; }
    void seed(uint64_t s) override { rng_ = s ? s : 1; }

    // --- observation (tests, telemetry) ---
    Mode mode() const { return mode_; }
    static const char *mode_name(Mode m);
    double max_bw() const { return max_bw_.get(); }   // BBR.max_bw
    double bw() const { return bw_; }                 // BBR.bw
    double bw_shortterm() const { return bw_shortterm_; }
    uint64_t min_rtt_us() const { return min_rtt_us_; } // kInfinite before the first sample
    uint64_t bdp() const { return bdp_; }
    uint64_t inflight_longterm() const { return inflight_longterm_; } // kInfinite: not set
    uint64_t inflight_shortterm() const { return inflight_shortterm_; }
    uint64_t max_inflight() const { return max_inflight_; }
    uint64_t extra_acked() const { return extra_acked_; }
    uint64_t round_count() const { return round_count_; }
    bool full_bw_reached() const { return full_bw_reached_; }
    double pacing_gain() const { return pacing_gain_; }
    double cwnd_gain() const { return cwnd_gain_; }
    AckPhase ack_phase() const { return ack_phase_; }
    uint64_t cycle_count() const { return cycle_count_; }
    const BbrParams &params() const { return p_; }

  private:
    // 5.2.3 per-ACK steps.
    void update_latest_delivery_signals();
    void update_congestion_signals();
    void update_max_bw();
    void update_round();
    void start_round() { next_round_delivered_ = c_.delivered; }
    void update_ack_aggregation();
    void check_full_bw_reached();
    void check_startup_done();
    void check_startup_high_loss();
    void check_drain_done();
    void update_probe_bw_cycle_phase();
    void update_min_rtt();
    void check_probe_rtt();
    void advance_latest_delivery_signals();
    void bound_bw_for_model();
    void set_pacing_rate_with_gain(double gain);
    void set_send_quantum();
    void set_cwnd();

    // 5.3 states.
    void enter_startup();
    void enter_drain();
    void enter_probe_bw();
    void start_probe_bw_down();
    void start_probe_bw_cruise() { mode_ = Mode::ProbeBwCruise; }
    void start_probe_bw_refill();
    void start_probe_bw_up();
    void enter_probe_rtt();
    void handle_probe_rtt();
    void check_probe_rtt_done();
    void exit_probe_rtt();
    bool is_in_probe_bw() const;
    bool is_probing_bw() const;
    bool is_time_to_probe_bw();
    bool is_time_to_cruise() const;
    bool is_time_to_go_down();
    bool is_reno_coexistence_probe_time() const;
    void pick_probe_wait();
    bool adapt_long_term_model();
    void raise_inflight_longterm_slope();
    void probe_inflight_longterm_upward();
    bool is_inflight_too_high(uint64_t lost, uint32_t tx_in_flight) const;
    void handle_inflight_too_high(bool app_limited, uint64_t tx_in_flight);
    void note_loss();
    void save_state_upon_loss();
    void adapt_lower_bounds_from_congestion();
    void reset_congestion_signals();
    void reset_short_term_model();
    void reset_full_bw();

    // Model quantities (5.6.4.2), bytes.
    uint64_t bdp_multiple(double bw, double gain) const;
    uint64_t quantization_budget(uint64_t inflight_cap) const;
    uint64_t inflight(double bw, double gain) const { return quantization_budget(bdp_multiple(bw, gain)); }
    uint64_t inflight_with_headroom() const;
    uint64_t target_inflight() const;
    uint64_t probe_rtt_cwnd() const;
    void save_cwnd();
    void restore_cwnd();
    uint64_t min_pipe_cwnd() const { return uint64_t(p_.min_pipe_cwnd_segments) * mss_; }
    double random_unit(); // uniform in [0, 1)

    BbrParams p_;
    uint64_t rng_ = net::kSplitMixGamma;
    uint64_t now_ = 0;
    RateSample rs_{};
    CcConnState c_{};
    bool in_loss_recovery_ = false;
    bool mark_app_limited_ = false;

    uint32_t mss_ = 536;
    uint64_t initial_cwnd_ = 0;
    uint32_t cwnd_ = 0;
    double pacing_rate_ = 0;
    uint32_t send_quantum_ = 0;

    Mode mode_ = Mode::Startup;
    double pacing_gain_ = 1, cwnd_gain_ = 2;

    // Bandwidth (5.5.2 - 5.5.6, 5.5.10).
    TwoCycleMaxFilter max_bw_;
    uint64_t cycle_count_ = 0;
    double bw_ = 0, bw_shortterm_ = kInfiniteBw, bw_latest_ = 0;
    uint64_t inflight_latest_ = 0, inflight_shortterm_ = kInfinite, inflight_longterm_ = kInfinite;

    // Round trips (5.5.1).
    uint64_t next_round_delivered_ = 0, round_count_ = 0;
    bool round_start_ = false;

    // Startup (5.3.1).
    double full_bw_ = 0;
    uint32_t full_bw_count_ = 0;
    bool full_bw_now_ = false, full_bw_reached_ = false;
    uint32_t loss_events_in_round_ = 0;
    uint64_t drain_start_round_ = 0;

    // ProbeBW (5.3.3).
    AckPhase ack_phase_ = AckPhase::Init;
    uint64_t cycle_stamp_ = 0, bw_probe_wait_us_ = 0;
    uint64_t rounds_since_probe_up_ = 0;
    uint64_t probe_up_acked_per_inc_ = kInfinite, bw_probe_up_acked_ = 0;
    uint32_t bw_probe_up_rounds_ = 0;
    bool is_bw_probe_sample_ = false, prev_probe_too_high_ = false, prev_probe_precautionary_ = false;

    // Loss (5.5.10).
    bool is_loss_in_round_ = false, loss_round_start_ = false;
    uint64_t loss_round_delivered_ = 0;
    // Loss rate per round trip (the header comment): lost and delivered in
    // the round so far, and in the last complete one.
    uint64_t round_lost_ = 0, round_delivered_mark_ = 0;
    uint64_t last_round_lost_ = 0, last_round_delivered_ = 0;
    uint64_t recovery_start_round_ = 0;

    // min_rtt and ProbeRTT (5.3.4, 5.5.7).
    uint64_t min_rtt_us_ = kInfinite, min_rtt_stamp_ = 0;
    uint64_t probe_rtt_min_delay_ = kInfinite, probe_rtt_min_stamp_ = 0;
    uint64_t probe_rtt_done_stamp_ = 0;
    bool probe_rtt_round_done_ = false, probe_rtt_expired_ = false, idle_restart_ = false;
    uint64_t prior_cwnd_ = 0;

    // Undo (5.5.11): saved at loss, for a later spurious-recovery undo.
    Mode undo_state_ = Mode::Startup;
    bool undo_state_set_ = false;
    double undo_bw_shortterm_ = 0;
    uint64_t undo_inflight_shortterm_ = 0, undo_inflight_longterm_ = 0;

    // ACK aggregation (5.5.9) and quantization (5.5.8, 5.6.4.2).
    uint64_t bdp_ = 0, extra_acked_ = 0, max_inflight_ = 0, offload_budget_ = 0;
    uint64_t extra_acked_interval_start_ = 0, extra_acked_delivered_ = 0;
    WindowedMax<uint64_t> extra_acked_filter_;
};

} // namespace millipede::tcp

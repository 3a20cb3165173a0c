// BBRv3 (draft-ietf-ccwg-bbr). Function names follow the draft's
// pseudocode (OnInit -> init, UpdateOnACK -> on_ack_sample, ...); each
// comment names the section. Times are microseconds, volumes bytes, rates
// bytes per second.
#include "millipede/tcp/bbr.h"

#include <algorithm>
#include <cmath>

namespace millipede::tcp {

const char *BbrCC::mode_name(Mode m) {
    switch (m) {
    case Mode::Startup: return "startup";
    case Mode::Drain: return "drain";
    case Mode::ProbeBwDown: return "probe_bw_down";
    case Mode::ProbeBwCruise: return "probe_bw_cruise";
    case Mode::ProbeBwRefill: return "probe_bw_refill";
    case Mode::ProbeBwUp: return "probe_bw_up";
    case Mode::ProbeRtt: return "probe_rtt";
    }
    return "?";
}

double BbrCC::random_unit() {
    const uint64_t z = net::splitmix64_next(rng_);
    return double(z >> 11) * (1.0 / 9007199254740992.0);
}

// ---------------------------------------------------------------- 5.2.1

void BbrCC::init(uint32_t mss, uint32_t iw, uint64_t now) {
    mss_ = mss;
    // The transport's initial window (5.6.4.1): RFC 6928 for TCP.
    initial_cwnd_ = uint64_t(iw) * mss;
    if (iw == 10) initial_cwnd_ = std::min<uint64_t>(10ull * mss, std::max<uint64_t>(2ull * mss, 14600));
    cwnd_ = static_cast<uint32_t>(initial_cwnd_);
    now_ = now;
    rs_ = RateSample{};
    c_ = CcConnState{};
    c_.mss = mss;
    in_loss_recovery_ = false;
    max_bw_.reset();
    cycle_count_ = 0;
    min_rtt_us_ = kInfinite; // no C.srtt at initialization
    min_rtt_stamp_ = now;
    probe_rtt_min_delay_ = kInfinite;
    probe_rtt_min_stamp_ = now;
    probe_rtt_done_stamp_ = 0;
    probe_rtt_round_done_ = false;
    prior_cwnd_ = 0;
    undo_state_set_ = false;
    undo_bw_shortterm_ = 0;
    undo_inflight_shortterm_ = undo_inflight_longterm_ = 0;
    idle_restart_ = false;
    extra_acked_interval_start_ = now;
    extra_acked_delivered_ = 0;
    extra_acked_filter_.reset(0, 0);
    extra_acked_ = 0;
    full_bw_reached_ = false;
    inflight_longterm_ = kInfinite;
    probe_up_acked_per_inc_ = kInfinite;
    bw_probe_up_acked_ = 0;
    bw_probe_up_rounds_ = 0;
    rounds_since_probe_up_ = 0;
    is_bw_probe_sample_ = false;
    prev_probe_too_high_ = prev_probe_precautionary_ = false;
    ack_phase_ = AckPhase::Init;
    cycle_stamp_ = 0;
    bw_probe_wait_us_ = 0;
    loss_round_delivered_ = 0;
    loss_round_start_ = false;
    round_lost_ = round_delivered_mark_ = 0;
    last_round_lost_ = last_round_delivered_ = 0;
    loss_events_in_round_ = 0;
    recovery_start_round_ = 0;
    reset_congestion_signals();
    reset_short_term_model();
    next_round_delivered_ = 0; // InitRoundCounting()
    round_start_ = false;
    round_count_ = 0;
    reset_full_bw();
    bw_ = 0;
    bdp_ = 0;
    max_inflight_ = 0;
    // InitPacingRate() (5.6.2): no C.srtt yet, so the nominal 1 ms.
    pacing_rate_ = p_.startup_pacing_gain * double(initial_cwnd_) * 1e3;
    set_send_quantum();
    enter_startup();
}

// ---------------------------------------------------------------- 5.2.3

bool BbrCC::on_ack_sample(const RateSample &rs, const CcConnState &c, uint64_t now) {
    rs_ = rs;
    c_ = c;
    now_ = now;
    mark_app_limited_ = false;
    if (c.in_recovery && !in_loss_recovery_) recovery_start_round_ = round_count_;
    in_loss_recovery_ = c.in_recovery;
    if (rs.newly_lost > 0 && loss_events_in_round_ < 0xffff) loss_events_in_round_++;
    // UpdateModelAndState()
    update_latest_delivery_signals();
    update_congestion_signals();
    update_ack_aggregation();
    check_full_bw_reached();
    check_startup_done();
    check_drain_done();
    update_probe_bw_cycle_phase();
    update_min_rtt();
    check_probe_rtt();
    advance_latest_delivery_signals();
    bound_bw_for_model();
    // UpdateControlParameters()
    set_pacing_rate_with_gain(pacing_gain_);
    set_send_quantum();
    set_cwnd();
    return mark_app_limited_;
}

// ---------------------------------------------------------------- 5.2.2, 5.4

void BbrCC::on_transmit(const CcConnState &c, uint64_t now) {
    // HandleRestartFromIdle()
    if (c.inflight != 0 || !c.app_limited) return;
    c_ = c;
    now_ = now;
    idle_restart_ = true;
    extra_acked_interval_start_ = now;
    if (is_in_probe_bw()) set_pacing_rate_with_gain(1);
    else if (mode_ == Mode::ProbeRtt) check_probe_rtt_done();
}

// ---------------------------------------------------------------- 5.5.1, 5.5.5

void BbrCC::update_round() {
    if (rs_.has_data && rs_.prior_delivered >= next_round_delivered_) {
        start_round();
        round_count_++;
        rounds_since_probe_up_++;
        round_start_ = true;
    } else {
        round_start_ = false;
    }
}

void BbrCC::update_max_bw() {
    update_round();
    // 5.5.4: application-limited samples count only when they raise the
    // estimate.
    if (rs_.delivery_rate > 0 && (rs_.delivery_rate >= max_bw_.get() || !rs_.is_app_limited))
        max_bw_.update(rs_.delivery_rate);
}

// ---------------------------------------------------------------- 5.5.10.3

void BbrCC::update_latest_delivery_signals() {
    loss_round_start_ = false;
    bw_latest_ = std::max(bw_latest_, rs_.delivery_rate);
    inflight_latest_ = std::max(inflight_latest_, rs_.delivered);
    if (rs_.has_data && rs_.prior_delivered >= loss_round_delivered_) {
        loss_round_delivered_ = c_.delivered;
        loss_round_start_ = true;
    }
}

void BbrCC::advance_latest_delivery_signals() {
    if (loss_round_start_) {
        bw_latest_ = rs_.delivery_rate;
        inflight_latest_ = rs_.delivered;
    }
}

void BbrCC::reset_congestion_signals() {
    is_loss_in_round_ = false;
    bw_latest_ = 0;
    inflight_latest_ = 0;
}

void BbrCC::update_congestion_signals() {
    update_max_bw();
    if (!loss_round_start_) return; // wait until the end of the round trip
    // The loss rate of the round trip that just ended (header comment).
    last_round_lost_ = round_lost_;
    last_round_delivered_ = c_.delivered - std::min(c_.delivered, round_delivered_mark_);
    round_lost_ = 0;
    round_delivered_mark_ = c_.delivered;
    adapt_lower_bounds_from_congestion(); // once per round
    is_loss_in_round_ = false;
}

void BbrCC::adapt_lower_bounds_from_congestion() {
    if (is_probing_bw()) return;
    if (!is_loss_in_round_) return;
    if (!p_.shortterm_on_any_loss) {
        const double total = double(last_round_lost_) + double(last_round_delivered_);
        if (total <= 0 || double(last_round_lost_) <= p_.loss_thresh * total) return;
    }
    // InitLowerBounds(): the first congestion episode of this cycle.
    if (bw_shortterm_ == kInfiniteBw) bw_shortterm_ = max_bw_.get();
    if (inflight_shortterm_ == kInfinite) inflight_shortterm_ = cwnd_;
    // LossLowerBounds()
    bw_shortterm_ = std::max(bw_latest_, p_.beta * bw_shortterm_);
    inflight_shortterm_ = std::max<uint64_t>(inflight_latest_, static_cast<uint64_t>(p_.beta * double(inflight_shortterm_)));
}

void BbrCC::reset_short_term_model() {
    bw_shortterm_ = kInfiniteBw;
    inflight_shortterm_ = kInfinite;
}

void BbrCC::bound_bw_for_model() {
    bw_ = std::min(max_bw_.get(), bw_shortterm_);
    if (min_rtt_us_ != kInfinite) bdp_ = static_cast<uint64_t>(bw_ * double(min_rtt_us_) / 1e6);
}

// ---------------------------------------------------------------- 5.5.9

void BbrCC::update_ack_aggregation() {
    const uint64_t interval = now_ - std::min(now_, extra_acked_interval_start_);
    uint64_t expected = static_cast<uint64_t>(bw_ * double(interval) / 1e6);
    // The ACK rate fell below the expected rate: a new interval.
    if (extra_acked_delivered_ <= expected) {
        extra_acked_delivered_ = 0;
        extra_acked_interval_start_ = now_;
        expected = 0;
    }
    extra_acked_delivered_ += rs_.newly_acked;
    uint64_t extra = extra_acked_delivered_ > expected ? extra_acked_delivered_ - expected : 0;
    extra = std::min<uint64_t>(extra, cwnd_);
    const uint64_t len = full_bw_reached_ ? p_.extra_acked_filter_len : 1; // Startup: 1 round
    extra_acked_ = extra_acked_filter_.update(extra, round_count_, len);
}

// ---------------------------------------------------------------- 5.3.1

void BbrCC::enter_startup() {
    mode_ = Mode::Startup;
    pacing_gain_ = p_.startup_pacing_gain;
    cwnd_gain_ = p_.default_cwnd_gain;
}

void BbrCC::reset_full_bw() {
    full_bw_ = 0;
    full_bw_count_ = 0;
    full_bw_now_ = false;
}

void BbrCC::check_full_bw_reached() {
    // 5.3.1.2: three non-app-limited rounds without 25 % growth.
    if (full_bw_now_ || !round_start_ || rs_.is_app_limited) return;
    if (rs_.delivery_rate >= full_bw_ * 1.25) {
        reset_full_bw(); // still growing
        full_bw_ = rs_.delivery_rate;
        return;
    }
    full_bw_count_++;
    full_bw_now_ = full_bw_count_ >= 3;
    if (full_bw_now_) full_bw_reached_ = true;
}

void BbrCC::check_startup_done() {
    check_startup_high_loss();
    if (mode_ == Mode::Startup && full_bw_reached_) enter_drain();
}

void BbrCC::check_startup_high_loss() {
    // 5.3.1.3: at the end of a round trip in Startup that was spent in fast
    // recovery, with a loss rate above BBR.LossThresh and at least
    // BBRStartupFullLossCnt loss events (without SACK: any loss in recovery).
    if (!loss_round_start_) return;
    const uint32_t events = loss_events_in_round_;
    loss_events_in_round_ = 0;
    if (mode_ != Mode::Startup || full_bw_reached_ || !in_loss_recovery_) return;
    bool too_high;
    if (c_.has_sack) {
        const double total = double(last_round_lost_) + double(last_round_delivered_);
        too_high = round_count_ >= recovery_start_round_ + 1 && events >= p_.startup_full_loss_count && total > 0 &&
                   double(last_round_lost_) > p_.loss_thresh * total;
    } else {
        too_high = last_round_lost_ > 0;
    }
    if (!too_high) return;
    undo_state_ = Mode::Startup;
    undo_state_set_ = true;
    full_bw_reached_ = true;
    inflight_longterm_ = std::max(bdp_, inflight_latest_);
}

// ---------------------------------------------------------------- 5.3.2

void BbrCC::enter_drain() {
    mode_ = Mode::Drain;
    pacing_gain_ = p_.drain_pacing_gain; // pace slowly
    cwnd_gain_ = p_.default_cwnd_gain;   // maintain cwnd
    drain_start_round_ = round_count_;
}

void BbrCC::check_drain_done() {
    if (mode_ == Mode::Drain && (c_.inflight <= inflight(bw_, 1.0) || round_count_ > drain_start_round_ + 3))
        enter_probe_bw();
}

// ---------------------------------------------------------------- 5.3.3

void BbrCC::enter_probe_bw() {
    cwnd_gain_ = p_.default_cwnd_gain;
    start_probe_bw_down();
}

void BbrCC::start_probe_bw_down() {
    reset_congestion_signals();
    probe_up_acked_per_inc_ = kInfinite; // not growing BBR.inflight_longterm
    pick_probe_wait();
    cycle_stamp_ = now_; // start the wall clock
    ack_phase_ = AckPhase::ProbeStopping;
    start_round();
    mode_ = Mode::ProbeBwDown;
    pacing_gain_ = 0.90; // 5.3.3.1
    cwnd_gain_ = p_.default_cwnd_gain;
}

void BbrCC::start_probe_bw_refill() {
    reset_short_term_model();
    bw_probe_up_rounds_ = 0;
    bw_probe_up_acked_ = 0;
    prev_probe_precautionary_ = false;
    ack_phase_ = AckPhase::Refilling;
    start_round();
    mode_ = Mode::ProbeBwRefill;
    pacing_gain_ = 1.0; // 5.3.3.3
    cwnd_gain_ = p_.default_cwnd_gain;
}

void BbrCC::start_probe_bw_up() {
    ack_phase_ = AckPhase::ProbeStarting;
    start_round();
    reset_full_bw();
    full_bw_ = rs_.delivery_rate;
    mode_ = Mode::ProbeBwUp;
    pacing_gain_ = 1.25; // 5.3.3.4
    cwnd_gain_ = 2.25;
    raise_inflight_longterm_slope();
}

bool BbrCC::is_in_probe_bw() const {
    return mode_ == Mode::ProbeBwDown || mode_ == Mode::ProbeBwCruise || mode_ == Mode::ProbeBwRefill ||
           mode_ == Mode::ProbeBwUp;
}

bool BbrCC::is_probing_bw() const {
    return mode_ == Mode::Startup || mode_ == Mode::ProbeBwRefill || mode_ == Mode::ProbeBwUp;
}

void BbrCC::update_probe_bw_cycle_phase() {
    if (!full_bw_reached_) return; // only steady-state behaviour here
    if (adapt_long_term_model()) return; // already decided a transition
    if (!is_in_probe_bw()) return;
    switch (mode_) {
    case Mode::ProbeBwDown:
        if (is_time_to_probe_bw()) return;
        if (is_time_to_cruise()) start_probe_bw_cruise();
        break;
    case Mode::ProbeBwCruise:
        is_time_to_probe_bw();
        break;
    case Mode::ProbeBwRefill:
        // After one round of REFILL, start UP.
        if (round_start_) {
            is_bw_probe_sample_ = true;
            start_probe_bw_up();
        }
        break;
    case Mode::ProbeBwUp:
        if (is_time_to_go_down()) {
            prev_probe_too_high_ = false; // no high loss (yet)
            start_probe_bw_down();
        }
        break;
    default:
        break;
    }
}

bool BbrCC::is_time_to_probe_bw() {
    if (now_ > cycle_stamp_ + bw_probe_wait_us_ || is_reno_coexistence_probe_time()) {
        start_probe_bw_refill();
        return true;
    }
    return false;
}

void BbrCC::pick_probe_wait() {
    // A random round-trip bound (0 or 1 extra rounds) and wall-clock bound
    // of 2-3 s, for mixing and fairness convergence.
    rounds_since_probe_up_ = random_unit() < 0.5 ? 0 : 1;
    bw_probe_wait_us_ = 2'000'000 + static_cast<uint64_t>(random_unit() * 1'000'000);
}

bool BbrCC::is_reno_coexistence_probe_time() const {
    const uint64_t reno_rounds = target_inflight() / mss_; // TargetInflight() in packets
    return rounds_since_probe_up_ >= std::min<uint64_t>(reno_rounds, 63);
}

bool BbrCC::is_time_to_cruise() const {
    if (c_.inflight > inflight_with_headroom()) return false; // not enough headroom
    if (c_.inflight > inflight(max_bw_.get(), 1.0)) return false; // above the estimated BDP
    return true;
}

bool BbrCC::is_time_to_go_down() {
    // Precautionary bandwidth probing: deceleration.
    if (prev_probe_too_high_ && c_.inflight >= inflight_longterm_) {
        prev_probe_precautionary_ = true;
        return true;
    }
    if (c_.is_cwnd_limited && cwnd_ >= inflight_longterm_) {
        reset_full_bw(); // bw is limited by BBR.inflight_longterm
        full_bw_ = rs_.delivery_rate;
    } else if (full_bw_now_) {
        return true; // the path's bandwidth is fully used
    }
    return false;
}

uint64_t BbrCC::inflight_with_headroom() const {
    if (inflight_longterm_ == kInfinite) return kInfinite;
    const uint64_t headroom =
        std::max<uint64_t>(mss_, static_cast<uint64_t>(p_.headroom * double(inflight_longterm_)));
    return std::max(inflight_longterm_ > headroom ? inflight_longterm_ - headroom : 0, min_pipe_cwnd());
}

void BbrCC::raise_inflight_longterm_slope() {
    const uint64_t growth_this_round = uint64_t(1) << bw_probe_up_rounds_;
    bw_probe_up_rounds_ = std::min<uint32_t>(bw_probe_up_rounds_ + 1, 30);
    probe_up_acked_per_inc_ = std::max<uint64_t>(cwnd_ / growth_this_round, mss_);
}

void BbrCC::probe_inflight_longterm_upward() {
    if (!c_.is_cwnd_limited || cwnd_ < inflight_longterm_) return; // not using all of it: do not grow it
    bw_probe_up_acked_ += rs_.newly_acked;
    if (bw_probe_up_acked_ >= probe_up_acked_per_inc_) {
        const uint64_t delta = bw_probe_up_acked_ / probe_up_acked_per_inc_;
        bw_probe_up_acked_ -= delta * probe_up_acked_per_inc_;
        inflight_longterm_ += delta * mss_;
    }
    if (round_start_) raise_inflight_longterm_slope();
}

bool BbrCC::adapt_long_term_model() {
    if (ack_phase_ == AckPhase::ProbeStarting && round_start_) ack_phase_ = AckPhase::ProbeFeedback; // probing samples arrive
    if (ack_phase_ == AckPhase::ProbeStopping && round_start_) {
        // The end of the samples from the bandwidth probe.
        is_bw_probe_sample_ = false;
        ack_phase_ = AckPhase::Init;
        if (is_in_probe_bw() && !rs_.is_app_limited) {
            cycle_count_++; // AdvanceMaxBwFilter()
            max_bw_.advance();
        }
        // Precautionary bandwidth probing: acceleration.
        if (is_in_probe_bw() && prev_probe_precautionary_ && !prev_probe_too_high_) {
            start_probe_bw_refill();
            return true;
        }
    }
    if (!is_inflight_too_high(rs_.lost, rs_.tx_in_flight)) {
        // The loss rate is safe: adjust the upper bound upward.
        if (inflight_longterm_ == kInfinite) return false; // nothing to raise
        if (rs_.tx_in_flight > inflight_longterm_) inflight_longterm_ = rs_.tx_in_flight;
        if (mode_ == Mode::ProbeBwUp) probe_inflight_longterm_upward();
    }
    return false;
}

// ---------------------------------------------------------------- 5.5.10.2

bool BbrCC::is_inflight_too_high(uint64_t lost, uint32_t tx_in_flight) const {
    return double(lost) > double(tx_in_flight) * p_.loss_thresh || (lost > 0 && !c_.has_sack);
}

void BbrCC::handle_inflight_too_high(bool app_limited, uint64_t tx_in_flight) {
    prev_probe_too_high_ = true;
    is_bw_probe_sample_ = false; // react once per bandwidth probe
    if (!app_limited)
        inflight_longterm_ = std::max<uint64_t>(tx_in_flight, static_cast<uint64_t>(double(target_inflight()) * p_.beta));
    if (mode_ == Mode::ProbeBwUp) {
        undo_state_ = Mode::ProbeBwUp;
        undo_state_set_ = true;
        start_probe_bw_down();
    }
}

void BbrCC::note_loss() {
    if (!is_loss_in_round_) { // the first loss of this round trip
        loss_round_delivered_ = c_.delivered;
        save_state_upon_loss();
    }
    is_loss_in_round_ = true;
}

void BbrCC::on_packet_lost(const LostPacket &p, const CcConnState &c, uint64_t now) {
    // HandleLostPacket(P)
    c_ = c;
    now_ = now;
    round_lost_ += p.size;
    note_loss();
    if (!is_bw_probe_sample_) return; // not a packet sent while probing bandwidth
    const uint32_t tx_in_flight = p.tx_in_flight;
    const uint64_t lost = c.lost - std::min(c.lost, p.lost_at_send); // lost since it was sent (itself included)
    if (!is_inflight_too_high(lost, tx_in_flight)) return;
    // InflightAtLoss(P): where, within P, the loss rate crossed the
    // threshold (P may be a burst of several segments).
    const double size = p.size;
    const double inflight_prev = std::max(0.0, double(tx_in_flight) - size);
    const double lost_prev = std::max(0.0, double(lost) - size);
    const double lost_prefix = (p_.loss_thresh * inflight_prev - lost_prev) / (1 - p_.loss_thresh);
    const double at_loss = std::max(0.0, inflight_prev + lost_prefix);
    handle_inflight_too_high(p.is_app_limited, static_cast<uint64_t>(at_loss));
}

void BbrCC::save_state_upon_loss() {
    save_cwnd();
    undo_state_set_ = false;
    undo_bw_shortterm_ = bw_shortterm_;
    undo_inflight_shortterm_ = inflight_shortterm_;
    undo_inflight_longterm_ = inflight_longterm_;
}

// ---------------------------------------------------------------- 5.3.4, 5.5.7

void BbrCC::update_min_rtt() {
    probe_rtt_expired_ = now_ > probe_rtt_min_stamp_ + p_.probe_rtt_interval_us;
    if (rs_.rtt_us >= 0 && (uint64_t(rs_.rtt_us) < probe_rtt_min_delay_ || probe_rtt_expired_)) {
        probe_rtt_min_delay_ = uint64_t(rs_.rtt_us);
        probe_rtt_min_stamp_ = now_;
    }
    const bool min_rtt_expired = now_ > min_rtt_stamp_ + p_.min_rtt_filter_len_us;
    if (probe_rtt_min_delay_ < min_rtt_us_ || min_rtt_expired) {
        min_rtt_us_ = probe_rtt_min_delay_;
        min_rtt_stamp_ = probe_rtt_min_stamp_;
    }
}

void BbrCC::check_probe_rtt() {
    if (mode_ != Mode::ProbeRtt && probe_rtt_expired_ && !idle_restart_) {
        enter_probe_rtt();
        save_cwnd();
        probe_rtt_done_stamp_ = 0;
        ack_phase_ = AckPhase::ProbeStopping;
        start_round();
    }
    if (mode_ == Mode::ProbeRtt) handle_probe_rtt();
    if (rs_.delivered > 0) idle_restart_ = false;
}

void BbrCC::enter_probe_rtt() {
    mode_ = Mode::ProbeRtt;
    pacing_gain_ = 1;
    cwnd_gain_ = p_.probe_rtt_cwnd_gain;
}

void BbrCC::handle_probe_rtt() {
    mark_app_limited_ = true; // ignore the low-rate samples of ProbeRTT
    if (probe_rtt_done_stamp_ == 0 && c_.inflight <= probe_rtt_cwnd()) {
        // At least ProbeRTTDuration, and at least one round trip.
        probe_rtt_done_stamp_ = now_ + p_.probe_rtt_duration_us;
        probe_rtt_round_done_ = false;
        start_round();
    } else if (probe_rtt_done_stamp_ != 0) {
        if (round_start_) probe_rtt_round_done_ = true;
        if (probe_rtt_round_done_) check_probe_rtt_done();
    }
}

void BbrCC::check_probe_rtt_done() {
    if (probe_rtt_done_stamp_ != 0 && now_ > probe_rtt_done_stamp_) {
        probe_rtt_min_stamp_ = now_; // the next ProbeRTT
        restore_cwnd();
        exit_probe_rtt();
    }
}

void BbrCC::exit_probe_rtt() {
    reset_short_term_model();
    if (full_bw_reached_) {
        start_probe_bw_down();
        start_probe_bw_cruise(); // inflight is already below the BDP
    } else {
        enter_startup();
    }
}

// ---------------------------------------------------------------- 5.6

void BbrCC::set_pacing_rate_with_gain(double gain) {
    const double rate = gain * bw_ * (1.0 - p_.pacing_margin);
    if (full_bw_reached_ || rate > pacing_rate_) pacing_rate_ = rate;
}

void BbrCC::set_send_quantum() {
    double q = pacing_rate_ / 1000.0; // 1 ms worth
    q = std::min(q, 64.0 * 1024);
    q = std::max(q, 2.0 * mss_);
    send_quantum_ = static_cast<uint32_t>(q);
    offload_budget_ = 3ull * send_quantum_; // 5.5.8, TCP: qdisc, TSO engine, receiver's GRO / delayed ACK
}

uint64_t BbrCC::bdp_multiple(double bw, double gain) const {
    if (min_rtt_us_ == kInfinite) return initial_cwnd_; // no valid RTT sample yet
    return static_cast<uint64_t>(gain * bw * double(min_rtt_us_) / 1e6);
}

uint64_t BbrCC::quantization_budget(uint64_t cap) const {
    cap = std::max(cap, offload_budget_);
    cap = std::max(cap, min_pipe_cwnd());
    if (mode_ == Mode::ProbeBwUp) cap += 2ull * mss_;
    return cap;
}

uint64_t BbrCC::target_inflight() const { return std::min<uint64_t>(bdp_, cwnd_); }

uint64_t BbrCC::probe_rtt_cwnd() const { return std::max(bdp_multiple(bw_, p_.probe_rtt_cwnd_gain), min_pipe_cwnd()); }

void BbrCC::save_cwnd() {
    if (!in_loss_recovery_ && mode_ != Mode::ProbeRtt) prior_cwnd_ = cwnd_;
    else prior_cwnd_ = std::max<uint64_t>(prior_cwnd_, cwnd_);
}

void BbrCC::restore_cwnd() { cwnd_ = static_cast<uint32_t>(std::max<uint64_t>(cwnd_, prior_cwnd_)); }

void BbrCC::set_cwnd() {
    // UpdateMaxInflight()
    max_inflight_ = quantization_budget(bdp_multiple(bw_, cwnd_gain_) + extra_acked_);
    uint64_t cwnd = cwnd_;
    if (full_bw_reached_) cwnd = std::min<uint64_t>(cwnd + rs_.newly_acked, max_inflight_);
    else if (cwnd < max_inflight_ || c_.delivered < initial_cwnd_) cwnd += rs_.newly_acked;
    cwnd = std::max(cwnd, min_pipe_cwnd());
    // BoundCwndForProbeRTT()
    if (mode_ == Mode::ProbeRtt) cwnd = std::min(cwnd, probe_rtt_cwnd());
    // BoundCwndForModel() (5.6.4.7)
    uint64_t cap = kInfinite;
    if (is_in_probe_bw() && mode_ != Mode::ProbeBwCruise) cap = inflight_longterm_;
    else if (mode_ == Mode::ProbeRtt || mode_ == Mode::ProbeBwCruise) cap = inflight_with_headroom();
    cap = std::min(cap, inflight_shortterm_);
    cap = std::max(cap, min_pipe_cwnd());
    cwnd = std::min(cwnd, cap);
    cwnd_ = static_cast<uint32_t>(std::min<uint64_t>(cwnd, UINT32_MAX));
}

// ---------------------------------------------------------------- 5.6.4.4

void BbrCC::on_congestion_event(uint32_t, uint64_t) {
    // OnEnterFastRecovery()
    save_cwnd();
    save_state_upon_loss();
    if (!in_loss_recovery_) recovery_start_round_ = round_count_;
    in_loss_recovery_ = true;
}

void BbrCC::on_rto(uint32_t, uint64_t) {
    // OnEnterRTO(): every outstanding segment is presumed lost, so
    // C.inflight + 1 segment is one segment.
    save_cwnd();
    save_state_upon_loss();
    cwnd_ = mss_;
    in_loss_recovery_ = true;
}

void BbrCC::on_recovery_exit(uint64_t) {
    restore_cwnd();
    in_loss_recovery_ = false;
}

} // namespace millipede::tcp

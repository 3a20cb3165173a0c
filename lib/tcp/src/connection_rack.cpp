// A Connection's RACK-TLP loss detection (RFC 8985), its delivery-rate
// samples for a model-based controller (draft-ietf-ccwg-bbr 4.1) and
// pacing (BBR's, or Linux's for NewReno and CUBIC: Config::pacing). The
// per-segment bookkeeping is TxRecords (tx_records.h); this file wires it
// to the connection's ACK processing, timers and output.
#include <algorithm>

#include "millipede/tcp/connection.h"
#include "millipede/tcp/seq.h"

namespace millipede::tcp {

namespace {
constexpr uint64_t kNever = UINT64_MAX;
constexpr uint64_t kMinRttWindowUs = 10'000'000; // RACK.min_RTT (RFC 8985 6.1), as BBR's MinRTTFilterLen
constexpr uint64_t kWorstCaseDelAckUs = 200'000; // RFC 8985 7.2 WCDelAckT
constexpr uint64_t kMinPtoUs = 2'000;            // two ticks of our 1 ms timestamp clock
} // namespace

bool Connection::cwnd_may_grow() const {
    if (!cfg_.cwnd_validation || window_full_ || window_full_round_) return true;
    // Slow start (Linux tcp_is_cwnd_limited): keep doubling while cwnd is
    // below twice what the connection had in flight, so that a sender
    // filling most of its window still leaves slow start quickly.
    const uint32_t cw = cc_->cwnd();
    return cw < cc_->ssthresh() && cw < 2 * std::max(flight_peak_, flight_peak_round_);
}

CcConnState Connection::conn_state() const {
    CcConnState c;
    c.mss = eff_mss_;
    c.inflight = pipe();
    c.delivered = txr_.delivered();
    c.lost = txr_.lost();
    c.srtt_us = have_rtt_ ? srtt_us_ : 0;
    c.is_cwnd_limited = cwnd_limited_ || cwnd_limited_round_;
    c.in_recovery = in_recovery_ || rto_retries_ > 0;
    c.has_sack = sack_ok_;
    c.app_limited = txr_.app_limited();
    return c;
}

void Connection::on_record_lost(const TxRecord &r, uint64_t now) {
    if (r.transmissions > 1) stats_.lost_retransmits++;
    // draft-ietf-ccwg-bbr 5.5.10.2 (HandleLostPacket), per lost packet.
    if (cc_->model_based())
        cc_->on_packet_lost(LostPacket{r.size(), r.tx_in_flight, r.lost_at_send, r.app_limited}, conn_state(), now);
}

void Connection::rack_detect(uint64_t now, uint32_t *newly_lost) {
    // RFC 8985 6.2 steps 4-5; 6.3: the reordering timer for what is not
    // lost yet.
    const uint64_t reo = txr_.reo_wnd(in_recovery_, min_rtt_.get(), srtt_us_);
    uint32_t lost = 0;
    const uint64_t deadline = txr_.detect_loss(now, reo, [&](const TxRecord &r) {
        lost += r.size();
        stats_.rack_lost++;
        on_record_lost(r, now);
    });
    t_rack_ = deadline ? deadline : kNever;
    *newly_lost = lost;
}

void Connection::rack_and_rate(const Segment &seg, uint64_t now) {
    // The ACK's SACK blocks above SND.UNA (RFC 2018), for the records.
    uint32_t edges[2 * 4];
    size_t blocks = 0;
    if (sack_ok_)
        for (size_t i = 0; i < seg.opt.sack_count && blocks < 4; ++i) {
            const uint32_t l = seg.opt.sack[i].left, r = seg.opt.sack[i].right;
            if (!seq_lt(l, r) || !seq_gt(r, snd_una_) || seq_gt(r, snd_max_)) continue;
            edges[2 * blocks] = seq_max(l, snd_una_);
            edges[2 * blocks + 1] = r;
            blocks++;
        }
    TxRecords::AckInput in;
    in.snd_una = snd_una_;
    in.sack_edges = edges;
    in.sack_blocks = blocks;
    in.has_ts = ts_ok_ && seg.opt.has_ts;
    in.ts_ecr = seg.opt.ts_ecr;
    in.min_rtt_us = min_rtt_.get();
    RateSample rs;
    txr_.on_ack(in, now, [this](uint32_t l, uint32_t r) { return sacked_in(l, r) == r - l; }, rs);
    if (rs.rtt_us >= 0) min_rtt_.update(uint64_t(rs.rtt_us), now, kMinRttWindowUs);

    uint32_t lost = 0;
    if (rack_on() && rs.has_data) {
        rack_detect(now, &lost);
        // RFC 8985 6.2: a loss RACK found starts recovery (RFC 6675 5).
        if (lost && !in_recovery_) enter_recovery(now, false);
    }
    // C.is_cwnd_limited: cwnd was fully used at some point in the last
    // round trip (draft-ietf-ccwg-bbr 2.1); a round ends when what was in
    // flight at its start is delivered. Every controller reads it: BBR
    // here, NewReno and CUBIC through cwnd_may_grow().
    if ((rs.has_data || lost) && txr_.delivered() >= cwnd_round_end_) {
        cwnd_limited_round_ = cwnd_limited_;
        cwnd_limited_ = false;
        window_full_round_ = window_full_;
        window_full_ = false;
        flight_peak_round_ = flight_peak_;
        flight_peak_ = pipe();
        cwnd_round_end_ = txr_.delivered() + pipe();
    }
    if (!cc_->model_based() || (!rs.has_data && !lost)) return;
    rs.newly_lost = lost;
    // draft-ietf-ccwg-bbr 5.3.4: ProbeRTT marks its own samples app-limited.
    if (cc_->on_ack_sample(rs, conn_state(), now)) txr_.mark_app_limited(pipe());
}

uint32_t Connection::resend_first_lost(uint64_t now) {
    // RFC 8985 6.2: re-send the lowest segment RACK marked lost (up to the
    // next SACKed block); HighRxt follows it (RFC 6675 C.3).
    const TxRecord *r = txr_.first_lost();
    if (!r) return 0;
    uint32_t b = r->end;
    for (size_t i = 0; i < sb_count_; ++i)
        if (seq_gt(sb_[i].left, r->start)) b = seq_min(b, sb_[i].left);
    const uint32_t a = seq_max(r->start, snd_una_);
    const uint32_t used = seq_lt(a, b) ? send_range(a, b, now, Tx::Fast) : 0;
    if (used) high_rxt_ = seq_max(high_rxt_, a + used);
    return used;
}

void Connection::arm_tlp(uint64_t now) {
    // RFC 8985 7.2: a probe timeout while data is outstanding, outside
    // recovery, one probe at a time; PTO = 2 SRTT (+ WCDelAckT when a
    // single segment is in flight), not past the RTO.
    t_tlp_ = kNever;
    if (!rack_on() || in_recovery_ || tlp_outstanding_ || in_persist_ || snd_una_ == snd_max_) return;
    if (state_ != State::Established && state_ != State::CloseWait && state_ != State::FinWait1 &&
        state_ != State::Closing && state_ != State::LastAck)
        return;
    uint64_t pto = have_rtt_ ? std::max(2 * srtt_us_, kMinPtoUs) : 1'000'000;
    if (snd_max_ - snd_una_ <= eff_mss_) pto += kWorstCaseDelAckUs;
    if (t_rto_ != kNever && now + pto >= t_rto_) return; // the RTO comes first
    t_tlp_ = now + pto;
}

void Connection::on_tlp(uint64_t now) {
    // RFC 8985 7.3: send one segment of new data if the windows allow,
    // else re-send the last segment; the ACK it draws (with SACK) lets
    // RACK find the tail's losses without an RTO.
    if (!rack_on() || in_recovery_ || snd_una_ == snd_max_ || in_persist_) return;
    tlp_outstanding_ = true;
    const uint32_t end = data_end_seq();
    const uint32_t wnd_edge = snd_una_ + snd_wnd_;
    uint32_t used = 0;
    if (snd_nxt_ == snd_max_ && seq_lt(snd_nxt_, end) && seq_lt(snd_nxt_, wnd_edge)) {
        used = send_range(snd_nxt_, seq_min(wnd_edge, end + 1), now, Tx::New);
        snd_nxt_ += used;
        snd_max_ = seq_max(snd_max_, snd_nxt_);
    }
    if (!used) {
        const uint32_t start = snd_max_ - std::min<uint32_t>(snd_max_ - snd_una_, eff_mss_);
        used = send_range(start, snd_max_, now, Tx::Fast);
    }
    if (!used) {
        tlp_outstanding_ = false;
        return;
    }
    tlp_end_seq_ = snd_max_;
    stats_.tlp_probes++;
    arm_rto(now);
}

uint64_t loss_based_pacing_rate(uint32_t cwnd, uint32_t ssthresh, uint32_t flight, uint64_t srtt_us) {
    // Linux tcp_update_pacing_rate(): ratio x max(cwnd, packets_out) x MSS
    // / SRTT. 200 % in slow start lets the window double per round trip
    // (the ACK clock alone would send at twice the delivery rate too);
    // 120 % after leaves room for the window's growth and for the ACK
    // clock's jitter. "Slow start" is cwnd < ssthresh / 2, as in Linux:
    // approaching ssthresh, the sender slows down already. max(cwnd, flight)
    // keeps a window cut by recovery from slowing what is in flight.
    if (srtt_us <= kUnpacedSrttUs) return 0; // no sample yet, or a window the burst covers
    const uint64_t w = std::max(cwnd, flight);
    const uint64_t pct = cwnd < ssthresh / 2 ? kPacingSlowStartRatioPct : kPacingAvoidanceRatioPct;
    return std::max<uint64_t>(1, w * pct * 10'000 / srtt_us); // x pct / 100 x 1e6 / srtt
}

uint32_t loss_based_send_quantum(uint64_t rate) {
    // Linux: a flow may have two TSO frames (up to 64 KiB each) or ~1 ms at
    // its pacing rate queued below TCP (TCP Small Queues,
    // tcp_small_queue_check()), whichever is larger; those leave back to
    // back. On a fast path the 1 ms term dominates, so pacing costs a
    // polling data plane nothing there.
    const uint64_t ms = rate * kPacingBurstUs / 1'000'000;
    return static_cast<uint32_t>(std::min<uint64_t>(std::max<uint64_t>(kPacingBurstBytes, ms), UINT32_MAX));
}

bool Connection::loss_based_paced() const { return cfg_.pacing && !cc_->model_based(); }

uint64_t Connection::pacing_rate() const {
    if (!loss_based_paced()) return cc_->pacing_rate();
    return loss_based_pacing_rate(cwnd(), cc_->ssthresh(), snd_max_ - snd_una_, have_rtt_ ? srtt_us_ : 0);
}

uint32_t Connection::send_quantum_at(uint64_t rate) const {
    return loss_based_paced() ? loss_based_send_quantum(rate) : cc_->send_quantum();
}

uint32_t Connection::send_quantum() const { return send_quantum_at(pacing_rate()); }

bool Connection::pacing_allows(uint64_t now) {
    // draft-ietf-ccwg-bbr 5.6.2-5.6.3: data leaves at the pacing rate, in
    // bursts of at most the send quantum (for NewReno and CUBIC with
    // Config::pacing the rate and burst are Linux's, above).
    const uint64_t rate = pacing_rate();
    if (rate == 0) return true;
    const uint64_t quantum_us = uint64_t(send_quantum_at(rate)) * 1'000'000 / rate;
    if (next_send_us_ <= now + quantum_us) return true;
    t_pace_ = next_send_us_ - quantum_us;
    stats_.pacing_waits++;
    return false;
}

void Connection::paced(uint32_t len, uint64_t now) {
    const uint64_t rate = pacing_rate();
    if (rate == 0) return;
    next_send_us_ = std::max(next_send_us_, now) + (uint64_t(len) * 1'000'000 + rate - 1) / rate;
}

} // namespace millipede::tcp

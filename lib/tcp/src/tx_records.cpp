// Transmit records: delivery-rate samples (draft-cheng-iccrg-delivery-rate-
// estimation 3) and RACK (RFC 8985 6). Each step names its section.
#include "millipede/tcp/tx_records.h"

#include <algorithm>

#include "millipede/tcp/seq.h"

namespace millipede::tcp {

void TxRecords::allocate(size_t capacity) {
    ring_.assign(std::max<size_t>(capacity, 16), TxRecord{});
    head_ = n_ = 0;
}

void TxRecords::clear_outstanding() {
    head_ = n_ = 0;
    lost_bytes_ = sacked_bytes_ = 0;
    segs_sacked_ = 0;
}

size_t TxRecords::lower_bound(uint32_t seq) const {
    size_t lo = 0, hi = n_;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (seq_leq(at(mid).end, seq)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

const TxRecord *TxRecords::find(uint32_t seq) const {
    const size_t i = lower_bound(seq);
    return i < n_ && seq_leq(at(i).start, seq) ? &at(i) : nullptr;
}

const TxRecord *TxRecords::first_lost() const {
    if (lost_bytes_ == 0) return nullptr;
    for (size_t i = 0; i < n_; i++)
        if (at(i).lost) return &at(i);
    return nullptr;
}

bool TxRecords::lost_in(uint32_t left, uint32_t right) const {
    if (lost_bytes_ == 0) return false;
    for (size_t i = lower_bound(left); i < n_ && seq_lt(at(i).start, right); i++)
        if (at(i).lost) return true;
    return false;
}

// ---------------------------------------------------------------- sending

void TxRecords::on_send(uint32_t start, uint32_t end, uint64_t now, uint32_t inflight, uint32_t ts_val,
                        bool retransmit) {
    if (!seq_lt(start, end) || ring_.empty()) return;
    // Delivery-rate estimation 3.2 (OnPacketSent): the first packet sent
    // with nothing in flight starts a new sampling interval.
    if (inflight == 0) first_send_us_ = delivered_us_ = now;
    const auto stamp = [&](TxRecord &r) {
        r.xmit_us = now;
        r.xmit_order = next_order_;
        r.first_send_us = first_send_us_;
        r.delivered_us = delivered_us_;
        r.delivered = delivered_;
        r.lost_at_send = lost_;
        r.app_limited = app_limited_until_ != 0;
        r.tx_in_flight = inflight + (end - start);
        r.ts_val = ts_val;
    };
    const uint32_t last_end = n_ ? at(n_ - 1).end : start;
    if (retransmit || (n_ && seq_lt(start, last_end))) {
        // A retransmission re-stamps what it overlaps (RFC 8985 6.1: the
        // segment's xmit_ts is its latest transmission); it is back in
        // flight, no longer lost.
        for (size_t i = lower_bound(start); i < n_ && seq_lt(at(i).start, end); i++) {
            TxRecord &r = ref(i);
            if (r.sacked) continue;
            if (r.lost) {
                r.lost = false;
                lost_bytes_ -= r.size();
            }
            if (r.transmissions < 255) r.transmissions++;
            stamp(r);
        }
        if (!seq_gt(end, last_end) || n_ == 0) {
            next_order_++;
            return;
        }
        start = last_end; // the part beyond every record is new
    }
    if (n_ == ring_.size()) {
        next_order_++;
        return; // full: see the header
    }
    TxRecord &r = ring_[(head_ + n_) % ring_.size()];
    r = TxRecord{};
    r.start = start;
    r.end = end;
    r.transmissions = 1;
    stamp(r);
    n_++;
    next_order_++;
}

// ---------------------------------------------------------------- ACKs

void TxRecords::deliver(TxRecord &r, uint64_t now, RateSample &rs, const TxRecord *&newest) {
    // Delivery-rate estimation 3.3 (UpdateRateSample).
    delivered_ += r.size();
    delivered_us_ = now;
    rs.newly_acked += r.size();
    if (!newest || r.xmit_order > newest->xmit_order) {
        newest = &r;
        rs.has_data = true;
        rs.prior_delivered = r.delivered;
        rs.is_app_limited = r.app_limited;
        rs.tx_in_flight = r.tx_in_flight;
        rs.lost = lost_ - std::min(lost_, r.lost_at_send);
        const uint64_t send_elapsed = r.xmit_us - std::min(r.xmit_us, r.first_send_us);
        const uint64_t ack_elapsed = now - std::min(now, r.delivered_us);
        rs.interval_us = std::max(send_elapsed, ack_elapsed);
        // RS.rtt: Karn's rule, no sample from a retransmitted segment.
        rs.rtt_us = r.transmissions == 1 ? int64_t(now - r.xmit_us) : -1;
        first_send_us_ = r.xmit_us;
    }
    if (r.lost) {
        // Delivered after RACK marked it lost, and not re-sent since: the
        // mark was spurious (the segment was only late, e.g. in a queue
        // that grew). RFC 8985 6.2 step 4 widens the reordering window on
        // such evidence (there from D-SACK, which this stack does not
        // parse; this signal is unambiguous): reo_wnd_mult + 1, kept for
        // 16 recoveries. Without it one late segment credited to its
        // retransmission moves RACK.xmit_ts ahead of everything still
        // queued, and all of it is marked lost in turn.
        r.lost = false;
        lost_bytes_ -= r.size();
        reordering_seen_ = true;
        if (reo_wnd_mult_ < 16) reo_wnd_mult_++;
        reo_wnd_persist_ = 16;
        spurious_++;
    }
}

void TxRecords::on_recovery_end() {
    // RFC 8985 6.2 step 4: after 16 recoveries without new evidence of
    // reordering, the window multiplier returns to 1.
    if (reo_wnd_persist_ && --reo_wnd_persist_ == 0) reo_wnd_mult_ = 1;
}

void TxRecords::rack_update(const TxRecord &r, const AckInput &in, uint64_t now) {
    // RFC 8985 6.2 step 2: skip a retransmitted segment whose ACK may
    // answer an earlier transmission: an RTT below the path's minimum.
    // (Not its TSecr test: a SACK for an out-of-order segment echoes the
    // TSval of the last in-order one, RFC 7323 4.3, so a retransmission
    // SACKed out of order would always look ambiguous. Linux's
    // tcp_rack_advance() uses the min-RTT test alone too.)
    if (r.transmissions > 1 && in.min_rtt_us != UINT64_MAX && now - r.xmit_us < in.min_rtt_us) return;
    const bool after = !rack_valid_ || r.xmit_order > rack_order_;
    if (after) {
        rack_rtt_ = now - r.xmit_us;
        rack_xmit_ = r.xmit_us;
        rack_order_ = r.xmit_order;
        rack_end_ = r.end;
        rack_valid_ = true;
    }
    // Step 3: a never-retransmitted segment delivered below the highest
    // delivered sequence (RACK.fack) arrived out of order.
    if (!rack_valid_ || seq_gt(r.end, rack_fack_)) rack_fack_ = r.end;
    else if (seq_lt(r.end, rack_fack_) && r.transmissions == 1) reordering_seen_ = true;
}

void TxRecords::on_ack(const AckInput &in, uint64_t now, const std::function<bool(uint32_t, uint32_t)> &fully_sacked,
                       RateSample &rs) {
    rs = RateSample{};
    const TxRecord *newest = nullptr;
    TxRecord newest_copy{};
    // Cumulatively acknowledged records leave the ring.
    while (n_ && seq_leq(at(0).end, in.snd_una)) {
        TxRecord &r = ref(0);
        if (!r.sacked) {
            deliver(r, now, rs, newest);
            rack_update(r, in, now);
        } else {
            if (segs_sacked_) segs_sacked_--;
            sacked_bytes_ -= r.size();
        }
        if (newest == &r) {
            newest_copy = r; // the slot is about to be reused
            newest = &newest_copy;
        }
        head_ = (head_ + 1) % ring_.size();
        n_--;
    }
    // A record cut by SND.UNA (a segment acknowledged in part): the acked
    // part is delivered.
    if (n_ && seq_lt(at(0).start, in.snd_una) && !at(0).sacked) {
        TxRecord &r = ref(0);
        const uint32_t part = in.snd_una - r.start;
        delivered_ += part;
        delivered_us_ = now;
        rs.newly_acked += part;
        if (r.lost) lost_bytes_ -= part;
        r.start = in.snd_una;
    }
    // Selectively acknowledged records (RFC 2018 blocks of this ACK,
    // checked against the merged scoreboard).
    for (size_t b = 0; b < in.sack_blocks; b++) {
        const uint32_t l = in.sack_edges[2 * b], rr = in.sack_edges[2 * b + 1];
        for (size_t i = lower_bound(l); i < n_ && seq_lt(at(i).start, rr); i++) {
            TxRecord &r = ref(i);
            if (r.sacked) continue;
            // Inside this block, or covered by the merged scoreboard (a
            // record SACKed in parts over several ACKs).
            if ((seq_lt(r.start, l) || seq_gt(r.end, rr)) && !fully_sacked(r.start, r.end)) continue;
            deliver(r, now, rs, newest);
            rack_update(r, in, now);
            r.sacked = true;
            segs_sacked_++;
            sacked_bytes_ += r.size();
        }
    }
    // Delivery-rate estimation 3.3 (GenerateRateSample).
    if (app_limited_until_ && delivered_ > app_limited_until_) app_limited_until_ = 0;
    if (!rs.has_data) return;
    rs.delivered = delivered_ - rs.prior_delivered;
    if (rs.interval_us == 0 || (in.min_rtt_us != UINT64_MAX && rs.interval_us < in.min_rtt_us)) {
        rs.delivery_rate = 0; // no reliable sample
        return;
    }
    rs.delivery_rate = double(rs.delivered) * 1e6 / double(rs.interval_us);
}

// ---------------------------------------------------------------- RACK

uint64_t TxRecords::reo_wnd(bool in_recovery, uint64_t min_rtt_us, uint64_t srtt_us) const {
    // RFC 8985 6.2 step 4.
    if (!reordering_seen_ && (in_recovery || segs_sacked_ >= kDupThresh)) return 0;
    if (min_rtt_us == UINT64_MAX) return 0;
    return std::min<uint64_t>(uint64_t(reo_wnd_mult_) * min_rtt_us / 4, srtt_us);
}

void TxRecords::set_lost(TxRecord &r, const std::function<void(const TxRecord &)> &on_lost) {
    r.lost = true;
    lost_bytes_ += r.size();
    lost_ += r.size(); // C.lost
    if (on_lost) on_lost(r);
}

uint64_t TxRecords::detect_loss(uint64_t now, uint64_t reo_wnd, const std::function<void(const TxRecord &)> &on_lost) {
    // RFC 8985 6.2 step 5 (RACK_detect_loss()).
    if (!rack_valid_) return 0;
    uint64_t timeout = 0;
    for (size_t i = 0; i < n_; i++) {
        TxRecord &r = ref(i);
        if (r.sacked || r.lost) continue;
        const bool sent_before = r.xmit_order < rack_order_;
        if (!sent_before) {
            // Records of never-retransmitted segments are in send order:
            // none further up was sent earlier (a retransmitted one was
            // re-sent after this one's first transmission).
            if (r.transmissions == 1) break;
            continue;
        }
        const uint64_t deadline = r.xmit_us + rack_rtt_ + reo_wnd;
        if (deadline <= now) set_lost(r, on_lost);
        else timeout = std::max(timeout, deadline);
    }
    return timeout;
}

void TxRecords::mark_all_lost(const std::function<void(const TxRecord &)> &on_lost) {
    for (size_t i = 0; i < n_; i++) {
        TxRecord &r = ref(i);
        if (!r.sacked && !r.lost) set_lost(r, on_lost);
    }
}

} // namespace millipede::tcp

// Per-segment transmit records of one connection's sender, and what is
// computed from them:
//  - delivery-rate samples (draft-cheng-iccrg-delivery-rate-estimation,
//    the algorithm draft-ietf-ccwg-bbr 4.1 names; "P." fields are the
//    per-packet state, "C." the connection's), and
//  - RACK loss detection (RFC 8985 6): a segment is lost when a segment
//    sent after it was delivered and a reordering window has passed since.
//
// A record covers [start, end) of sequence space as it was last
// transmitted; records are kept in sequence order (new data is appended,
// a retransmission re-stamps the records it overlaps), so the records of
// never-retransmitted segments are also in send-time order.
//
// Contract: owned by one Connection, single-threaded; allocate() is the
// only allocation. When the ring is full a newly sent segment gets no
// record: it is still delivered and counted, but gives no rate sample and
// RACK does not see it (RFC 6675's DupThresh rule and the RTO still do).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "millipede/tcp/congestion.h"

namespace millipede::tcp {

struct TxRecord {
    uint32_t start = 0, end = 0;
    uint64_t xmit_us = 0;          // RACK Segment.xmit_ts: the latest (re)transmission
    // Order of that transmission among all of the connection's: RACK's
    // "sent after" (RFC 8985 6.2) on this instead of (xmit_ts, end_seq),
    // which cannot order a retransmission sent in the same microsecond as
    // new data above it.
    uint64_t xmit_order = 0;
    uint64_t first_send_us = 0;    // P.first_send_time
    uint64_t delivered_us = 0;     // P.delivered_time
    uint64_t delivered = 0;        // P.delivered
    uint64_t lost_at_send = 0;     // P.lost (C.lost when sent)
    uint32_t tx_in_flight = 0;     // P.tx_in_flight, this segment included
    uint32_t ts_val = 0;           // TSval it was (re)sent with (RFC 8985 6.2 step 2)
    uint8_t transmissions = 0;     // 1: never retransmitted
    bool sacked = false;           // delivered (above SND.UNA)
    bool lost = false;             // marked lost and not re-sent since
    bool app_limited = false;      // P.is_app_limited
    uint32_t size() const { return end - start; }
};

class TxRecords {
  public:
    static constexpr uint32_t kDupThresh = 3;

    void allocate(size_t capacity);
    void clear_outstanding();
    size_t count() const { return n_; }
    size_t capacity() const { return ring_.size(); }
    const TxRecord &at(size_t i) const { return ring_[(head_ + i) % ring_.size()]; }

    // --- the connection's delivery state (rate estimation, C.*) ---
    uint64_t delivered() const { return delivered_; }
    uint64_t lost() const { return lost_; }
    bool app_limited() const { return app_limited_until_ != 0; }
    // Marks the connection application-limited (the draft's
    // C.app_limited = C.delivered + C.inflight, or 1 when that is 0): the
    // sender had less to send than cwnd allowed.
    void mark_app_limited(uint32_t inflight) {
        app_limited_until_ = delivered_ + inflight;
        if (app_limited_until_ == 0) app_limited_until_ = 1;
    }

    // --- transmit (draft: OnPacketSent; RFC 8985 6.1 "Segment.xmit_ts") ---
    // `inflight` is C.inflight before the send; `retransmit` re-stamps the
    // records overlapping [start, end) instead of appending one.
    void on_send(uint32_t start, uint32_t end, uint64_t now, uint32_t inflight, uint32_t ts_val, bool retransmit);

    // --- acknowledgement ---
    // Processes one ACK: records below `snd_una` are delivered, as are
    // records in `[sack_left, sack_right)` pairs of this ACK that
    // `fully_sacked(start, end)` confirms (the merged scoreboard). Fills the
    // rate sample (draft GenerateRateSample) and the RACK state (RFC 8985
    // 6.2 steps 1-3). `ts_ecr` 0: no timestamp.
    struct AckInput {
        uint32_t snd_una = 0;
        const uint32_t *sack_edges = nullptr; // [left0, right0, left1, right1, ...]
        size_t sack_blocks = 0;
        uint32_t ts_ecr = 0;
        bool has_ts = false;
        uint64_t min_rtt_us = UINT64_MAX; // RACK.min_RTT (the connection's)
    };
    void on_ack(const AckInput &in, uint64_t now, const std::function<bool(uint32_t, uint32_t)> &fully_sacked,
                RateSample &rs);

    // --- RACK (RFC 8985 6.2 steps 4-5, 6.3) ---
    // RACK.reo_wnd (step 4): 0 when no reordering was seen and either the
    // connection is in recovery or DupThresh segments were SACKed;
    // otherwise min(reo_wnd_mult * min_RTT / 4, SRTT).
    uint64_t reo_wnd(bool in_recovery, uint64_t min_rtt_us, uint64_t srtt_us) const;
    // Step 5, RACK_detect_loss(): marks lost every unSACKed record sent
    // before the most recently delivered one by more than RACK.rtt +
    // reo_wnd; calls `on_lost` for each. Returns the time the next record
    // would be lost (the reordering timer, 6.3), or 0.
    uint64_t detect_loss(uint64_t now, uint64_t reo_wnd, const std::function<void(const TxRecord &)> &on_lost);
    // An RTO (RFC 8985 6.3 / RFC 6675 5.1): every outstanding unSACKed
    // record is lost.
    void mark_all_lost(const std::function<void(const TxRecord &)> &on_lost);
    bool reordering_seen() const { return reordering_seen_; }
    // RFC 8985 6.2 step 4 bookkeeping: a loss recovery ended.
    void on_recovery_end();
    uint32_t reo_wnd_mult() const { return reo_wnd_mult_; }
    // Records delivered after RACK marked them lost (spurious marks).
    uint64_t spurious_marks() const { return spurious_; }
    uint32_t segs_sacked() const { return segs_sacked_; }
    uint64_t rack_rtt_us() const { return rack_rtt_; }
    uint64_t rack_xmit_us() const { return rack_xmit_; }

    // True when some record overlapping [left, right) is marked lost.
    bool lost_in(uint32_t left, uint32_t right) const;
    // Bytes in records marked lost (and not re-sent since), and in SACKed
    // records: C.inflight = outstanding - sacked - lost (RFC 8985 /
    // Linux's packets_out - sacked_out - lost_out + retrans_out, in bytes).
    uint32_t lost_bytes() const { return lost_bytes_; }
    uint32_t sacked_bytes() const { return sacked_bytes_; }
    // The lowest record marked lost, or nullptr.
    const TxRecord *first_lost() const;
    // The record holding `seq`, or nullptr.
    const TxRecord *find(uint32_t seq) const;

  private:
    TxRecord &ref(size_t i) { return ring_[(head_ + i) % ring_.size()]; }
    size_t lower_bound(uint32_t seq) const; // first record with end > seq
    void deliver(TxRecord &r, uint64_t now, RateSample &rs, const TxRecord *&newest);
    void rack_update(const TxRecord &r, const AckInput &in, uint64_t now);
    void set_lost(TxRecord &r, const std::function<void(const TxRecord &)> &on_lost);

    std::vector<TxRecord> ring_;
    size_t head_ = 0, n_ = 0;

    // C.* of the rate estimator.
    uint64_t delivered_ = 0, delivered_us_ = 0, first_send_us_ = 0, lost_ = 0;
    uint64_t app_limited_until_ = 0;
    uint32_t lost_bytes_ = 0, sacked_bytes_ = 0;

    // RACK.* (RFC 8985 6.1).
    uint64_t rack_xmit_ = 0, rack_rtt_ = 0, rack_order_ = 0, next_order_ = 1;
    uint32_t rack_end_ = 0, rack_fack_ = 0;
    bool rack_valid_ = false, reordering_seen_ = false;
    uint32_t segs_sacked_ = 0;
    uint32_t reo_wnd_mult_ = 1, reo_wnd_persist_ = 0; // RACK.reo_wnd_mult / reo_wnd_persist
    uint64_t spurious_ = 0;
};

} // namespace millipede::tcp

// QueueAheadEstimator: the `parity` sender's per-leg bound on bytes handed
// to a leg and not yet TCP-acknowledged (SenderConfig::parity_queue_ahead
// AUTO), from what a pure sender sees: the byte offsets it wrote on the leg
// and LegIo::delivered() over time.
//
// Why a bound: with parity the receiver rebuilds a lost chunk from the rest
// of its stripe, so what it waits for after a leg dies is the next chunk in
// order. Without a bound each leg's TCP fills its send buffer and its
// link's queue, and a chunk handed to a leg waits behind several others;
// the one the output needs next can then arrive many ms after the chunks
// behind it (docs/benchmarks.md, "Parity across legs"). A bound below the
// leg's bandwidth-delay product starves the leg instead, so it is chosen
// per leg as
//     one chunk + kGain x delivery rate x min round trip
// The estimate is in the spirit of BBR's (draft-ietf-ccwg-bbr: a
// max-filtered delivery rate and a min round trip): a probe marks the bytes
// of one write (a chunk, or the hello) with the time and the delivered
// count. When delivered() first passes its first byte, the elapsed time is
// a round-trip sample (with whatever was queued ahead of it: the minimum
// over the connection is kept); when it passes its last byte, the bytes
// delivered since the write over the elapsed time are a rate sample (the
// maximum over the last one to two windows of kRateWindowUs, or 20 min
// round trips if longer, is kept: a leg that was idle or halved its window
// after a loss keeps the rate its path has shown). The rate is what the leg delivered, so while the bound
// holds the leg below its link's rate it is about the bound per effective
// round trip, which is longer than the min round trip by the time a chunk
// takes on the link and by how coarsely delivered() moves (lib/session's
// legs report it every 32 KiB): with the chunk on top of kGain x BDP the
// bound still grows each round trip until the link is full. (With
// max(chunk, kGain x BDP) instead, tools/bench/parity_stall.cpp's 16 KiB
// chunk run settled at 55 of 100 Mbit/s per leg: 127 Mbit/s of goodput
// where this rule gives 219.)
//
// Contract: pure (no EAL, no clock of its own, no allocation); one instance
// per leg, called from the sender's thread only. Offsets are per connection:
// call new_connection() when the leg (re)connects.
#pragma once

#include <algorithm>
#include <cstdint>

namespace millipede::stripe {

// How the parity sender bounds what a leg holds unacknowledged
// (SenderConfig::parity_queue_ahead; the option --parity-queue-ahead).
enum class QueueAhead : uint8_t {
    AUTO,  // per leg: QueueAheadEstimator::bound(chunk_bytes)
    FIXED, // SenderConfig::parity_queue_ahead_bytes on every leg
    OFF,   // no bound: the leg's send buffer is the only limit
};

class QueueAheadEstimator {
  public:
    static constexpr uint64_t kGain = 2;          // bound = kGain x BDP (slack for a jittery round trip)
    // The rate is the max over the last one to two windows of this long
    // (at least kRateWindowRtts min round trips): a path's capacity is
    // steady, what a leg delivers is not (a loss halves a Reno window).
    static constexpr uint64_t kRateWindowUs = 1'000'000;
    static constexpr uint64_t kRateWindowRtts = 20;

    // Offsets restart at 0; the round trip is re-learnt (another connection
    // may take another path), the rate kept as a first guess.
    void new_connection() {
        probe_ = Probe::NONE;
        min_rtt_us_ = 0;
    }
    // `n` bytes are handed to the leg at offset `written` (what it was
    // handed before), `delivered` of which are acknowledged, at `now_us`.
    // Starts a probe over those bytes when none is running.
    void on_write(uint64_t written, uint64_t n, uint64_t delivered, uint64_t now_us) {
        if (probe_ != Probe::NONE || n == 0 || delivered == UINT64_MAX) return;
        probe_ = Probe::SENT;
        probe_start_ = written;
        probe_end_ = written + n;
        probe_delivered_ = delivered;
        probe_us_ = now_us;
    }
    // The leg's delivered() count at `now_us`.
    void on_delivered(uint64_t delivered, uint64_t now_us) {
        if (probe_ == Probe::NONE || delivered == UINT64_MAX) return;
        if (probe_ == Probe::SENT && delivered > probe_start_) {
            // The probe's first byte came back: a round trip (with what was
            // queued ahead of it; the minimum is kept).
            const uint64_t rtt = std::max<uint64_t>(1, now_us - probe_us_);
            if (min_rtt_us_ == 0 || rtt < min_rtt_us_) min_rtt_us_ = rtt;
            probe_ = Probe::ACKING;
        }
        if (delivered < probe_end_) return;
        probe_ = Probe::NONE;
        // What the leg delivered from the write to the acknowledgement of
        // its last byte, over that time.
        const uint64_t bytes = delivered - probe_delivered_;
        const uint64_t us = std::max<uint64_t>(1, now_us - probe_us_);
        const uint64_t rate = bytes >= UINT64_MAX / 1'000'000 ? UINT64_MAX / 1'000'000 : bytes * 1'000'000 / us;
        const uint64_t window = std::max(kRateWindowUs, kRateWindowRtts * min_rtt_us_);
        if (now_us - window_start_us_ >= window) {
            prev_max_rate_ = now_us - window_start_us_ >= 2 * window ? 0 : cur_max_rate_;
            cur_max_rate_ = 0;
            window_start_us_ = now_us;
        }
        cur_max_rate_ = std::max(cur_max_rate_, rate);
    }
    uint64_t min_rtt_us() const { return min_rtt_us_; }
    uint64_t max_rate_bytes_per_s() const { return std::max(cur_max_rate_, prev_max_rate_); }
    // Bandwidth-delay product (0 until a round trip and a rate were measured).
    uint64_t bdp_bytes() const {
        const long double b = static_cast<long double>(max_rate_bytes_per_s()) * min_rtt_us_ / 1e6L;
        return b >= 1e18L ? uint64_t(1e18) : static_cast<uint64_t>(b);
    }
    // One chunk (what the leg is handed at a time) on top of kGain x BDP.
    uint64_t bound(uint64_t chunk_bytes) const { return chunk_bytes + kGain * bdp_bytes(); }

  private:
    enum class Probe : uint8_t { NONE, SENT, ACKING };
    Probe probe_ = Probe::NONE;
    uint64_t probe_start_ = 0, probe_end_ = 0, probe_delivered_ = 0, probe_us_ = 0;
    uint64_t min_rtt_us_ = 0;
    uint64_t cur_max_rate_ = 0, prev_max_rate_ = 0, window_start_us_ = 0;
};

} // namespace millipede::stripe

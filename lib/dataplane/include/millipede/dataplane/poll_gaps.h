// How long an rx lcore left its receive queues unpolled.
//
// A tap loses packets when its RX ring fills: a ring of N descriptors at R
// packets per second holds N / R seconds, 1,024 slots at 1 Mpps about 1 ms.
// Whether the ring went unpolled that long (the idle back-off's sleep, a
// long burst of work, or the host taking the CPU away) is what tells a loss
// at the NIC apart from a slow pipeline. PollGaps counts the gaps between
// two polls above 100 us, 1 ms and 10 ms, and keeps the longest.
//
// Contract: pure (TSC values come from the caller). note() and restart()
// on the one lcore that owns it; figures() from any thread (single writer,
// relaxed atomics: a reader may see one gap's counts before its maximum).
#pragma once

#include <atomic>
#include <cstdint>

namespace millipede::dataplane {

class alignas(64) PollGaps {
public:
    struct Figures {
        uint64_t longest_ns = 0;
        uint64_t over_100us = 0, over_1ms = 0, over_10ms = 0;
        Figures &operator+=(const Figures &o) { // several rx lcores: the longest of all, counts summed
            if (o.longest_ns > longest_ns) longest_ns = o.longest_ns;
            over_100us += o.over_100us;
            over_1ms += o.over_1ms;
            over_10ms += o.over_10ms;
            return *this;
        }
    };

    void set_tsc_hz(uint64_t hz) {
        hz_ = hz;
        t100us_ = hz / 10'000;
        t1ms_ = hz / 1'000;
        t10ms_ = hz / 100;
    }

    // The loop starts (or resumes after a pause it means to take, such as
    // waiting for its peers at the end of input): no gap before `tsc`.
    void restart(uint64_t tsc) { last_ = tsc; }

    // One poll of the receive queues at `tsc`.
    void note(uint64_t tsc) {
        const uint64_t prev = last_;
        last_ = tsc;
        if (prev == 0 || hz_ == 0) return;
        const uint64_t gap = tsc - prev;
        if (gap < t100us_) return;
        bump(over_100us_);
        if (gap >= t1ms_) bump(over_1ms_);
        if (gap >= t10ms_) bump(over_10ms_);
        if (gap > longest_.load(std::memory_order_relaxed)) longest_.store(gap, std::memory_order_relaxed);
    }

    Figures figures() const {
        Figures f;
        const uint64_t longest = longest_.load(std::memory_order_relaxed);
        f.longest_ns = hz_ ? static_cast<uint64_t>(static_cast<double>(longest) * 1e9 / static_cast<double>(hz_)) : 0;
        f.over_100us = over_100us_.load(std::memory_order_relaxed);
        f.over_1ms = over_1ms_.load(std::memory_order_relaxed);
        f.over_10ms = over_10ms_.load(std::memory_order_relaxed);
        return f;
    }

private:
    static void bump(std::atomic<uint64_t> &c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

    uint64_t hz_ = 0, t100us_ = 0, t1ms_ = 0, t10ms_ = 0;
    uint64_t last_ = 0; // 0: not started
    std::atomic<uint64_t> longest_{0}; // TSC cycles
    std::atomic<uint64_t> over_100us_{0}, over_1ms_{0}, over_10ms_{0};
};

} // namespace millipede::dataplane

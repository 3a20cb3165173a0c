// A token bucket for the sender's input: `--rate BYTES/S`, and stock
// viamillipede's `delayus N` expressed as a rate.
//
// Contract: pure (the clock is the caller's microseconds); one owner, the
// session lcore (pipe_tx), which asks before it hands a chunk to the
// stripe sender. Not thread-safe.
//
// The bucket may go into debt: a chunk larger than the burst is admitted
// whenever the balance is not negative, and the next chunk waits until the
// debt is paid. So the long-run rate is exact for any chunk size, and a
// rate below one chunk per burst interval still moves (a chunk at a time).
#pragma once

#include <cstdint>

namespace millipede::session {

class RateLimiter {
  public:
    // bytes_per_s 0: unlimited. burst_us: how much unused rate may be saved
    // up (default 10 ms of it), so an idle pipe does not earn a long burst.
    explicit RateLimiter(uint64_t bytes_per_s = 0, uint64_t burst_us = 10'000);

    bool unlimited() const { return rate_ == 0; }
    uint64_t bytes_per_s() const { return rate_; }

    // May `bytes` leave now? Takes them from the bucket when it says yes.
    bool admit(uint64_t bytes, uint64_t now_us);

    // Microseconds until admit() would say yes (0: now).
    uint64_t wait_us(uint64_t now_us);

  private:
    void refill(uint64_t now_us);

    uint64_t rate_;
    int64_t burst_;          // bytes
    int64_t tokens_;         // bytes; negative: debt
    uint64_t remainder_ = 0; // byte-microseconds not yet a whole byte
    uint64_t last_us_ = 0;
    bool started_ = false;
};

} // namespace millipede::session

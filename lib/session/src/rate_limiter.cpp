// The sender's token bucket; see rate_limiter.h.
#include "millipede/session/rate_limiter.h"

#include <algorithm>

namespace millipede::session {

RateLimiter::RateLimiter(uint64_t bytes_per_s, uint64_t burst_us)
    : rate_(bytes_per_s),
      burst_(static_cast<int64_t>(
          std::max<unsigned __int128>(1, static_cast<unsigned __int128>(bytes_per_s) * burst_us / 1'000'000))),
      tokens_(burst_) {}

void RateLimiter::refill(uint64_t now_us) {
    if (!started_) {
        started_ = true;
        last_us_ = now_us;
        return;
    }
    if (now_us <= last_us_) return; // (a clock that did not move, or stepped back)
    // Bytes earned = elapsed * rate / 1e6, carried exactly in remainder_.
    const unsigned __int128 earned = static_cast<unsigned __int128>(now_us - last_us_) * rate_ + remainder_;
    last_us_ = now_us;
    const unsigned __int128 whole = earned / 1'000'000;
    remainder_ = static_cast<uint64_t>(earned % 1'000'000);
    const unsigned __int128 room = static_cast<unsigned __int128>(burst_ - tokens_);
    if (whole >= room) {
        tokens_ = burst_;
        remainder_ = 0; // a full bucket saves nothing more
    } else {
        tokens_ += static_cast<int64_t>(whole);
    }
}

bool RateLimiter::admit(uint64_t bytes, uint64_t now_us) {
    if (rate_ == 0) return true;
    refill(now_us);
    if (tokens_ < 0) return false;
    tokens_ -= static_cast<int64_t>(std::min<uint64_t>(bytes, INT64_MAX / 2));
    return true;
}

uint64_t RateLimiter::wait_us(uint64_t now_us) {
    if (rate_ == 0) return 0;
    refill(now_us);
    if (tokens_ >= 0) return 0;
    const unsigned __int128 need = static_cast<unsigned __int128>(-tokens_) * 1'000'000;
    const unsigned __int128 have = remainder_;
    return static_cast<uint64_t>((need - std::min(need, have) + rate_ - 1) / rate_);
}

} // namespace millipede::session

// RateLimiter: the long-run rate, debt for chunks larger than the burst,
// no credit hoarded while idle, and the wait it reports.
#include <gtest/gtest.h>

#include "millipede/session/rate_limiter.h"

using millipede::session::RateLimiter;

namespace {

// Sends `chunk`-byte pieces as fast as the limiter admits them, polling
// every `step_us`, for `duration_us`; returns the bytes admitted.
uint64_t drive(RateLimiter &r, uint64_t chunk, uint64_t step_us, uint64_t duration_us, uint64_t t0 = 0) {
    uint64_t sent = 0;
    for (uint64_t t = t0; t < t0 + duration_us; t += step_us)
        while (r.admit(chunk, t)) sent += chunk;
    return sent;
}

} // namespace

TEST(RateLimiter, UnlimitedAdmitsEverything) {
    RateLimiter r;
    EXPECT_TRUE(r.unlimited());
    for (int i = 0; i < 1000; i++) EXPECT_TRUE(r.admit(1 << 20, 0));
    EXPECT_EQ(r.wait_us(0), 0u);
}

TEST(RateLimiter, SmallPiecesHoldTheRate) {
    RateLimiter r(10'000'000); // 10 MB/s
    const uint64_t sent = drive(r, 1500, 100, 10'000'000); // 10 s
    // 100 MB, plus at most the 10 ms burst and one piece of debt.
    EXPECT_GE(sent, 100'000'000u - 1500);
    EXPECT_LE(sent, 100'000'000u + 100'000 + 1500);
}

TEST(RateLimiter, ChunksLargerThanTheBurstGoIntoDebt) {
    RateLimiter r(2 << 20); // 2 MiB/s: the burst is ~21 KB, a chunk 1 MiB
    const uint64_t sent = drive(r, 1 << 20, 1000, 4'000'000); // 4 s
    // The first chunk leaves at once (into debt), then one each time the
    // debt is paid, about every 0.49 s: 9 by 4 s, never 10. Without debt no
    // chunk larger than the burst would ever leave.
    EXPECT_EQ(sent, 9u << 20);
}

TEST(RateLimiter, IdleTimeEarnsOnlyTheBurst) {
    RateLimiter r(1'000'000, 10'000); // 1 MB/s, 10 ms burst = 10 kB
    EXPECT_TRUE(r.admit(1, 0));
    // An hour idle, then: 10 kB admitted at once, not 3.6 GB.
    uint64_t sent = 0;
    while (r.admit(1000, 3'600'000'000ull)) sent += 1000;
    EXPECT_LE(sent, 11'000u);
    EXPECT_GE(sent, 9'000u);
}

TEST(RateLimiter, WaitIsTheTimeUntilTheDebtIsPaid) {
    RateLimiter r(1'000'000); // 1 byte per microsecond
    EXPECT_EQ(r.wait_us(0), 0u);
    ASSERT_TRUE(r.admit(510'000, 0)); // burst 10 kB: 500 kB of debt
    EXPECT_FALSE(r.admit(1, 0));
    const uint64_t w = r.wait_us(0);
    EXPECT_GE(w, 499'000u);
    EXPECT_LE(w, 501'000u);
    EXPECT_FALSE(r.admit(1, w - 2000));
    EXPECT_TRUE(r.admit(1, w + 1));
}

TEST(RateLimiter, AClockThatStepsBackEarnsNothing) {
    RateLimiter r(1'000'000);
    ASSERT_TRUE(r.admit(20'000, 1'000'000)); // 10 kB into debt
    EXPECT_FALSE(r.admit(1, 500'000));
    EXPECT_FALSE(r.admit(1, 1'000'000));
    EXPECT_TRUE(r.admit(1, 1'011'000));
}

TEST(RateLimiter, OddRatesKeepTheirFractions) {
    RateLimiter r(333); // 333 bytes/s: a fraction of a byte per microsecond
    const uint64_t sent = drive(r, 1, 1000, 100'000'000); // 100 s
    EXPECT_GE(sent, 33'300u - 1);
    EXPECT_LE(sent, 33'300u + 4);
}

// PollGaps: the rx lcore's unpolled spells, counted from TSC values alone.
#include <gtest/gtest.h>

#include "millipede/dataplane/poll_gaps.h"

using millipede::dataplane::PollGaps;

namespace {
constexpr uint64_t kHz = 2'000'000'000; // 2 GHz: 2,000 cycles per microsecond
constexpr uint64_t us(uint64_t n) { return n * 2'000; }
} // namespace

TEST(PollGaps, CountsEachGapInEveryBucketItReaches) {
    PollGaps g;
    g.set_tsc_hz(kHz);
    uint64_t t = us(1'000'000);
    g.restart(t);
    for (uint64_t step : {us(50), us(99), us(150), us(2'000), us(20'000), us(10)}) g.note(t += step);
    const PollGaps::Figures f = g.figures();
    EXPECT_EQ(f.over_100us, 3u) << "150 us, 2 ms and 20 ms";
    EXPECT_EQ(f.over_1ms, 2u);
    EXPECT_EQ(f.over_10ms, 1u);
    EXPECT_EQ(f.longest_ns, 20'000'000u);
}

TEST(PollGaps, NothingBeforeTheLoopStartsOrAcrossARestart) {
    PollGaps g;
    g.set_tsc_hz(kHz);
    g.note(us(5'000'000)); // the first poll: nothing to measure from
    EXPECT_EQ(g.figures().over_100us, 0u);
    g.restart(us(9'000'000)); // a pause the loop meant to take
    g.note(us(9'000'050));
    EXPECT_EQ(g.figures().over_100us, 0u);
    EXPECT_EQ(g.figures().longest_ns, 0u);
}

TEST(PollGaps, SeveralLcoresAddCountsAndKeepTheLongest) {
    PollGaps a, b;
    a.set_tsc_hz(kHz);
    b.set_tsc_hz(kHz);
    a.restart(us(1));
    a.note(us(1) + us(3'000));
    b.restart(us(1));
    b.note(us(1) + us(500));
    b.note(us(1) + us(500) + us(12'000));
    PollGaps::Figures f = a.figures();
    f += b.figures();
    EXPECT_EQ(f.over_100us, 3u);
    EXPECT_EQ(f.over_1ms, 2u);
    EXPECT_EQ(f.over_10ms, 1u);
    EXPECT_EQ(f.longest_ns, 12'000'000u);
}

// SpscQueue: FIFO order, bounds, and a two-thread run under the sanitizers.
#include <thread>

#include <gtest/gtest.h>

#include "millipede/pipeio/spsc_queue.h"

using millipede::pipeio::SpscQueue;

TEST(Spsc, CapacityRoundsUpToPowerOfTwo) {
    SpscQueue<int> q(5);
    EXPECT_EQ(q.capacity(), 8u);
    SpscQueue<int> one(1);
    EXPECT_EQ(one.capacity(), 1u);
    EXPECT_THROW(SpscQueue<int>(0), std::invalid_argument);
}

TEST(Spsc, FifoFullEmpty) {
    SpscQueue<uint32_t> q(4);
    uint32_t v = 0;
    EXPECT_FALSE(q.try_pop(v));
    for (uint32_t i = 0; i < 4; i++) EXPECT_TRUE(q.try_push(i));
    EXPECT_FALSE(q.try_push(99));
    EXPECT_EQ(q.size_approx(), 4u);
    for (uint32_t round = 0; round < 10; round++) {
        ASSERT_TRUE(q.try_pop(v));
        EXPECT_EQ(v, round);
        ASSERT_TRUE(q.try_push(round + 4));
    }
    for (uint32_t i = 10; i < 14; i++) {
        ASSERT_TRUE(q.try_pop(v));
        EXPECT_EQ(v, i);
    }
    EXPECT_FALSE(q.try_pop(v));
    EXPECT_TRUE(q.empty_approx());
}

TEST(Spsc, TwoThreadsKeepOrderAndPublishPayload) {
    struct Msg {
        uint64_t seq;
        uint64_t check;
    };
    SpscQueue<Msg> q(64);
    constexpr uint64_t kN = 2'000'000;
    std::thread prod([&] {
        for (uint64_t i = 0; i < kN; i++) {
            Msg m{i, i * 0x9e3779b97f4a7c15ull};
            while (!q.try_push(m)) std::this_thread::yield();
        }
    });
    uint64_t expect = 0;
    bool ok = true;
    while (expect < kN) {
        Msg m;
        if (!q.try_pop(m)) {
            std::this_thread::yield();
            continue;
        }
        if (m.seq != expect || m.check != expect * 0x9e3779b97f4a7c15ull) ok = false;
        expect++;
    }
    prod.join();
    EXPECT_TRUE(ok);
}

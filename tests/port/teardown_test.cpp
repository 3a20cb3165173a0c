// port::guard_eal_teardown (lib/port/include/millipede/port/teardown.h):
// a fault in any thread after the guard ends the process with the run's
// status and a line that says so; without the guard it is a crash.
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include "millipede/port/teardown.h"

using millipede::port::guard_eal_teardown;

namespace {

void fault_in_another_thread() {
    std::thread t([] {
        volatile int *nowhere = nullptr;
        *nowhere = 1; // what EAL's interrupt thread does to unmapped memory
    });
    t.join();
}

} // namespace

TEST(TeardownGuard, AFaultInAnotherThreadExitsWithTheRunsStatus) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(
        {
            guard_eal_teardown(0, "tx");
            fault_in_another_thread();
        },
        testing::ExitedWithCode(0), "dpdk-millipede tx: warning: a fault in EAL's teardown .* exit status 0 is the run's");
    EXPECT_EXIT(
        {
            guard_eal_teardown(3, "rx");
            raise(SIGBUS);
        },
        testing::ExitedWithCode(3), "dpdk-millipede rx: warning: a fault in EAL's teardown");
}

TEST(TeardownGuard, WithoutTheGuardTheFaultIsACrash) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(fault_in_another_thread(), testing::KilledBySignal(SIGSEGV), "");
}

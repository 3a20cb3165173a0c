// port::guard_eal_teardown (lib/port/include/millipede/port/teardown.h):
// a fault in any thread after the guard ends the process with the run's
// status and a line that says so; without the guard it is a crash.
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include <sys/mman.h>

#include "millipede/port/teardown.h"

using millipede::port::guard_eal_teardown;

namespace {

// A store to a page with no access: the fault EAL's interrupt thread takes
// on memory rte_eal_cleanup() unmapped (and, unlike a null pointer, no
// undefined behaviour for UBSan to report first).
void fault_in_another_thread() {
    void *page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(page, MAP_FAILED);
    std::thread t([page] { *static_cast<volatile int *>(page) = 1; });
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

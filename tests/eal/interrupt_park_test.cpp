// lib/port interrupt_park.h on a real EAL with a memif server port (its
// listener's interrupt source is the one DPDK 22.11 leaves behind): once
// parked, EAL's interrupt thread runs no other callback, and
// rte_eal_cleanup() (eal_main.cpp, after the tests) still returns.
// One test per process: the thread stays parked until the process ends.
#define ALLOW_EXPERIMENTAL_API 1 // rte_intr_instance_*: experimental in DPDK 22.11
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_interrupts.h>

#include "millipede/port/interrupt_park.h"

namespace {

// An eventfd whose callback EAL's interrupt thread runs when it is written.
struct Probe {
    int fd = -1;
    rte_intr_handle *h = nullptr;
    std::mutex mu;
    std::condition_variable cv;
    bool fired = false;

    static void on_event(void *arg) {
        auto *p = static_cast<Probe *>(arg);
        uint64_t v;
        ssize_t r = read(p->fd, &v, sizeof v); // (level-triggered: clear it)
        (void)r;
        {
            std::lock_guard<std::mutex> g(p->mu);
            p->fired = true;
        }
        p->cv.notify_all();
    }
    bool arm() {
        fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        h = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
        if (fd < 0 || h == nullptr || rte_intr_fd_set(h, fd) != 0 || rte_intr_type_set(h, RTE_INTR_HANDLE_EXT) != 0 ||
            rte_intr_callback_register(h, on_event, this) != 0)
            return false;
        const uint64_t one = 1;
        return write(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one);
    }
    bool fired_within(std::chrono::milliseconds bound) {
        std::unique_lock<std::mutex> l(mu);
        return cv.wait_for(l, bound, [this] { return fired; });
    }
};

TEST(InterruptPark, TheThreadRunsNoOtherCallbackOnceParked) {
    ASSERT_GE(rte_eth_dev_count_avail(), 1u) << "meson.build gives this test a memif server vdev";
    // Before: the interrupt thread runs a probe's callback (so the check
    // below can fail).
    static Probe before;
    ASSERT_TRUE(before.arm());
    EXPECT_TRUE(before.fired_within(std::chrono::milliseconds(2000)));
    ASSERT_GE(rte_intr_callback_unregister_sync(before.h, Probe::on_event, &before), 0);
    ASSERT_TRUE(millipede::port::park_interrupt_thread(2000));
    // After: a new source's callback does not run (bounded wait).
    static Probe after;
    ASSERT_TRUE(after.arm());
    EXPECT_FALSE(after.fired_within(std::chrono::milliseconds(300))) << "the interrupt thread left the parking callback";
}

} // namespace

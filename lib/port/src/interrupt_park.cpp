// See interrupt_park.h.
#define ALLOW_EXPERIMENTAL_API 1 // rte_intr_instance_*: experimental in DPDK 22.11
#include "millipede/port/interrupt_park.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_interrupts.h>

namespace millipede::port {
namespace {

struct ParkState {
    std::mutex mu;
    std::condition_variable cv;
    bool parked = false;
};

// Never freed: the parked thread may still be inside notify_all() when
// the main thread has moved on to exit() and would run the destructors.
ParkState &park_state() {
    static ParkState *s = new ParkState;
    return *s;
}

// Runs on EAL's interrupt thread and keeps it here until the process ends.
void park_here(void *) {
    ParkState &s = park_state();
    {
        std::lock_guard<std::mutex> g(s.mu);
        s.parked = true;
    }
    s.cv.notify_all();
    for (;;) pause();
}

} // namespace

bool park_interrupt_thread(unsigned bound_ms) {
    const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) return false;
    rte_intr_handle *h = rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE);
    if (h == nullptr || rte_intr_fd_set(h, efd) != 0 || rte_intr_type_set(h, RTE_INTR_HANDLE_EXT) != 0 ||
        rte_intr_callback_register(h, park_here, nullptr) != 0) {
        rte_intr_instance_free(h);
        close(efd);
        return false;
    }
    // EAL registered its own copy of the handle; the eventfd stays open for
    // it (the callback never returns, so it is never unregistered).
    rte_intr_instance_free(h);
    const uint64_t one = 1;
    if (write(efd, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) return false;
    ParkState &s = park_state();
    std::unique_lock<std::mutex> l(s.mu);
    return s.cv.wait_for(l, std::chrono::milliseconds(bound_ms), [&s] { return s.parked; });
}

} // namespace millipede::port

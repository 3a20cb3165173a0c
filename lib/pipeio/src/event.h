// Eventcount on a Linux futex: lets a pipe thread sleep (bounded) until the
// other side of a queue moved, while the other side, a polling lcore, pays a
// system call only when someone actually sleeps.
//
// Waiter:   key = prepare(); if (condition) { cancel(); ... } else wait(key, us);
// Notifier: make the condition true (e.g. a queue push), then notify().
// prepare() announces the sleeper before the condition is re-checked, and
// notify() looks for sleepers after publishing, both behind seq_cst fences:
// either the waiter sees the new state or the notifier sees the waiter and
// bumps the word, so futex_wait() returns at once. Timeouts bound every wait
// anyway, so a stop flag is always noticed.
#pragma once

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "millipede/pipeio/spsc_queue.h"

namespace millipede::pipeio::detail {

class alignas(kCacheLine) Event {
  public:
    uint32_t prepare() {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return word_.load(std::memory_order_seq_cst);
    }
    void cancel() { sleepers_.fetch_sub(1, std::memory_order_seq_cst); }
    // Sleeps until notified, the timeout elapses, or a signal arrives.
    void wait(uint32_t key, uint64_t timeout_us) {
        timespec ts{static_cast<time_t>(timeout_us / 1000000), static_cast<long>((timeout_us % 1000000) * 1000)};
        syscall(SYS_futex, reinterpret_cast<uint32_t *>(&word_), FUTEX_WAIT_PRIVATE, key, &ts, nullptr, 0);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    }
    void notify() {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) == 0) return;
        word_.fetch_add(1, std::memory_order_seq_cst);
        syscall(SYS_futex, reinterpret_cast<uint32_t *>(&word_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
    }

  private:
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word must be a plain 32-bit word");
    std::atomic<uint32_t> word_{0};
    std::atomic<uint32_t> sleepers_{0};
};

} // namespace millipede::pipeio::detail

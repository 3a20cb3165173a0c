// A one-way "the run is over" flag that polling lcores read with a plain
// load and that a sleeping control thread can wait on without missing it.
//
// Contract: set() once from any thread (later calls do nothing new);
// is_set() from any thread, an acquire load, cheap enough for hot loops;
// wait_for(d) from one thread: returns once set or after d, whichever comes
// first. The mutex is taken only by set() and wait_for(), never by is_set().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace millipede::dataplane {

class DoneSignal {
public:
    bool is_set() const { return done_.load(std::memory_order_acquire); }

    void set() {
        {
            std::lock_guard<std::mutex> g(mu_); // no wake-up lost between a waiter's check and its wait
            done_.store(true, std::memory_order_release);
        }
        cv_.notify_all();
    }

    void wait_for(std::chrono::milliseconds d) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait_for(lk, d, [this] { return is_set(); });
    }

private:
    std::atomic<bool> done_{false};
    std::mutex mu_;
    std::condition_variable cv_;
};

} // namespace millipede::dataplane

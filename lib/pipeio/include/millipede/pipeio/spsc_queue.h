// Bounded lock-free single-producer/single-consumer queue of small trivially
// copyable values (pointers, descriptors).
//
// Contract
// - Exactly one producer thread calls try_push(), exactly one consumer thread
//   calls try_pop()/front(); the two may run concurrently. Any other use
//   (two producers, two consumers) is a data race.
// - Capacity is fixed at construction (rounded up to a power of two) and the
//   storage is allocated once there; push/pop never allocate, never block,
//   never throw. try_push() returns false when full, try_pop() when empty.
// - A value pushed is visible, with everything the producer wrote before the
//   push (release/acquire), to the consumer that pops it: handing a buffer
//   pointer through the queue publishes the buffer's contents.
// - size_approx() may be called from either side and is exact there for the
//   caller's own operations (the other side may move concurrently).
//
// Why not rte_ring: this component is pure (testable without EAL); an
// adapter may put an rte_ring between pipeio and the lcores later.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>

namespace millipede::pipeio {

inline constexpr size_t kCacheLine = 64;

template <class T> class SpscQueue {
    static_assert(std::is_trivially_copyable_v<T>, "SpscQueue holds trivially copyable values");

  public:
    explicit SpscQueue(size_t min_capacity) {
        if (min_capacity == 0 || min_capacity > (size_t(1) << 30))
            throw std::invalid_argument("SpscQueue: capacity must be 1..2^30");
        size_t cap = 1;
        while (cap < min_capacity) cap <<= 1;
        mask_ = cap - 1;
        slots_ = std::make_unique<T[]>(cap);
    }
    SpscQueue(const SpscQueue &) = delete;
    SpscQueue &operator=(const SpscQueue &) = delete;

    size_t capacity() const { return mask_ + 1; }

    // Producer side.
    bool try_push(const T &v) {
        const size_t t = tail_.load(std::memory_order_relaxed);
        if (t - head_cache_ > mask_) {
            // Looks full with the stale view: refresh it once (one shared-line read).
            head_cache_ = head_.load(std::memory_order_acquire);
            if (t - head_cache_ > mask_) return false;
        }
        slots_[t & mask_] = v;
        tail_.store(t + 1, std::memory_order_release);
        return true;
    }

    // Consumer side.
    bool try_pop(T &out) {
        const size_t h = head_.load(std::memory_order_relaxed);
        if (h == tail_cache_) {
            tail_cache_ = tail_.load(std::memory_order_acquire);
            if (h == tail_cache_) return false;
        }
        out = slots_[h & mask_];
        head_.store(h + 1, std::memory_order_release);
        return true;
    }

    bool empty_approx() const {
        return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
    }
    size_t size_approx() const {
        const size_t h = head_.load(std::memory_order_acquire);
        const size_t t = tail_.load(std::memory_order_acquire);
        return t - h;
    }

  private:
    // Producer-owned line: its index and its cached copy of the consumer's.
    alignas(kCacheLine) std::atomic<size_t> tail_{0};
    size_t head_cache_ = 0;
    // Consumer-owned line.
    alignas(kCacheLine) std::atomic<size_t> head_{0};
    size_t tail_cache_ = 0;
    // Read-only after construction.
    alignas(kCacheLine) size_t mask_ = 0;
    std::unique_ptr<T[]> slots_;
};

} // namespace millipede::pipeio

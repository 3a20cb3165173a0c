// What lib/stripe needs from a leg (one TCP byte stream) and what it tells
// its owner. lib/stripe never sees lib/tcp: the owner (a worker lcore with
// TCP-lite connections, the simulator, or a test with byte queues) adapts.
//
// Contract
// - LegIo is implemented by the owner and called only from inside
//   StripeSender::poll() / StripeReceiver::poll(), on the owner's thread.
// - writable(leg) is the number of bytes the leg accepts right now (free
//   send window / send buffer). write() may accept fewer than asked; it
//   must never accept more than writable() said.
// - Events (StripeEvent) are pulled by the owner with next_event() after
//   each call into the sender/receiver; the queue is fixed-size and sized so
//   that it cannot overflow (at most one outstanding CONNECT/CLOSE per leg).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "millipede/stripe/wire.h"

namespace millipede::stripe {

inline constexpr uint32_t kMaxLegs = 64;

class LegIo {
  public:
    virtual ~LegIo() = default;
    virtual size_t writable(uint32_t leg) = 0;
    virtual size_t write(uint32_t leg, const uint8_t *p, size_t n) = 0;
    // The same bytes by reference: `ref` (non-zero) keeps them alive, and
    // the leg holds its own reference instead of copying (zero-copy send).
    // An owner that cannot hold references copies.
    virtual size_t write_ref(uint32_t leg, const uint8_t *p, size_t n, uint64_t ref) {
        (void)ref;
        return write(leg, p, n);
    }
    // Bytes written to `leg` since it connected that its peer acknowledged
    // (TCP: payload bytes below SND.UNA). Used in compat mode only, where
    // nothing else proves delivery; an owner that cannot tell says all.
    virtual uint64_t delivered(uint32_t) { return UINT64_MAX; }
};

enum class EventType : uint8_t {
    CONNECT_LEG, // sender: (re)connect leg `leg` now; answer leg_up() or leg_connect_failed()
    CLOSE_LEG,   // abort leg `leg` (protocol error or refused); do not report leg_down() for it
    DONE,        // session complete (see confirmed() on the sender)
    FAILED,      // session failed; message() says why
};

struct StripeEvent {
    EventType type = EventType::DONE;
    uint32_t leg = 0;
    Error error = Error::NONE;
};

enum class SessionState : uint8_t { RUNNING, DONE, FAILED };

// Fixed-capacity FIFO; allocated once at set-up.
class EventQueue {
  public:
    explicit EventQueue(size_t cap) : buf_(cap) {}
    bool push(const StripeEvent &e) {
        if (count_ == buf_.size()) return false;
        buf_[(head_ + count_) % buf_.size()] = e;
        count_++;
        return true;
    }
    bool pop(StripeEvent &e) {
        if (count_ == 0) return false;
        e = buf_[head_];
        head_ = (head_ + 1) % buf_.size();
        count_--;
        return true;
    }
    size_t size() const { return count_; }

  private:
    std::vector<StripeEvent> buf_;
    size_t head_ = 0;
    size_t count_ = 0;
};

} // namespace millipede::stripe

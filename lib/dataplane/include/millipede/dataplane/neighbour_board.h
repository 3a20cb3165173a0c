// The neighbour MACs the ARP owner publishes for the workers. One lcore (the
// first RX lcore) owns ARP, ICMP and each port's NeighbourCache; workers
// only read this board. A worker that finds no MAC hands its frame to the
// owner, which resolves (ARP) and sends it, and publishes the answer here.
//
// Contract
// - publish()/withdraw(): the owner lcore only. lookup(): any lcore,
//   lock-free (a sequence count per entry; a reader that races a writer
//   retries or reports a miss, never a torn MAC).
// - Fixed capacity (kEntries per port); nothing allocates after set-up.
#pragma once

#include <atomic>
#include <cstdint>

#include "millipede/net/arp.h"

namespace millipede::dataplane {

class NeighbourBoard {
  public:
    static constexpr unsigned kEntries = 64;

    explicit NeighbourBoard(unsigned ports) : ports_(ports), e_(new Entry[size_t(ports) * kEntries]) {}
    ~NeighbourBoard() { delete[] e_; }
    NeighbourBoard(const NeighbourBoard &) = delete;
    NeighbourBoard &operator=(const NeighbourBoard &) = delete;

    // Port index (the plane's, not the DPDK port id), next hop (host order).
    bool lookup(unsigned port, uint32_t ip, net::MacAddr &mac) const {
        const Entry *base = e_ + size_t(port) * kEntries;
        for (unsigned i = 0; i < kEntries; i++) {
            const Entry &e = base[i];
            for (int tries = 0; tries < 4; tries++) {
                const uint32_t s1 = e.seq.load(std::memory_order_acquire);
                if (s1 == 0) return false; // never written: the end of the used entries
                if (s1 & 1) continue;      // being written
                const uint32_t eip = e.ip.load(std::memory_order_relaxed);
                const uint64_t m = e.mac.load(std::memory_order_relaxed);
                std::atomic_thread_fence(std::memory_order_acquire);
                if (e.seq.load(std::memory_order_relaxed) != s1) continue;
                if (eip != ip) break;
                if (!(m >> 48)) return false; // withdrawn
                for (int k = 0; k < 6; k++) mac.b[k] = static_cast<uint8_t>(m >> (8 * k));
                return true;
            }
        }
        return false;
    }

    // Owner: the MAC for `ip` on `port` (an existing entry is updated).
    bool publish(unsigned port, uint32_t ip, const net::MacAddr &mac) {
        uint64_t m = uint64_t(1) << 48;
        for (int k = 0; k < 6; k++) m |= uint64_t(mac.b[k]) << (8 * k);
        return write(port, ip, m);
    }
    // Owner: `ip` has no usable MAC any more.
    void withdraw(unsigned port, uint32_t ip) { write(port, ip, 0, false); }

  private:
    struct alignas(16) Entry {
        std::atomic<uint32_t> seq{0};
        std::atomic<uint32_t> ip{0};
        std::atomic<uint64_t> mac{0}; // 6 bytes, bit 48: valid
    };
    bool write(unsigned port, uint32_t ip, uint64_t m, bool create = true) {
        Entry *base = e_ + size_t(port) * kEntries;
        for (unsigned i = 0; i < kEntries; i++) {
            Entry &e = base[i];
            const uint32_t s = e.seq.load(std::memory_order_relaxed);
            if (s != 0 && e.ip.load(std::memory_order_relaxed) != ip) continue;
            if (s == 0 && !create) return false;
            e.seq.store(s + 1, std::memory_order_relaxed); // odd: being written
            std::atomic_thread_fence(std::memory_order_release);
            e.ip.store(ip, std::memory_order_relaxed);
            e.mac.store(m, std::memory_order_relaxed);
            e.seq.store(s + 2, std::memory_order_release);
            return true;
        }
        return false; // full: workers keep asking the owner
    }
    unsigned ports_;
    Entry *e_;
};

} // namespace millipede::dataplane

// NeighbourCache: IPv4 -> MAC for one port, filled by ARP (RFC 826),
// with bounded memory and injected time.
//
// Contract
// - Single-threaded: one instance per port, every method on the owner's
//   thread (the lcore that does ARP for the port). Not thread-safe. Time is
//   passed in as `now_us` (any monotonic microsecond clock).
// - Set-up: the constructor validates the config (std::invalid_argument)
//   and allocates everything: max_entries entries, a hash index of twice as
//   many slots (open addressing, linear probing, backward-shift deletion:
//   lookups are O(1) expected), max_entries x max_queued packet slots, and
//   the release ring. Nothing allocates or throws after.
// - Packets are opaque 64-bit handles (an mbuf pointer); the cache never
//   touches them. Ownership:
//     resolve() -> RESOLVED: the caller keeps the packet and sends it.
//     resolve() -> PENDING with a packet: the cache holds the handle until
//       take_released() returns it (send = true with the learnt MAC, or
//       send = false when resolution failed: the caller frees it).
//     resolve() -> DROPPED: the caller keeps the packet and frees it.
// - Waiting-packet policy: at most max_queued packets per INCOMPLETE entry,
//   FIFO; when that queue is full the NEW packet is dropped and counted
//   (QUEUE_FULL) - the first packets of a connection (the SYN) are kept.
//   A full table drops and counts (TABLE_FULL); entries are not evicted to
//   make room, except that a host asking for us (ARP for_us) takes the
//   place of the oldest INCOMPLETE entry (a flood of spoofed on-link
//   sources must not lock real neighbours out); stale ones are collected
//   by poll() after stale_gc_us.
// - States (a subset of RFC 4861's NUD, applied to ARP as Linux does):
//     INCOMPLETE  requests sent, no answer yet; packets wait
//     REACHABLE   confirmed by an ARP packet less than reachable_us ago
//     STALE       older than that: still used, the next use starts probing
//     PROBE       in use and being re-confirmed; deleted after max_retries
//     STATIC      from --neigh ADDR=MAC: never ages, never overwritten
//   INCOMPLETE gives up after max_retries requests retry_interval_us apart;
//   its waiting packets come back with send = false.
// - Learning (RFC 826 "merge"): an ARP packet updates an existing entry for
//   its sender; it creates one only when we are its target (for_us).
//   Gratuitous ARP updates existing entries, never creates. Probes (sender
//   IP 0) teach nothing. Static entries are kept and the conflict counted.
// - send_request: whenever a result sets it, the caller should send one ARP
//   request (build_arp_request) for that address now; poll() lists the
//   retries. Requests are broadcast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "millipede/net/arp.h"

namespace millipede::net {

enum class NeighState : uint8_t { FREE, INCOMPLETE, REACHABLE, STALE, PROBE, STATIC };
const char *neigh_state_name(NeighState s);

// X-macro table of drops: symbol, short name, description.
#define MILLIPEDE_NEIGH_DROPS(X)                                                                    \
    X(INVALID_ADDRESS, "neigh_invalid_address", "next hop 0.0.0.0, multicast or broadcast")        \
    X(TABLE_FULL, "neigh_table_full", "no free neighbour entry for a new next hop")                \
    X(QUEUE_FULL, "neigh_queue_full", "too many packets already wait for this next hop")           \
    X(RESOLUTION_FAILED, "neigh_resolution_failed", "no ARP reply after the last retry")

enum class NeighDrop : uint8_t {
    NONE = 0,
#define MILLIPEDE_X(sym, name, desc) sym,
    MILLIPEDE_NEIGH_DROPS(MILLIPEDE_X)
#undef MILLIPEDE_X
        COUNT_
};
inline constexpr unsigned kNeighDropCount = static_cast<unsigned>(NeighDrop::COUNT_);
const char *neigh_drop_name(NeighDrop d);
const char *neigh_drop_description(NeighDrop d);

inline constexpr uint64_t kNoPacket = 0;

struct NeighbourConfig {
    uint32_t max_entries = 256;               // 1..65536
    uint32_t max_queued = 4;                  // waiting packets per entry, 0..64
    uint32_t max_retries = 3;                 // ARP requests before giving up, 1..100
    uint64_t retry_interval_us = 1'000'000;
    uint64_t reachable_us = 30'000'000;       // REACHABLE -> STALE
    uint64_t stale_gc_us = 600'000'000;       // delete STALE entries unused this long (0: never)
};

struct NeighLookup {
    enum class Kind : uint8_t { RESOLVED, PENDING, DROPPED } kind = Kind::DROPPED;
    MacAddr mac;               // RESOLVED
    bool send_request = false; // send an ARP request for the address now
    NeighDrop drop = NeighDrop::NONE;
};

enum class ArpLearn : uint8_t {
    IGNORED,         // probe, or not for us and not known
    CREATED,         // new REACHABLE entry (we were the target)
    CONFIRMED,       // existing entry confirmed (MAC unchanged)
    MAC_CHANGED,     // existing entry now points at another MAC
    RESOLVED,        // an INCOMPLETE entry resolved; waiting packets released
    STATIC_CONFLICT, // a static entry disagrees with the wire; kept
    TABLE_FULL,      // would have created an entry; no room
};

struct NeighRelease {
    uint64_t pkt = 0;
    MacAddr mac;       // destination when send
    bool send = false; // false: resolution failed, free the packet
};

struct NeighEntry {
    uint32_t ip = 0;
    MacAddr mac;
    NeighState state = NeighState::FREE;
    uint32_t retries = 0;      // requests sent in the current INCOMPLETE/PROBE round
    uint64_t age_us = 0;       // since the last confirmation (0 for static)
    uint32_t queued = 0;       // packets waiting
};

struct NeighStats {
    uint64_t hits = 0;
    uint64_t misses = 0;           // resolve() created an INCOMPLETE entry
    uint64_t requests = 0;         // send_request results + poll() retries
    uint64_t created = 0;          // by ARP or by a miss
    uint64_t confirmed = 0;
    uint64_t mac_changes = 0;
    uint64_t static_conflicts = 0;
    uint64_t released_send = 0;    // waiting packets released with a MAC
    uint64_t expired = 0;          // entries deleted (failed resolution, failed probe, GC)
    uint64_t evicted_incomplete = 0; // unanswered entries given up for a host that asked for us
    uint64_t drops[kNeighDropCount] = {};
};

class NeighbourCache {
  public:
    explicit NeighbourCache(const NeighbourConfig &cfg = {});
    ~NeighbourCache();
    NeighbourCache(const NeighbourCache &) = delete;
    NeighbourCache &operator=(const NeighbourCache &) = delete;

    // Set-up (also fine later): a permanent entry. False when the address
    // or MAC is invalid or the table is full. Replaces a dynamic entry
    // (its waiting packets are released to the static MAC).
    bool add_static(uint32_t ip, const MacAddr &mac, uint64_t now_us = 0);

    // Data path: the MAC for next hop `ip`; see the ownership rules above.
    NeighLookup resolve(uint32_t ip, uint64_t now_us, uint64_t pkt = kNoPacket);

    // A parsed ARP packet received on this port. `for_us`: its target IP is
    // one of the port's addresses.
    ArpLearn on_arp(const ArpPacket &p, bool for_us, uint64_t now_us);

    // Timers: retries due, give-ups, aging, GC. Writes up to `max` addresses
    // that need an ARP request now to `requests` and returns how many;
    // retries that did not fit stay due for the next call. Call it every
    // few milliseconds to every 100 ms; it scans all entries.
    size_t poll(uint64_t now_us, uint32_t *requests, size_t max);

    // Packets whose fate is decided (resolved or failed), oldest first.
    size_t take_released(NeighRelease *out, size_t max);

    bool remove(uint32_t ip); // waiting packets are released with send = false
    bool lookup(uint32_t ip, uint64_t now_us, NeighEntry &out) const; // no side effects
    size_t size() const { return used_; }
    size_t capacity() const { return cfg_.max_entries; }
    const NeighStats &stats() const { return stats_; }

  private:
    struct Entry;
    int32_t find(uint32_t ip) const;
    int32_t insert(uint32_t ip); // -1: full
    void erase(int32_t idx);
    void release_queue(Entry &e, bool send);
    NeighLookup enqueue(Entry &e, uint64_t pkt, NeighLookup r);
    void push_release(uint64_t pkt, const MacAddr &mac, bool send);
    uint32_t slot_of(uint32_t ip) const;

    NeighbourConfig cfg_;
    std::unique_ptr<Entry[]> entries_;
    std::unique_ptr<uint64_t[]> queues_;  // max_entries x max_queued
    std::unique_ptr<int32_t[]> slots_;    // entry index or -1
    std::unique_ptr<uint32_t[]> slot_ip_; // copy of the key, one cache line holds many
    std::unique_ptr<int32_t[]> free_;     // free entry indices (stack)
    std::unique_ptr<NeighRelease[]> rel_; // release ring
    uint32_t slot_mask_ = 0;
    uint32_t slot_bits_ = 0;
    uint32_t free_top_ = 0;
    size_t used_ = 0;
    size_t queued_total_ = 0; // packets in all entry queues
    size_t rel_cap_ = 0, rel_head_ = 0, rel_count_ = 0;
    NeighStats stats_;
};

} // namespace millipede::net

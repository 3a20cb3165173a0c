// The flow table: rte_hash from FlowKey to a FlowEntry slot, with idle expiry
// and end-of-flow on TCP FIN/RST.
//
// Contract
// - Owned by the classifier lcore: every call comes from that one lcore; not
//   thread-safe (rte_hash is created single-writer, no RW concurrency).
// - Slots are rte_hash positions; entries() is indexed by them. A slot's
//   `uid` is 0 while free and a fresh, increasing number per flow, so a
//   reused slot is never mistaken for its previous flow.
// - Expiry never ends a flow early and at most touch_granularity late: each
//   flow class (TCP, UDP, other) and closed TCP flows keep an LRU list ordered
//   by the time a flow was last (re)queued, which trails its last-seen time by
//   less than the granularity (a flow seen again within it is not requeued:
//   that relink costs two random cache misses per packet). The idle scan thus
//   only looks at list heads, and a full table evicts the oldest flow to
//   within the granularity (closed ones first). Every end, for any reason, is
//   reported once to the FlowEndSink.
// - Allocation happens only in create(); lookups and updates never allocate.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "millipede/flow/flow_key.h"

struct rte_hash;

namespace millipede::flow {

#define MILLIPEDE_FLOW_END_REASONS(X)                                                                              \
    X(Fin, "fin", "both sides sent FIN")                                                                           \
    X(Rst, "rst", "a side sent RST")                                                                               \
    X(Idle, "idle", "idle timeout")                                                                                \
    X(Evicted, "evicted", "table full: oldest idle flow evicted")                                                  \
    X(Reused, "reused", "a new SYN reused the 5-tuple of a flow that had not closed")                              \
    X(EndOfInput, "end-of-input", "the input ended (end of capture or shutdown)")

enum class FlowEndReason : uint8_t {
#define X(sym, name, desc) sym,
    MILLIPEDE_FLOW_END_REASONS(X)
#undef X
        Count_
};
inline constexpr unsigned kFlowEndReasonCount = static_cast<unsigned>(FlowEndReason::Count_);
const char *flow_end_reason_name(FlowEndReason r);

// TCP close tracking bits.
enum TcpStateBits : uint8_t {
    kSynSeen = 0x01,
    kFinFromLo = 0x02,
    kFinFromHi = 0x04,
    kRstSeen = 0x08,
    kClosed = 0x10,
};

struct alignas(64) FlowEntry {
    uint64_t first_seen_ns;
    uint64_t last_seen_ns;
    uint32_t lru_prev;
    uint32_t lru_next;
    uint32_t uid;        // 0: slot free
    uint32_t seq;        // sequence number of the last packet stamped
    uint32_t last_pos;   // worker ring position of the last packet handed over
    // TCP: ISN of the first SYN (detects 5-tuple reuse). ICMP/ICMPv6: the
    // first packet's type | code << 8, which Community ID needs.
    uint32_t syn_seq;
    uint32_t packets[2]; // per direction (kFromLo, kFromHi)
    uint16_t worker;
    uint16_t migrations; // also the "epoch" stamped on packets
    uint8_t list;        // which LRU list holds it (ListId)
    uint8_t tcp_state;   // TcpStateBits
    uint8_t first_dir;   // direction of the first packet: who initiated
    uint8_t proto;
    uint64_t listed_ns;  // when it was last (re)queued on its LRU list
};
static_assert(sizeof(FlowEntry) == 64);

class FlowEndSink {
public:
    virtual ~FlowEndSink() = default;
    // Called on the classifier lcore before the slot is freed or reused.
    virtual void on_flow_end(const FlowKey &key, const FlowEntry &entry, FlowEndReason why) = 0;
};

struct FlowTableConfig {
    uint32_t capacity = 1u << 20;
    // Idle timeouts per FlowClass, and how long a closed TCP flow lingers so
    // its last ACKs and retransmitted FINs still join it.
    std::array<uint64_t, kFlowClassCount> idle_timeout_ns{300'000'000'000ull, 120'000'000'000ull,
                                                          60'000'000'000ull};
    uint64_t closed_linger_ns = 5'000'000'000ull;
    // A flow seen again within this time of its last requeue keeps its LRU
    // place (see the contract); capped at 1/64 of the shortest timeout.
    uint64_t touch_granularity_ns = 10'000'000ull;
    int socket_id = -1; // SOCKET_ID_ANY
    std::string name = "millipede_flows";
};

struct FlowTableStats {
    uint64_t created[kFlowClassCount] = {};
    uint64_t ended[kFlowEndReasonCount] = {};
    uint64_t ended_by_class[kFlowClassCount] = {};
    uint64_t add_failures = 0; // could not insert even after eviction

    // Readers sum the shards' copies.
    FlowTableStats &operator+=(const FlowTableStats &o) {
        for (unsigned i = 0; i < kFlowClassCount; ++i) created[i] += o.created[i], ended_by_class[i] += o.ended_by_class[i];
        for (unsigned i = 0; i < kFlowEndReasonCount; ++i) ended[i] += o.ended[i];
        add_failures += o.add_failures;
        return *this;
    }
};

class FlowTable {
public:
    enum ListId : uint8_t { kListTcp = 0, kListUdp = 1, kListOther = 2, kListClosed = 3, kListCount = 4 };
    static constexpr uint32_t kNil = UINT32_MAX;

    // Fails fast with a message in `err` (rte_hash creation, sizes).
    static std::unique_ptr<FlowTable> create(const FlowTableConfig &cfg, FlowEndSink *sink, std::string &err);
    ~FlowTable();
    // For a process about to call rte_eal_cleanup(), which unmaps all EAL
    // memory at once: forgets this object's EAL memory instead of freeing
    // it. DPDK 22.11's rte_free zeroes every byte it frees, and again when a
    // whole page goes back (malloc_elem_free, free_seg): 25 ms for the
    // default 1M-flow table on a 2-vCPU VM, spent just before the unmap.
    // Afterwards the object must not be used; its destructor frees nothing.
    void leave_memory_to_eal_cleanup();
    FlowTable(const FlowTable &) = delete;
    FlowTable &operator=(const FlowTable &) = delete;

    // Bulk lookup of up to 64 keys with precomputed hashes; positions[i] is
    // the slot or negative when absent.
    void lookup_bulk(const void **keys, uint32_t *hashes, unsigned n, int32_t *positions) const;

    // Inserts (evicting the oldest flow when full). Returns the slot or -1.
    // The slot's entry is zeroed and must be started with start_flow().
    int32_t insert(const FlowKey &key, uint32_t hash, uint64_t now_ns);

    // Starts a flow in a slot returned by insert() or reused after end.
    void start_flow(uint32_t slot, FlowClass cls, uint8_t proto, uint8_t dir, uint64_t now_ns);

    // Records activity: last-seen time and LRU position.
    void touch(uint32_t slot, uint64_t now_ns);

    // Starts fetching what touch() will need when it requeues the flow: its
    // LRU neighbours, two random entries (the entry itself must be cached
    // already, or this waits for it). Only a hint; never changes anything.
    void prefetch_touch(uint32_t slot, uint64_t now_ns) const {
        const FlowEntry &e = entries_[slot];
        if (e.uid == 0 || now_ns - e.listed_ns < granularity_ns_) return;
        if (e.lru_prev != kNil) __builtin_prefetch(&entries_[e.lru_prev], 1);
        if (e.lru_next != kNil) __builtin_prefetch(&entries_[e.lru_next], 1);
    }

    // The TCP flow has closed (both FINs, or RST): it lingers on the closed
    // list and ends with `why` when the linger expires.
    void mark_closed(uint32_t slot, uint64_t now_ns);

    // Ends a flow now: reports it, then frees the slot (remove = true) or
    // leaves the key in place for an immediate start_flow() (remove = false).
    void end_flow(uint32_t slot, FlowEndReason why, bool remove = true);

    // Ends flows idle past their timeout, at most `budget` of them.
    unsigned expire(uint64_t now_ns, unsigned budget);

    // Ends every flow (closed ones with their own reason).
    void flush(FlowEndReason why);

    FlowEntry &entry(uint32_t slot) { return entries_[slot]; }
    const FlowEntry &entry(uint32_t slot) const { return entries_[slot]; }
    const FlowKey &key(uint32_t slot) const;
    uint32_t active() const { return active_; }
    // Increases whenever a key leaves the table: a slot found by an earlier
    // lookup is only trustworthy while this is unchanged.
    uint64_t removals() const { return removals_; }
    uint32_t capacity() const { return cfg_.capacity; }
    uint32_t slots() const { return slots_; } // slot indices are below this
    const FlowTableStats &stats() const { return stats_; }

private:
    FlowTable(const FlowTableConfig &cfg, FlowEndSink *sink);
    void list_unlink(uint32_t slot);
    void list_append(uint32_t slot, uint8_t list);
    bool evict_oldest();
    FlowEndReason closed_reason(const FlowEntry &e) const;

    FlowTableConfig cfg_;
    FlowEndSink *sink_;
    rte_hash *hash_ = nullptr;
    // On the configured NUMA socket, in hugepage memory (rte_zmalloc_socket).
    FlowEntry *entries_ = nullptr;
    FlowKey *keys_ = nullptr; // each slot's key: end reports need it without a hash probe
    uint32_t slots_ = 0;
    uint32_t head_[kListCount];
    uint32_t tail_[kListCount];
    uint32_t active_ = 0;
    uint64_t removals_ = 0;
    uint32_t next_uid_ = 1;
    uint64_t granularity_ns_ = 0;
    FlowTableStats stats_;
};

} // namespace millipede::flow

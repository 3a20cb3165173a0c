#include "millipede/flow/flow_table.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_memory.h>

namespace millipede::flow {

namespace {

uint32_t rte_flow_hash(const void *key, uint32_t /*len*/, uint32_t /*init*/) {
    return flow_hash(*static_cast<const FlowKey *>(key));
}

constexpr const char *kEndReasonNames[] = {
#define X(sym, name, desc) name,
    MILLIPEDE_FLOW_END_REASONS(X)
#undef X
};

} // namespace

const char *flow_end_reason_name(FlowEndReason r) {
    auto i = static_cast<unsigned>(r);
    return i < kFlowEndReasonCount ? kEndReasonNames[i] : "?";
}

FlowTable::FlowTable(const FlowTableConfig &cfg, FlowEndSink *sink) : cfg_(cfg), sink_(sink) {
    for (unsigned l = 0; l < kListCount; ++l) head_[l] = tail_[l] = kNil;
    uint64_t shortest = cfg.closed_linger_ns;
    for (uint64_t t : cfg.idle_timeout_ns) shortest = std::min(shortest, t);
    granularity_ns_ = std::min(cfg.touch_granularity_ns, shortest / 64);
}

FlowTable::~FlowTable() {
    if (hash_) rte_hash_free(hash_);
    rte_free(entries_);
    rte_free(keys_);
}

void FlowTable::leave_memory_to_eal_cleanup() {
    hash_ = nullptr;
    entries_ = nullptr;
    keys_ = nullptr;
}

std::unique_ptr<FlowTable> FlowTable::create(const FlowTableConfig &cfg, FlowEndSink *sink, std::string &err) {
    if (cfg.capacity < 8 || cfg.capacity > RTE_HASH_ENTRIES_MAX) {
        err = "flow table capacity must be between 8 and " + std::to_string(RTE_HASH_ENTRIES_MAX);
        return nullptr;
    }
    std::unique_ptr<FlowTable> t(new FlowTable(cfg, sink));
    rte_hash_parameters p{};
    p.name = t->cfg_.name.c_str();
    p.entries = cfg.capacity;
    p.key_len = sizeof(FlowKey);
    p.hash_func = rte_flow_hash;
    p.hash_func_init_val = 0;
    p.socket_id = cfg.socket_id;
    // Single writer (the classifier lcore), no readers elsewhere: no locks.
    // The extendable bucket table keeps inserts from failing on bucket
    // collisions before the table is really full.
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    t->hash_ = rte_hash_create(&p);
    if (!t->hash_) {
        err = "cannot create flow hash table '" + t->cfg_.name + "' of " + std::to_string(cfg.capacity) +
              " entries: " + rte_strerror(rte_errno);
        return nullptr;
    }
    int32_t max_id = rte_hash_max_key_id(t->hash_);
    t->slots_ = static_cast<uint32_t>(max_id < 0 ? cfg.capacity : max_id + 1);
    t->entries_ = static_cast<FlowEntry *>(
        rte_zmalloc_socket("flow_entries", sizeof(FlowEntry) * t->slots_, RTE_CACHE_LINE_SIZE, cfg.socket_id));
    t->keys_ = static_cast<FlowKey *>(
        rte_zmalloc_socket("flow_keys", sizeof(FlowKey) * t->slots_, RTE_CACHE_LINE_SIZE, cfg.socket_id));
    if (!t->entries_ || !t->keys_) {
        err = "cannot allocate " + std::to_string(t->slots_) + " flow entries (" +
              std::to_string((sizeof(FlowEntry) + sizeof(FlowKey)) * t->slots_ >> 20) +
              " MiB): give EAL more memory (-m) or lower the flow capacity";
        return nullptr;
    }
    return t;
}

void FlowTable::lookup_bulk(const void **keys, uint32_t *hashes, unsigned n, int32_t *positions) const {
    rte_hash_lookup_with_hash_bulk(hash_, keys, hashes, n, positions);
}

const FlowKey &FlowTable::key(uint32_t slot) const { return keys_[slot]; }

int32_t FlowTable::insert(const FlowKey &key, uint32_t hash, uint64_t now_ns) {
    (void)now_ns;
    for (int attempt = 0; attempt < 2; ++attempt) {
        int32_t pos = rte_hash_add_key_with_hash(hash_, &key, hash);
        if (pos >= 0) {
            // rte_hash returns the existing slot when an earlier packet of
            // the same burst created the flow: that entry is live, keep it.
            if (entries_[pos].uid == 0) {
                std::memset(&entries_[pos], 0, sizeof(FlowEntry));
                keys_[pos] = key;
            }
            return pos;
        }
        if (pos != -ENOSPC || !evict_oldest()) break;
    }
    ++stats_.add_failures;
    return -1;
}

void FlowTable::start_flow(uint32_t slot, FlowClass cls, uint8_t proto, uint8_t dir, uint64_t now_ns) {
    FlowEntry &e = entries_[slot];
    e.uid = next_uid_++;
    if (next_uid_ == 0) next_uid_ = 1; // 0 means free
    e.first_seen_ns = e.last_seen_ns = e.listed_ns = now_ns;
    e.first_dir = dir;
    e.proto = proto;
    e.seq = 0;
    e.tcp_state = 0;
    e.migrations = 0;
    e.packets[0] = e.packets[1] = 0;
    ++stats_.created[static_cast<unsigned>(cls)];
    ++active_;
    list_append(slot, static_cast<uint8_t>(cls));
}

void FlowTable::list_unlink(uint32_t slot) {
    FlowEntry &e = entries_[slot];
    if (e.lru_prev != kNil) entries_[e.lru_prev].lru_next = e.lru_next;
    else head_[e.list] = e.lru_next;
    if (e.lru_next != kNil) entries_[e.lru_next].lru_prev = e.lru_prev;
    else tail_[e.list] = e.lru_prev;
}

void FlowTable::list_append(uint32_t slot, uint8_t list) {
    FlowEntry &e = entries_[slot];
    e.list = list;
    e.lru_next = kNil;
    e.lru_prev = tail_[list];
    if (tail_[list] != kNil) entries_[tail_[list]].lru_next = slot;
    else head_[list] = slot;
    tail_[list] = slot;
}

void FlowTable::touch(uint32_t slot, uint64_t now_ns) {
    FlowEntry &e = entries_[slot];
    e.last_seen_ns = now_ns;
    // Lists stay sorted by requeue time, which trails last-seen by less than
    // the granularity, so expiry only looks at heads (see the contract). A
    // closed flow's linger therefore counts from its last packet.
    if (now_ns - e.listed_ns < granularity_ns_) return;
    e.listed_ns = now_ns;
    if (tail_[e.list] == slot) return;
    list_unlink(slot);
    list_append(slot, e.list);
}

void FlowTable::mark_closed(uint32_t slot, uint64_t now_ns) {
    FlowEntry &e = entries_[slot];
    if (e.list == kListClosed) return;
    e.tcp_state |= kClosed;
    e.last_seen_ns = e.listed_ns = now_ns;
    list_unlink(slot);
    list_append(slot, kListClosed);
}

FlowEndReason FlowTable::closed_reason(const FlowEntry &e) const {
    return (e.tcp_state & kRstSeen) ? FlowEndReason::Rst : FlowEndReason::Fin;
}

void FlowTable::end_flow(uint32_t slot, FlowEndReason why, bool remove) {
    FlowEntry &e = entries_[slot];
    if (e.uid == 0) return;
    if (sink_) sink_->on_flow_end(keys_[slot], e, why);
    ++stats_.ended[static_cast<unsigned>(why)];
    ++stats_.ended_by_class[static_cast<unsigned>(flow_class_of(e.proto))];
    list_unlink(slot);
    e.uid = 0;
    --active_;
    if (remove) {
        rte_hash_del_key_with_hash(hash_, &keys_[slot], flow_hash(keys_[slot]));
        // No real key has pad_[1] set: the stale copy can never match again.
        keys_[slot].pad_[1] = 0xff;
        ++removals_;
    }
}

bool FlowTable::evict_oldest() {
    // Closed flows go first: they are finished, only lingering.
    uint32_t victim = head_[kListClosed];
    if (victim == kNil) {
        for (unsigned l = 0; l < kListClosed; ++l) {
            uint32_t h = head_[l];
            if (h != kNil && (victim == kNil || entries_[h].last_seen_ns < entries_[victim].last_seen_ns))
                victim = h;
        }
    }
    if (victim == kNil) return false;
    end_flow(victim, entries_[victim].list == kListClosed ? closed_reason(entries_[victim]) : FlowEndReason::Evicted);
    return true;
}

unsigned FlowTable::expire(uint64_t now_ns, unsigned budget) {
    unsigned ended = 0;
    for (unsigned l = 0; l < kListCount && ended < budget; ++l) {
        uint64_t timeout = l == kListClosed ? cfg_.closed_linger_ns : cfg_.idle_timeout_ns[l];
        while (ended < budget && head_[l] != kNil) {
            uint32_t s = head_[l];
            if (now_ns < entries_[s].last_seen_ns || now_ns - entries_[s].last_seen_ns <= timeout) break;
            end_flow(s, l == kListClosed ? closed_reason(entries_[s]) : FlowEndReason::Idle);
            ++ended;
        }
    }
    return ended;
}

void FlowTable::flush(FlowEndReason why) {
    for (unsigned l = 0; l < kListCount; ++l)
        while (head_[l] != kNil) {
            uint32_t s = head_[l];
            end_flow(s, l == kListClosed ? closed_reason(entries_[s]) : why);
        }
}

} // namespace millipede::flow

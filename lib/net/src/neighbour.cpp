// NeighbourCache: entry pool, open-addressing index, ARP learning, timers.
#include "millipede/net/neighbour.h"

#include <stdexcept>

namespace millipede::net {

struct NeighbourCache::Entry {
    uint32_t ip = 0;
    MacAddr mac;
    NeighState state = NeighState::FREE;
    uint32_t retries = 0;
    uint64_t next_us = 0;      // INCOMPLETE/PROBE: when the next request is due
    uint64_t confirmed_us = 0; // last ARP confirmation
    uint64_t used_us = 0;      // last resolve()
    uint32_t q_head = 0, q_count = 0;
};

namespace {
struct Text {
    const char *name;
    const char *desc;
};
constexpr Text kDrops[] = {
    {"none", "not dropped"},
#define MILLIPEDE_X(sym, name, desc) {name, desc},
    MILLIPEDE_NEIGH_DROPS(MILLIPEDE_X)
#undef MILLIPEDE_X
};

bool valid_unicast(uint32_t ip) {
    // 0.0.0.0/8, multicast 224/4, class E and the limited broadcast 240/4.
    return (ip >> 24) != 0 && (ip >> 28) < 14;
}
} // namespace

const char *neigh_drop_name(NeighDrop d) {
    const unsigned i = static_cast<unsigned>(d);
    return i < kNeighDropCount ? kDrops[i].name : "unknown";
}
const char *neigh_drop_description(NeighDrop d) {
    const unsigned i = static_cast<unsigned>(d);
    return i < kNeighDropCount ? kDrops[i].desc : "unknown";
}
const char *neigh_state_name(NeighState s) {
    switch (s) {
    case NeighState::FREE: return "free";
    case NeighState::INCOMPLETE: return "incomplete";
    case NeighState::REACHABLE: return "reachable";
    case NeighState::STALE: return "stale";
    case NeighState::PROBE: return "probe";
    case NeighState::STATIC: return "static";
    }
    return "unknown";
}

NeighbourCache::NeighbourCache(const NeighbourConfig &cfg) : cfg_(cfg) {
    if (cfg.max_entries == 0 || cfg.max_entries > 65536)
        throw std::invalid_argument("neighbour cache: max_entries must be 1..65536");
    if (cfg.max_queued > 64) throw std::invalid_argument("neighbour cache: max_queued must be 0..64");
    if (cfg.max_retries == 0 || cfg.max_retries > 100)
        throw std::invalid_argument("neighbour cache: max_retries must be 1..100");
    if (cfg.retry_interval_us == 0 || cfg.reachable_us == 0)
        throw std::invalid_argument("neighbour cache: retry_interval_us and reachable_us must be > 0");
    uint32_t slots = 2;
    slot_bits_ = 1;
    while (slots < 2 * cfg.max_entries) {
        slots <<= 1;
        slot_bits_++;
    }
    slot_mask_ = slots - 1;
    entries_ = std::make_unique<Entry[]>(cfg.max_entries);
    queues_ = std::make_unique<uint64_t[]>(static_cast<size_t>(cfg.max_entries) * (cfg.max_queued ? cfg.max_queued : 1));
    slots_ = std::make_unique<int32_t[]>(slots);
    slot_ip_ = std::make_unique<uint32_t[]>(slots);
    for (uint32_t i = 0; i < slots; i++) slots_[i] = -1;
    free_ = std::make_unique<int32_t[]>(cfg.max_entries);
    for (uint32_t i = 0; i < cfg.max_entries; i++) free_[i] = static_cast<int32_t>(cfg.max_entries - 1 - i);
    free_top_ = cfg.max_entries;
    rel_cap_ = static_cast<size_t>(cfg.max_entries) * cfg.max_queued;
    rel_ = std::make_unique<NeighRelease[]>(rel_cap_ ? rel_cap_ : 1);
}

NeighbourCache::~NeighbourCache() = default;

uint32_t NeighbourCache::slot_of(uint32_t ip) const {
    // Fibonacci hashing: consecutive addresses (one subnet) spread out.
    return static_cast<uint32_t>((uint64_t(ip) * 0x9e3779b97f4a7c15ull) >> (64 - slot_bits_)) & slot_mask_;
}

int32_t NeighbourCache::find(uint32_t ip) const {
    for (uint32_t s = slot_of(ip);; s = (s + 1) & slot_mask_) {
        if (slots_[s] < 0) return -1;
        if (slot_ip_[s] == ip) return slots_[s];
    }
}

int32_t NeighbourCache::insert(uint32_t ip) {
    if (free_top_ == 0) return -1;
    const int32_t idx = free_[--free_top_];
    uint32_t s = slot_of(ip);
    while (slots_[s] >= 0) s = (s + 1) & slot_mask_; // load <= 1/2: terminates
    slots_[s] = idx;
    slot_ip_[s] = ip;
    Entry &e = entries_[idx];
    e = Entry{};
    e.ip = ip;
    used_++;
    stats_.created++;
    return idx;
}

void NeighbourCache::erase(int32_t idx) {
    Entry &e = entries_[idx];
    uint32_t s = slot_of(e.ip);
    while (slots_[s] != idx) s = (s + 1) & slot_mask_;
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    uint32_t hole = s;
    for (uint32_t j = (s + 1) & slot_mask_; slots_[j] >= 0; j = (j + 1) & slot_mask_) {
        const uint32_t home = slot_of(slot_ip_[j]);
        // Move j into the hole unless its home lies cyclically in (hole, j].
        const bool home_after_hole = ((j - home) & slot_mask_) < ((j - hole) & slot_mask_);
        if (!home_after_hole) {
            slots_[hole] = slots_[j];
            slot_ip_[hole] = slot_ip_[j];
            hole = j;
        }
    }
    slots_[hole] = -1;
    e.state = NeighState::FREE;
    e.q_count = 0;
    free_[free_top_++] = idx;
    used_--;
}

void NeighbourCache::push_release(uint64_t pkt, const MacAddr &mac, bool send) {
    // Cannot overflow: resolve() never lets queued + released exceed rel_cap_.
    rel_[(rel_head_ + rel_count_) % rel_cap_] = NeighRelease{pkt, mac, send};
    rel_count_++;
}

void NeighbourCache::release_queue(Entry &e, bool send) {
    uint64_t *q = queues_.get() + static_cast<size_t>(&e - entries_.get()) * cfg_.max_queued;
    for (uint32_t i = 0; i < e.q_count; i++) {
        push_release(q[(e.q_head + i) % cfg_.max_queued], e.mac, send);
        if (send) stats_.released_send++;
        else stats_.drops[static_cast<unsigned>(NeighDrop::RESOLUTION_FAILED)]++;
    }
    queued_total_ -= e.q_count;
    e.q_head = 0;
    e.q_count = 0;
}

bool NeighbourCache::add_static(uint32_t ip, const MacAddr &mac, uint64_t now_us) {
    if (!valid_unicast(ip) || mac.is_zero() || mac.is_multicast()) return false;
    int32_t idx = find(ip);
    if (idx < 0) idx = insert(ip);
    if (idx < 0) return false;
    Entry &e = entries_[idx];
    e.mac = mac;
    release_queue(e, true);
    e.state = NeighState::STATIC;
    e.retries = 0;
    e.confirmed_us = now_us;
    return true;
}

NeighLookup NeighbourCache::resolve(uint32_t ip, uint64_t now_us, uint64_t pkt) {
    NeighLookup r;
    if (!valid_unicast(ip)) {
        r.drop = NeighDrop::INVALID_ADDRESS;
        stats_.drops[static_cast<unsigned>(r.drop)]++;
        return r;
    }
    int32_t idx = find(ip);
    if (idx >= 0) {
        Entry &e = entries_[idx];
        e.used_us = now_us;
        switch (e.state) {
        case NeighState::REACHABLE:
            if (now_us - e.confirmed_us >= cfg_.reachable_us) e.state = NeighState::STALE;
            if (e.state == NeighState::REACHABLE) break;
            [[fallthrough]];
        case NeighState::STALE:
            // Keep sending to the old MAC while it is re-confirmed.
            e.state = NeighState::PROBE;
            e.retries = 1;
            e.next_us = now_us + cfg_.retry_interval_us;
            r.send_request = true;
            stats_.requests++;
            break;
        case NeighState::PROBE:
        case NeighState::STATIC:
        case NeighState::FREE:
            break;
        case NeighState::INCOMPLETE:
            return enqueue(e, pkt, r);
        }
        r.kind = NeighLookup::Kind::RESOLVED;
        r.mac = e.mac;
        stats_.hits++;
        return r;
    }
    idx = insert(ip);
    if (idx < 0) {
        r.drop = NeighDrop::TABLE_FULL;
        stats_.drops[static_cast<unsigned>(r.drop)]++;
        return r;
    }
    stats_.misses++;
    Entry &e = entries_[idx];
    e.state = NeighState::INCOMPLETE;
    e.retries = 1;
    e.next_us = now_us + cfg_.retry_interval_us;
    e.used_us = now_us;
    r.send_request = true;
    stats_.requests++;
    return enqueue(e, pkt, r);
}

NeighLookup NeighbourCache::enqueue(Entry &e, uint64_t pkt, NeighLookup r) {
    r.kind = NeighLookup::Kind::PENDING;
    if (pkt == kNoPacket) return r;
    // queued + released never exceeds the release ring, so releasing never
    // overflows it even when the owner is slow to take_released().
    if (e.q_count >= cfg_.max_queued || queued_total_ + rel_count_ >= rel_cap_) {
        r.kind = NeighLookup::Kind::DROPPED;
        r.drop = NeighDrop::QUEUE_FULL;
        stats_.drops[static_cast<unsigned>(r.drop)]++;
        return r;
    }
    uint64_t *q = queues_.get() + static_cast<size_t>(&e - entries_.get()) * cfg_.max_queued;
    q[(e.q_head + e.q_count) % cfg_.max_queued] = pkt;
    e.q_count++;
    queued_total_++;
    return r;
}

ArpLearn NeighbourCache::on_arp(const ArpPacket &p, bool for_us, uint64_t now_us) {
    if (p.sender_ip == 0 || !valid_unicast(p.sender_ip)) return ArpLearn::IGNORED;
    int32_t idx = find(p.sender_ip);
    if (idx < 0) {
        if (!for_us) return ArpLearn::IGNORED;
        idx = insert(p.sender_ip);
        if (idx < 0) {
            // A host that asks for us is real; an address still unanswered
            // may be one of thousands a flood of spoofed sources made us
            // ask for. The oldest unanswered entry makes room (its waiting
            // packets fail), so a flood cannot lock real neighbours out.
            int32_t victim = -1;
            for (uint32_t i = 0; i < cfg_.max_entries; i++)
                if (entries_[i].state == NeighState::INCOMPLETE &&
                    (victim < 0 || entries_[i].used_us < entries_[victim].used_us))
                    victim = static_cast<int32_t>(i);
            if (victim >= 0) {
                stats_.evicted_incomplete++;
                remove(entries_[victim].ip);
                idx = insert(p.sender_ip);
            }
        }
        if (idx < 0) {
            stats_.drops[static_cast<unsigned>(NeighDrop::TABLE_FULL)]++;
            return ArpLearn::TABLE_FULL;
        }
        Entry &e = entries_[idx];
        e.mac = p.sender_mac;
        e.state = NeighState::REACHABLE;
        e.confirmed_us = e.used_us = now_us;
        return ArpLearn::CREATED;
    }
    Entry &e = entries_[idx];
    if (e.state == NeighState::STATIC) {
        if (e.mac != p.sender_mac) {
            stats_.static_conflicts++;
            return ArpLearn::STATIC_CONFLICT;
        }
        return ArpLearn::CONFIRMED;
    }
    const bool was_incomplete = e.state == NeighState::INCOMPLETE;
    const bool changed = !was_incomplete && e.mac != p.sender_mac;
    e.mac = p.sender_mac;
    e.state = NeighState::REACHABLE;
    e.retries = 0;
    e.confirmed_us = now_us;
    if (was_incomplete) {
        release_queue(e, true);
        return ArpLearn::RESOLVED;
    }
    if (changed) {
        stats_.mac_changes++;
        return ArpLearn::MAC_CHANGED;
    }
    stats_.confirmed++;
    return ArpLearn::CONFIRMED;
}

size_t NeighbourCache::poll(uint64_t now_us, uint32_t *requests, size_t max) {
    size_t n = 0;
    for (uint32_t i = 0; i < cfg_.max_entries; i++) {
        Entry &e = entries_[i];
        switch (e.state) {
        case NeighState::INCOMPLETE:
        case NeighState::PROBE:
            if (now_us < e.next_us) break;
            if (e.retries >= cfg_.max_retries) {
                if (e.state == NeighState::INCOMPLETE) {
                    release_queue(e, false);
                }
                stats_.expired++;
                erase(static_cast<int32_t>(i));
                break;
            }
            if (n < max) {
                requests[n++] = e.ip;
                e.retries++;
                e.next_us = now_us + cfg_.retry_interval_us;
                stats_.requests++;
            }
            break;
        case NeighState::REACHABLE:
            if (now_us - e.confirmed_us >= cfg_.reachable_us) e.state = NeighState::STALE;
            break;
        case NeighState::STALE:
            if (cfg_.stale_gc_us && now_us - e.used_us >= cfg_.stale_gc_us &&
                now_us - e.confirmed_us >= cfg_.stale_gc_us) {
                stats_.expired++;
                erase(static_cast<int32_t>(i));
            }
            break;
        case NeighState::STATIC:
        case NeighState::FREE:
            break;
        }
    }
    return n;
}

size_t NeighbourCache::take_released(NeighRelease *out, size_t max) {
    size_t n = 0;
    while (n < max && rel_count_ > 0) {
        out[n++] = rel_[rel_head_];
        rel_head_ = (rel_head_ + 1) % rel_cap_;
        rel_count_--;
    }
    return n;
}

bool NeighbourCache::remove(uint32_t ip) {
    const int32_t idx = find(ip);
    if (idx < 0) return false;
    Entry &e = entries_[idx];
    release_queue(e, false);
    erase(idx);
    return true;
}

bool NeighbourCache::lookup(uint32_t ip, uint64_t now_us, NeighEntry &out) const {
    const int32_t idx = find(ip);
    if (idx < 0) return false;
    const Entry &e = entries_[idx];
    out.ip = e.ip;
    out.mac = e.mac;
    out.state = e.state;
    if (e.state == NeighState::REACHABLE && now_us - e.confirmed_us >= cfg_.reachable_us) out.state = NeighState::STALE;
    out.retries = e.retries;
    out.age_us = e.state == NeighState::STATIC ? 0 : now_us - e.confirmed_us;
    out.queued = e.q_count;
    return true;
}

} // namespace millipede::net

#include "millipede/flow/classifier.h"

#include <algorithm>
#include <cstring>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf_dyn.h>
#include <rte_prefetch.h>

namespace millipede::flow {

int g_flow_meta_offset = -1;

bool register_flow_meta(std::string &err) {
    if (g_flow_meta_offset >= 0) return true;
    static const rte_mbuf_dynfield desc = {
        "millipede_flow_meta", sizeof(FlowMeta), alignof(FlowMeta), 0,
    };
    g_flow_meta_offset = rte_mbuf_dynfield_register(&desc);
    if (g_flow_meta_offset < 0) {
        err = std::string("cannot register the flow metadata mbuf field: ") + rte_strerror(rte_errno);
        return false;
    }
    return true;
}

int g_flow_state_offset = -1;

bool register_flow_state(std::string &err) {
    if (g_flow_state_offset >= 0) return true;
    static const rte_mbuf_dynfield desc = {"millipede_flow_state", sizeof(void *), alignof(void *), 0};
    g_flow_state_offset = rte_mbuf_dynfield_register(&desc);
    if (g_flow_state_offset < 0) {
        err = std::string("cannot register the flow state mbuf field: ") + rte_strerror(rte_errno);
        return false;
    }
    return true;
}

namespace {
constexpr const char *kDropNames[] = {
#define X(sym, name, desc) name,
    MILLIPEDE_CLASSIFIER_DROPS(X)
#undef X
};
constexpr uint8_t kNoOwner = 0xff;
constexpr uint8_t kCountedInversion = 0x1, kCountedSplit = 0x2, kCountedMove = 0x4;
constexpr unsigned kFragmentSlots = 4096; // power of two

void free_bulk(rte_mbuf **pkts, unsigned n) { rte_pktmbuf_free_bulk(pkts, n); }
} // namespace

const char *classifier_drop_name(ClassifierDrop d) {
    auto i = static_cast<unsigned>(d);
    return i < kClassifierDropCount ? kDropNames[i] : "?";
}

OrderChecker::OrderChecker(uint32_t slots, int socket_id) : count_(slots) {
    slots_ = static_cast<Slot *>(rte_zmalloc_socket("order_checker", sizeof(Slot) * slots, 64, socket_id));
}

OrderChecker::~OrderChecker() { rte_free(slots_); }

void OrderChecker::check(unsigned worker, const FlowMeta &m, WorkerCounters &c) {
    if (!slots_ || m.slot >= count_) return;
    Slot &s = slots_[m.slot];
    constexpr auto rlx = std::memory_order_relaxed;
    auto w = static_cast<uint8_t>(worker);
    uint32_t uid = s.uid.load(rlx);
    if (uid != m.uid) {
        if (uid != 0 && static_cast<int32_t>(m.uid - uid) < 0) {
            ++c.stale_packets; // an older flow that used this slot, still draining
            return;
        }
        s.uid.store(m.uid, rlx);
        s.last_seq.store(m.seq, rlx);
        s.epoch.store(m.epoch, rlx);
        s.owner.store(w, rlx);
        s.flags.store(0, rlx);
        s.dir_owner[m.direction & 1].store(w, rlx);
        s.dir_owner[(m.direction & 1) ^ 1].store(kNoOwner, rlx);
        return;
    }
    uint8_t flags = s.flags.load(rlx);
    if (static_cast<int32_t>(m.seq - s.last_seq.load(rlx)) <= 0) {
        ++c.order_inversions;
        flags |= kCountedInversion;
    } else {
        s.last_seq.store(m.seq, rlx);
    }
    if (m.epoch != s.epoch.load(rlx)) {
        // A recorded migration: a new owner and a fresh direction record.
        s.epoch.store(m.epoch, rlx);
        s.owner.store(w, rlx);
        s.dir_owner[0].store(kNoOwner, rlx);
        s.dir_owner[1].store(kNoOwner, rlx);
    } else if (s.owner.load(rlx) != w && !(flags & kCountedMove)) {
        ++c.unrecorded_moves;
        flags |= kCountedMove;
    }
    unsigned d = m.direction & 1;
    s.dir_owner[d].store(w, rlx);
    uint8_t other = s.dir_owner[d ^ 1].load(rlx);
    if (other != kNoOwner && other != w && !(flags & kCountedSplit)) {
        ++c.split_flows;
        flags |= kCountedSplit;
    }
    s.flags.store(flags, rlx);
}

Classifier::Classifier(const ClassifierConfig &cfg)
    : cfg_(cfg), balancer_(cfg.policy, cfg.workers, cfg.tuning), enqueued_(cfg.workers, 0),
      dispatched_(cfg.workers, 0), ring_drops_(cfg.workers, 0), done_(cfg.workers, 0),
      stage_(size_t(cfg.workers) * kStage), staged_(cfg.workers, 0), staged_since_(cfg.workers, 0), loads_(cfg.workers),
      last_busy_(cfg.workers, 0), last_dispatched_(cfg.workers, 0), fragments_(kFragmentSlots),
      pending_(cfg.workers) {
    if (!cfg_.release) cfg_.release = free_bulk;
    relay_.c = this;
}

Classifier::~Classifier() {
    for (auto *r : rings_) rte_ring_free(r);
    rte_free(shared_);
    rte_free(state_);
    rte_free(moved_at_);
}

void Classifier::leave_memory_to_eal_cleanup() {
    if (table_) table_->leave_memory_to_eal_cleanup();
    if (checker_) checker_->leave_memory_to_eal_cleanup();
    rings_.clear();
    shared_ = nullptr;
    state_ = nullptr;
    moved_at_ = nullptr;
}

std::unique_ptr<Classifier> Classifier::create(const ClassifierConfig &cfg, FlowEndSink *sink, std::string &err) {
    if (cfg.workers == 0 || cfg.workers > 64) {
        err = "worker count must be between 1 and 64, got " + std::to_string(cfg.workers);
        return nullptr;
    }
    if (cfg.ring_size < kBurst || (cfg.ring_size & (cfg.ring_size - 1))) {
        err = "worker ring size must be a power of two of at least 32, got " + std::to_string(cfg.ring_size);
        return nullptr;
    }
    if (!register_flow_meta(err)) return nullptr;
    static_assert(kFlowEndReasonCount <= 8, "a notice carries the reason in 3 bits");
    std::unique_ptr<Classifier> c(new Classifier(cfg));
    c->relay_.user = sink;
    c->table_ = FlowTable::create(cfg.table, &c->relay_, err);
    if (!c->table_) return nullptr;
    if (cfg.flow_state_pool) {
        if (cfg.flow_state_pool->flags & RTE_MEMPOOL_F_NO_CACHE_ALIGN) {
            err = "the flow state pool must keep its objects cache-aligned (notices use their low bits)";
            return nullptr;
        }
        if (!register_flow_state(err)) return nullptr;
        c->state_ = static_cast<void **>(
            rte_zmalloc_socket("flow_states", sizeof(void *) * c->table_->slots(), 64, cfg.table.socket_id));
        if (!c->state_) {
            err = "cannot allocate the per-flow state index";
            return nullptr;
        }
        // At most one notice per pool object can wait: reserve that much now
        // so that a full ring never makes the classifier allocate.
        for (auto &p : c->pending_) p.reserve(cfg.flow_state_pool->size);
    }
    if (cfg.check_order) {
        c->checker_ = std::make_unique<OrderChecker>(c->table_->slots(), cfg.table.socket_id);
        if (!c->checker_->ready()) {
            err = "cannot allocate the order checker's " + std::to_string(c->table_->slots()) + " slots";
            return nullptr;
        }
    }
    if (cfg.migrate) {
        c->moved_at_ = static_cast<uint32_t *>(
            rte_zmalloc_socket("flow_moved_at", sizeof(uint32_t) * c->table_->slots(), 64, cfg.table.socket_id));
        if (!c->moved_at_) {
            err = "cannot allocate the per-flow move times";
            return nullptr;
        }
        c->dwell_units_ = static_cast<uint32_t>(cfg.tuning.min_dwell_ns >> kMoveStampShift);
    }
    c->header_scratch_.resize(net::kMaxHeaderBytes);
    c->shared_ = static_cast<WorkerShared *>(
        rte_zmalloc_socket("worker_shared", sizeof(WorkerShared) * cfg.workers, 64, cfg.table.socket_id));
    if (!c->shared_) {
        err = "cannot allocate worker state";
        return nullptr;
    }
    for (unsigned w = 0; w < cfg.workers; ++w) {
        std::string name = cfg.table.name.substr(0, 16) + "_w" + std::to_string(w);
        rte_ring *r = rte_ring_create(name.c_str(), cfg.ring_size, cfg.table.socket_id,
                                      RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!r) {
            err = "cannot create worker ring " + name + ": " + rte_strerror(rte_errno);
            return nullptr;
        }
        c->rings_.push_back(r);
    }
    c->refresh_interval_tsc_ = (cfg.tsc_hz ? cfg.tsc_hz : rte_get_tsc_hz()) / (1'000'000'000 / kRateIntervalNs);
    return c;
}

void Classifier::refresh_loads(uint64_t tsc) {
    bool sample = tsc - last_refresh_tsc_ >= refresh_interval_tsc_;
    uint64_t elapsed = tsc - last_refresh_tsc_;
    // One division per sample (every 100 us), none per packet or worker.
    const float inv_elapsed = sample && elapsed ? 1.0f / static_cast<float>(elapsed) : 0.0f;
    // Rates are per nominal interval: a late sample (the lcore was busy or
    // descheduled) must not look like a traffic surge.
    const float interval_scale = sample && elapsed ? static_cast<float>(refresh_interval_tsc_) * inv_elapsed : 0.0f;
    for (unsigned w = 0; w < cfg_.workers; ++w) {
        done_[w] = shared_[w].completed.load(std::memory_order_acquire);
        uint64_t backlog = enqueued_[w] + staged_[w] - done_[w];
        // Other shards' packets for this worker wait in their rings: what
        // is queued there now (their staging is not visible, at most a
        // stage per worker per shard).
        for (const Classifier *p : peers_) backlog += rte_ring_count(p->rings_[w]);
        loads_[w].backlog = static_cast<uint32_t>(backlog);
        if (sample) {
            uint64_t busy = shared_[w].busy_cycles.load(std::memory_order_relaxed);
            for (const Classifier *p : peers_) busy += p->shared_[w].busy_cycles.load(std::memory_order_relaxed);
            float share = static_cast<float>(busy - last_busy_[w]) * inv_elapsed;
            if (share > 1.0f) share = 1.0f;
            // EWMA, alpha 1/8: smooths bursts, follows a shift within ~1 ms.
            loads_[w].busy_share += (share - loads_[w].busy_share) * 0.125f;
            last_busy_[w] = busy;
            // Offered packets per interval, EWMA alpha 1/64 (about 6 ms):
            // the balance signal for migration (balancer.h). Slower than
            // the busy share: under Zipf traffic one heavy flow makes a
            // worker's rate over a millisecond vary by more than the
            // hysteresis band. A move transfers its flow's estimated rate
            // at once (below), so the lag does not make moves overshoot.
            float got = static_cast<float>(dispatched_[w] - last_dispatched_[w]) * interval_scale;
            loads_[w].rate += (got - loads_[w].rate) * (1.0f / 64.0f);
            last_dispatched_[w] = dispatched_[w];
        }
    }
    if (sample) last_refresh_tsc_ = tsc;
    balancer_.refresh(loads_);
}

namespace {
uint32_t fragment_index(const net::PacketInfo &p) {
    uint32_t h = p.fragment_id * 0x9e3779b1u;
    for (unsigned i = 0; i < 16; i += 4) {
        uint32_t a, b;
        std::memcpy(&a, p.src.bytes + i, 4);
        std::memcpy(&b, p.dst.bytes + i, 4);
        h = (h ^ a ^ b) * 0x85ebca6bu; // symmetric in src/dst, like the flow key
    }
    return (h ^ (h >> 15) ^ p.l4_proto) & (kFragmentSlots - 1);
}
} // namespace

void Classifier::remember_fragment(const net::PacketInfo &p, const FlowKey &key) {
    FragmentSlot &f = fragments_[fragment_index(p)];
    std::memcpy(f.src, p.src.bytes, 16);
    std::memcpy(f.dst, p.dst.bytes, 16);
    f.id = p.fragment_id;
    f.proto = p.l4_proto;
    f.used = true;
    f.key = key;
}

bool Classifier::resolve_fragment(const net::PacketInfo &p, FlowKey &key) {
    const FragmentSlot &f = fragments_[fragment_index(p)];
    if (f.used && f.id == p.fragment_id && f.proto == p.l4_proto && !std::memcmp(f.src, p.src.bytes, 16) &&
        !std::memcmp(f.dst, p.dst.bytes, 16)) {
        key = f.key;
        return true;
    }
    return false;
}

net::Reject Classifier::parse_chained(rte_mbuf *m, net::PacketInfo &p) {
    // A frame longer than one mbuf: lengths are the whole frame's, and the
    // headers nearly always lie in the first segment (2 KiB or more).
    const uint32_t len = rte_pktmbuf_pkt_len(m);
    net::Reject r = net::Reject::NONE;
    if (net::parse_packet_prefix(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), len, p, r)) return r;
    // Only long IPv6 extension headers get here: copy what the parser may read.
    const uint32_t held = std::min(len, net::kMaxHeaderBytes);
    const auto *head = static_cast<const uint8_t *>(rte_pktmbuf_read(m, 0, held, header_scratch_.data()));
    // Holding min(len, kMaxHeaderBytes) always decides (parse.h); a chain
    // shorter than its pkt_len is a broken mbuf, counted as a truncated frame.
    if (!head || !net::parse_packet_prefix(head, held, len, p, r)) return net::Reject::ETH_TRUNCATED;
    return r;
}

void Classifier::process_burst(rte_mbuf **pkts, unsigned n, uint64_t now_ns) {
    if (n == 0) return;
    if (n > kBurst) n = kBurst;
    uint64_t t0 = rte_rdtsc();
    stats_.packets += n;
    ++stats_.bursts;

    FlowKey keys[kBurst];
    const void *key_ptrs[kBurst];
    uint32_t hashes[kBurst];
    int32_t slots[kBurst];
    uint8_t dirs[kBurst];
    uint8_t tcp_flags[kBurst];
    uint32_t tcp_seqs[kBurst];
    uint8_t meta_flags[kBurst];
    rte_mbuf *valid[kBurst];
    rte_mbuf *dropped[kBurst];
    unsigned nvalid = 0, ndropped = 0;

    // The mbufs' second cache line holds the FlowMeta written below: ask for
    // it now so the stamp does not stall. Headers are prefetched a few
    // packets ahead of the parser (one ahead does not hide a memory miss).
    constexpr unsigned kAhead = 4;
    for (unsigned i = 0; i < n; ++i) rte_prefetch0(reinterpret_cast<const char *>(pkts[i]) + RTE_CACHE_LINE_SIZE);
    for (unsigned i = 0; i < n && i < kAhead; ++i) rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
    for (unsigned i = 0; i < n; ++i) {
        if (i + kAhead < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kAhead], void *));
        rte_mbuf *m = pkts[i];
        net::PacketInfo p;
        net::Reject r = likely(rte_pktmbuf_is_contiguous(m))
                            ? net::parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), p)
                            : parse_chained(m, p);
        if (r != net::Reject::NONE) {
            ++stats_.rejects[static_cast<unsigned>(r)];
            dropped[ndropped++] = m;
            continue;
        }
        FlowKey &k = keys[nvalid];
        Direction d = make_flow_key(p, k);
        meta_flags[nvalid] = 0;
        if (p.is_fragment) {
            if (!p.is_first_fragment) meta_flags[nvalid] |= kMetaLaterFragment;
            if (p.is_first_fragment) {
                remember_fragment(p, k);
            } else {
                FlowKey joined;
                if (resolve_fragment(p, joined)) {
                    // The first fragment's direction is the packet's own
                    // when the addresses keep their order.
                    d = std::memcmp(p.src.bytes, joined.addr_lo, 16) == 0 ? kFromLo : kFromHi;
                    k = joined;
                    ++stats_.fragments_joined;
                } else {
                    // Ports unknown: its own address-pair flow, marked so it
                    // is never mistaken for a real TCP/UDP 5-tuple.
                    k.pad_[0] = 1;
                    meta_flags[nvalid] |= kMetaUnjoinedFragment;
                    ++stats_.fragments_unjoined;
                }
            }
        }
        key_ptrs[nvalid] = &k;
        hashes[nvalid] = flow_hash(k);
        dirs[nvalid] = d;
        tcp_flags[nvalid] = p.tcp_flags;
        tcp_seqs[nvalid] = (p.l4_proto == net::kProtoICMP || p.l4_proto == net::kProtoICMPv6)
                               ? uint32_t(p.icmp_type) | uint32_t(p.icmp_code) << 8
                               : p.tcp_seq;
        valid[nvalid++] = m;
    }

    if (nvalid) table_->lookup_bulk(key_ptrs, hashes, nvalid, slots);
    const uint64_t removals_at_lookup = table_->removals();
    // Known flows' entries are random in a large table: fetch them all
    // before the decision loop needs the first.
    for (unsigned i = 0; i < nvalid; ++i)
        if (slots[i] >= 0) rte_prefetch0(&table_->entry(static_cast<uint32_t>(slots[i])));
    refresh_loads(t0);

    // A flow seen again after the touch granularity is requeued on its LRU
    // list, which writes its two neighbours: two more random misses. Their
    // addresses are in the entry, so they are fetched kTouchAhead packets
    // ahead of the decision loop, once the entry itself has arrived: about
    // the DRAM latency (300-1,100 TSC cycles in bench-classifier's probe on
    // the shared VM) over the decision loop's cost per packet.
    constexpr unsigned kTouchAhead = 8;
    for (unsigned i = 0; i < nvalid && i < kTouchAhead; ++i)
        if (slots[i] >= 0) table_->prefetch_touch(static_cast<uint32_t>(slots[i]), now_ns);
    for (unsigned i = 0; i < nvalid; ++i) {
        if (i + kTouchAhead < nvalid && slots[i + kTouchAhead] >= 0)
            table_->prefetch_touch(static_cast<uint32_t>(slots[i + kTouchAhead]), now_ns);
        const FlowKey &k = keys[i];
        int32_t slot = slots[i];
        // An eviction earlier in this burst may have freed (and reused) the
        // slot this packet's lookup found: check the key before trusting it.
        if (slot >= 0 && table_->removals() != removals_at_lookup && !(table_->key(static_cast<uint32_t>(slot)) == k))
            slot = -1;
        if (slot < 0) {
            // Absent at lookup time; an earlier packet of this burst may have
            // created it since, in which case insert returns the same slot.
            slot = table_->insert(k, hashes[i], now_ns);
            if (slot < 0) {
                ++stats_.drops[static_cast<unsigned>(ClassifierDrop::TableFull)];
                dropped[ndropped++] = valid[i];
                continue;
            }
        }
        FlowEntry *e = &table_->entry(slot);
        uint8_t flags = tcp_flags[i];
        bool is_tcp = k.proto == net::kProtoTCP && !k.pad_[0];
        if (e->uid != 0 && is_tcp && (flags & (net::kTcpSyn | net::kTcpAck)) == net::kTcpSyn &&
            (e->tcp_state & (kClosed | kSynSeen))) {
            // A new connection on a used 5-tuple: a SYN after the old one
            // closed, or a SYN with another initial sequence number.
            bool reuse = (e->tcp_state & kClosed) || e->syn_seq != tcp_seqs[i];
            if (reuse) {
                table_->end_flow(static_cast<uint32_t>(slot),
                                 (e->tcp_state & kClosed) ? ((e->tcp_state & kRstSeen) ? FlowEndReason::Rst
                                                                                        : FlowEndReason::Fin)
                                                          : FlowEndReason::Reused,
                                 /*remove=*/false);
            }
        }
        unsigned worker;
        if (e->uid == 0) {
            FlowClass cls = k.pad_[0] ? FlowClass::Other : flow_class_of(k.proto);
            table_->start_flow(static_cast<uint32_t>(slot), cls, k.proto, dirs[i], now_ns);
            if (k.proto == net::kProtoICMP || k.proto == net::kProtoICMPv6) e->syn_seq = tcp_seqs[i];
            worker = balancer_.pick_new(hashes[i]);
            e->worker = static_cast<uint16_t>(worker);
            if (cfg_.migrate) moved_at_[slot] = 0; // never moved: no dwell yet
            if (state_) {
                void *obj = nullptr;
                if (rte_mempool_get(cfg_.flow_state_pool, &obj) < 0) {
                    obj = nullptr;
                    ++stats_.flow_states_exhausted;
                }
                state_[slot] = obj;
            }
        } else {
            worker = e->worker;
            // Cheapest tests first: most packets stop at may_migrate() (no
            // worker hot, or the move budget empty) and touch no more memory.
            if (cfg_.migrate && balancer_.may_migrate()) {
                unsigned target = balancer_.migration_target(worker);
                // Completion as read at this burst's refresh: it only grows,
                // so an older reading can only make a flow look busier (safe),
                // and re-reading the workers' hot cache line per packet would
                // cost a cross-core miss each time.
                if (target != worker &&
                    static_cast<int32_t>(static_cast<uint32_t>(done_[worker]) - e->last_pos) >= 0 &&
                    dwelled(static_cast<uint32_t>(slot), now_ns)) {
                    // The flow's packets per rate interval so far (one
                    // division per move, not per packet): its load goes
                    // with it now rather than when the averages catch up.
                    uint64_t age = now_ns - e->first_seen_ns;
                    float flow_rate = static_cast<float>(e->packets[0] + e->packets[1]);
                    if (age > kRateIntervalNs)
                        flow_rate = flow_rate * static_cast<float>(kRateIntervalNs) / static_cast<float>(age);
                    loads_[worker].rate = std::max(0.0f, loads_[worker].rate - flow_rate);
                    loads_[target].rate += flow_rate;
                    balancer_.note_move(worker, target, flow_rate);
                    worker = target;
                    e->worker = static_cast<uint16_t>(target);
                    ++e->migrations;
                    ++stats_.migrations;
                    moved_at_[slot] = move_stamp(now_ns);
                }
            }
            table_->touch(static_cast<uint32_t>(slot), now_ns);
        }
        if (is_tcp) {
            if ((flags & net::kTcpSyn) && !(e->tcp_state & kSynSeen)) {
                e->tcp_state |= kSynSeen;
                e->syn_seq = tcp_seqs[i];
            }
            if (flags & net::kTcpFin) e->tcp_state |= dirs[i] == kFromLo ? kFinFromLo : kFinFromHi;
            if (flags & net::kTcpRst) e->tcp_state |= kRstSeen;
            if (!(e->tcp_state & kClosed) &&
                ((e->tcp_state & kRstSeen) || (e->tcp_state & (kFinFromLo | kFinFromHi)) == (kFinFromLo | kFinFromHi)))
                table_->mark_closed(static_cast<uint32_t>(slot), now_ns);
        }
        ++e->packets[dirs[i]];
        FlowMeta &m = *flow_meta(valid[i]);
        m.slot = static_cast<uint32_t>(slot);
        m.uid = e->uid;
        m.seq = ++e->seq;
        m.epoch = e->migrations;
        m.direction = dirs[i];
        m.flags = meta_flags[i];
        if (state_) *RTE_MBUF_DYNFIELD(valid[i], g_flow_state_offset, void **) = state_[slot];
        // Position this packet will have once enqueued (see contract).
        if (staged_[worker] == kStage) hand_over(worker);
        if (staged_[worker] == 0) staged_since_[worker] = stats_.bursts;
        stage_[size_t(worker) * kStage + staged_[worker]++] = valid[i];
        e->last_pos = static_cast<uint32_t>(enqueued_[worker] + staged_[worker]);
        ++dispatched_[worker];
        balancer_.note_dispatch(worker);
    }

    // A partial input burst means the queue ran dry: latency now matters
    // more than batching.
    bool drain = n < kBurst;
    for (unsigned w = 0; w < cfg_.workers; ++w)
        if (staged_[w] && (drain || staged_[w] >= kBurst || stats_.bursts - staged_since_[w] >= kStageBursts))
            hand_over(w);
    if (ndropped) cfg_.release(dropped, ndropped);
    stats_.dispatch_cycles += rte_rdtsc() - t0;
}

bool Classifier::share_load_with(std::vector<const Classifier *> peers, std::string &err) {
    for (const Classifier *p : peers)
        if (!p || p == this || p->cfg_.workers != cfg_.workers) {
            err = "classifier shards must be distinct and feed the same number of workers";
            return false;
        }
    peers_ = std::move(peers);
    // The busy-cycle baseline now sums every shard's counters.
    for (unsigned w = 0; w < cfg_.workers; ++w) {
        last_busy_[w] = shared_[w].busy_cycles.load(std::memory_order_relaxed);
        for (const Classifier *p : peers_) last_busy_[w] += p->shared_[w].busy_cycles.load(std::memory_order_relaxed);
    }
    return true;
}

void Classifier::hand_over(unsigned w) {
    unsigned n = staged_[w];
    rte_mbuf **mine = &stage_[size_t(w) * kStage];
    unsigned sent = n ? rte_ring_sp_enqueue_burst(rings_[w], reinterpret_cast<void **>(mine), n, nullptr) : 0;
    enqueued_[w] += sent;
    staged_[w] = 0;
    if (sent < n) {
        // Packets that found no room are dropped and counted; notices are
        // kept (an end must never be lost) and retried below and later.
        unsigned lost = 0;
        for (unsigned i = sent; i < n; ++i) {
            void *x = mine[i];
            if (is_notice(x)) {
                pending_[w].push_back(x); // capacity reserved in create(): no allocation
                ++stats_.notices_deferred;
            } else {
                mine[sent + lost++] = static_cast<rte_mbuf *>(x);
            }
        }
        if (lost) {
            ring_drops_[w] += lost;
            stats_.drops[static_cast<unsigned>(ClassifierDrop::RingFull)] += lost;
            cfg_.release(mine + sent, lost);
        }
    }
    // After the stage, so the positions given to staged packets stay exact;
    // these flows have ended, their packets are already ahead in the ring.
    auto &p = pending_[w];
    if (!p.empty()) {
        unsigned k = rte_ring_sp_enqueue_burst(rings_[w], p.data(), static_cast<unsigned>(p.size()), nullptr);
        enqueued_[w] += k;
        p.erase(p.begin(), p.begin() + k);
    }
}

void Classifier::stage(unsigned w, void *entry) {
    if (staged_[w] == kStage) hand_over(w);
    if (staged_[w] == 0) staged_since_[w] = stats_.bursts;
    stage_[size_t(w) * kStage + staged_[w]++] = static_cast<rte_mbuf *>(entry);
}

void Classifier::EndRelay::on_flow_end(const FlowKey &key, const FlowEntry &entry, FlowEndReason why) {
    if (user) user->on_flow_end(key, entry, why);
    if (!c->state_) return;
    auto slot = static_cast<uint32_t>(&entry - &c->table_->entry(0));
    void *obj = c->state_[slot];
    if (!obj) return;
    c->state_[slot] = nullptr;
    ++c->stats_.notices;
    // Behind the flow's last packet in the same worker's stage: ring order
    // is flow order. It takes a ring position like a packet, so positions
    // stamped later stay exact.
    c->stage(entry.worker, reinterpret_cast<void *>(reinterpret_cast<uintptr_t>(obj) | uintptr_t(why) << 1 | 1u));
}

} // namespace millipede::flow

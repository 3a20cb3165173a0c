#include "tap_worker.h"

#include <algorithm>
#include <cstring>

#include <rte_errno.h>

#include "millipede/net/parse.h"

namespace millipede::app {

namespace {
void init_flow_object(rte_mempool *, void *, void *obj, unsigned) {
    std::memset(obj, 0, kTapFlowHeader); // live = 0: see the pool invariant in tap_worker.h
}
} // namespace

rte_mempool *make_flow_pool(unsigned count, int socket_id, std::string &err) {
    std::size_t size = kTapFlowHeader + dpi::Engine::flow_size();
    // Cache per lcore: the classifier takes, workers on other lcores give
    // back. Small, so that objects parked in the workers' caches cannot
    // starve the classifier of a small pool (DPDK also caps it at count/1.5).
    unsigned cache = std::min(256u, count / 16);
    rte_mempool *p = rte_mempool_create("tap_flows_dpi", count, static_cast<unsigned>(size), cache, 0, nullptr, nullptr,
                                        init_flow_object, nullptr, socket_id, 0);
    if (!p)
        err = "cannot create the pool of " + std::to_string(count) + " flow states (" +
              std::to_string(size * count >> 20) + " MiB): " + rte_strerror(rte_errno) +
              "; give EAL more memory (-m) or lower --dpi-flows";
    return p;
}

void TapWorker::on_packet(rte_mbuf *m, const flow::FlowMeta &meta, uint64_t burst_ns, unsigned shard) {
    auto *f = static_cast<TapFlow *>(flow::flow_state(m));
    TapWorkerStats::bump(stats.packets);
    if (!f) {
        TapWorkerStats::bump(stats.no_state_packets);
        rte_pktmbuf_free(m);
        return;
    }
    const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
    uint32_t len = rte_pktmbuf_data_len(m);
    const uint32_t frame_len = rte_pktmbuf_pkt_len(m); // every segment
    uint64_t ts = burst_ns;
    if (clock_.ts_offset >= 0 && (m->ol_flags & clock_.ts_flag))
        ts = *RTE_MBUF_DYNFIELD(m, clock_.ts_offset, uint64_t *) * clock_.ts_scale_ns;
    // The classifier parsed this packet already, but the mbuf has no room
    // left to carry what inspection needs (see classifier.h). Parsing again
    // costs far less than nDPI itself, and only the flow's first packet and
    // those nDPI still inspects need it.
    bool inspect = engine_ && (!f->live || !f->verdict.done) && !(meta.flags & flow::kMetaLaterFragment);
    net::PacketInfo p{};
    if ((!f->live || inspect) && !rte_pktmbuf_is_contiguous(m)) {
        // Chained: nDPI needs the payload in one piece. Rare (frames over
        // 2 KiB) and bounded by kFrameScratch, so a copy beats teaching
        // every dissector about segments.
        len = std::min(frame_len, kFrameScratch);
        frame = static_cast<const uint8_t *>(rte_pktmbuf_read(m, 0, len, frame_scratch_.get()));
    }
    if ((!f->live || inspect) && (!frame || net::parse_packet(frame, len, p) != net::Reject::NONE)) inspect = false;
    if (!f->live) {
        // The flow's first packet here: its sender is the initiator.
        f->live = 1;
        f->first_dir = meta.direction;
        f->proto = p.l4_proto;
        f->ip_version = p.ip_version;
        f->flags = (meta.flags & flow::kMetaUnjoinedFragment) ? kRecUnjoinedFragments : 0;
        if (!engine_) f->flags |= kRecDpiOff;
        if (sharded_) f->flags |= kRecSharded;
        f->shard = static_cast<uint8_t>(shard);
        std::memcpy(f->src, p.src.bytes, 16);
        std::memcpy(f->dst, p.dst.bytes, 16);
        bool icmp = p.l4_proto == net::kProtoICMP || p.l4_proto == net::kProtoICMPv6;
        f->sport = icmp ? p.icmp_type : p.src_port;
        f->dport = icmp ? p.icmp_code : p.dst_port;
        f->first_ns = ts;
        f->packets[0] = f->packets[1] = f->bytes[0] = f->bytes[1] = 0;
        f->l3 = L3Tally{};
        if (engine_) engine_->init(ndpi_state(f), f->verdict);
        else f->verdict = dpi::Verdict{};
        TapWorkerStats::bump(stats.flows_started);
    }
    unsigned d = meta.direction == f->first_dir ? 0 : 1;
    ++f->packets[d];
    f->bytes[d] += frame_len;
    if (writer_ && writer_->wants_l3()) tally_l3(f->l3, d, m);
    TapWorkerStats::bump(stats.bytes, frame_len);
    f->last_ns = ts;
    f->migrations = meta.epoch;
    // Later fragments carry no L4 header: ndpiReader skips them too.
    if (inspect && !f->verdict.done) {
        engine_->process(ndpi_state(f), f->verdict, frame + p.l3_offset,
                         static_cast<uint16_t>(std::min<uint32_t>(len - p.l3_offset, UINT16_MAX)), ts / 1'000'000,
                         p.l4_proto, f->packets[0] + f->packets[1]);
        TapWorkerStats::bump(stats.dpi_packets);
    }
    rte_pktmbuf_free(m);
}

void TapWorker::on_notice(void *state, flow::FlowEndReason why) {
    auto *f = static_cast<TapFlow *>(state);
    if (f->live) {
        if (engine_) {
            engine_->finish(ndpi_state(f), f->verdict);
            if (f->verdict.proto.app == 0 && f->verdict.proto.master == 0) TapWorkerStats::bump(stats.unknown);
            else if (f->verdict.guessed) TapWorkerStats::bump(stats.guessed);
            else TapWorkerStats::bump(stats.detected);
        }
        TapWorkerStats::bump(stats.flows_ended);
        if (writer_) {
            FlowRecord r;
            std::memcpy(r.src, f->src, 16);
            std::memcpy(r.dst, f->dst, 16);
            r.first_ns = f->first_ns;
            r.last_ns = f->last_ns;
            r.packets[0] = f->packets[0];
            r.packets[1] = f->packets[1];
            r.bytes[0] = f->bytes[0];
            r.bytes[1] = f->bytes[1];
            r.l3 = f->l3;
            r.dpi_packets = f->verdict.packets;
            r.sport = f->sport;
            r.dport = f->dport;
            r.l7_master = f->verdict.proto.master;
            r.l7_app = f->verdict.proto.app;
            r.worker = static_cast<uint16_t>(id_);
            r.migrations = f->migrations;
            r.shard = f->shard;
            r.proto = f->proto;
            r.ip_version = f->ip_version;
            r.end = static_cast<uint8_t>(why);
            r.flags = static_cast<uint8_t>(f->flags | (f->verdict.guessed ? kRecGuessed : 0));
            if (!writer_->push(r)) TapWorkerStats::bump(stats.records_dropped);
        }
    } else {
        TapWorkerStats::bump(stats.unseen_flows); // every packet of it was dropped before a worker
    }
    f->live = 0; // the pool's invariant: objects in it are not live
    rte_mempool_put(pool_, f);
}

} // namespace millipede::app

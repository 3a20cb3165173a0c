// A worker lcore: its LegHost's connections, the segments the rx lcore
// hands it, the session's commands, and its own TX queue of every port.
#include <cstring>

#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include "millipede/net/bytes.h"
#include "transport_internal.h"

namespace millipede::dataplane {

namespace {

void keep_rest(TxBuffer &b, unsigned sent) {
    b.sent += sent;
    if (sent && sent < b.n) std::memmove(b.pkts, b.pkts + sent, (b.n - sent) * sizeof(rte_mbuf *));
    b.n -= sent;
}

} // namespace

void tx_flush(TxBuffer &b, const PortState &p, uint64_t &drops) {
    if (!b.n) return;
    if (p.tx_ip_offload || p.tx_tcp_offload) {
        // Some devices need headers fixed up for offload; a frame they refuse
        // is dropped (TCP re-sends it) rather than sent with a bad checksum.
        unsigned ok = 0;
        while (ok < b.n) {
            ok += rte_eth_tx_prepare(p.id, b.queue, b.pkts + ok, static_cast<uint16_t>(b.n - ok));
            if (ok < b.n) {
                rte_pktmbuf_free(b.pkts[ok]);
                drops++;
                b.drops++;
                std::memmove(b.pkts + ok, b.pkts + ok + 1, (b.n - ok - 1) * sizeof(rte_mbuf *));
                b.n--;
            }
        }
    }
    unsigned sent = 0;
    for (int tries = 0; sent < b.n && tries < 4; tries++)
        sent += rte_eth_tx_burst(p.id, b.queue, b.pkts + sent, static_cast<uint16_t>(b.n - sent));
    keep_rest(b, sent);
}

void handoff_flush(TxBuffer &b, rte_ring *ring) {
    if (b.n) keep_rest(b, rte_ring_mp_enqueue_burst(ring, reinterpret_cast<void **>(b.pkts), b.n, nullptr));
}


// The LegHost's SegmentSink: the frame is built (payload attached, not
// copied), addressed with the MAC the owner published, and buffered for one
// tx_burst per port per loop iteration.
void Impl::worker_emit(Worker &w, const tcp::Segment &s) {
    const uint32_t src = ip_key(s.src_ip);
    PortState *p = port_for_local(src);
    if (!p) {
        w.no_route++;
        return;
    }
    if (o.drop_tx_ppm && w.drop_rng() % 1'000'000 < o.drop_tx_ppm) {
        w.pub.injected_drops.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    w.txc.ip_checksum_offload = p->tx_ip_offload;
    w.txc.multi_seg = p->multi_seg;
    rte_mbuf *m = build_tcp_frame(s, p->mac, p->max_frame, w.txc);
    if (!m) return;
    const uint32_t hop = ip_key(s.dst_ip); // on-link only: no routing
    net::MacAddr mac;
    if (neighbours->lookup(p->index, hop, mac)) {
        std::memcpy(rte_pktmbuf_mtod(m, uint8_t *), mac.b, 6);
        TxBuffer &b = w.tx[p->index];
        tx_append(b, m, w.tx_drops, [&] {
            if (p->tx_handoff && !w.with_owner)
                handoff_flush(b, p->tx_handoff);
            else
                tx_flush(b, *p, w.tx_drops);
        });
        return;
    }
    // No MAC yet: the owner resolves it (ARP) and sends the frame.
    m->port = p->id;
    m->hash.usr = hop;
    w.neigh_handoffs++;
    if (rte_ring_mp_enqueue(owner_ring, m) != 0) {
        rte_pktmbuf_free(m);
        w.tx_drops++;
    }
}

void Impl::publish_legs(Worker &w, uint64_t now) {
    // Every 10 ms, and at once when a connection comes or goes, so a table
    // asked for just after the legs came up does not show them missing.
    const size_t conns_now = w.host->connections();
    if (now < w.next_legs_publish && conns_now == w.legs_published_conns) return;
    std::unique_lock<std::mutex> g(w.legs.m, std::try_to_lock);
    if (!g.owns_lock()) return; // a reader holds it: next poll
    w.next_legs_publish = now + 10'000;
    w.legs_published_conns = conns_now;
    uint32_t n = 0;
    w.host->for_each([&](session::ConnHandle h, uint16_t, const tcp::Connection &c) {
        if (n == sizeof w.legs.rows / sizeof w.legs.rows[0]) return;
        const tcp::Stats st = c.stats();
        LegRow &r = w.legs.rows[n++];
        r.handle = h;
        r.state = tcp::state_name(c.state());
        r.bytes_acked = st.bytes_acked;
        r.bytes_received = st.bytes_received;
        r.srtt_us = st.srtt_us;
        r.retransmits = st.retransmits_timeout + st.retransmits_fast;
        r.cwnd = st.cwnd;
    });
    w.legs.n = n;
}

unsigned Impl::worker_poll(Worker &w, uint64_t now) {
    w.now_us = now;
    unsigned work = 0;
    // The session's commands first: writes queued before the segments that
    // acknowledge earlier ones are processed.
    session::LegCommand cmds[32];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst_elem(w.cmds, cmds, sizeof(session::LegCommand), 32, nullptr)) > 0) {
        for (unsigned i = 0; i < n; i++) w.host->on_command(cmds[i], now);
        work += n;
    }
    rte_mbuf *pkts[kBurst];
    n = rte_ring_sc_dequeue_burst(w.pkts, reinterpret_cast<void **>(pkts), kBurst, nullptr);
    for (unsigned i = 0; i < n; i++) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod_offset(pkts[i + 1], void *, pkts[i + 1]->l2_len));
        rte_mbuf *m = pkts[i];
        const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *, m->l2_len);
        const uint32_t ihl = m->l3_len;
        // The rx lcore checked the header: IPv4, or IPv6 with TCP right after it.
        const bool v6 = (ip[0] >> 4) == 6;
        const uint32_t l4_len = v6 ? net::load_be16(ip + 4) : net::load_be16(ip + 2) - ihl;
        tcp::Segment seg;
        tcp::Piece pieces[kMaxRxPieces];
        const tcp::IpAddr src = v6 ? tcp::IpAddr::v6(ip + 8) : tcp::IpAddr::v4(net::load_be32(ip + 12));
        const tcp::IpAddr dst = v6 ? tcp::IpAddr::v6(ip + 24) : tcp::IpAddr::v4(net::load_be32(ip + 16));
        const uint64_t l4f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
        const RxSegmentError e = l4f == RTE_MBUF_F_RX_L4_CKSUM_BAD
                                     ? RxSegmentError::BAD_CHECKSUM
                                     : segment_from_mbuf(m, m->l2_len + ihl, l4_len, src, dst,
                                                         l4f != RTE_MBUF_F_RX_L4_CKSUM_GOOD, seg, pieces);
        if (e != RxSegmentError::NONE) {
            w.rx_errors[static_cast<unsigned>(e)]++;
            w.pub.bad_segments.fetch_add(1, std::memory_order_relaxed);
            rte_pktmbuf_free(m);
            continue;
        }
        w.pub.segments_in.fetch_add(1, std::memory_order_relaxed);
        if (!w.host->on_segment(seg, now) && misdelivered(*conns, w.index, seg))
            w.pub.misdelivered.fetch_add(1, std::memory_order_relaxed);
        rte_pktmbuf_free(m); // what the connection keeps, it holds its own reference on
    }
    work += n;
    if (work || now >= w.host->next_deadline()) w.host->poll(now);
    for (auto &pp : ports) {
        PortState &p = *pp;
        TxBuffer &b = w.tx[p.index];
        if (!b.n) continue;
        if (p.tx_handoff && !w.with_owner)
            handoff_flush(b, p.tx_handoff); // (the owner counts what it sends of them)
        else
            tx_flush(b, p, w.tx_drops);
    }
    w.pub.bytes_copied.store(w.txc.bytes_copied, std::memory_order_relaxed);
    w.pub.bytes_referenced.store(w.txc.bytes_referenced, std::memory_order_relaxed);
    publish_legs(w, now);
    return work;
}

} // namespace millipede::dataplane

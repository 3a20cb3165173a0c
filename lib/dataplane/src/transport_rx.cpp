// The rx lcore: poll the ports, keep what is ours, look every TCP segment up
// in the flow table and hand it to the worker that owns its connection (a
// SYN for our listening port is a new flow: the least-loaded worker gets
// it). ARP, ICMP echo and the neighbour caches belong to this lcore too
// (the owner): workers read the MACs it publishes and hand it frames whose
// next hop it still has to resolve.
#include <cstring>

#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include "millipede/net/arp.h"
#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"
#include "millipede/net/icmp_echo.h"
#include "millipede/net/parse.h"
#include "transport_internal.h"

namespace millipede::dataplane {

namespace {

// Is this frame not for this port, or one of our own coming back (a packet
// socket sees what its interface sends)? Our own frames go to a peer's MAC
// or to broadcast (ARP), so a frame to our MAC is never our echo; a
// broadcast from our MAC is ours only if ARP names one of our addresses as
// its sender. (net_tap gives the kernel's tap interface the port's own MAC,
// so frames from that kernel carry our MAC as their source.)
bool foreign_or_echo(const PortState &p, const uint8_t *f, uint32_t len) {
    net::MacAddr dmac, smac;
    std::memcpy(dmac.b, f, 6);
    std::memcpy(smac.b, f + 6, 6);
    if (dmac == p.mac) return false;
    if (p.v6) {
        // IPv6 multicast (33:33:...: Neighbour Discovery to a solicited-node
        // group); from our own MAC it is our solicitation coming back.
        return dmac.b[0] != 0x33 || dmac.b[1] != 0x33 || std::memcmp(smac.b, p.mac.b, 6) == 0;
    }
    if (!dmac.is_broadcast()) return true;
    if (smac != p.mac) return false;
    net::ArpPacket a;
    return net::parse_arp(f, len, a) != net::ArpError::NONE || p.ours(a.sender_ip);
}

inline uint32_t key_hash(const ConnKey &k) {
    uint32_t h = k.remote_ip * 0x9e3779b1u ^ k.local_ip;
    h ^= (uint32_t(k.remote_port) << 16 | k.local_port) * 0x85ebca6bu;
    return h ^ (h >> 15);
}

} // namespace

void Impl::flush(TxBuffer &b, PortState &p) { tx_flush(b, p, owner_tx_drops); }

void Impl::owner_send(PortState &p, rte_mbuf *m) {
    TxBuffer &b = owner_tx[p.index];
    tx_append(b, m, owner_tx_drops, [&] { flush(b, p); });
}

namespace {

// One control frame built by `build(data, room)` (its length, 0 on
// failure) into a fresh mbuf; nullptr when out of mbufs or room.
template <class Build> rte_mbuf *control_frame(rte_mempool *pool, Build &&build) {
    rte_mbuf *m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    const size_t n = build(rte_pktmbuf_mtod(m, uint8_t *), rte_pktmbuf_tailroom(m));
    if (!n) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    m->data_len = static_cast<uint16_t>(n);
    m->pkt_len = static_cast<uint32_t>(n);
    return m;
}

rte_mbuf *arp_frame(rte_mempool *pool, const PortState &p, uint32_t target, bool gratuitous, uint32_t our_ip) {
    return control_frame(pool, [&](uint8_t *d, size_t room) {
        return gratuitous ? net::build_gratuitous_arp(d, room, p.mac, our_ip)
                          : net::build_arp_request(d, room, p.mac, our_ip, target);
    });
}

rte_mbuf *solicitation_frame(rte_mempool *pool, const PortState &p, const uint8_t target[16]) {
    return control_frame(pool, [&](uint8_t *d, size_t room) {
        return net::build_neighbour_solicitation(d, room, p.mac, p.source_for6(target), target);
    });
}

} // namespace

// IPv6 Neighbour Discovery on the rx lcore (the owner): answer a
// solicitation for one of our addresses, learn the MAC of a neighbour that
// solicits us or advertises itself. Takes `m`.
void Impl::on_nd(PortState &p, rte_mbuf *m, uint64_t now) {
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    net::NdMessage nd;
    const net::NdError e = net::parse_nd(f, m->data_len, nd);
    if (e != net::NdError::NONE) {
        nd_errors[static_cast<unsigned>(e)]++;
        rxc.drops[static_cast<unsigned>(RxDrop::Malformed)]++;
        rte_pktmbuf_free(m);
        return;
    }
    rxc.to_owner++;
    const bool solicitation = nd.type == net::kIcmp6NeighbourSolicitation;
    const net::IpAssignment *mine = solicitation ? p.ours6(nd.target) : nullptr;
    // What the message teaches: the solicitor's MAC (RFC 4861 7.2.3, only
    // when it solicits us) or the advertised target's (7.2.5: updates an
    // entry, creates none).
    const uint8_t *who = solicitation ? nd.src : nd.target;
    if (nd.has_lladdr && !net::ipv6_is_unspecified(who) && (!solicitation || mine)) {
        const uint32_t key = net::ipv6_key(who);
        const PortState::Naming named = p.name_v6(key, who);
        if (named != PortState::Naming::OK) {
            (named == PortState::Naming::CLASH ? nd_key_clashes : nd_names_full)++;
        } else {
            net::ArpPacket a; // the cache's learning rules are ARP's (neighbour.h)
            a.op = solicitation ? net::kArpOpRequest : net::kArpOpReply;
            a.sender_ip = key;
            a.sender_mac = nd.lladdr;
            a.target_ip = mine ? mine->addr : 0;
            const net::ArpLearn learnt = p.neigh->on_arp(a, mine != nullptr, now);
            if (learnt == net::ArpLearn::CREATED || learnt == net::ArpLearn::CONFIRMED ||
                learnt == net::ArpLearn::MAC_CHANGED || learnt == net::ArpLearn::RESOLVED)
                neighbours->publish(p.index, key, nd.lladdr);
        }
    }
    if (mine) {
        if (rte_mbuf *r = rte_pktmbuf_alloc(rx_pool)) {
            const size_t n = net::build_neighbour_advertisement(rte_pktmbuf_mtod(r, uint8_t *),
                                                                rte_pktmbuf_tailroom(r), nd, p.mac, nd.target);
            r->data_len = static_cast<uint16_t>(n);
            r->pkt_len = static_cast<uint32_t>(n);
            nd_adverts++;
            owner_send(p, r);
        }
    }
    rte_pktmbuf_free(m);
}

void Impl::send_gratuitous() {
    for (auto &p : ports) {
        if (p->v6) {
            // RFC 4861 7.2.6: an unsolicited advertisement of each address.
            for (const auto &a : p->addrs)
                if (rte_mbuf *m = rte_pktmbuf_alloc(rx_pool)) {
                    const size_t n = net::build_unsolicited_advertisement(rte_pktmbuf_mtod(m, uint8_t *),
                                                                          rte_pktmbuf_tailroom(m), p->mac,
                                                                          a.addr6.data());
                    m->data_len = static_cast<uint16_t>(n);
                    m->pkt_len = static_cast<uint32_t>(n);
                    nd_adverts++;
                    owner_send(*p, m);
                }
            flush(owner_tx[p->index], *p);
            continue;
        }
        for (const auto &a : p->addrs)
            if (rte_mbuf *m = arp_frame(rx_pool, *p, 0, true, a.addr)) owner_send(*p, m);
        flush(owner_tx[p->index], *p);
    }
}

// The owner's share of the loop: frames waiting for a MAC, transmit
// hand-offs, ARP timers and the flow table's tentative flows.
unsigned Impl::owner_poll(uint64_t now) {
    unsigned work = 0;
    auto send_request = [&](PortState &p, uint32_t ip) {
        if (p.v6) {
            const uint8_t *target = p.v6_name(ip);
            if (!target) return; // (every key the cache holds was named first)
            if (rte_mbuf *m = solicitation_frame(rx_pool, p, target)) {
                nd_solicits++;
                owner_send(p, m);
            }
            return;
        }
        if (rte_mbuf *m = arp_frame(rx_pool, p, ip, false, p.source_for(ip))) {
            arp_requests++;
            owner_send(p, m);
        }
    };
    auto take_released = [&](PortState &p) {
        net::NeighRelease rel[32];
        size_t n;
        while ((n = p.neigh->take_released(rel, 32)) > 0)
            for (size_t i = 0; i < n; i++) {
                auto *m = reinterpret_cast<rte_mbuf *>(rel[i].pkt);
                if (!rel[i].send) {
                    neigh_drops++;
                    rte_pktmbuf_free(m);
                    continue;
                }
                std::memcpy(rte_pktmbuf_mtod(m, uint8_t *), rel[i].mac.b, 6);
                neighbours->publish(p.index, m->hash.usr, rel[i].mac);
                owner_send(p, m);
            }
    };
    rte_mbuf *pk[kBurst];
    unsigned n = rte_ring_sc_dequeue_burst(owner_ring, reinterpret_cast<void **>(pk), kBurst, nullptr);
    for (unsigned i = 0; i < n; i++) {
        rte_mbuf *m = pk[i];
        PortState *p = m->port < RTE_MAX_ETHPORTS ? port_by_id[m->port] : nullptr;
        if (!p) {
            rte_pktmbuf_free(m);
            continue;
        }
        const uint32_t hop = m->hash.usr;
        // IPv6: the frame (built by a worker, on-link) names the next hop
        // its key stands for.
        const PortState::Naming named =
            p->v6 ? p->name_v6(hop, rte_pktmbuf_mtod_offset(m, const uint8_t *, kEthLen + 24)) : PortState::Naming::OK;
        if (named != PortState::Naming::OK) {
            (named == PortState::Naming::CLASH ? nd_key_clashes : nd_names_full)++;
            neigh_drops++;
            rte_pktmbuf_free(m);
            continue;
        }
        const net::NeighLookup r = p->neigh->resolve(hop, now, reinterpret_cast<uint64_t>(m));
        if (r.send_request) send_request(*p, hop);
        switch (r.kind) {
        case net::NeighLookup::Kind::RESOLVED:
            std::memcpy(rte_pktmbuf_mtod(m, uint8_t *), r.mac.b, 6);
            neighbours->publish(p->index, hop, r.mac);
            owner_send(*p, m);
            break;
        case net::NeighLookup::Kind::PENDING:
            break; // the cache holds it
        case net::NeighLookup::Kind::DROPPED:
            neigh_drops++;
            rte_pktmbuf_free(m);
            break;
        }
    }
    work += n;
    for (auto &p : ports) {
        if (p->tx_handoff) {
            // The workers' frames, as many as the owner's buffer has room
            // for: what stays in the ring waits (the workers keep theirs).
            TxBuffer &b = owner_tx[p->index];
            const unsigned room = kTxCap - b.n;
            const unsigned k = rte_ring_sc_dequeue_burst(p->tx_handoff, reinterpret_cast<void **>(b.pkts + b.n),
                                                         room, nullptr);
            b.n += k;
            work += k;
            if (b.n == kTxCap) flush(b, *p);
        }
    }
    if (now >= next_neigh) {
        next_neigh = now + 10'000;
        for (auto &p : ports) {
            uint32_t req[32];
            const size_t k = p->neigh->poll(now, req, 32);
            for (size_t i = 0; i < k; i++) send_request(*p, req[i]);
        }
    }
    // Frames that waited for a MAC leave as soon as the reply is in (a SYN
    // held for a 10 ms tick would start its leg late).
    for (auto &p : ports) take_released(*p);
    if (now >= next_expire) {
        next_expire = now + 100'000;
        conns->expire_tentative(now, 5'000'000); // a handshake that took 5 s is not coming
    }
    for (auto &p : ports) flush(owner_tx[p->index], *p);
    return work;
}

unsigned Impl::rx_poll(uint64_t now) {
    const unsigned nw = static_cast<unsigned>(workers.size());
    if (held.size() != nw) held.assign(nw, Held{});
    unsigned work = 0;
    // Back-pressure first: frames a full ring did not take.
    if (held_total) {
        for (unsigned w = 0; w < nw; w++) {
            Held &h = held[w];
            if (!h.n) continue;
            const unsigned k = rte_ring_sp_enqueue_burst(workers[w]->pkts, reinterpret_cast<void **>(h.pkts + h.off),
                                                         h.n, nullptr);
            h.off += k;
            h.n -= k;
            held_total -= k;
            work += k;
            if (!h.n) h.off = 0;
        }
        if (held_total) {
            rxc.backpressure++;
            return work; // the ports wait: their own queues absorb the rest, TCP slows down
        }
    }
    // The balancer sees each worker's load once per burst.
    flow::WorkerLoad loads[64];
    for (unsigned w = 0; w < nw && w < 64; w++) {
        const uint32_t conns_now = workers[w]->pub.connections.load(std::memory_order_relaxed);
        NewFlows &nf = new_flows[w];
        // Connections the worker opened since: those flows are counted there
        // now. A SYN that never became one stops counting after a second.
        const uint32_t opened = conns_now > nf.seen ? conns_now - nf.seen : 0;
        nf.pending = opened >= nf.pending || now - nf.last_us > 1'000'000 ? 0 : nf.pending - opened;
        nf.seen = conns_now;
        loads[w] = flow::WorkerLoad{rte_ring_count(workers[w]->pkts) + 32 * (conns_now + nf.pending), 0.0f};
    }
    rx_balancer->refresh({loads, std::min(nw, 64u)});
    for (auto &pp : ports) {
        PortState &p = *pp;
        rte_mbuf *pkts[kBurst];
        const uint16_t n = rte_eth_rx_burst(p.id, 0, pkts, kBurst);
        if (!n) continue;
        work += n;
        rxc.frames += n;
        p.rx_frames += n;
        ConnKey keys[kBurst];
        rte_mbuf *tcp_pkts[kBurst];
        bool syn[kBurst];
        unsigned nt = 0;
        for (uint16_t i = 0; i < n; i++) {
            if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
            rte_mbuf *m = pkts[i];
            uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
            const uint32_t len = m->data_len;
            auto drop = [&](RxDrop why) {
                rxc.drops[static_cast<unsigned>(why)]++;
                rte_pktmbuf_free(m);
            };
            if (len < kEthLen) {
                drop(RxDrop::Malformed);
                continue;
            }
            if (foreign_or_echo(p, f, len)) {
                drop(RxDrop::NotOurs);
                continue;
            }
            const uint16_t et = net::load_be16(f + 12);
            if (!p.v6 && (et == net::kEtherTypeARP || et == net::kEtherTypeVLAN || et == net::kEtherTypeQinQ)) {
                net::ArpPacket a;
                if (net::parse_arp(f, len, a) != net::ArpError::NONE) {
                    drop(et == net::kEtherTypeARP ? RxDrop::Malformed : RxDrop::OtherProto);
                    continue;
                }
                rxc.to_owner++;
                const bool for_us = p.ours(a.target_ip);
                const net::ArpLearn learnt = p.neigh->on_arp(a, for_us, now);
                if (learnt == net::ArpLearn::CREATED || learnt == net::ArpLearn::CONFIRMED ||
                    learnt == net::ArpLearn::MAC_CHANGED || learnt == net::ArpLearn::RESOLVED)
                    neighbours->publish(p.index, a.sender_ip, a.sender_mac);
                if (for_us && net::arp_should_reply(a, a.target_ip)) {
                    net::arp_reply_in_place(f, len, a, p.mac);
                    arp_replies++;
                    owner_send(p, m);
                } else {
                    rte_pktmbuf_free(m);
                }
                continue;
            }
            if (et == net::kEtherTypeIPv6 && p.v6) {
                const uint8_t *ip6 = f + kEthLen;
                if (len < kEthLen + net::kIpv6HeaderLen || (ip6[0] >> 4) != 6 ||
                    kEthLen + net::kIpv6HeaderLen + net::load_be16(ip6 + 4) > m->pkt_len) {
                    drop(RxDrop::Malformed);
                    continue;
                }
                const uint32_t plen = net::load_be16(ip6 + 4);
                const uint8_t next = ip6[6];
                if (next == net::kProtoICMPv6) {
                    if (plen < 1 || m->nb_segs != 1) {
                        drop(plen < 1 ? RxDrop::Malformed : RxDrop::Unanswered);
                        continue;
                    }
                    const uint8_t type = ip6[net::kIpv6HeaderLen];
                    if (type == net::kIcmp6NeighbourSolicitation || type == net::kIcmp6NeighbourAdvertisement) {
                        on_nd(p, m, now);
                        continue;
                    }
                    const net::IpAssignment *mine = p.ours6(ip6 + 24);
                    uint32_t rlen = 0;
                    if (mine && net::icmpv6_echo_reply_in_place(f, len, mine->addr6.data(), p.mac, rlen) ==
                                    net::Icmp6EchoError::NONE) {
                        m->data_len = static_cast<uint16_t>(rlen);
                        m->pkt_len = rlen;
                        icmp_replies++;
                        rxc.to_owner++;
                        owner_send(p, m);
                    } else {
                        drop(mine ? RxDrop::Unanswered : RxDrop::NotOurs);
                    }
                    continue;
                }
                if (!p.ours6(ip6 + 24)) {
                    drop(RxDrop::NotOurs);
                    continue;
                }
                if (next != net::kProtoTCP) { // other protocols, and extension headers (not followed)
                    drop(RxDrop::OtherProto);
                    continue;
                }
                if (plen < 20 || kEthLen + net::kIpv6HeaderLen + 20 > len) {
                    drop(RxDrop::Malformed);
                    continue;
                }
                if (o.drop_rx_ppm && rx_drop_rng() % 1'000'000 < o.drop_rx_ppm) {
                    rx_injected++;
                    drop(RxDrop::InjectedDrop);
                    continue;
                }
                m->l2_len = kEthLen;
                m->l3_len = net::kIpv6HeaderLen;
                if (p.trust_l4_checksum)
                    m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_L4_CKSUM_MASK) | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
                const uint8_t *t = ip6 + net::kIpv6HeaderLen;
                keys[nt].remote_ip = conn_key_ip(ip6 + 8, true);
                keys[nt].local_ip = conn_key_ip(ip6 + 24, true);
                std::memcpy(&keys[nt].remote_port, t, 2);
                std::memcpy(&keys[nt].local_port, t + 2, 2);
                syn[nt] = (t[13] & 0x12) == 0x02;
                tcp_pkts[nt++] = m;
                p.tcp_in++;
                continue;
            }
            if (et != net::kEtherTypeIPv4 || p.v6) {
                drop(RxDrop::OtherProto);
                continue;
            }
            const uint8_t *ip = f + kEthLen;
            if (len < kEthLen + 20 || (ip[0] >> 4) != 4) {
                drop(RxDrop::Malformed);
                continue;
            }
            const uint32_t ihl = (ip[0] & 0x0f) * 4u;
            const uint32_t total = net::load_be16(ip + 2);
            if (ihl < 20 || kEthLen + ihl > len || total < ihl || kEthLen + total > m->pkt_len) {
                drop(RxDrop::Malformed);
                continue;
            }
            if (net::load_be16(ip + 6) & 0x3fff) {
                drop(RxDrop::Fragment);
                continue;
            }
            const uint32_t dst = net::load_be32(ip + 16);
            if (!p.ours(dst)) {
                drop(RxDrop::NotOurs);
                continue;
            }
            const uint64_t ipf = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
            if (ipf == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
                (ipf != RTE_MBUF_F_RX_IP_CKSUM_GOOD && net::checksum_finish(net::checksum_partial(ip, ihl)) != 0)) {
                drop(RxDrop::BadIpChecksum);
                continue;
            }
            m->l2_len = kEthLen;
            m->l3_len = static_cast<uint16_t>(ihl);
            if (ip[9] == net::kProtoICMP) {
                uint32_t rlen = 0;
                if (m->nb_segs == 1 &&
                    net::icmp_echo_reply_in_place(f, len, dst, p.mac, rlen) == net::IcmpEchoError::NONE) {
                    m->data_len = static_cast<uint16_t>(rlen);
                    m->pkt_len = rlen;
                    icmp_replies++;
                    rxc.to_owner++;
                    owner_send(p, m);
                } else {
                    drop(RxDrop::Unanswered);
                }
                continue;
            }
            if (ip[9] != net::kProtoTCP) {
                drop(RxDrop::OtherProto);
                continue;
            }
            const uint8_t *t = ip + ihl;
            if (kEthLen + ihl + 20 > len || total < ihl + 20) {
                drop(RxDrop::Malformed);
                continue;
            }
            if (o.drop_rx_ppm && rx_drop_rng() % 1'000'000 < o.drop_rx_ppm) {
                rx_injected++;
                drop(RxDrop::InjectedDrop);
                continue;
            }
            if (p.trust_l4_checksum)
                m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_L4_CKSUM_MASK) | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
            std::memcpy(&keys[nt].remote_ip, ip + 12, 4);
            std::memcpy(&keys[nt].local_ip, ip + 16, 4);
            std::memcpy(&keys[nt].remote_port, t, 2);
            std::memcpy(&keys[nt].local_port, t + 2, 2);
            syn[nt] = (t[13] & 0x12) == 0x02; // SYN without ACK
            tcp_pkts[nt++] = m;
            p.tcp_in++;
        }
        if (!nt) continue;
        int32_t owner[kBurst];
        conns->lookup_bulk(keys, nt, owner);
        // One ring operation per worker per burst.
        rte_mbuf *stage[64][kBurst];
        unsigned staged[64] = {};
        for (unsigned i = 0; i < nt; i++) {
            int32_t w = owner[i];
            if (w < 0 || static_cast<unsigned>(w) >= nw) {
                const uint16_t dport = static_cast<uint16_t>((keys[i].local_port >> 8) | (keys[i].local_port << 8));
                if (syn[i] && ((receives() && dport == o.listen_port) ||
                               (o.terminate_on_ports && dport == o.terminate_port))) {
                    // A new flow: the least-loaded worker, entered in the
                    // table so the rest of its handshake finds it.
                    w = static_cast<int32_t>(rx_balancer->pick_new(key_hash(keys[i])));
                    if (conns->add_tentative(keys[i], static_cast<uint32_t>(w), now)) {
                        rxc.new_flows++;
                        new_flows[w].pending++;
                        new_flows[w].last_us = now;
                    }
                    rx_balancer->note_dispatch(static_cast<unsigned>(w), 32);
                } else {
                    // No owner: the same worker for every segment of it
                    // (it answers with RST, or ignores it in compat).
                    w = static_cast<int32_t>(key_hash(keys[i]) % nw);
                    rxc.unknown_flows++;
                }
            }
            stage[w][staged[w]++] = tcp_pkts[i];
        }
        for (unsigned w = 0; w < nw && w < 64; w++) {
            if (!staged[w]) continue;
            const unsigned k =
                rte_ring_sp_enqueue_burst(workers[w]->pkts, reinterpret_cast<void **>(stage[w]), staged[w], nullptr);
            rxc.to_workers += k;
            if (k < staged[w]) {
                Held &h = held[w];
                std::memcpy(h.pkts + h.off + h.n, stage[w] + k, (staged[w] - k) * sizeof(rte_mbuf *));
                h.n += staged[w] - k;
                held_total += staged[w] - k;
            }
        }
        if (held_total) break; // back-pressure: the next ports wait too
    }
    return work;
}

} // namespace millipede::dataplane

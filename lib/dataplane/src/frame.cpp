// TCP segments in and out of mbufs; see frame.h.
#include "millipede/dataplane/frame.h"

#include <algorithm>
#include <cstring>

#include "millipede/dataplane/refs.h"
#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"
#include "millipede/net/parse.h"

namespace millipede::dataplane {

namespace {
constexpr uint32_t kEthLen = 14;
constexpr uint32_t kIpLen = 20;
constexpr uint32_t kIp6Len = 40;
} // namespace

const char *rx_segment_error_name(RxSegmentError e) {
    switch (e) {
    case RxSegmentError::NONE: return "none";
    case RxSegmentError::TRUNCATED: return "truncated";
    case RxSegmentError::BAD_HEADER: return "bad_header";
    case RxSegmentError::BAD_CHECKSUM: return "bad_checksum";
    case RxSegmentError::TOO_FRAGMENTED: return "too_fragmented";
    }
    return "?";
}

RxSegmentError segment_from_mbuf(rte_mbuf *m, uint32_t l4_off, uint32_t l4_len, const tcp::IpAddr &src,
                                 const tcp::IpAddr &dst, bool verify, tcp::Segment &seg, tcp::Piece *pieces) {
    if (l4_len < 20 || l4_off + l4_len > m->pkt_len) return RxSegmentError::TRUNCATED;
    if (l4_off + 20 > m->data_len) return RxSegmentError::BAD_HEADER; // headers beyond the first segment
    const uint8_t *h = rte_pktmbuf_mtod_offset(m, const uint8_t *, l4_off);
    const uint32_t doff = (h[12] >> 4) * 4u;
    if (doff < 20 || doff > l4_len || l4_off + doff > m->data_len) return RxSegmentError::BAD_HEADER;
    if (tcp::parse_segment({h, doff}, src, dst, seg, false) != tcp::ParseResult::Ok) return RxSegmentError::BAD_HEADER;
    uint32_t sum = 0;
    if (verify) {
        sum = src.is_v6 ? net::pseudo_header_v6(src.bytes.data(), dst.bytes.data(), 6, l4_len)
                        : net::pseudo_header_v4(src.v4_host_order(), dst.v4_host_order(), 6, l4_len);
        sum = net::checksum_partial(h, doff, sum);
    }
    // The payload: [l4_off + doff, l4_off + l4_len) across the chain.
    uint32_t skip = l4_off + doff, left = l4_len - doff;
    size_t n = 0, off = 0;
    for (rte_mbuf *s = m; s && left; s = s->next) {
        if (skip >= s->data_len) {
            skip -= s->data_len;
            continue;
        }
        const uint32_t k = std::min<uint32_t>(s->data_len - skip, left);
        if (n == kMaxRxPieces) return RxSegmentError::TOO_FRAGMENTED;
        const uint8_t *p = rte_pktmbuf_mtod_offset(s, const uint8_t *, skip);
        pieces[n++] = tcp::Piece{p, k, mbuf_ref(s)};
        if (verify) sum = net::checksum_partial_at(p, k, off, sum);
        off += k;
        left -= k;
        skip = 0;
    }
    if (left) return RxSegmentError::TRUNCATED;
    if (verify && net::checksum_finish(sum) != 0) return RxSegmentError::BAD_CHECKSUM;
    seg.payload = {};
    seg.pieces = pieces;
    seg.npieces = static_cast<uint8_t>(n);
    seg.pieces_len = l4_len - doff;
    return RxSegmentError::NONE;
}

namespace {

// Appends `n` bytes to the chain's last mbuf, adding mbufs when full.
bool append_copy(rte_mbuf *head, rte_mbuf *&tail, const uint8_t *p, uint32_t n, TxFrameContext &ctx) {
    while (n) {
        uint16_t room = rte_pktmbuf_tailroom(tail);
        if (room == 0 || RTE_MBUF_HAS_EXTBUF(tail)) {
            rte_mbuf *m = rte_pktmbuf_alloc(ctx.header_pool);
            if (!m) return false;
            if (rte_pktmbuf_chain(head, m) != 0) {
                rte_pktmbuf_free(m);
                return false;
            }
            tail = m;
            room = rte_pktmbuf_tailroom(tail);
        }
        const uint16_t k = static_cast<uint16_t>(std::min<uint32_t>(n, room));
        std::memcpy(rte_pktmbuf_mtod_offset(tail, uint8_t *, tail->data_len), p, k);
        tail->data_len += k;
        if (tail != head) head->pkt_len += k;
        else head->pkt_len = head->data_len;
        p += k;
        n -= k;
        ctx.bytes_copied += k;
    }
    return true;
}

} // namespace

rte_mbuf *build_tcp_frame(const tcp::Segment &s, const net::MacAddr &src_mac, uint32_t max_frame,
                          TxFrameContext &ctx) {
    const size_t hlen = 20 + tcp::options_length(s.opt);
    const uint32_t payload = s.payload_len();
    const bool v6 = s.src_ip.is_v6;
    const uint32_t ip_len = v6 ? kIp6Len : kIpLen;
    const uint32_t frame = kEthLen + ip_len + static_cast<uint32_t>(hlen) + payload;
    // IPv4 total length, or IPv6 payload length (RFC 8200 3), is 16 bits.
    if (frame > max_frame || (v6 ? 0 : kIpLen) + hlen + payload > 65535) {
        ctx.oversize++;
        return nullptr;
    }
    rte_mbuf *m = rte_pktmbuf_alloc(ctx.header_pool);
    if (!m) {
        ctx.no_mbuf++;
        return nullptr;
    }
    const uint32_t head_len = kEthLen + ip_len + static_cast<uint32_t>(hlen);
    auto *d = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, static_cast<uint16_t>(head_len)));
    if (!d) {
        rte_pktmbuf_free(m);
        ctx.oversize++;
        return nullptr;
    }
    std::memset(d, 0, 6);
    std::memcpy(d + 6, src_mac.b, 6);
    uint8_t *ip = d + kEthLen;
    if (v6) {
        net::store_be16(d + 12, net::kEtherTypeIPv6);
        net::store_be32(ip, 0x60000000u); // version 6, traffic class 0, flow label 0
        net::store_be16(ip + 4, static_cast<uint16_t>(hlen + payload));
        ip[6] = net::kProtoTCP;
        ip[7] = 64; // hop limit
        std::memcpy(ip + 8, s.src_ip.bytes.data(), 16);
        std::memcpy(ip + 24, s.dst_ip.bytes.data(), 16);
        if (s.checksum_offload) m->ol_flags |= RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_CKSUM;
    } else {
        net::store_be16(d + 12, net::kEtherTypeIPv4);
        ip[0] = 0x45;
        ip[1] = 0;
        net::store_be16(ip + 2, static_cast<uint16_t>(kIpLen + hlen + payload));
        net::store_be16(ip + 4, ctx.ip_id++);
        net::store_be16(ip + 6, 0x4000); // DF
        ip[8] = 64;
        ip[9] = net::kProtoTCP;
        net::store_be16(ip + 10, 0);
        net::store_be32(ip + 12, s.src_ip.v4_host_order());
        net::store_be32(ip + 16, s.dst_ip.v4_host_order());
        if (ctx.ip_checksum_offload)
            m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
        else
            net::store_be16(ip + 10, net::checksum_finish(net::checksum_partial(ip, kIpLen)));
        if (s.checksum_offload) m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
    }
    // Header and options; the checksum (over the RFC 9293 3.1 or RFC 8200
    // 8.1 pseudo-header) covers the payload where it lies.
    if (tcp::serialize_header(s, {ip + ip_len, hlen}) != hlen) {
        rte_pktmbuf_free(m);
        ctx.oversize++;
        return nullptr;
    }
    m->l2_len = kEthLen;
    m->l3_len = ip_len;
    m->l4_len = static_cast<uint8_t>(hlen);
    rte_mbuf *tail = m;
    auto copy = [&](const uint8_t *p, uint32_t n) { return append_copy(m, tail, p, n, ctx); };
    bool ok = copy(s.payload.data(), static_cast<uint32_t>(s.payload.size())) &&
              copy(s.payload2.data(), static_cast<uint32_t>(s.payload2.size()));
    for (size_t i = 0; ok && i < s.npieces; i++) {
        const tcp::Piece &pc = s.pieces[i];
        if (pc.len == 0) continue;
        if (!is_chunk_ref(pc.ref) || !ctx.multi_seg || !ctx.attach_pool) {
            ok = copy(pc.data, pc.len);
            continue;
        }
        ChunkPool::Desc *cd = ChunkPool::desc_of(pc.ref);
        // One extbuf segment per IOVA-contiguous run of the piece (see
        // ChunkPool::iova_of): usually the whole piece.
        for (uint32_t done = 0; ok && done < pc.len;) {
            const uint8_t *p = pc.data + done;
            uint32_t run = 0;
            const rte_iova_t iova = ChunkPool::iova_of(*cd, p, run);
            const uint32_t k = std::min(pc.len - done, run);
            rte_mbuf *x = rte_pktmbuf_alloc(ctx.attach_pool);
            if (!x) {
                ok = false;
                break;
            }
            // The mbuf holds its own reference on the chunk (attach does not
            // take one); the free callback runs when the last one drops.
            rte_mbuf_ext_refcnt_update(&cd->shinfo, 1);
            rte_pktmbuf_attach_extbuf(x, const_cast<uint8_t *>(p), iova, static_cast<uint16_t>(k), &cd->shinfo);
            x->data_len = static_cast<uint16_t>(k);
            x->pkt_len = k;
            if (rte_pktmbuf_chain(m, x) != 0) {
                rte_pktmbuf_free(x);
                ok = false;
                break;
            }
            tail = x;
            ctx.bytes_referenced += k;
            done += k;
        }
    }
    if (!ok) {
        rte_pktmbuf_free(m);
        ctx.no_mbuf++;
        return nullptr;
    }
    ctx.frames++;
    return m;
}

} // namespace millipede::dataplane

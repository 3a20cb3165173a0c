// Test frames for the EAL suites: Ethernet + IPv4 + TCP/UDP/ICMP with an
// 8-byte payload (a flow id and an application sequence number), so a
// worker can tell which flow and which packet of it it was handed.
// Contract: test code, main thread; allocates from the pool given.
#pragma once

#include <cstdint>
#include <cstring>

#include <rte_mbuf.h>

#include "millipede/net/bytes.h"
#include "millipede/net/parse.h"

namespace millipede::test {

struct Tuple {
    uint32_t src, dst;
    uint16_t sport, dport;
    uint8_t proto;
    Tuple reversed() const { return {dst, src, dport, sport, proto}; }
};

inline rte_mbuf *build_packet(rte_mempool *pool, const Tuple &t, uint8_t tcp_flags = net::kTcpAck,
                              uint32_t tcp_seq = 1, uint32_t flow_id = 0, uint32_t app_seq = 0) {
    rte_mbuf *m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    const unsigned l4 = t.proto == net::kProtoTCP ? 20 : 8;
    const unsigned len = 14 + 20 + l4 + 8;
    auto *p = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, static_cast<uint16_t>(len)));
    std::memset(p, 0, len);
    net::store_be16(p + 12, net::kEtherTypeIPv4);
    uint8_t *ip = p + 14;
    ip[0] = 0x45;
    net::store_be16(ip + 2, static_cast<uint16_t>(20 + l4 + 8));
    ip[8] = 64;
    ip[9] = t.proto;
    net::store_be32(ip + 12, t.src);
    net::store_be32(ip + 16, t.dst);
    uint8_t *l4p = ip + 20;
    if (t.proto == net::kProtoICMP) {
        l4p[0] = 8;
    } else {
        net::store_be16(l4p, t.sport);
        net::store_be16(l4p + 2, t.dport);
    }
    if (t.proto == net::kProtoTCP) {
        net::store_be32(l4p + 4, tcp_seq);
        l4p[12] = 5 << 4;
        l4p[13] = tcp_flags;
    } else if (t.proto == net::kProtoUDP) {
        net::store_be16(l4p + 4, static_cast<uint16_t>(8 + 8));
    }
    net::store_be32(l4p + l4, flow_id);
    net::store_be32(l4p + l4 + 4, app_seq);
    return m;
}

// The payload word `from_end` bytes before the frame's end (8: flow id, 4: app seq).
inline uint32_t payload_u32(const rte_mbuf *m, unsigned from_end) {
    return net::load_be32(rte_pktmbuf_mtod(m, const uint8_t *) + rte_pktmbuf_data_len(m) - from_end);
}

} // namespace millipede::test

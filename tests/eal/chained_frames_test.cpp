// Frames longer than one mbuf through the classifier: DPDK's net_pcap (and a
// NIC with RX scatter) chains such a frame over several mbufs. Every frame
// here is built whole, then cut into segments of chosen sizes, so the
// headers can also straddle a segment boundary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "millipede/flow/classifier.h"
#include "millipede/net/bytes.h"

using namespace millipede;
using namespace millipede::flow;

namespace {

using Bytes = std::vector<uint8_t>;

rte_mempool *seg_pool() {
    // 2 KiB of data per mbuf, as net_pcap's and tap's pools have.
    static rte_mempool *mp =
        rte_pktmbuf_pool_create("chain_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    return mp;
}

// Ethernet + IPv4/IPv6 (IPv6 optionally with a 2 KiB destination-options
// header) + TCP or UDP, `payload` bytes of payload.
Bytes frame(bool v6, uint8_t proto, size_t payload, uint16_t sport, bool long_ext = false) {
    Bytes f(12, 0x02);
    f.resize(14);
    net::store_be16(f.data() + 12, v6 ? net::kEtherTypeIPv6 : net::kEtherTypeIPv4);
    const size_t ext = v6 && long_ext ? 2048 : 0;
    const size_t l4 = proto == net::kProtoTCP ? 20 : 8;
    const size_t l3 = v6 ? 40 : 20;
    size_t at = f.size();
    f.resize(at + l3 + ext + l4 + payload, 0);
    uint8_t *ip = f.data() + at;
    if (v6) {
        ip[0] = 0x60;
        net::store_be16(ip + 4, uint16_t(ext + l4 + payload));
        ip[6] = ext ? 60 : proto;
        ip[7] = 64;
        ip[23] = 1;
        ip[39] = 2;
        if (ext) {
            ip[40] = proto;
            ip[41] = 255; // (255 + 1) x 8 = 2048 bytes
        }
    } else {
        ip[0] = 0x45;
        net::store_be16(ip + 2, uint16_t(l3 + l4 + payload));
        ip[8] = 64;
        ip[9] = proto;
        net::store_be32(ip + 12, 0x0a000001);
        net::store_be32(ip + 16, 0x0a000002);
    }
    uint8_t *p = ip + l3 + ext;
    net::store_be16(p, sport);
    net::store_be16(p + 2, 443);
    if (proto == net::kProtoTCP) p[12] = 5 << 4, p[13] = net::kTcpAck;
    else net::store_be16(p + 4, uint16_t(8 + payload));
    for (size_t i = 0; i < payload; ++i) p[l4 + i] = uint8_t(i);
    return f;
}

// The frame as a chain: the first segment `first` bytes, the rest 2 KiB each.
rte_mbuf *chain(const Bytes &f, size_t first) {
    rte_mbuf *head = nullptr;
    size_t off = 0;
    while (off < f.size()) {
        size_t n = std::min(f.size() - off, head ? size_t(2048) : first);
        rte_mbuf *m = rte_pktmbuf_alloc(seg_pool());
        if (!m) break;
        std::memcpy(rte_pktmbuf_append(m, uint16_t(n)), f.data() + off, n);
        off += n;
        if (!head) head = m;
        else if (rte_pktmbuf_chain(head, m) != 0) {
            rte_pktmbuf_free(m);
            break;
        }
    }
    EXPECT_EQ(off, f.size()) << "the test pool ran dry";
    return head;
}

ClassifierConfig config(const char *name) {
    ClassifierConfig c;
    c.workers = 1;
    c.table.capacity = 1 << 10;
    c.table.name = name;
    c.check_order = true;
    return c;
}

} // namespace

// 9 KB (jumbo MTU) and 64 KB (GRO/TSO) frames, IPv4 and IPv6, TCP and UDP,
// with the headers in the first segment or cut across the first two: all
// classified into their own flows, none rejected, every mbuf of every
// chain handed to the worker whole and freed there.
TEST(ChainedFrames, ClassifiedWholeWhereverTheHeadersLie) {
    unsigned before = rte_mempool_avail_count(seg_pool());
    std::string err;
    auto c = Classifier::create(config("chained"), nullptr, err);
    ASSERT_TRUE(c) << err;
    struct Case {
        bool v6;
        uint8_t proto;
        size_t payload;
        size_t first;
        bool long_ext;
    };
    const Case cases[] = {
        {false, net::kProtoTCP, 9000 - 40, 2048, false},  {false, net::kProtoUDP, 9000 - 28, 2048, false},
        {true, net::kProtoTCP, 9000 - 60, 2048, false},   {true, net::kProtoUDP, 9000 - 48, 2048, false},
        {false, net::kProtoTCP, 65535 - 40, 2048, false}, {true, net::kProtoTCP, 65535 - 20, 2048, false},
        {true, net::kProtoUDP, 65535 - 8, 2048, false},   {false, net::kProtoTCP, 9000, 30, false},
        {true, net::kProtoTCP, 9000, 60, false},          {true, net::kProtoUDP, 9000, 2048, true},
        {true, net::kProtoTCP, 100, 2048, true},
    };
    std::vector<rte_mbuf *> pk;
    std::vector<uint32_t> lengths;
    uint16_t sport = 1000;
    for (const Case &k : cases) {
        Bytes f = frame(k.v6, k.proto, k.payload, sport++, k.long_ext);
        rte_mbuf *m = chain(f, k.first);
        ASSERT_NE(m, nullptr);
        ASSERT_EQ(rte_pktmbuf_pkt_len(m), f.size());
        if (f.size() > k.first) {
            ASSERT_GT(m->nb_segs, 1);
        }
        pk.push_back(m);
        lengths.push_back(uint32_t(f.size()));
    }
    c->process_burst(pk.data(), unsigned(pk.size()), 1);
    c->flush_staged();
    for (unsigned i = 1; i < net::kRejectCount; ++i)
        EXPECT_EQ(c->stats().rejects[i], 0u) << net::reject_name(static_cast<net::Reject>(i));
    EXPECT_EQ(c->table().stats().created[0] + c->table().stats().created[1], std::size(cases));
    WorkerPort w(*c, 0);
    std::vector<uint32_t> seen;
    while (w.poll([&](rte_mbuf *m, const FlowMeta &) {
        seen.push_back(rte_pktmbuf_pkt_len(m));
        rte_pktmbuf_free(m);
    })) {
    }
    EXPECT_EQ(seen, lengths) << "each frame reaches the worker whole, in order";
    EXPECT_EQ(w.counters.order_inversions + w.counters.split_flows + w.counters.unrecorded_moves, 0u);
    c.reset();
    EXPECT_EQ(rte_mempool_avail_count(seg_pool()), before) << "every segment of every chain is freed";
}

// A chained frame shorter than its IP header claims is still malformed,
// counted by reason, and the whole chain is freed.
TEST(ChainedFrames, ShortChainsAreRejectedByReasonAndFreed) {
    unsigned before = rte_mempool_avail_count(seg_pool());
    std::string err;
    auto c = Classifier::create(config("chainrej"), nullptr, err);
    ASSERT_TRUE(c) << err;
    Bytes v4 = frame(false, net::kProtoTCP, 9000, 1);
    Bytes v6 = frame(true, net::kProtoUDP, 9000, 2);
    v4.resize(v4.size() - 1);
    v6.resize(v6.size() - 100);
    Bytes udp = frame(false, net::kProtoUDP, 5000, 3);
    net::store_be16(udp.data() + 14 + 20 + 4, 6000); // UDP length past the datagram
    std::vector<rte_mbuf *> pk = {chain(v4, 2048), chain(v6, 2048), chain(udp, 2048)};
    c->process_burst(pk.data(), 3, 1);
    const auto &r = c->stats().rejects;
    EXPECT_EQ(r[static_cast<unsigned>(net::Reject::IPV4_BAD_TOTAL_LEN)], 1u);
    EXPECT_EQ(r[static_cast<unsigned>(net::Reject::IPV6_BAD_PAYLOAD_LEN)], 1u);
    EXPECT_EQ(r[static_cast<unsigned>(net::Reject::UDP_BAD_LENGTH)], 1u);
    c.reset();
    EXPECT_EQ(rte_mempool_avail_count(seg_pool()), before);
}

#include "millipede/flow/rss.h"

#include <rte_ethdev.h>
#include <rte_thash.h>

namespace millipede::flow {

namespace {
constexpr RssKey make_symmetric_key() {
    RssKey k{};
    for (unsigned i = 0; i < kRssKeyLen; i += 2) {
        k[i] = 0x6d;
        k[i + 1] = 0x5a;
    }
    return k;
}

uint32_t be32_at(const uint8_t *b) {
    return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | uint32_t(b[3]);
}
} // namespace

const RssKey kSymmetricRssKey = make_symmetric_key();

void symmetric_rss_conf(rte_eth_rss_conf &conf) {
    conf.rss_key = const_cast<uint8_t *>(kSymmetricRssKey.data());
    conf.rss_key_len = kRssKeyLen;
    conf.rss_hf = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

uint32_t toeplitz_hash(const net::PacketInfo &p, const RssKey &key) {
    // rte_softrss takes the tuple as host-order 32-bit words in the order
    // the NIC reads the header fields (RSS specification: source address,
    // destination address, source port, destination port).
    uint32_t words[10];
    unsigned n = 0;
    const unsigned addr_words = p.ip_version == 6 ? 4 : 1;
    for (unsigned i = 0; i < addr_words; ++i) words[n++] = be32_at(p.src.bytes + 4 * i);
    for (unsigned i = 0; i < addr_words; ++i) words[n++] = be32_at(p.dst.bytes + 4 * i);
    bool ports = !p.is_fragment && (p.l4_proto == net::kProtoTCP || p.l4_proto == net::kProtoUDP);
    if (ports) words[n++] = uint32_t(p.src_port) << 16 | p.dst_port;
    return rte_softrss(words, n, key.data());
}

} // namespace millipede::flow

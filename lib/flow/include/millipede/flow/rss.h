// Symmetric RSS: when one classifier lcore is not enough, the port's RSS
// spreads flows over several RX queues, each polled by its own classifier
// lcore with its own flow table (a shard). Both directions of a flow must
// reach the same shard, or its two halves would be two flows on two tables.
//
// The Toeplitz hash with a key made of one repeated 16-bit word (0x6d5a,
// Woo and Park, "Scalable TCP Session Monitoring with Symmetric Receive-side
// Scaling", 2012) is symmetric: with a 16-bit period every key window depends
// only on the bit position mod 16, so the hash depends only on the XOR of
// the input's 16-bit words, which swapping source and destination (addresses
// and ports) leaves unchanged. The same property means it takes at most
// 65,536 values: fine to pick one of a few queues through the redirection
// table, useless as a flow-table hash (docs/classifier.md), so the classifier
// keeps its own flow_hash for the table.
//
// Contract: pure functions and constants, any thread; no EAL needed.
#pragma once

#include <array>
#include <cstdint>

#include "millipede/net/parse.h"

struct rte_eth_rss_conf;

namespace millipede::flow {

inline constexpr unsigned kRssKeyLen = 40;
using RssKey = std::array<uint8_t, kRssKeyLen>;

// 0x6d5a repeated: the symmetric key.
extern const RssKey kSymmetricRssKey;

// The RSS configuration to give a port (rte_eth_conf.rx_adv_conf.rss_conf,
// with rxmode.mq_mode = RTE_ETH_MQ_RX_RSS): the symmetric key, hashing IPv4
// and IPv6 on addresses, TCP and UDP also on ports. `conf.rss_key` points
// into kSymmetricRssKey (static storage).
void symmetric_rss_conf(rte_eth_rss_conf &conf);

// The Toeplitz hash a NIC configured with `key` and the types above gives
// this packet: source then destination address, then source and destination
// port for TCP and UDP packets that are not IP fragments (NICs hash
// fragments, ICMP and other protocols on the addresses only).
uint32_t toeplitz_hash(const net::PacketInfo &p, const RssKey &key);
inline uint32_t symmetric_rss_hash(const net::PacketInfo &p) { return toeplitz_hash(p, kSymmetricRssKey); }

// The RX queue (shard) a NIC with the default redirection table picks for
// `rss_hash`: entry hash mod table size, the table filled round-robin over
// the queues (what ethdev PMDs set up when the application gives none).
// The classifier never calls this per packet: the NIC does the work.
inline unsigned rss_shard(uint32_t rss_hash, unsigned shards, unsigned reta_size = 128) {
    return (rss_hash & (reta_size - 1)) % shards;
}

} // namespace millipede::flow

// TCP segments in and out of mbufs without copying payload.
//
// RX: segment_from_mbuf() parses the TCP header (which must lie in the
// first segment) and describes the payload as pieces, one per mbuf segment
// it spans, each naming that segment (refs.h): the connection holds them
// instead of copying. The checksum is verified across the chain unless the
// NIC marked it good.
//
// TX: build_tcp_frame() writes Ethernet + IPv4 (or IPv6, when the segment's
// addresses are) + TCP headers into one mbuf
// and attaches referenced payload (a chunk's bytes) as extbuf segments
// chained behind it, one per piece: the chunk is referenced, not copied.
// Bytes without a ref (control records) are copied into the header mbuf.
// A port that cannot send chained mbufs gets one linear frame instead
// (counted as copied bytes).
//
// Contract: any lcore; a TxFrameContext belongs to one lcore (its counters
// and ip id are not shared). Nothing throws; allocation failures return
// nullptr and are counted.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "millipede/net/neighbour.h"
#include "millipede/tcp/segment.h"

namespace millipede::dataplane {

inline constexpr size_t kMaxRxPieces = 64; // mbuf segments of one received frame we take

enum class RxSegmentError : uint8_t { NONE, TRUNCATED, BAD_HEADER, BAD_CHECKSUM, TOO_FRAGMENTED };
const char *rx_segment_error_name(RxSegmentError e);

// The TCP segment at [l4_off, l4_off + l4_len) of the frame `m` (headers in
// the first segment). `pieces` must hold kMaxRxPieces.
RxSegmentError segment_from_mbuf(rte_mbuf *m, uint32_t l4_off, uint32_t l4_len, const tcp::IpAddr &src,
                                 const tcp::IpAddr &dst, bool verify_checksum, tcp::Segment &seg,
                                 tcp::Piece *pieces);

struct TxFrameContext {
    rte_mempool *header_pool = nullptr; // mbufs with data room for headers (and copied bytes)
    rte_mempool *attach_pool = nullptr; // mbufs without data room, for extbuf segments
    bool ip_checksum_offload = false;
    bool tcp_checksum_offload = false; // segments carry only the pseudo-header sum
    bool multi_seg = true;              // the port sends chained mbufs
    uint16_t ip_id = 0;
    // Counters (this lcore).
    uint64_t frames = 0;
    uint64_t bytes_referenced = 0; // payload attached, not copied
    uint64_t bytes_copied = 0;     // payload copied into mbufs (control records, linear fallback)
    uint64_t no_mbuf = 0;
    uint64_t oversize = 0;
};

// An Ethernet frame (destination MAC left zero) carrying `s` from `src_mac`.
// `max_frame`: the port's largest frame (MTU + 14); longer segments are
// refused (counted). nullptr on failure.
rte_mbuf *build_tcp_frame(const tcp::Segment &s, const net::MacAddr &src_mac, uint32_t max_frame,
                          TxFrameContext &ctx);

} // namespace millipede::dataplane

// TCP segments on the wire: parse bytes (header + options + payload, checksum
// verified against the IPv4/IPv6 pseudo-header) and serialize outgoing
// segments into a caller buffer (RFC 9293 section 3.1, options of RFC 9293
// 3.2, RFC 7323 (window scale, timestamps) and RFC 2018 (SACK)).
//
// Contract: pure functions, any thread, no allocation. parse_segment() never
// reads outside the span it is given, whatever the bytes; a parsed Segment's
// payload span points into the caller's bytes. An outgoing Segment's payload
// spans point into a connection's send ring and are valid only during the
// sink call that hands it out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "millipede/tcp/buffers.h"

namespace millipede::tcp {

// Control bits (RFC 9293 3.1).
namespace flag {
inline constexpr uint8_t FIN = 0x01;
inline constexpr uint8_t SYN = 0x02;
inline constexpr uint8_t RST = 0x04;
inline constexpr uint8_t PSH = 0x08;
inline constexpr uint8_t ACK = 0x10;
inline constexpr uint8_t URG = 0x20;
inline constexpr uint8_t ECE = 0x40;
inline constexpr uint8_t CWR = 0x80;
} // namespace flag

// An IPv4 or IPv6 address, network byte order. IPv4 uses bytes[0..3].
struct IpAddr {
    std::array<uint8_t, 16> bytes{};
    bool is_v6 = false;

    static IpAddr v4(uint32_t host_order);
    static IpAddr v6(const uint8_t addr[16]);
    uint32_t v4_host_order() const;
    friend bool operator==(const IpAddr &, const IpAddr &) = default;
};

struct SackBlock {
    uint32_t left = 0;  // first sequence number of the block
    uint32_t right = 0; // one past the last
};

inline constexpr size_t kMaxSackBlocksOnWire = 4; // 40 option bytes / 8 (RFC 2018 3)
inline constexpr uint16_t kChecksumTrustExId = 0x4D50; // "MP"; RFC 6994 4 (not IANA-registered)

struct Options {
    bool has_mss = false;
    uint16_t mss = 0;
    bool has_wscale = false;
    uint8_t wscale = 0; // as received; clamped to 14 when used (RFC 7323 2.3)
    bool sack_permitted = false;
    bool has_ts = false;
    uint32_t ts_val = 0;
    uint32_t ts_ecr = 0;
    uint8_t sack_count = 0;
    std::array<SackBlock, kMaxSackBlocksOnWire> sack{};
    // SYN and SYN-ACK only: "this end does not verify TCP checksums on this
    // link" (a shared-memory link, as Linux's loopback), an experimental
    // option (RFC 6994: kind 254, length 4, ExID kChecksumTrustExId).
    bool checksum_trust = false;
    // An option with an impossible length was seen; parsing stopped there
    // (RFC 9293 3.1 "MUST be prepared to handle an illegal option length").
    bool malformed = false;
};

struct Segment {
    IpAddr src_ip, dst_ip; // used for the pseudo-header
    uint16_t src_port = 0, dst_port = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    uint16_t window = 0; // raw header field (unscaled)
    uint16_t urgent = 0; // ignored by TCP-lite (no urgent data)
    Options opt;
    // Payload in up to two contiguous spans (parsed segments use only
    // `payload`), followed by `npieces` pieces that may name their memory's
    // owner (zero-copy: a connection's outgoing segments use only pieces; an
    // application hands received mbuf payload in as pieces with their refs,
    // which the connection retains instead of copying). All of it is valid
    // only during the call that hands the segment over.
    std::span<const uint8_t> payload;
    std::span<const uint8_t> payload2;
    const Piece *pieces = nullptr;
    uint8_t npieces = 0;
    uint32_t pieces_len = 0; // sum of pieces[i].len
    // Outgoing only: leave the checksum to NIC offload; serialize() stores the
    // pseudo-header sum (not complemented), as DPDK's TX offload expects.
    bool checksum_offload = false;

    bool has(uint8_t f) const { return (flags & f) != 0; }
    uint32_t payload_len() const { return static_cast<uint32_t>(payload.size() + payload2.size()) + pieces_len; }
    // Sequence space occupied: payload plus one each for SYN and FIN.
    uint32_t seq_len() const { return payload_len() + (has(flag::SYN) ? 1 : 0) + (has(flag::FIN) ? 1 : 0); }
};

enum class ParseResult : uint8_t {
    Ok,
    Truncated,     // fewer than 20 bytes
    BadDataOffset, // data offset < 5 or past the end
    BadChecksum,
};

// Parses one TCP segment (the IP payload: exactly header + options + payload,
// IP padding already removed). The pseudo-header uses src/dst and the span's
// length (RFC 9293 3.1, RFC 8200 8.1). With verify_checksum = false (receive
// offload already checked it) the checksum is not examined.
ParseResult parse_segment(std::span<const uint8_t> bytes, const IpAddr &src, const IpAddr &dst, Segment &out,
                          bool verify_checksum = true);

// Option bytes serialize() will emit for `opt` (padded to 4, at most 40).
size_t options_length(const Options &opt);

// Writes header + options + payload into `out`; returns the length written or
// 0 if `out` is too small. Fills the checksum unless seg.checksum_offload.
size_t serialize(const Segment &seg, std::span<uint8_t> out);

// Writes the header and options only (the payload stays where it is, for a
// gather transmit) and fills the checksum over header and payload unless
// seg.checksum_offload. Returns the header length or 0 if `out` is too small.
size_t serialize_header(const Segment &seg, std::span<uint8_t> out);

// Length serialize() needs.
inline size_t serialized_length(const Segment &seg) { return 20 + options_length(seg.opt) + seg.payload_len(); }

} // namespace millipede::tcp

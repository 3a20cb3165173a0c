// Helpers shared by Connection and Listener. Not part of the public contract.
#pragma once

#include <algorithm>
#include <cstdint>

#include "millipede/tcp/connection.h"

namespace millipede::tcp::detail {

// RFC 7323 2.3: the smallest shift that lets the whole receive buffer be
// advertised, at most 14.
inline uint8_t wscale_for_buffer(uint32_t buf) {
    uint8_t ws = 0;
    while (ws < 14 && (buf >> ws) > 65535) ++ws;
    return ws;
}

// The window field of a SYN or SYN-ACK is never scaled (RFC 7323 2.2).
inline uint16_t syn_window(const Config &cfg) { return static_cast<uint16_t>(std::min<uint32_t>(cfg.recv_buffer, 65535)); }

// Options for our SYN (peer == nullptr) or SYN-ACK (answering `peer`): a
// SYN-ACK carries WS / SACK-permitted / TS only when the SYN did (RFC 7323
// 2.2 and 3.2, RFC 2018 2).
inline Options syn_options(const Config &cfg, const Options *peer, uint32_t ts_val) {
    Options o;
    o.has_mss = true;
    o.mss = cfg.mss;
    if (cfg.window_scale && (!peer || peer->has_wscale)) {
        o.has_wscale = true;
        o.wscale = wscale_for_buffer(cfg.recv_buffer);
    }
    if (cfg.sack && (!peer || peer->sack_permitted)) o.sack_permitted = true;
    // Answered only where the SYN carried it, like SACK-permitted.
    if (cfg.checksum_trust_offer && (!peer || peer->checksum_trust)) o.checksum_trust = true;
    if (cfg.timestamps && (!peer || peer->has_ts)) {
        o.has_ts = true;
        o.ts_val = ts_val;
        o.ts_ecr = peer ? peer->ts_val : 0;
    }
    return o;
}

inline uint32_t ts_clock(uint64_t now_us, uint32_t offset) { return static_cast<uint32_t>(now_us / 1000) + offset; }

} // namespace millipede::tcp::detail

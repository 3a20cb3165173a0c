// Internals shared by TxSession and RxSession.
#pragma once

#include <cstdint>

#include "millipede/session/config.h"
#include "millipede/tcp/connection.h"

namespace millipede::session::detail {

// Per-connection state of the Watchdog (config.h).
struct LegWatch {
    bool suspect = false;
    uint64_t dead_at = UINT64_MAX;

    void reset() {
        suspect = false;
        dead_at = UINT64_MAX;
    }
    uint64_t deadline() const { return suspect ? dead_at : UINT64_MAX; }
    // True when the connection must be given up now.
    bool dead(const tcp::Connection &c, const Watchdog &w, uint64_t now);
};

// RFC 9293 3.10.7.1 (CLOSED): the RST answering a segment no connection owns.
void reply_rst(const tcp::Segment &in, bool checksum_offload, const tcp::SegmentSink &sink);

// "10.0.0.1:40000 -> 10.0.0.2:8834" into buf (no allocation).
void format_endpoints(const tcp::Endpoints &ep, char *buf, size_t n);

bool synchronized(tcp::State s);

} // namespace millipede::session::detail

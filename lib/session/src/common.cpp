#include "common.h"

#include <algorithm>
#include <cstdio>

namespace millipede::session {

const char *state_name(State s) {
    switch (s) {
    case State::RUNNING: return "running";
    case State::DONE: return "done";
    case State::FAILED: return "failed";
    }
    return "?";
}

namespace detail {

bool synchronized(tcp::State s) {
    switch (s) {
    case tcp::State::Established:
    case tcp::State::FinWait1:
    case tcp::State::FinWait2:
    case tcp::State::CloseWait:
    case tcp::State::Closing:
    case tcp::State::LastAck:
        return true;
    default:
        return false;
    }
}

bool LegWatch::dead(const tcp::Connection &c, const Watchdog &w, uint64_t now) {
    if (!synchronized(c.state())) {
        reset();
        return false;
    }
    if (w.dead_after_probes && c.unanswered_probes() >= w.dead_after_probes) return true;
    const uint32_t n = c.consecutive_rtos();
    if (w.suspect_after_rtos == 0 || n < w.suspect_after_rtos) {
        reset(); // an acknowledgement of new data arrived: alive
        return false;
    }
    if (!suspect) {
        suspect = true;
        // The RTO before the expirations backed it off (RFC 6298 5.5).
        const uint64_t base = n < 63 ? c.rto_us() >> n : 0;
        // The retransmission cannot be answered sooner than a round trip,
        // and it may queue behind what the link still holds: on a long path
        // (RTT near the RTO) a share of the RTO alone would declare every leg
        // dead at its first RTO. So the grace is at least two SRTTs.
        dead_at = now + std::max(base * w.grace_permille / 1000, 2 * c.srtt_us());
    }
    return now >= dead_at;
}

void reply_rst(const tcp::Segment &in, bool checksum_offload, const tcp::SegmentSink &sink) {
    if (in.has(tcp::flag::RST)) return; // never answer a RST
    tcp::Segment r;
    r.src_ip = in.dst_ip;
    r.dst_ip = in.src_ip;
    r.src_port = in.dst_port;
    r.dst_port = in.src_port;
    r.checksum_offload = checksum_offload;
    if (in.has(tcp::flag::ACK)) {
        r.seq = in.ack;
        r.flags = tcp::flag::RST;
    } else {
        r.seq = 0;
        r.ack = in.seq + in.seq_len();
        r.flags = tcp::flag::RST | tcp::flag::ACK;
    }
    sink(r);
}

void format_endpoints(const tcp::Endpoints &ep, char *buf, size_t n) {
    auto ip = [](const tcp::IpAddr &a, char *out, size_t m) {
        if (!a.is_v6) {
            snprintf(out, m, "%u.%u.%u.%u", a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]);
            return;
        }
        size_t k = 0;
        out[0] = 0;
        for (int i = 0; i < 16 && k + 6 < m; i += 2)
            k += static_cast<size_t>(snprintf(out + k, m - k, "%s%x", i ? ":" : "",
                                              (a.bytes[i] << 8) | a.bytes[i + 1]));
    };
    char l[48], r[48];
    ip(ep.local_ip, l, sizeof l);
    ip(ep.remote_ip, r, sizeof r);
    snprintf(buf, n, "%s:%u -> %s:%u", l, ep.local_port, r, ep.remote_port);
}

} // namespace detail
} // namespace millipede::session

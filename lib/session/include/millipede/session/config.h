// Configuration shared by TxSession and RxSession (lib/session).
//
// Contract: plain data, validated by the session constructors (which throw
// std::invalid_argument with a message). Nothing here is used after set-up
// except by the session that copied it.
#pragma once

#include <cstdint>
#include <vector>

#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"
#include "millipede/tcp/connection.h"

namespace millipede::session {

// Session outcome, as the pipe side sees it.
enum class State : uint8_t {
    RUNNING,
    DONE,   // tx: the receiver verified length and CRC64 (native); rx: verified and all output consumed
    FAILED, // message() says why
};
const char *state_name(State s);

// Lower bound of the legs' retransmission timeout (RFC 6298 2.4 computes the
// RTO; this only clamps it). RFC 6298 asks for 1 s and Linux uses 200 ms,
// which on a LAN leg (RTT well under 1 ms to a few ms) idles the leg for
// 100+ RTTs per timeout while its chunks hold up the stripe window. 100 ms
// halves that and the dead-leg fail-over (1.5 RTOs), and stays well above
// the 40 ms delayed-ACK timers (ours, and Linux's TCP_DELACK_MIN) so a peer
// delaying the ACK of a lone segment causes no spurious timeout. Lower
// values speed up RTOs further but then the chunks of a dead leg wait for
// send-buffer room on the other legs for longer than half an RTO
// (docs/benchmarks.md). Set TxConfig::tcp.rto_min_us / RxConfig::tcp.
// rto_min_us for other paths (200'000 for Linux's value, more for WAN legs).
inline constexpr uint64_t kLegRtoMinUs = 100'000;

// Whether the legs' TCP is paced (tcp::Config::pacing; TxSession and the
// data plane's workers turn it on, never off): with `parity K` and a
// queue-ahead bound (stripe::QueueAhead AUTO or FIXED) a leg gets its next
// chunk only as TCP acknowledges the last, so the bound's growth reaches
// TCP in steps while its window, grown meanwhile, lets each step leave as
// one line-rate burst. On a long fat path such a burst overflowed the
// bottleneck queue in slow start and NewReno never recovered the window
// (25 ms one way, 4 MiB buffers: 133 Mbit/s against 185 without a bound;
// paced, 203: docs/benchmarks.md, "Parity across legs"). Without a bound
// TCP sends as before (unpaced it was slightly faster there).
inline bool legs_paced(uint32_t parity_k, stripe::QueueAhead queue_ahead) {
    return parity_k > 0 && queue_ahead != stripe::QueueAhead::OFF;
}

// Fast dead-leg detection. TCP's own retry bound (RFC 9293 3.8.3 R2, with
// RFC 6298 5.5 back-off) takes minutes; a striping session has other legs
// and fails a leg over long before that: its unacknowledged chunks are
// re-sent elsewhere (the receiver drops duplicates) and the leg reconnects
// with the stripe sender's back-off.
struct Watchdog {
    // Consecutive RTO expirations without an acknowledgement of new data
    // that make a leg suspect (0: never).
    uint32_t suspect_after_rtos = 1;
    // A suspect leg's retransmission then has this share (per mille) of the
    // RTO before the first expiration to be acknowledged; otherwise the leg
    // is dead. The default (500) fails a leg over ~1.5 RTOs after it stopped
    // answering; because RTOs back off, waiting for a second expiration
    // instead would take 3 RTOs. The grace is never shorter than two of the
    // connection's SRTTs: on a long path, where the RTO is little more than
    // the round trip, half an RTO would not leave time for the
    // retransmission's acknowledgement.
    uint32_t grace_permille = 500;
    // Unanswered zero-window probes (the receiver closed its window, then
    // went silent) after which the leg is dead (0: never).
    uint32_t dead_after_probes = 4;
    // A connection still in SYN-SENT after this long counts as a failed
    // connect (the stripe sender's back-off schedules the next attempt).
    uint64_t connect_timeout_us = 3'000'000;
};

// One TX leg: a TCP connection from local to remote. Several legs may share
// a destination (viamillipede's `threads N`) or a local address.
struct LegSpec {
    tcp::IpAddr local_ip;
    uint16_t local_port = 0; // 0 (recommended): a fresh ephemeral port for every (re)connect
    tcp::IpAddr remote_ip;
    uint16_t remote_port = 0;
};

struct TxConfig {
    std::vector<LegSpec> legs;    // the user's preference order; 1..stripe::kMaxLegs
    tcp::Config tcp = default_tx_tcp(); // every leg's connection
    stripe::SenderConfig stripe;  // .legs is set from legs.size(); .session_id 0: drawn from the Random
    Watchdog watchdog;
    uint16_t ephemeral_first = 32768; // ephemeral port range (inclusive)
    uint16_t ephemeral_last = 60999;
    // After DONE or FAILED: how long connections may take to close with FIN
    // before they are aborted and finished() turns true.
    uint64_t linger_us = 2'000'000;
    // After DONE with the end acknowledged, once one leg closed in order
    // (the receiver answers every FIN at once then): a leg still open this
    // much later is on a dead link (an idle leg there was never declared
    // dead) and is aborted.
    uint64_t straggler_us = 500'000;

    // Keep-alive on (RFC 1122 4.2.3.6), short: a leg whose every byte TCP
    // delivered may still wait for the receiver's chunk acknowledgements;
    // if the receiver lost that connection (and its RST was lost too) the
    // leg would wait forever without sending. The idle probe meets the
    // receiver's RST (or silence) and the leg's chunks are re-queued.
    static tcp::Config default_tx_tcp() {
        tcp::Config c;
        c.rto_min_us = kLegRtoMinUs;
        c.keepalive = true;
        c.keepalive_idle_us = 2'000'000;
        c.keepalive_interval_us = 1'000'000;
        c.keepalive_probes = 5;
        return c;
    }
};

struct RxConfig {
    std::vector<tcp::IpAddr> local_ips; // one listener per address (one per NIC port), >= 1
    uint16_t port = 0;                  // listening port
    tcp::Config tcp = default_rx_tcp(); // accepted connections
    stripe::ReceiverConfig stripe;      // .max_legs bounds simultaneous connections
    size_t max_half_open = 64;          // per listener
    // Off by default: the sender holds the data and decides when a leg is
    // dead. A receiver that aborted a leg whose RST is then lost would leave
    // the sender waiting on a half-open connection (keep-alive resolves it,
    // but only after seconds).
    Watchdog watchdog = Watchdog{0, 500, 0, 3'000'000};
    // After DONE: how long to keep answering a sender that has not closed
    // its legs yet (its end acknowledgement may have been lost); after
    // FAILED: how long legs may take to close.
    uint64_t linger_us = 30'000'000;
    uint64_t refuse_linger_us = 2'000'000; // a refused/closed leg gets this long to flush its reply
    // After DONE, once the sender closed one leg (it holds its end
    // acknowledgement then, or, viamillipede, it sent its end): it closes
    // every leg at once, so a leg still without its FIN this much later is
    // on a dead link and will never close; it is dropped instead of holding
    // the exit for the whole linger.
    uint64_t straggler_us = 500'000;

    // Keep-alive on (RFC 1122 4.2.3.6): a leg whose sender gave it up while
    // the link was down stays ESTABLISHED here and may hold a stripe leg
    // slot; the probe reaches the sender, which answers with RST (or nothing
    // answers), and the connection is reaped.
    static tcp::Config default_rx_tcp() {
        tcp::Config c;
        c.rto_min_us = kLegRtoMinUs;
        c.keepalive = true;
        c.keepalive_idle_us = 10'000'000;
        c.keepalive_interval_us = 1'000'000;
        c.keepalive_probes = 5;
        return c;
    }
};

} // namespace millipede::session

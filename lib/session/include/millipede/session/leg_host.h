// LegHost: the TCP-lite connections of one worker (a "host" of legs). It
// owns every connection it opens or accepts for the connection's whole
// life (share-nothing): segments for them come to it, it transmits through
// its own sink, runs their timers and its Watchdog, and talks to the session
// core only through messages (messages.h).
//
// Contract
// - Single-threaded: every method is called from the host's lcore. Not
//   thread-safe. Pure: no EAL; clock, transmit (SegmentSink), randomness and
//   the report queue are injected.
// - Set-up (constructor) validates (std::invalid_argument) and allocates the
//   slot table; a connection (its queues) is allocated when it is opened or
//   accepted, never per segment. The data path never throws.
// - on_segment(): segments whose 5-tuple no connection of this host owns go
//   to its listeners (rx) or are answered with RST (RFC 9293 3.10.7.1; never
//   with a viamillipede peer, see HostConfig::compat). Returns false when the
//   segment belonged to no connection and no listener here (the caller
//   counts misdelivery).
// - on_command() executes a core's command; poll(now) runs due timers and
//   sends the reports whose state changed (INPUT before PEER_FIN/ENDED of the
//   same connection). Call poll() after a batch of segments or commands and
//   whenever now >= next_deadline(). A report the queue refuses is kept (as
//   state) and sent by a later poll().
// - Flow hooks (optional): on_open() runs before a connection's first
//   segment leaves (its 5-tuple enters the application's flow table then),
//   on_close() when the connection is gone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "millipede/session/config.h"
#include "millipede/session/messages.h"
#include "millipede/tcp/connection.h"
#include "millipede/tcp/listener.h"

namespace millipede::session {

class FlowHooks {
  public:
    virtual ~FlowHooks() = default;
    virtual void on_open(const tcp::Endpoints &ep) = 0;
    virtual void on_close(const tcp::Endpoints &ep) = 0;
};

struct HostConfig {
    uint32_t host_id = 0;           // this host's index (its handles carry it)
    tcp::Config tcp;                // opened and accepted connections
    Watchdog watchdog;              // fast dead-connection detection (see config.h)
    // Accepted connections' watchdog when it differs (full duplex: the
    // opened legs watched as a sender's, the accepted as a receiver's);
    // unset: `watchdog` for every connection.
    std::optional<Watchdog> accepted_watchdog;
    uint32_t max_connections = 256; // slots (legs, accepted and retired connections)
    // A viamillipede peer: an unknown segment gets no RST (it may come from
    // a receiver still reading a connection we gave up), and a connection
    // the Watchdog gives up is closed with FIN and kept until closed.
    bool compat = false;
    // rx: one listener per address on `listen_port` (0: none).
    std::vector<tcp::IpAddr> listen_ips;
    uint16_t listen_port = 0;
    // `terminate PORT --terminate-on ports`: listeners on the same addresses
    // for the tunnel's connections (0: none). They are accepted like legs
    // (ACCEPTED carries the endpoints, so the core tells them apart by
    // port) but the Watchdog never judges them: a tunnelled connection's
    // peer is a user's program, whose silence is not a dead link.
    uint16_t tunnel_port = 0;
    size_t max_half_open = 64;
    // CREDIT when window_end moved by this much (or all written is acked).
    uint32_t credit_step = 32 * 1024;
    FlowHooks *hooks = nullptr;
    // Per local address (its port's frames): the MSS to offer and the cap
    // on what we send (0: the MSS); other addresses use tcp.mss.
    // And whether its link is shared memory (tcp::Config::checksum_trust_*).
    struct PortMss {
        tcp::IpAddr local;
        uint16_t mss = 1460;
        uint16_t send_cap = 0;
        bool checksum_trust_offer = false;
        bool checksum_trust_use = false;
    };
    std::vector<PortMss> mss_by_local_ip;
    tcp::Config tcp_for(const tcp::IpAddr &local) const {
        tcp::Config c = tcp;
        for (const auto &m : mss_by_local_ip)
            if (m.local == local) {
                c.mss = m.mss;
                c.send_mss_cap = m.send_cap;
                c.checksum_trust_offer = m.checksum_trust_offer;
                c.checksum_trust_use = m.checksum_trust_use;
            }
        return c;
    }
};

struct HostStats {
    uint64_t segments_in = 0;
    uint64_t bad_segments = 0;     // failed to parse (checksum, truncated)
    uint64_t unknown_segments = 0; // no connection or listener here
    uint64_t connects = 0;
    uint64_t accepted = 0;
    uint64_t refused_no_slot = 0;  // accepted with no free slot: reset
    uint64_t watchdog_kills = 0;
    uint64_t retired = 0;          // compat: given up with FIN instead of RST
    uint64_t reports = 0;
    uint64_t reports_deferred = 0; // the report queue was full; sent later
    uint64_t commands = 0;
    uint64_t stale_commands = 0;   // for a connection already gone
};

class LegHost {
  public:
    LegHost(const HostConfig &cfg, tcp::SegmentSink sink, tcp::Random rng, ReportOut &out);
    ~LegHost();
    LegHost(const LegHost &) = delete;
    LegHost &operator=(const LegHost &) = delete;

    bool on_segment(const tcp::Segment &seg, uint64_t now_us);
    // Parses (verifying the checksum) and calls on_segment(); false when the
    // segment was dropped as malformed.
    bool on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst, uint64_t now_us);
    void on_command(const LegCommand &c, uint64_t now_us);
    void poll(uint64_t now_us);
    uint64_t next_deadline() const;

    // True when a connection of this host has these endpoints (ours = local).
    bool owns(const tcp::Endpoints &ep) const;
    const tcp::Connection *connection(ConnHandle h) const;
    size_t connections() const { return by_handle_.size(); }
    const HostStats &stats() const { return stats_; }
    // The listeners' figures summed (rx): SYNs, cookies, half-open expiries.
    tcp::ListenerStats listener_stats() const;
    const HostConfig &config() const { return cfg_; }
    // Every connection (for stats tables): fn(handle, leg, connection).
    void for_each(const std::function<void(ConnHandle, uint16_t, const tcp::Connection &)> &fn) const;

  private:
    struct Slot;
    struct TupleKey {
        tcp::IpAddr local, remote;
        uint16_t lport, rport;
        bool operator==(const TupleKey &) const = default;
    };
    struct TupleHash {
        size_t operator()(const TupleKey &k) const;
    };
    static TupleKey key_of(const tcp::Endpoints &ep) { return {ep.local_ip, ep.remote_ip, ep.local_port, ep.remote_port}; }

    int32_t alloc_slot();
    void free_slot(uint32_t i);
    void adopt(std::unique_ptr<tcp::Connection> c, uint64_t now, bool watched);
    void service(uint32_t i, uint64_t now);
    bool report(const LegReport &r);
    void mark(uint32_t i);
    static bool watched(const Slot &s);

    HostConfig cfg_;
    tcp::SegmentSink sink_;
    tcp::Random rng_;
    ReportOut &out_;
    std::vector<Slot> slots_;
    std::vector<uint32_t> free_;
    std::vector<uint32_t> live_; // slots with a connection
    std::unordered_map<TupleKey, uint32_t, TupleHash> by_tuple_;
    std::unordered_map<ConnHandle, uint32_t> by_handle_;
    std::vector<std::unique_ptr<tcp::Listener>> listeners_; // listen_port's, then tunnel_port's (per listen_ips)
    std::vector<uint32_t> touched_; // slots with news for poll()
    std::vector<uint32_t> work_;    // poll()'s copy of touched_ (no allocation)
    uint32_t next_accept_id_ = 1;
    HostStats stats_;
};

} // namespace millipede::session

// TunnelEnds: `terminate PORT --terminate-on ports`. The tunnel's
// connections are accepted by the workers' TCP-lite listeners on the DPDK
// ports' own addresses (session::HostConfig::tunnel_port) instead of by the
// host's kernel, and each is handed to the tunnel bridge (lib/tunnel
// bridge.h, TunnelBridge::adopt) as one end of an AF_UNIX socketpair. This
// class pumps the other end: INPUT spans out to the socket, the socket's
// bytes into the connection, FIN and reset both ways.
//
// Contract
// - Session lcore only (the lcore that owns the stripe cores): every method,
//   not thread-safe. It talks to the workers only through the session's
//   CommandOut (messages.h), as the stripe cores do, and to the bridge only
//   through the sockets.
// - System calls: socketpair() per accepted connection, non-blocking
//   send()/read()/poll() on the plane's ends (never blocking), at most one
//   poll() per kPollIntervalUs while connections exist; none without them.
// - Bounded: per connection at most kMaxSpansInFlight received spans wait
//   for the socket (the host then stops reporting and TCP's window closes),
//   and at most kStageBytes read from the socket wait for TCP's
//   acknowledgement (the staging ring the WRITE_REF commands point into).
// - Semantics: the peer's FIN is shutdown(SHUT_WR) on the socket once every
//   byte before it is written; EOF from the socket is SHUTDOWN (our FIN). A
//   connection that ENDED (reset, timed out) closes its socket (the bridge
//   sends RST); the bridge closing its end before we shut ours down is a
//   reset (ABORT). After both FINs, a reset of either side ends as a close.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "millipede/session/messages.h"

namespace millipede::dataplane {

struct TunnelEndsStats {
    uint64_t accepted = 0;    // handed to the bridge
    uint64_t refused = 0;     // socketpair failed: reset at once
    uint64_t closed = 0;      // ended after FIN both ways
    uint64_t resets = 0;      // ended by a reset from either side
    uint64_t bytes_in = 0;    // from the TCP connections to the bridge
    uint64_t bytes_out = 0;   // from the bridge to the TCP connections
    uint64_t commands_deferred = 0;
};

class TunnelEnds {
  public:
    static constexpr uint64_t kPollIntervalUs = 20;
    static constexpr uint32_t kStageBytes = 256u << 10;
    // How long an ended connection's staging ring outlives it (a WRITE_REF
    // still in a command ring may point into it; workers drain their rings
    // within microseconds).
    static constexpr uint64_t kGraveyardUs = 1'000'000;

    // port: the tunnel's TCP port on the ports' addresses; initial_window:
    // the workers' tcp.send_buffer (an accepted connection's first credit).
    // adopt(ctx, fd) gives the bridge its end (it owns it from then on).
    TunnelEnds(uint16_t port, uint64_t initial_window, session::CommandOut &out, void (*adopt)(void *, int),
               void *adopt_ctx, unsigned verbose);
    ~TunnelEnds(); // closes every socket (the bridge resets what is left)
    TunnelEnds(const TunnelEnds &) = delete;
    TunnelEnds &operator=(const TunnelEnds &) = delete;

    // True for the reports of the tunnel's connections: ACCEPTED on `port`,
    // and everything after it for that handle.
    bool takes(const session::LegReport &r) const;
    void on_report(const session::LegReport &r, uint64_t now_us);
    // Moves bytes between the sockets and the connections; returns the work done.
    unsigned poll(uint64_t now_us);
    size_t connections() const { return ends_.size(); }
    const TunnelEndsStats &stats() const { return stats_; }

    struct End;

  private:
    End *find(session::ConnHandle h);
    void command(const End &e, const session::LegCommand &c);
    void command(const End &e, session::CommandType t); // one without arguments
    bool flush_backlog();
    unsigned to_socket(End &e);
    unsigned from_socket(End &e);
    void finish_if_done(End &e);
    void abort(End &e);
    void retire(End &e, session::CommandType last, const char *why);
    void erase(session::ConnHandle h);

    uint16_t port_;
    uint64_t initial_window_;
    session::CommandOut &out_;
    void (*adopt_)(void *, int);
    void *adopt_ctx_;
    unsigned verbose_;
    std::vector<std::unique_ptr<End>> ends_;
    std::unordered_map<session::ConnHandle, End *> by_handle_;
    struct Pending {
        uint32_t host;
        session::LegCommand c;
    };
    std::vector<Pending> backlog_; // commands a full ring refused, in order
    size_t backlog_head_ = 0;
    uint64_t next_poll_us_ = 0;
    uint64_t now_ = 0;
    std::vector<std::pair<uint64_t, std::unique_ptr<uint8_t[]>>> graveyard_; // (free after, ring)
    TunnelEndsStats stats_;
};

} // namespace millipede::dataplane

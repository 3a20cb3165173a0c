// TunnelEnds: the tunnel's connections accepted on the ports; see tunnel_ends.h.
#include "tunnel_ends.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace millipede::dataplane {

using session::CommandType;
using session::ConnHandle;
using session::LegCommand;
using session::LegReport;
using session::ReportType;

struct TunnelEnds::End {
    ConnHandle handle = 0;
    uint32_t host = 0;
    int fd = -1;
    // connection -> socket: INPUT spans not yet written whole
    struct Span {
        const uint8_t *p;
        uint32_t n, done;
    };
    Span spans[session::kMaxSpansInFlight];
    uint32_t span_head = 0, span_count = 0;
    bool peer_fin = false; // the connection's peer sent FIN (after every INPUT)
    bool shut_wr = false;  // ... and the socket has been shut down for writing
    // socket -> connection: bytes at stream offsets [acked, written) live in
    // stage[offset % kStageBytes] until TCP acknowledges them (a WRITE_REF
    // with ref 0 is copied by the worker when it runs, which is before any
    // acknowledgement of its bytes can be reported).
    std::unique_ptr<uint8_t[]> stage;
    uint64_t written = 0, acked = 0, window_end = 0;
    // Bytes the socket may give the connection now: TCP's window and the
    // staging ring's room, whichever is less.
    uint64_t intake_room() const {
        const uint64_t in_stage = written - std::min(acked, written);
        return std::min<uint64_t>(kStageBytes - in_stage, window_end > written ? window_end - written : 0);
    }
    bool socket_eof = false; // the bridge shut its end: SHUTDOWN sent
    bool closed = false;     // CLOSED: FIN both ways, acknowledged
    bool hangup = false;     // the bridge closed its end (after ours was shut)
};

TunnelEnds::TunnelEnds(uint16_t port, uint64_t initial_window, session::CommandOut &out, void (*adopt)(void *, int),
                       void *adopt_ctx, unsigned verbose)
    : port_(port), initial_window_(initial_window), out_(out), adopt_(adopt), adopt_ctx_(adopt_ctx),
      verbose_(verbose) {
    backlog_.reserve(1024);
}

TunnelEnds::~TunnelEnds() {
    for (auto &e : ends_)
        if (e->fd >= 0) close(e->fd);
}

bool TunnelEnds::takes(const LegReport &r) const {
    if (r.type == ReportType::ACCEPTED) return r.ep.local_port == port_;
    return by_handle_.count(r.handle) != 0;
}

TunnelEnds::End *TunnelEnds::find(ConnHandle h) {
    auto it = by_handle_.find(h);
    return it == by_handle_.end() ? nullptr : it->second;
}

bool TunnelEnds::flush_backlog() {
    while (backlog_head_ < backlog_.size()) {
        const Pending &p = backlog_[backlog_head_];
        if (!out_.send(p.host, p.c)) return false;
        backlog_head_++;
    }
    backlog_.clear();
    backlog_head_ = 0;
    return true;
}

// Commands keep their order: once one waits, the rest queue behind it.
void TunnelEnds::command(const End &e, CommandType t) {
    LegCommand c;
    c.type = t;
    c.handle = e.handle;
    command(e, c);
}

void TunnelEnds::command(const End &e, const LegCommand &c) {
    if (backlog_head_ == backlog_.size() && out_.send(e.host, c)) return;
    stats_.commands_deferred++;
    backlog_.push_back({e.host, c});
}

void TunnelEnds::erase(ConnHandle h) {
    auto it = std::find_if(ends_.begin(), ends_.end(), [h](const auto &e) { return e->handle == h; });
    if (it == ends_.end()) return;
    by_handle_.erase(h);
    if ((*it)->fd >= 0) close((*it)->fd);
    *it = std::move(ends_.back());
    ends_.pop_back();
}

// A connection that ended without FIN both ways: `last` (ABORT or RELEASE)
// is its last command, and the socket closes before its write side was
// shut, which the bridge reads as a reset. A WRITE_REF still in a command
// ring may point into the staging ring; the worker copies it before it runs
// `last`, so the ring only has to outlive the rings' backlog (kGraveyardUs),
// not its acknowledgement, which will never come.
void TunnelEnds::retire(End &e, CommandType last, const char *why) {
    command(e, last);
    stats_.resets++;
    if (verbose_) std::fprintf(stderr, "dpdk-millipede tunnel: connection %#x on the port %s\n", e.handle, why);
    if (e.stage) graveyard_.push_back({now_ + kGraveyardUs, std::move(e.stage)});
    erase(e.handle);
}

// Reset both ways: RST on the connection, the socket closed.
void TunnelEnds::abort(End &e) { retire(e, CommandType::ABORT, "reset"); }

void TunnelEnds::on_report(const LegReport &r, uint64_t now_us) {
    now_ = now_us;
    if (r.type == ReportType::ACCEPTED) {
        auto e = std::make_unique<End>();
        e->handle = r.handle;
        e->host = session::handle_host(r.handle);
        e->window_end = initial_window_;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
            stats_.refused++;
            if (verbose_) std::fprintf(stderr, "dpdk-millipede tunnel: socketpair: %s\n", std::strerror(errno));
            command(*e, CommandType::ABORT);
            return;
        }
        e->fd = sv[0];
        e->stage.reset(new uint8_t[kStageBytes]);
        adopt_(adopt_ctx_, sv[1]);
        stats_.accepted++;
        if (verbose_) {
            char a[INET6_ADDRSTRLEN] = "?";
            inet_ntop(r.ep.remote_ip.is_v6 ? AF_INET6 : AF_INET, r.ep.remote_ip.bytes.data(), a, sizeof a);
            std::fprintf(stderr, "dpdk-millipede tunnel: connection %#x from %s port %u accepted on the port\n",
                         r.handle, a, r.ep.remote_port);
        }
        by_handle_[r.handle] = e.get();
        ends_.push_back(std::move(e));
        return;
    }
    End *e = find(r.handle);
    if (!e) return;
    switch (r.type) {
    case ReportType::INPUT:
        if (e->span_count < session::kMaxSpansInFlight) {
            e->spans[(e->span_head + e->span_count) % session::kMaxSpansInFlight] = {r.input.p, r.input.n, 0};
            e->span_count++;
            to_socket(*e);
        }
        break;
    case ReportType::CREDIT:
        e->acked = std::max(e->acked, r.credit.acked);
        e->window_end = std::max(e->window_end, r.credit.window_end);
        break;
    case ReportType::PEER_FIN:
        e->peer_fin = true;
        to_socket(*e);
        break;
    case ReportType::CLOSED:
    case ReportType::ENDED:
        if (r.type == ReportType::ENDED && r.cause != session::EndCause::CLOSED) {
            // Reset, timed out: the host waits for RELEASE. What the socket
            // has not taken yet is lost with the connection, as with a RST.
            retire(*e, CommandType::RELEASE, tcp::close_reason_name(r.reason));
            break;
        }
        // Closed in order (an ENDED of cause CLOSED when the peer's FIN came
        // first): what the socket has not taken yet still goes.
        e->acked = std::max(e->acked, r.credit.acked);
        e->closed = true;
        finish_if_done(*e);
        break;
    default:
        break;
    }
}

// Received bytes out to the socket, in order; one CONSUME for what it took.
unsigned TunnelEnds::to_socket(End &e) {
    uint64_t taken = 0;
    bool broken = false;
    while (e.span_count) {
        End::Span &s = e.spans[e.span_head];
        const ssize_t n = send(e.fd, s.p + s.done, s.n - s.done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            broken = errno != EAGAIN && errno != EINTR;
            break;
        }
        s.done += static_cast<uint32_t>(n);
        taken += static_cast<uint64_t>(n);
        if (s.done < s.n) break;
        e.span_head = (e.span_head + 1) % session::kMaxSpansInFlight;
        e.span_count--;
    }
    if (taken) {
        stats_.bytes_in += taken;
        LegCommand c;
        c.type = CommandType::CONSUME;
        c.handle = e.handle;
        c.n = taken;
        command(e, c);
    }
    if (broken) { // the bridge closed its end: reset
        abort(e);
        return 1;
    }
    if (!e.span_count && e.peer_fin && !e.shut_wr) {
        shutdown(e.fd, SHUT_WR);
        e.shut_wr = true;
    }
    finish_if_done(e);
    return taken != 0;
}

// The socket's bytes into the connection, within TCP's window and the
// staging ring; EOF becomes our FIN.
unsigned TunnelEnds::from_socket(End &e) {
    unsigned work = 0;
    uint64_t sent = 0;
    while (!e.socket_eof) {
        const uint64_t room = e.intake_room();
        if (!room) break;
        const uint32_t at = static_cast<uint32_t>(e.written % kStageBytes);
        const size_t want = static_cast<size_t>(std::min<uint64_t>(room, kStageBytes - at));
        const ssize_t n = read(e.fd, e.stage.get() + at, want);
        if (n > 0) {
            LegCommand c;
            c.type = CommandType::WRITE_REF;
            c.handle = e.handle;
            c.ref.p = e.stage.get() + at;
            c.ref.n = static_cast<uint32_t>(n);
            c.ref.ref = 0;
            command(e, c);
            e.written += static_cast<uint64_t>(n);
            sent += static_cast<uint64_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        if (n < 0) { // cannot happen on a socketpair short of a bug: reset
            abort(e);
            return 1;
        }
        e.socket_eof = true;
        command(e, CommandType::SHUTDOWN);
        work++;
    }
    if (sent) {
        stats_.bytes_out += sent;
        command(e, CommandType::FLUSH);
        work++;
    }
    return work;
}

// FIN both ways and every byte through: the socket closes and the host may
// destroy the connection.
void TunnelEnds::finish_if_done(End &e) {
    if (!e.closed || e.span_count || !e.shut_wr) return;
    command(e, CommandType::RELEASE);
    stats_.closed++;
    if (verbose_) std::fprintf(stderr, "dpdk-millipede tunnel: connection %#x on the port closed\n", e.handle);
    erase(e.handle);
}

unsigned TunnelEnds::poll(uint64_t now_us) {
    now_ = now_us;
    unsigned work = 0;
    if (!flush_backlog()) return 1;
    while (!graveyard_.empty() && graveyard_.front().first <= now_us) graveyard_.erase(graveyard_.begin());
    if (ends_.empty() || now_us < next_poll_us_) return 0;
    next_poll_us_ = now_us + kPollIntervalUs;
    pollfd set[256];
    ConnHandle who[256];
    nfds_t n = 0;
    for (auto &e : ends_) {
        if (n == 256) break;
        short ev = 0;
        if (e->span_count) ev |= POLLOUT;
        if (!e->socket_eof && e->intake_room()) ev |= POLLIN;
        if (!ev && e->hangup) continue; // waiting for TCP's CLOSED only
        set[n] = {e->fd, ev, 0};
        who[n++] = e->handle;
    }
    if (!n || ::poll(set, n, 0) <= 0) return work;
    for (nfds_t i = 0; i < n; i++) {
        const short rev = set[i].revents;
        if (!rev) continue;
        End *e = find(who[i]);
        if (!e) continue;
        if (rev & POLLHUP) {
            e->hangup = true;
            // The bridge closes its end only after reading our EOF, unless
            // it reset the connection.
            if (!e->shut_wr) {
                abort(*e);
                work++;
                continue;
            }
        }
        if (rev & (POLLIN | POLLHUP)) work += from_socket(*e);
        if (!(e = find(who[i]))) continue;
        if (rev & (POLLOUT | POLLERR)) work += to_socket(*e);
    }
    return work;
}

} // namespace millipede::dataplane

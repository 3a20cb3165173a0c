// LegHost: one worker's connections; see leg_host.h.
#include "millipede/session/leg_host.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common.h"

namespace millipede::session {

struct LegHost::Slot {
    std::unique_ptr<tcp::Connection> conn;
    ConnHandle handle = 0;
    uint16_t leg = 0;
    bool active_open = false; // opened by CONNECT (tx)
    bool established = false;
    bool up_sent = false;     // CONNECTED / ACCEPTED reported
    bool shut = false;        // SHUTDOWN received
    bool retired = false;     // FIN-closed and kept until closed; input is discarded
    bool by_core = false;     // retired on the core's RETIRE: CLOSED is owed once it closes
    bool terminal = false;    // a terminal TCP event happened
    bool ended_sent = false;
    bool closed_sent = false;
    bool peer_fin_sent = false;
    bool released = false;    // the core holds no spans any more
    bool marked = false;
    bool unwatched = false;   // a tunnelled connection (HostConfig::tunnel_port)
    EndCause cause = EndCause::CLOSED;
    tcp::CloseReason reason = tcp::CloseReason::NONE;
    uint64_t connect_deadline = UINT64_MAX;
    detail::LegWatch watch;
    uint64_t reported = 0; // input bytes reported and not consumed yet
    // Where each reported span ends (stream offsets): at most
    // kMaxSpansInFlight spans are with the core at once.
    uint64_t span_end[kMaxSpansInFlight] = {};
    uint32_t span_head = 0, span_count = 0;
    uint64_t consumed_total = 0, reported_total = 0;
    uint64_t appended = 0; // bytes the core wrote
    uint64_t acked_sent = 0, window_sent = 0;
};

// The Watchdog looks after a connection that carries data for the core:
// not one that is closing, retired or already over.
bool LegHost::watched(const Slot &s) {
    return s.up_sent && !s.unwatched && !s.terminal && !s.shut && !s.retired && !s.ended_sent;
}

size_t LegHost::TupleHash::operator()(const TupleKey &k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    };
    mix(k.remote.bytes.data(), k.remote.is_v6 ? 16 : 4);
    mix(k.local.bytes.data(), k.local.is_v6 ? 16 : 4);
    const uint32_t ports = (uint32_t(k.lport) << 16) | k.rport;
    mix(reinterpret_cast<const uint8_t *>(&ports), 4);
    return static_cast<size_t>(h);
}

LegHost::LegHost(const HostConfig &cfg, tcp::SegmentSink sink, tcp::Random rng, ReportOut &out)
    : cfg_(cfg), sink_(std::move(sink)), rng_(std::move(rng)), out_(out) {
    if (cfg_.max_connections == 0 || cfg_.max_connections > kSlotMask - 1)
        throw std::invalid_argument("leg host: max_connections must be 1.." + std::to_string(kSlotMask - 1));
    if (cfg_.host_id >= (1u << (32 - kHostShift)))
        throw std::invalid_argument("leg host: host_id too large");
    if (!sink_) throw std::invalid_argument("leg host: no segment sink");
    if (!rng_) throw std::invalid_argument("leg host: no random source");
    if ((cfg_.listen_port || cfg_.tunnel_port) && cfg_.listen_ips.empty())
        throw std::invalid_argument("leg host: no address to listen on");
    if (cfg_.tunnel_port && cfg_.tunnel_port == cfg_.listen_port)
        throw std::invalid_argument("leg host: the tunnel's port is the legs' port");
    tcp::Connection probe(cfg_.tcp, tcp::Endpoints{}, sink_, rng_); // throws on a bad tcp::Config
    slots_.resize(cfg_.max_connections);
    free_.reserve(cfg_.max_connections);
    for (uint32_t i = cfg_.max_connections; i-- > 0;) free_.push_back(i);
    touched_.reserve(cfg_.max_connections);
    work_.reserve(cfg_.max_connections);
    live_.reserve(cfg_.max_connections);
    by_tuple_.reserve(cfg_.max_connections * 2);
    by_handle_.reserve(cfg_.max_connections * 2);
    for (uint16_t port : {cfg_.listen_port, cfg_.tunnel_port})
        if (port)
            for (const tcp::IpAddr &ip : cfg_.listen_ips)
                listeners_.push_back(std::make_unique<tcp::Listener>(cfg_.tcp_for(ip), ip, port, cfg_.max_half_open,
                                                                     sink_, [this] { return rng_(); }));
}

LegHost::~LegHost() {
    for (uint32_t i = 0; i < slots_.size(); i++)
        if (slots_[i].conn) free_slot(i);
}

void LegHost::for_each(const std::function<void(ConnHandle, uint16_t, const tcp::Connection &)> &fn) const {
    for (uint32_t i : live_) fn(slots_[i].handle, slots_[i].leg, *slots_[i].conn);
}

tcp::ListenerStats LegHost::listener_stats() const {
    tcp::ListenerStats t;
    for (const auto &l : listeners_) {
        const tcp::ListenerStats &s = l->stats();
        t.syns_received += s.syns_received;
        t.syn_acks_sent += s.syn_acks_sent;
        t.syn_ack_retransmits += s.syn_ack_retransmits;
        t.half_open_expired += s.half_open_expired;
        t.connections_created += s.connections_created;
        t.rsts_sent += s.rsts_sent;
        t.bad_checksums += s.bad_checksums;
        t.syn_cookies_sent += s.syn_cookies_sent;
        t.syn_cookies_accepted += s.syn_cookies_accepted;
        for (size_t d = 0; d < t.drops.size(); d++) t.drops[d] += s.drops[d];
    }
    return t;
}

bool LegHost::owns(const tcp::Endpoints &ep) const { return by_tuple_.count(key_of(ep)) != 0; }

const tcp::Connection *LegHost::connection(ConnHandle h) const {
    auto it = by_handle_.find(h);
    return it == by_handle_.end() ? nullptr : slots_[it->second].conn.get();
}

int32_t LegHost::alloc_slot() {
    if (free_.empty()) return -1;
    const uint32_t i = free_.back();
    free_.pop_back();
    slots_[i] = Slot{};
    live_.push_back(i);
    return static_cast<int32_t>(i);
}

void LegHost::free_slot(uint32_t i) {
    Slot &s = slots_[i];
    if (!s.conn) return;
    const tcp::Endpoints ep = s.conn->endpoints();
    by_tuple_.erase(key_of(ep));
    by_handle_.erase(s.handle);
    s.conn.reset(); // gives every held buffer back
    if (cfg_.hooks) cfg_.hooks->on_close(ep);
    s.handle = 0;
    free_.push_back(i);
    live_.erase(std::find(live_.begin(), live_.end(), i));
}

void LegHost::mark(uint32_t i) {
    if (slots_[i].marked) return;
    slots_[i].marked = true;
    touched_.push_back(i);
}

bool LegHost::report(const LegReport &r) {
    if (!out_.send(r)) {
        stats_.reports_deferred++;
        return false;
    }
    stats_.reports++;
    return true;
}

void LegHost::adopt(std::unique_ptr<tcp::Connection> c, uint64_t now, bool watched) {
    const int32_t i = alloc_slot();
    if (i < 0) {
        stats_.refused_no_slot++;
        c->abort(now);
        return;
    }
    Slot &s = slots_[i];
    s.conn = std::move(c);
    s.unwatched = !watched;
    // A handle no live connection has: this host's index above a rolling id.
    // kAcceptedBit keeps it apart from the handles of CONNECTs (messages.h).
    do {
        next_accept_id_ = (next_accept_id_ & kConnectIdMask) ? next_accept_id_ : 1;
        s.handle = (cfg_.host_id << kHostShift) | kAcceptedBit | (next_accept_id_++ & kConnectIdMask);
    } while (by_handle_.count(s.handle));
    by_handle_[s.handle] = static_cast<uint32_t>(i);
    by_tuple_[key_of(s.conn->endpoints())] = static_cast<uint32_t>(i);
    if (cfg_.hooks) cfg_.hooks->on_open(s.conn->endpoints());
    stats_.accepted++;
    mark(static_cast<uint32_t>(i));
}

bool LegHost::on_segment(const tcp::Segment &seg, uint64_t now) {
    stats_.segments_in++;
    auto it = by_tuple_.find(TupleKey{seg.dst_ip, seg.src_ip, seg.dst_port, seg.src_port});
    if (it != by_tuple_.end()) {
        slots_[it->second].conn->on_segment(seg, now);
        mark(it->second);
        return true;
    }
    if (seg.dst_port && (seg.dst_port == cfg_.listen_port || seg.dst_port == cfg_.tunnel_port)) {
        const bool legs = seg.dst_port == cfg_.listen_port;
        const size_t first = legs || !cfg_.listen_port ? 0 : cfg_.listen_ips.size();
        for (size_t k = 0; k < cfg_.listen_ips.size(); k++)
            if (cfg_.listen_ips[k] == seg.dst_ip) {
                if (auto c = listeners_[first + k]->on_segment(seg, now)) adopt(std::move(c), now, legs);
                return true;
            }
    }
    stats_.unknown_segments++;
    // viamillipede: no RST. The segment may come from a receiver still
    // reading a connection we gave up; a RST would destroy what it has not
    // read yet (its keep-alive reaps it).
    if (!cfg_.compat) detail::reply_rst(seg, cfg_.tcp.checksum_offload, sink_);
    return false;
}

bool LegHost::on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst,
                       uint64_t now) {
    tcp::Segment seg;
    if (tcp::parse_segment(bytes, src, dst, seg) != tcp::ParseResult::Ok) {
        stats_.bad_segments++;
        return false;
    }
    on_segment(seg, now);
    return true;
}

void LegHost::on_command(const LegCommand &c, uint64_t now) {
    stats_.commands++;
    if (c.type == CommandType::CONNECT) {
        const int32_t i = alloc_slot();
        if (i < 0) {
            LegReport r;
            r.type = ReportType::CONNECT_FAILED;
            r.cause = EndCause::NO_ROOM;
            r.leg = c.leg;
            r.handle = c.handle;
            report(r); // (a refused report: the core's connect deadline covers it)
            return;
        }
        Slot &s = slots_[i];
        s.conn = std::make_unique<tcp::Connection>(cfg_.tcp_for(c.ep.local_ip), c.ep, sink_, [this] { return rng_(); });
        s.handle = c.handle;
        s.leg = c.leg;
        s.active_open = true;
        s.connect_deadline = cfg_.watchdog.connect_timeout_us ? now + cfg_.watchdog.connect_timeout_us : UINT64_MAX;
        by_handle_[s.handle] = static_cast<uint32_t>(i);
        by_tuple_[key_of(c.ep)] = static_cast<uint32_t>(i);
        if (cfg_.hooks) cfg_.hooks->on_open(c.ep); // before the SYN leaves
        stats_.connects++;
        s.conn->connect(now);
        mark(static_cast<uint32_t>(i));
        return;
    }
    auto it = by_handle_.find(c.handle);
    if (it == by_handle_.end()) {
        stats_.stale_commands++;
        return;
    }
    const uint32_t i = it->second;
    Slot &s = slots_[i];
    tcp::Connection &cn = *s.conn;
    switch (c.type) {
    case CommandType::WRITE_INLINE:
        s.appended += cn.send_corked({c.bytes, c.len});
        return; // FLUSH follows
    case CommandType::WRITE_REF:
        s.appended += cn.send_ref(c.ref.p, c.ref.n, c.ref.ref);
        return;
    case CommandType::FLUSH:
        cn.flush(now);
        break;
    case CommandType::CONSUME:
        cn.consume(c.n, now);
        s.reported -= std::min<uint64_t>(s.reported, c.n);
        s.consumed_total += c.n;
        while (s.span_count && s.span_end[s.span_head] <= s.consumed_total) {
            s.span_head = (s.span_head + 1) % kMaxSpansInFlight;
            s.span_count--;
        }
        break;
    case CommandType::SHUTDOWN:
        s.shut = true;
        cn.shutdown_write(now);
        break;
    case CommandType::ABORT:
        if (!cn.is_closed()) cn.abort(now);
        free_slot(i);
        return;
    case CommandType::RETIRE:
        s.by_core = true;
        if (s.established && !cn.is_closed() && cn.state() != tcp::State::TimeWait) {
            cn.shutdown_write(now);
            cn.flush(now);
            s.retired = true;
            s.released = true; // nothing more goes to the core but CLOSED
            stats_.retired++;
        } else {
            if (!cn.is_closed()) cn.abort(now);
            s.retired = true;
            s.released = true;
        }
        break;
    case CommandType::RELEASE:
        s.released = true;
        break;
    case CommandType::BREAK:
        // As a failure would: native legs are reset (RST to the peer too);
        // a viamillipede peer cannot survive a reset leg, so it gets a FIN
        // and the connection is retired. Either way the core hears ENDED.
        if (s.terminal || cn.is_closed()) break;
        s.terminal = true;
        s.cause = EndCause::RESET;
        s.reason = tcp::CloseReason::ABORTED;
        if (cfg_.compat && s.established) {
            cn.shutdown_write(now);
            cn.flush(now);
            s.retired = true;
            stats_.retired++;
        } else {
            cn.abort(now);
        }
        break;
    case CommandType::CONNECT:
        break;
    }
    mark(i);
}

void LegHost::service(uint32_t i, uint64_t now) {
    Slot &s = slots_[i];
    if (!s.conn) return;
    tcp::Connection &c = *s.conn;
    if (c.next_timer_deadline() <= now) c.on_timer(now);
    tcp::Event ev;
    while (c.poll_event(ev)) {
        if (ev.type == tcp::EventType::Established) {
            s.established = true;
        } else if (ev.type != tcp::EventType::PeerFin && !s.terminal) {
            s.terminal = true;
            s.reason = ev.reason;
            s.cause = ev.type == tcp::EventType::Reset      ? EndCause::RESET
                      : ev.type == tcp::EventType::TimedOut ? EndCause::TIMED_OUT
                                                            : EndCause::CLOSED;
        }
    }
    bool again = false; // a report was refused: service this slot again
    if (s.retired) {
        // Nothing more goes to the core. Once it let go of what it was
        // given, replies are read and dropped (consume() frees from the
        // front, where the spans it held were).
        if (s.released) {
            std::span<const uint8_t> v[8];
            while (size_t n = c.peek(v, 8)) {
                size_t k = 0;
                for (size_t j = 0; j < n; j++) k += v[j].size();
                if (!c.consume(k, now)) break;
            }
        }
        const bool done = c.is_closed() || c.state() == tcp::State::TimeWait;
        if (done && s.by_core && !s.closed_sent) {
            LegReport r;
            r.type = ReportType::CLOSED;
            r.handle = s.handle;
            r.leg = s.leg;
            if (report(r)) s.closed_sent = true;
            else again = true;
        }
        if (s.terminal && !s.by_core && !s.ended_sent) {
            LegReport r;
            r.type = ReportType::ENDED;
            r.cause = s.cause;
            r.reason = s.reason;
            r.handle = s.handle;
            r.leg = s.leg;
            if (report(r)) s.ended_sent = true;
            else again = true;
        }
        if (c.is_closed() && s.released && (!s.by_core || s.closed_sent)) {
            free_slot(i);
            return;
        }
        if (again) mark(i);
        return;
    }
    auto credit = [&](ReportType t) {
        LegReport r;
        r.type = t;
        r.handle = s.handle;
        r.leg = s.leg;
        r.credit.acked = c.bytes_acked();
        r.credit.window_end = c.bytes_acked() + cfg_.tcp.send_buffer;
        if (!report(r)) return false;
        s.acked_sent = r.credit.acked;
        s.window_sent = r.credit.window_end;
        return true;
    };
    if (!s.up_sent) {
        if (s.established && !s.terminal) {
            if (s.active_open) {
                if (credit(ReportType::CONNECTED)) s.up_sent = true;
            } else {
                // The core starts from a window of tcp.send_buffer (the
                // same config): no credit needed with it.
                LegReport r;
                r.type = ReportType::ACCEPTED;
                r.handle = s.handle;
                r.ep = c.endpoints();
                if (report(r)) {
                    s.up_sent = true;
                    s.window_sent = cfg_.tcp.send_buffer;
                }
            }
            if (!s.up_sent) {
                mark(i);
                return;
            }
        } else if (s.active_open) {
            // Never established: refused, SYN timed out, or past its deadline.
            if (s.terminal || now >= s.connect_deadline) {
                if (!s.terminal) c.abort(now);
                LegReport r;
                r.type = ReportType::CONNECT_FAILED;
                r.cause = s.terminal ? s.cause : EndCause::TIMED_OUT;
                r.reason = s.terminal ? s.reason : tcp::CloseReason::SYN_TIMED_OUT;
                r.handle = s.handle;
                r.leg = s.leg;
                if (report(r)) {
                    free_slot(i);
                    return;
                }
                mark(i);
            }
            return;
        } else {
            if (s.terminal) free_slot(i); // accepted, then gone before the core heard of it
            return;
        }
    }
    // Input, in stream order, each byte reported once.
    if (c.readable_bytes() > s.reported && s.span_count < kMaxSpansInFlight) {
        std::span<const uint8_t> v[16];
        const size_t n = c.peek(s.reported, v, 16);
        size_t j = 0;
        for (; j < n && s.span_count < kMaxSpansInFlight; j++) {
            LegReport r;
            r.type = ReportType::INPUT;
            r.handle = s.handle;
            r.leg = s.leg;
            r.input.p = v[j].data();
            r.input.n = static_cast<uint32_t>(v[j].size());
            if (!report(r)) {
                again = true;
                break;
            }
            s.reported += r.input.n;
            s.reported_total += r.input.n;
            s.span_end[(s.span_head + s.span_count) % kMaxSpansInFlight] = s.reported_total;
            s.span_count++;
        }
        // More spans than one peek returns: the next poll goes on (a full
        // span budget waits for the core's CONSUME instead).
        if (j == 16 && c.readable_bytes() > s.reported && s.span_count < kMaxSpansInFlight) again = true;
    }
    const bool all_input = c.readable_bytes() == s.reported;
    // Credit: when the window moved enough, or everything written is acked
    // (viamillipede's sender frees chunks and ends on that).
    const uint64_t acked = c.bytes_acked();
    if (acked != s.acked_sent &&
        (acked + cfg_.tcp.send_buffer - s.window_sent >= cfg_.credit_step || acked == s.appended))
        if (!credit(ReportType::CREDIT)) again = true;
    if (c.peer_closed() && !s.peer_fin_sent && all_input) {
        if (credit(ReportType::PEER_FIN)) s.peer_fin_sent = true;
        else again = true;
    }
    const Watchdog &wd = !s.active_open && cfg_.accepted_watchdog ? *cfg_.accepted_watchdog : cfg_.watchdog;
    if (watched(s) && s.watch.dead(c, wd, now)) {
        stats_.watchdog_kills++;
        s.terminal = true;
        s.cause = EndCause::WATCHDOG;
        s.reason = tcp::CloseReason::TIMED_OUT;
        if (cfg_.compat && s.established && !c.is_closed()) {
            // What TCP delivered but the receiver has not read yet
            // survives a FIN, not a RST.
            c.shutdown_write(now);
            c.flush(now);
            s.retired = true;
            stats_.retired++;
        } else {
            c.abort(now);
        }
    }
    if (s.terminal && !s.ended_sent && (all_input || s.retired)) {
        LegReport r;
        r.type = ReportType::ENDED;
        r.cause = s.cause;
        r.reason = s.reason;
        r.handle = s.handle;
        r.leg = s.leg;
        r.credit.acked = c.bytes_acked(); // up to and including the segment that ended it
        if (report(r)) s.ended_sent = true;
        else again = true;
    }
    if (s.shut && !s.closed_sent && !s.terminal && (c.is_closed() || c.state() == tcp::State::TimeWait)) {
        LegReport r;
        r.type = ReportType::CLOSED;
        r.handle = s.handle;
        r.leg = s.leg;
        r.credit.acked = c.bytes_acked();
        if (report(r)) s.closed_sent = true;
        else again = true;
    }
    if (s.released && c.is_closed()) {
        free_slot(i);
        return;
    }
    if (again) mark(i);
}

void LegHost::poll(uint64_t now) {
    for (auto &l : listeners_)
        if (l->next_timer_deadline() <= now) l->on_timer(now);
    for (uint32_t i : live_) {
        Slot &s = slots_[i];
        const bool due = s.conn->next_timer_deadline() <= now || (watched(s) && s.watch.deadline() <= now) ||
                         (!s.up_sent && s.connect_deadline <= now);
        if (due) mark(i);
    }
    // Servicing may mark slots again (a refused report): those wait for the
    // next poll, so one poll is bounded.
    work_.swap(touched_);
    for (uint32_t i : work_) slots_[i].marked = false;
    for (uint32_t i : work_) service(i, now);
    work_.clear();
}

uint64_t LegHost::next_deadline() const {
    uint64_t t = touched_.empty() ? UINT64_MAX : 0;
    for (const auto &l : listeners_) t = std::min(t, l->next_timer_deadline());
    for (uint32_t i : live_) {
        const Slot &s = slots_[i];
        t = std::min(t, s.conn->next_timer_deadline());
        if (watched(s)) t = std::min(t, s.watch.deadline());
        if (!s.up_sent && s.active_open) t = std::min(t, s.connect_deadline);
    }
    return t;
}

} // namespace millipede::session

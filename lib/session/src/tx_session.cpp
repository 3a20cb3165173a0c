// TxSession: stripe sender events become TCP-lite connections; TCP events
// and the Watchdog become stripe leg_up/leg_down. See tx_session.h.
#include "millipede/session/tx_session.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common.h"

namespace millipede::session {

struct TxSession::Leg {
    LegSpec spec;
    std::unique_ptr<tcp::Connection> conn;
    bool established = false;
    bool dirty = false; // send_corked() since the last flush()
    uint64_t connect_deadline = UINT64_MAX;
    detail::LegWatch watch;
};

// The stripe sender writes records into the legs' TCP send rings; nothing is
// transmitted until poll() flushes, so a chunk header and its payload leave
// as full segments.
struct TxSession::Io final : stripe::LegIo {
    explicit Io(TxSession &s) : s(s) {}
    size_t writable(uint32_t leg) override {
        const Leg &l = s.legs_[leg];
        return l.conn && l.established ? l.conn->writable_bytes() : 0;
    }
    size_t write(uint32_t leg, const uint8_t *p, size_t n) override {
        Leg &l = s.legs_[leg];
        if (!l.conn) return 0;
        const size_t k = l.conn->send_corked({p, n});
        l.dirty |= k > 0;
        return k;
    }
    uint64_t delivered(uint32_t leg) override {
        const Leg &l = s.legs_[leg];
        return l.conn && l.established ? l.conn->bytes_acked() : 0;
    }
    TxSession &s;
};

namespace {

stripe::SenderConfig sender_config(const TxConfig &cfg, const tcp::SegmentSink &sink, const tcp::Random &rng) {
    if (cfg.legs.empty() || cfg.legs.size() > stripe::kMaxLegs)
        throw std::invalid_argument("tx session: need 1.." + std::to_string(stripe::kMaxLegs) + " legs, got " +
                                    std::to_string(cfg.legs.size()));
    for (size_t i = 0; i < cfg.legs.size(); i++)
        if (cfg.legs[i].remote_port == 0)
            throw std::invalid_argument("tx session: leg " + std::to_string(i) + " has no remote port");
    if (cfg.ephemeral_first == 0 || cfg.ephemeral_last < cfg.ephemeral_first)
        throw std::invalid_argument("tx session: need 0 < ephemeral_first <= ephemeral_last");
    if (!sink) throw std::invalid_argument("tx session: no segment sink");
    if (!rng) throw std::invalid_argument("tx session: no random source");
    // Connections are created on the data path (reconnects) where nothing
    // may throw: validate their config once, here.
    tcp::Connection probe(cfg.tcp, tcp::Endpoints{}, sink, rng);
    stripe::SenderConfig sc = cfg.stripe;
    sc.legs = static_cast<uint32_t>(cfg.legs.size());
    if (sc.session_id == 0) {
        tcp::Random r = rng;
        sc.session_id = (uint64_t(r()) << 32) | r();
        if (sc.session_id == 0) sc.session_id = 1;
    }
    return sc;
}

} // namespace

TxSession::TxSession(const TxConfig &cfg, tcp::SegmentSink sink, tcp::Random rng)
    : cfg_(cfg), sink_(std::move(sink)), rng_(std::move(rng)), stripe_(sender_config(cfg_, sink_, rng_)) {
    if (cfg_.stripe.session_id == 0) {
        // Advance our own generator past the draws sender_config() made on a
        // copy, so ISNs do not repeat the session id's bits.
        rng_();
        rng_();
    }
    legs_.resize(cfg_.legs.size());
    for (size_t i = 0; i < legs_.size(); i++) legs_[i].spec = cfg_.legs[i];
    io_ = std::make_unique<Io>(*this);
    port_cursor_ = rng_() % (uint32_t(cfg_.ephemeral_last) - cfg_.ephemeral_first + 1);
}

TxSession::~TxSession() = default;

const char *TxSession::message() const { return stripe_.message(); }

uint32_t TxSession::legs() const { return static_cast<uint32_t>(legs_.size()); }

TxLegState TxSession::leg_state(uint32_t leg) const {
    if (leg >= legs_.size() || !legs_[leg].conn) return TxLegState::IDLE;
    const Leg &l = legs_[leg];
    if (!l.established) return TxLegState::CONNECTING;
    return state_ == State::RUNNING ? TxLegState::ESTABLISHED : TxLegState::CLOSING;
}

const tcp::Connection *TxSession::leg_connection(uint32_t leg) const {
    return leg < legs_.size() ? legs_[leg].conn.get() : nullptr;
}

uint16_t TxSession::next_port(const LegSpec &spec) {
    if (spec.local_port) return spec.local_port;
    const uint32_t range = uint32_t(cfg_.ephemeral_last) - cfg_.ephemeral_first + 1;
    for (uint32_t tries = 0; tries < range; tries++) {
        const uint16_t p = static_cast<uint16_t>(cfg_.ephemeral_first + (port_cursor_++ % range));
        bool used = false;
        for (const Leg &l : legs_)
            if (l.conn && l.conn->endpoints().local_port == p && l.conn->endpoints().local_ip == spec.local_ip)
                used = true;
        for (const auto &c : retired_)
            if (c->endpoints().local_port == p && c->endpoints().local_ip == spec.local_ip) used = true;
        if (!used) return p;
    }
    return cfg_.ephemeral_first; // more legs than ports: cannot happen with <= 64 legs
}

int32_t TxSession::find_leg(const tcp::Segment &seg) const {
    for (size_t i = 0; i < legs_.size(); i++) {
        const Leg &l = legs_[i];
        if (!l.conn) continue;
        const tcp::Endpoints &ep = l.conn->endpoints();
        if (ep.local_port == seg.dst_port && ep.remote_port == seg.src_port && ep.remote_ip == seg.src_ip &&
            ep.local_ip == seg.dst_ip)
            return static_cast<int32_t>(i);
    }
    return -1;
}

void TxSession::start_leg(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    if (l.conn) {
        l.conn->abort(now);
        l.conn.reset();
    }
    const tcp::Endpoints ep{l.spec.local_ip, l.spec.remote_ip, next_port(l.spec), l.spec.remote_port};
    l.conn = std::make_unique<tcp::Connection>(cfg_.tcp, ep, sink_, [this] { return rng_(); });
    l.established = false;
    l.dirty = false;
    l.watch.reset();
    l.connect_deadline = cfg_.watchdog.connect_timeout_us ? now + cfg_.watchdog.connect_timeout_us : UINT64_MAX;
    stats_.connects++;
    l.conn->connect(now);
}

void TxSession::lose_leg(uint32_t i, uint64_t now, bool watchdog, const char *why) {
    Leg &l = legs_[i];
    char msg[sizeof leg_msg_] = "";
    // What the peer acknowledged up to (and including) the segment that
    // ended the leg: compat has no other proof of delivery, and a stock
    // receiver's ACK of the end header often arrives in its FIN.
    const uint64_t delivered = l.conn && l.established ? l.conn->bytes_acked() : 0;
    if (l.conn) {
        char ep[128];
        detail::format_endpoints(l.conn->endpoints(), ep, sizeof ep);
        snprintf(msg, sizeof msg, "leg %u (%s): %s", i, ep, why);
        retire(i, now);
    }
    const bool was_up = l.established;
    l.established = false;
    l.dirty = false;
    l.watch.reset();
    l.connect_deadline = UINT64_MAX;
    if (state_ != State::RUNNING) {
        if (*msg) std::memcpy(leg_msg_, msg, sizeof msg);
        return;
    }
    if (was_up) {
        // Re-queues its unacknowledged chunks, reconnects with back-off.
        const stripe::LegDown r = stripe_.leg_down(i, now, delivered);
        if (r == stripe::LegDown::FINISHED || r == stripe::LegDown::DRAINED) {
            // viamillipede: the receiver ended the leg after everything it
            // carried (FINISHED: the end header too) was acknowledged. The
            // orderly end of a stock receiver, not a lost leg.
            stats_.legs_ended_by_receiver++;
            return;
        }
        std::memcpy(leg_msg_, msg, sizeof msg);
        stats_.legs_lost++;
        stats_.watchdog_kills += watchdog;
        stats_.last_leg_lost_us = now;
    } else {
        if (*msg) std::memcpy(leg_msg_, msg, sizeof msg);
        stats_.connect_failures++;
        stripe_.leg_connect_failed(i, now);
    }
}

// Gives up leg i's connection. Native: RST (every chunk the receiver holds
// is acknowledged by the stripe layer, nothing is lost). viamillipede: FIN,
// and the connection lives on in retired_ until closed: what TCP delivered
// but the receiving application has not read yet survives, and the
// receiver reads to a clean end of stream.
void TxSession::retire(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    if (!l.conn) return;
    const bool compat = cfg_.stripe.codec == stripe::Codec::VIAMILLIPEDE;
    if (compat && l.established && !l.conn->is_closed() && retired_.size() < 2 * stripe::kMaxLegs) {
        l.conn->shutdown_write(now);
        l.conn->flush(now);
        retired_.push_back(std::move(l.conn));
        stats_.retired++;
    } else if (!l.conn->is_closed()) {
        l.conn->abort(now);
    }
    l.conn.reset();
}

void TxSession::poll_retired(uint64_t now) {
    for (size_t k = 0; k < retired_.size();) {
        tcp::Connection &c = *retired_[k];
        if (c.next_timer_deadline() <= now) c.on_timer(now);
        tcp::Event ev;
        while (c.poll_event(ev)) {
        }
        std::span<const uint8_t> a, b;
        c.peek(a, b);
        if (!a.empty()) c.consume(a.size() + b.size(), now); // nothing more to do with replies
        if (c.is_closed()) { // (TIME-WAIT still answers the peer's last FIN)
            retired_.erase(retired_.begin() + static_cast<std::ptrdiff_t>(k));
            continue;
        }
        k++;
    }
}

void TxSession::drain(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    std::span<const uint8_t> a, b;
    l.conn->peek(a, b);
    if (a.empty()) return;
    // Replies, acks and resend requests are tiny; the stripe sender always
    // takes everything (and ignores bytes once the session is over).
    stripe_.leg_input(i, a.data(), a.size(), now);
    if (!b.empty()) stripe_.leg_input(i, b.data(), b.size(), now);
    l.conn->consume(a.size() + b.size(), now);
}

void TxSession::handle_conn(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    if (!l.conn) return;
    bool terminal = false;
    tcp::Event ev, term;
    while (l.conn->poll_event(ev)) {
        switch (ev.type) {
        case tcp::EventType::Established:
            if (!l.established) {
                l.established = true;
                l.connect_deadline = UINT64_MAX;
                if (state_ == State::RUNNING) stripe_.leg_up(i, now);
            }
            break;
        case tcp::EventType::PeerFin:
            break; // peer_closed() below
        default:
            terminal = true;
            term = ev;
            break;
        }
    }
    drain(i, now); // before acting on a FIN or reset: a refusal may precede it
    if (terminal) {
        char why[96];
        snprintf(why, sizeof why, "connection %s (%s)", term.type == tcp::EventType::Reset ? "reset" : "ended",
                 tcp::close_reason_name(term.reason));
        if (term.type == tcp::EventType::TimedOut) snprintf(why, sizeof why, "connection timed out (%s)",
                                                           tcp::close_reason_name(term.reason));
        lose_leg(i, now, false, why);
        return;
    }
    // (A leg that ended the session in compat mode: its DONE is handled by poll().)
    if (state_ != State::RUNNING || stripe_.state() != stripe::SessionState::RUNNING) return;
    if (l.conn->peer_closed()) {
        lose_leg(i, now, false, "the receiver closed the connection mid-stream");
        return;
    }
    if (!l.established && now >= l.connect_deadline) {
        lose_leg(i, now, false, "connect timed out");
        return;
    }
    if (l.watch.dead(*l.conn, cfg_.watchdog, now))
        lose_leg(i, now, true, "no acknowledgement after RTO expiry: leg declared dead, chunks re-queued");
}

void TxSession::on_segment(const tcp::Segment &seg, uint64_t now) {
    stats_.segments_in++;
    const int32_t i = find_leg(seg);
    if (i < 0) {
        for (auto &c : retired_) {
            const tcp::Endpoints &ep = c->endpoints();
            if (ep.local_port == seg.dst_port && ep.remote_port == seg.src_port && ep.remote_ip == seg.src_ip &&
                ep.local_ip == seg.dst_ip) {
                c->on_segment(seg, now);
                return;
            }
        }
        stats_.unknown_segments++;
        // viamillipede: not even here. The segment may come from a receiver
        // still reading a connection we gave up or finished with; a RST
        // would destroy what it has not read yet (its keep-alive reaps it).
        if (cfg_.stripe.codec != stripe::Codec::VIAMILLIPEDE) detail::reply_rst(seg, cfg_.tcp.checksum_offload, sink_);
        return;
    }
    legs_[i].conn->on_segment(seg, now);
    handle_conn(static_cast<uint32_t>(i), now);
}

bool TxSession::on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst,
                         uint64_t now) {
    tcp::Segment seg;
    if (tcp::parse_segment(bytes, src, dst, seg) != tcp::ParseResult::Ok) {
        stats_.bad_segments++;
        return false;
    }
    on_segment(seg, now);
    return true;
}

void TxSession::end(uint64_t now) {
    for (Leg &l : legs_) {
        if (!l.conn) continue;
        if (state_ == State::DONE && l.established)
            l.conn->shutdown_write(now); // FIN after everything written
        else
            l.conn->abort(now);
        l.dirty = false;
    }
    linger_until_ = now + cfg_.linger_us;
}

void TxSession::poll(uint64_t now) {
    poll_retired(now);
    for (uint32_t i = 0; i < legs_.size(); i++) {
        Leg &l = legs_[i];
        if (l.conn && l.conn->next_timer_deadline() <= now) l.conn->on_timer(now);
        handle_conn(i, now);
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && state_ == State::RUNNING) {
            stripe_.poll(now, *io_);
            for (Leg &l : legs_)
                if (l.dirty) {
                    l.dirty = false;
                    if (l.conn) l.conn->flush(now);
                }
        }
        stripe::StripeEvent ev;
        while (stripe_.next_event(ev)) {
            switch (ev.type) {
            case stripe::EventType::CONNECT_LEG:
                if (state_ == State::RUNNING) start_leg(ev.leg, now);
                break;
            case stripe::EventType::CLOSE_LEG:
                if (ev.leg < legs_.size() && legs_[ev.leg].conn) {
                    retire(ev.leg, now);
                    legs_[ev.leg].established = false;
                }
                break;
            case stripe::EventType::DONE:
            case stripe::EventType::FAILED:
                if (state_ == State::RUNNING) {
                    state_ = ev.type == stripe::EventType::DONE ? State::DONE : State::FAILED;
                    end(now);
                }
                break;
            }
        }
    }
    if (state_ != State::RUNNING && !finished_) {
        bool open = false;
        for (Leg &l : legs_) {
            if (!l.conn) continue;
            if (l.conn->is_closed() || l.conn->state() == tcp::State::TimeWait) {
                // Only with the end acknowledged: a viamillipede receiver
                // (no acknowledgement) may still be draining a leg.
                if (state_ == State::DONE && confirmed() && l.conn->peer_closed() && first_closed_at_ == UINT64_MAX)
                    first_closed_at_ = now;
                if (l.conn->is_closed()) l.conn.reset();
                continue;
            }
            open = true;
        }
        for (const auto &c : retired_)
            if (c->state() != tcp::State::TimeWait) open = true; // poll_retired() dropped the closed ones
        const bool stragglers = first_closed_at_ != UINT64_MAX && now >= first_closed_at_ + cfg_.straggler_us;
        if (!open || now >= linger_until_ || stragglers) {
            // viamillipede: no RST even now; a receiver may still be reading
            // what TCP delivered on a leg that never finished closing.
            const bool compat = cfg_.stripe.codec == stripe::Codec::VIAMILLIPEDE;
            if (open && !compat)
                for (Leg &l : legs_)
                    if (l.conn && l.conn->state() != tcp::State::TimeWait) l.conn->abort(now);
            retired_.clear();
            finished_ = true;
        }
    }
}

uint64_t TxSession::next_deadline() const {
    uint64_t t = UINT64_MAX;
    for (const Leg &l : legs_) {
        if (!l.conn) continue;
        t = std::min({t, l.conn->next_timer_deadline(), l.connect_deadline});
        if (state_ == State::RUNNING) t = std::min(t, l.watch.deadline()); // (only then does handle_conn check it)
    }
    for (const auto &c : retired_) t = std::min(t, c->next_timer_deadline());
    if (state_ == State::RUNNING)
        t = std::min(t, stripe_.next_wakeup_us());
    else if (!finished_)
        t = std::min({t, linger_until_, first_closed_at_ == UINT64_MAX ? UINT64_MAX : first_closed_at_ + cfg_.straggler_us});
    return t;
}

} // namespace millipede::session

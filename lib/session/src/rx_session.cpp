// RxSession: accepted TCP-lite connections become stripe receiver legs;
// reading follows the stripe receiver's back-pressure. See rx_session.h.
#include "millipede/session/rx_session.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "common.h"

namespace millipede::session {

struct RxSession::Leg {
    std::unique_ptr<tcp::Connection> conn;
    bool dirty = false;
    bool closing = false; // FIN sent on request (CLOSE_LEG, the sender's FIN, session over)
    uint64_t close_deadline = UINT64_MAX;
    detail::LegWatch watch;
    // The connection ended (reset, keep-alive timeout) with bytes it had
    // received and acknowledged still unread: they are fed to the stripe
    // receiver first (viamillipede's sender counts them delivered), then the
    // leg is dropped with this reason.
    char ended[96] = "";
};

struct RxSession::Io final : stripe::LegIo {
    explicit Io(RxSession &s) : s(s) {}
    size_t writable(uint32_t leg) override {
        const Leg &l = s.legs_[leg];
        return l.conn ? l.conn->writable_bytes() : 0;
    }
    size_t write(uint32_t leg, const uint8_t *p, size_t n) override {
        Leg &l = s.legs_[leg];
        if (!l.conn) return 0;
        const size_t k = l.conn->send_corked({p, n});
        l.dirty |= k > 0;
        return k;
    }
    RxSession &s;
};

namespace {

const RxConfig &validated(const RxConfig &cfg, const tcp::SegmentSink &sink, const tcp::Random &rng) {
    if (cfg.local_ips.empty()) throw std::invalid_argument("rx session: no local address to listen on");
    if (cfg.port == 0) throw std::invalid_argument("rx session: no listening port");
    if (cfg.max_half_open == 0) throw std::invalid_argument("rx session: max_half_open must be >= 1");
    if (!sink) throw std::invalid_argument("rx session: no segment sink");
    if (!rng) throw std::invalid_argument("rx session: no random source");
    tcp::Connection probe(cfg.tcp, tcp::Endpoints{}, sink, rng); // throws on a bad tcp::Config
    return cfg;
}

} // namespace

RxSession::RxSession(const RxConfig &cfg, tcp::SegmentSink sink, tcp::Random rng)
    : cfg_(validated(cfg, sink, rng)), sink_(std::move(sink)), rng_(std::move(rng)), stripe_(cfg_.stripe) {
    for (const tcp::IpAddr &ip : cfg_.local_ips)
        listeners_.push_back(std::make_unique<tcp::Listener>(cfg_.tcp, ip, cfg_.port, cfg_.max_half_open, sink_,
                                                             [this] { return rng_(); }));
    legs_.resize(cfg_.stripe.max_legs);
    io_ = std::make_unique<Io>(*this);
}

RxSession::~RxSession() = default;

const char *RxSession::last_leg_message() const { return leg_msg_[0] ? leg_msg_ : stripe_.last_leg_message(); }

size_t RxSession::connections() const {
    size_t n = 0;
    for (const Leg &l : legs_) n += l.conn != nullptr;
    return n;
}

const tcp::Connection *RxSession::leg_connection(uint32_t leg) const {
    return leg < legs_.size() ? legs_[leg].conn.get() : nullptr;
}

int32_t RxSession::find_leg(const tcp::Segment &seg) const {
    for (size_t i = 0; i < legs_.size(); i++) {
        const Leg &l = legs_[i];
        if (!l.conn) continue;
        const tcp::Endpoints &ep = l.conn->endpoints();
        if (ep.remote_port == seg.src_port && ep.local_port == seg.dst_port && ep.remote_ip == seg.src_ip &&
            ep.local_ip == seg.dst_ip)
            return static_cast<int32_t>(i);
    }
    return -1;
}

void RxSession::accept(std::unique_ptr<tcp::Connection> c, uint64_t now) {
    for (uint32_t i = 0; i < legs_.size(); i++) {
        Leg &l = legs_[i];
        if (l.conn) continue;
        l.conn = std::move(c);
        l.dirty = false;
        // Also after DONE: a sender whose end acknowledgement was lost with
        // its leg asks again on a new one, and the stripe receiver answers.
        l.closing = state_ == State::FAILED;
        l.close_deadline = l.closing ? now + cfg_.refuse_linger_us : UINT64_MAX;
        if (l.closing) l.conn->shutdown_write(now);
        l.watch.reset();
        stats_.accepted++;
        handle_conn(i, now);
        return;
    }
    stats_.refused_no_slot++;
    snprintf(leg_msg_, sizeof leg_msg_, "connection refused: all %u legs in use", cfg_.stripe.max_legs);
    c->abort(now);
}

void RxSession::feed(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    for (;;) {
        std::span<const uint8_t> a, b;
        l.conn->peek(a, b);
        if (a.empty()) return;
        const size_t used = stripe_.leg_input(i, a.data(), a.size(), now);
        l.conn->consume(used, now); // may reopen the window
        if (used < a.size()) {
            // Back-pressure: the rest stays in the TCP receive buffer, whose
            // advertised window shrinks until output() is drained.
            stats_.blocked_reads++;
            return;
        }
    }
}

void RxSession::drop_leg(uint32_t i, uint64_t now, bool watchdog, const char *why) {
    Leg &l = legs_[i];
    if (!l.conn) return;
    if (!l.closing) {
        char ep[128];
        detail::format_endpoints(l.conn->endpoints(), ep, sizeof ep);
        snprintf(leg_msg_, sizeof leg_msg_, "leg %u (%s): %s", i, ep, why);
        if (state_ == State::RUNNING) {
            stats_.legs_lost++;
            stats_.watchdog_kills += watchdog;
        }
        stripe_.leg_down(i, now); // frees a chunk buffer it was filling
    }
    if (!l.conn->is_closed()) l.conn->abort(now);
    l.conn.reset();
    l.closing = false;
    l.dirty = false;
    l.close_deadline = UINT64_MAX;
    l.watch.reset();
    l.ended[0] = 0;
}

void RxSession::handle_conn(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    if (!l.conn) return;
    if (l.ended[0]) {
        feed(i, now);
        if (l.conn->readable_bytes() == 0 || state_ != State::RUNNING) drop_leg(i, now, false, l.ended);
        return;
    }
    bool terminal = false;
    tcp::Event ev, term;
    while (l.conn->poll_event(ev)) {
        if (ev.type == tcp::EventType::Established) {
            if (!l.closing) stripe_.leg_up(i, now);
        } else if (ev.type != tcp::EventType::PeerFin) {
            terminal = true;
            term = ev;
        }
    }
    feed(i, now);
    if (terminal) {
        char why[96];
        snprintf(why, sizeof why, "connection %s (%s)", term.type == tcp::EventType::Reset ? "reset" : "ended",
                 tcp::close_reason_name(term.reason));
        if (l.conn->readable_bytes() > 0 && state_ == State::RUNNING) {
            snprintf(l.ended, sizeof l.ended, "%s", why); // drained first, on later polls
            return;
        }
        drop_leg(i, now, false, why);
        return;
    }
    if (l.closing) {
        if (now >= l.close_deadline) drop_leg(i, now, false, "close timed out");
        return;
    }
    if (l.conn->peer_closed() && l.conn->readable_bytes() == 0) {
        // The sender closed this leg (it finished, or gave the leg up).
        // The sender only closes with FIN once its end was acknowledged, i.e.
        // once the stripe receiver is DONE, even if this session has not
        // handled that event yet: an orderly close either way. A
        // viamillipede sender (no end acknowledgement) closes its legs right
        // after its end header, usually before stdout took every byte: that
        // is orderly for every leg it left at a record boundary (the end header
        // itself may still wait in another leg's receive buffer). A leg that
        // ends inside a record was cut off mid-stream.
        if ((state_ == State::DONE || stripe_.state() == stripe::SessionState::DONE) && !sender_closed_) {
            sender_closed_ = true;
            sender_closed_at_ = now;
        }
        if (state_ == State::RUNNING && stripe_.state() == stripe::SessionState::RUNNING) {
            if (stripe_.leg_mid_record(i)) {
                char ep[128];
                detail::format_endpoints(l.conn->endpoints(), ep, sizeof ep);
                snprintf(leg_msg_, sizeof leg_msg_, "leg %u (%s): closed by the sender mid-stream", i, ep);
                stats_.legs_lost++;
            }
            stripe_.leg_down(i, now);
        }
        l.closing = true;
        l.close_deadline = now + cfg_.linger_us;
        l.conn->shutdown_write(now);
        return;
    }
    if (state_ == State::RUNNING && l.watch.dead(*l.conn, cfg_.watchdog, now))
        drop_leg(i, now, true, "no acknowledgement after RTO expiry: leg declared dead");
}

void RxSession::on_segment(const tcp::Segment &seg, uint64_t now) {
    stats_.segments_in++;
    const int32_t i = find_leg(seg);
    if (i >= 0) {
        legs_[i].conn->on_segment(seg, now);
        handle_conn(static_cast<uint32_t>(i), now);
        return;
    }
    if (seg.dst_port == cfg_.port)
        for (size_t k = 0; k < listeners_.size(); k++)
            if (cfg_.local_ips[k] == seg.dst_ip) {
                if (auto c = listeners_[k]->on_segment(seg, now)) accept(std::move(c), now);
                return;
            }
    stats_.unknown_segments++;
    detail::reply_rst(seg, cfg_.tcp.checksum_offload, sink_);
}

bool RxSession::on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst,
                         uint64_t now) {
    tcp::Segment seg;
    if (tcp::parse_segment(bytes, src, dst, seg) != tcp::ParseResult::Ok) {
        stats_.bad_segments++;
        return false;
    }
    on_segment(seg, now);
    return true;
}

void RxSession::poll(uint64_t now) {
    for (auto &ls : listeners_)
        if (ls->next_timer_deadline() <= now) ls->on_timer(now);
    for (uint32_t i = 0; i < legs_.size(); i++) {
        Leg &l = legs_[i];
        if (!l.conn) continue;
        if (l.conn->next_timer_deadline() <= now) l.conn->on_timer(now);
        handle_conn(i, now); // also retries legs blocked by back-pressure
    }
    stripe_.poll(now, *io_); // acks, resend requests, hello replies, the end ack
    for (Leg &l : legs_)
        if (l.dirty) {
            l.dirty = false;
            if (l.conn) l.conn->flush(now);
        }
    stripe::StripeEvent ev;
    while (stripe_.next_event(ev)) {
        switch (ev.type) {
        case stripe::EventType::CLOSE_LEG: {
            if (ev.leg >= legs_.size() || !legs_[ev.leg].conn) break;
            Leg &l = legs_[ev.leg];
            stats_.legs_closed++;
            snprintf(leg_msg_, sizeof leg_msg_, "%s", stripe_.last_leg_message());
            // FIN after the refusal already written, so the sender reads why.
            l.closing = true;
            l.close_deadline = now + cfg_.refuse_linger_us;
            l.conn->shutdown_write(now);
            break;
        }
        case stripe::EventType::DONE:
        case stripe::EventType::FAILED:
            if (state_ == State::RUNNING) {
                state_ = ev.type == stripe::EventType::DONE ? State::DONE : State::FAILED;
                linger_until_ = now + cfg_.linger_us;
                if (state_ == State::FAILED)
                    for (Leg &l : legs_)
                        if (l.conn && !l.closing) {
                            // Graceful: the end ack with the verdict goes first.
                            l.closing = true;
                            l.close_deadline = linger_until_;
                            l.conn->shutdown_write(now);
                        }
            }
            break;
        case stripe::EventType::CONNECT_LEG:
            break; // receivers never connect
        }
    }
    if (state_ != State::RUNNING && !finished_) {
        // DONE: wait until the sender closed a leg with FIN (it had its end
        // acknowledgement then) and every connection is closed.
        if (state_ == State::DONE && sender_closed_ && now >= sender_closed_at_ + cfg_.straggler_us)
            for (uint32_t i = 0; i < legs_.size(); i++)
                if (legs_[i].conn && !legs_[i].closing)
                    drop_leg(i, now, false, "no FIN after the sender closed its other legs (dead link?)");
        const bool open = connections() > 0;
        if ((!open && (sender_closed_ || state_ == State::FAILED)) || now >= linger_until_) {
            for (uint32_t i = 0; i < legs_.size(); i++)
                if (legs_[i].conn) drop_leg(i, now, false, "linger expired");
            finished_ = true;
        }
    }
}

uint64_t RxSession::next_deadline() const {
    uint64_t t = UINT64_MAX;
    for (const auto &ls : listeners_) t = std::min(t, ls->next_timer_deadline());
    for (const Leg &l : legs_) {
        if (!l.conn) continue;
        t = std::min({t, l.conn->next_timer_deadline(), l.watch.deadline(), l.close_deadline});
    }
    if (state_ != State::RUNNING && !finished_) t = std::min(t, linger_until_);
    if (state_ == State::DONE && sender_closed_ && !finished_)
        for (const Leg &l : legs_)
            if (l.conn && !l.closing) t = std::min(t, sender_closed_at_ + cfg_.straggler_us);
    return t;
}

} // namespace millipede::session

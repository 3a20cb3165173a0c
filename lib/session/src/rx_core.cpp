// RxCore: accepted connections (on their hosts) become stripe receiver
// legs; reading follows the stripe receiver's back-pressure. See rx_core.h.
#include "millipede/session/rx_core.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common.h"

namespace millipede::session {

struct RxCore::Leg {
    ConnHandle handle = 0;
    uint32_t host = 0;
    tcp::Endpoints ep;
    bool closing = false; // FIN sent on request (CLOSE_LEG, the sender's FIN, session over)
    uint64_t close_deadline = UINT64_MAX;
    bool peer_fin = false;
    bool gone = false;    // the host reported it ENDED or CLOSED: RELEASE, not ABORT
    bool watchdog = false;
    // The connection ended (reset, keep-alive timeout) with bytes it had
    // received and acknowledged still unread: they are fed to the stripe
    // receiver first (viamillipede's sender counts them delivered), then the
    // leg is dropped with this reason.
    char ended[96] = "";
    struct Span {
        const uint8_t *p;
        uint32_t n;
    };
    std::array<Span, kMaxSpansInFlight> q{}; // INPUT not yet taken by the stripe receiver
    uint32_t head = 0, count = 0;
    uint64_t written = 0, window_end = 0;
    bool dirty = false;
    // Input taken since the last CONSUME: one CONSUME per leg per poll, not
    // one per INPUT report (each is a cache line to another lcore), and
    // always ahead of any other command to the leg, so the host sees the
    // same order as before.
    uint64_t unconsumed = 0;
};

struct RxCore::Io final : stripe::LegIo {
    explicit Io(RxCore &c) : c(c) {}
    size_t writable(uint32_t leg) override {
        const Leg &l = c.legs_[leg];
        if (!l.handle || l.gone || l.window_end <= l.written) return 0;
        return static_cast<size_t>(l.window_end - l.written);
    }
    size_t write(uint32_t leg, const uint8_t *p, size_t n) override {
        Leg &l = c.legs_[leg];
        n = std::min(n, writable(leg));
        size_t done = 0;
        while (done < n) { // acknowledgements and replies: a few dozen bytes
            if (l.unconsumed && !c.send_consume(l)) break;
            LegCommand cmd;
            cmd.type = CommandType::WRITE_INLINE;
            cmd.handle = l.handle;
            cmd.leg = static_cast<uint16_t>(leg);
            cmd.len = static_cast<uint8_t>(std::min(n - done, kInlineBytes));
            std::memcpy(cmd.bytes, p + done, cmd.len);
            if (!c.out_.send(l.host, cmd)) {
                c.internal_failure("the command queue to a worker is full");
                break;
            }
            done += cmd.len;
        }
        l.written += done;
        l.dirty |= done > 0;
        return done;
    }
    RxCore &c;
};

namespace {

const RxConfig &validated(const RxConfig &cfg) {
    if (cfg.local_ips.empty()) throw std::invalid_argument("rx session: no local address to listen on");
    if (cfg.port == 0) throw std::invalid_argument("rx session: no listening port");
    if (cfg.max_half_open == 0) throw std::invalid_argument("rx session: max_half_open must be >= 1");
    return cfg;
}

} // namespace

RxCore::RxCore(const RxConfig &cfg, CommandOut &out) : cfg_(validated(cfg)), out_(out), stripe_(cfg_.stripe) {
    if (out_.hosts() == 0) throw std::invalid_argument("rx session: no leg host");
    legs_.resize(cfg_.stripe.max_legs);
    io_ = std::make_unique<Io>(*this);
}

RxCore::~RxCore() = default;

uint32_t RxCore::legs() const { return static_cast<uint32_t>(legs_.size()); }

ConnHandle RxCore::leg_handle(uint32_t leg) const { return leg < legs_.size() ? legs_[leg].handle : 0; }

const tcp::Endpoints *RxCore::leg_endpoints(uint32_t leg) const {
    return leg < legs_.size() && legs_[leg].handle ? &legs_[leg].ep : nullptr;
}

const char *RxCore::message() const { return fail_msg_[0] ? fail_msg_ : stripe_.message(); }

void RxCore::internal_failure(const char *what) {
    if (fail_msg_[0]) return;
    snprintf(fail_msg_, sizeof fail_msg_, "internal: %s", what);
    if (state_ == State::RUNNING) {
        state_ = State::FAILED;
        linger_until_ = 0;
    }
}

size_t RxCore::connections() const {
    size_t n = 0;
    for (const Leg &l : legs_) n += l.handle != 0;
    return n;
}

int32_t RxCore::leg_of(ConnHandle h) const {
    if (!h) return -1;
    for (size_t i = 0; i < legs_.size(); i++)
        if (legs_[i].handle == h) return static_cast<int32_t>(i);
    return -1;
}

bool RxCore::send_consume(Leg &l) {
    const uint64_t n = l.unconsumed;
    l.unconsumed = 0;
    return send(l, CommandType::CONSUME, n);
}

bool RxCore::send(Leg &l, CommandType t, uint64_t n) {
    if (t != CommandType::CONSUME && l.unconsumed && !send_consume(l)) return false;
    LegCommand c;
    c.type = t;
    c.handle = l.handle;
    c.n = n;
    if (out_.send(l.host, c)) return true;
    internal_failure("the command queue to a worker is full");
    return false;
}

void RxCore::accept(const LegReport &r, uint64_t now) {
    for (uint32_t i = 0; i < legs_.size(); i++) {
        Leg &l = legs_[i];
        if (l.handle) continue;
        l = Leg{};
        l.handle = r.handle;
        l.host = handle_host(r.handle);
        l.ep = r.ep;
        l.window_end = cfg_.tcp.send_buffer; // what an accepted connection starts with
        stats_.accepted++;
        // Also after DONE: a sender whose end acknowledgement was lost with
        // its leg asks again on a new one, and the stripe receiver answers.
        l.closing = state_ == State::FAILED;
        if (l.closing) {
            l.close_deadline = now + cfg_.refuse_linger_us;
            send(l, CommandType::SHUTDOWN);
        } else {
            stripe_.leg_up(i, now);
        }
        return;
    }
    stats_.refused_no_slot++;
    snprintf(leg_msg_, sizeof leg_msg_, "connection refused: all %u legs in use", cfg_.stripe.max_legs);
    Leg tmp;
    tmp.handle = r.handle;
    tmp.host = handle_host(r.handle);
    send(tmp, CommandType::ABORT);
}

void RxCore::feed(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    uint64_t taken = 0;
    while (l.count) {
        Leg::Span &s = l.q[l.head];
        const size_t used = stripe_.leg_input(i, s.p, s.n, now);
        taken += used;
        if (used < s.n) {
            // Back-pressure: the rest stays in the connection, whose
            // advertised window shrinks until output() is drained.
            s.p += used;
            s.n -= static_cast<uint32_t>(used);
            stats_.blocked_reads++;
            break;
        }
        l.head = (l.head + 1) % kMaxSpansInFlight;
        l.count--;
    }
    if (taken) { // may reopen the window: sent by this poll at the latest
        l.unconsumed += taken;
        poll_due_ = true;
    }
}

void RxCore::drop_leg(uint32_t i, uint64_t now, const char *why) {
    Leg &l = legs_[i];
    if (!l.handle) return;
    if (!l.closing) {
        char ep[128];
        detail::format_endpoints(l.ep, ep, sizeof ep);
        snprintf(leg_msg_, sizeof leg_msg_, "leg %u (%s): %s", i, ep, why);
        if (state_ == State::RUNNING) {
            stats_.legs_lost++;
            stats_.watchdog_kills += l.watchdog;
        }
        stripe_.leg_down(i, now); // frees a chunk buffer it was filling
    }
    l.count = 0; // no span of it is read any more
    send(l, l.gone ? CommandType::RELEASE : CommandType::ABORT);
    l = Leg{};
}

void RxCore::handle_leg(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    if (!l.handle) return;
    if (l.ended[0]) {
        feed(i, now);
        if (l.count == 0 || state_ != State::RUNNING) drop_leg(i, now, l.ended);
        return;
    }
    feed(i, now);
    if (l.closing) {
        if (now >= l.close_deadline) drop_leg(i, now, "close timed out");
        return;
    }
    if (l.peer_fin && l.count == 0) {
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
                detail::format_endpoints(l.ep, ep, sizeof ep);
                snprintf(leg_msg_, sizeof leg_msg_, "leg %u (%s): closed by the sender mid-stream", i, ep);
                stats_.legs_lost++;
            }
            stripe_.leg_down(i, now);
        }
        l.closing = true;
        l.close_deadline = now + cfg_.linger_us;
        send(l, CommandType::SHUTDOWN);
    }
}

void RxCore::on_report(const LegReport &r, uint64_t now) {
    if (r.type == ReportType::ACCEPTED) {
        accept(r, now);
        return;
    }
    const int32_t li = leg_of(r.handle);
    if (li < 0) return; // a connection already dropped: the host forgets it by itself
    const uint32_t i = static_cast<uint32_t>(li);
    Leg &l = legs_[i];
    switch (r.type) {
    case ReportType::INPUT:
        if (l.count == kMaxSpansInFlight) {
            internal_failure("a worker reported more input spans than agreed");
            return;
        }
        l.q[(l.head + l.count) % kMaxSpansInFlight] = Leg::Span{r.input.p, r.input.n};
        l.count++;
        handle_leg(i, now);
        break;
    case ReportType::CREDIT:
        l.window_end = std::max(l.window_end, r.credit.window_end);
        break;
    case ReportType::PEER_FIN:
        l.peer_fin = true;
        handle_leg(i, now);
        break;
    case ReportType::ENDED:
    case ReportType::CLOSED: {
        l.gone = true;
        l.watchdog = r.cause == EndCause::WATCHDOG;
        char why[96];
        if (r.type == ReportType::CLOSED)
            snprintf(why, sizeof why, "connection closed");
        else if (r.cause == EndCause::WATCHDOG)
            snprintf(why, sizeof why, "no acknowledgement after RTO expiry: leg declared dead");
        else
            snprintf(why, sizeof why, "connection %s (%s)", r.cause == EndCause::RESET ? "reset" : "ended",
                     tcp::close_reason_name(r.reason));
        if (l.count > 0 && state_ == State::RUNNING && !l.closing) {
            snprintf(l.ended, sizeof l.ended, "%s", why); // drained first, on later polls
            handle_leg(i, now);
            return;
        }
        drop_leg(i, now, why);
        break;
    }
    default:
        break;
    }
}

void RxCore::poll(uint64_t now) {
    poll_due_ = false;
    for (uint32_t i = 0; i < legs_.size(); i++) handle_leg(i, now); // also retries legs blocked by back-pressure
    stripe_.poll(now, *io_); // acks, resend requests, hello replies, the end ack
    for (Leg &l : legs_)
        if (l.dirty) {
            l.dirty = false;
            if (l.handle && !l.gone) send(l, CommandType::FLUSH);
        }
    for (Leg &l : legs_)
        if (l.handle && l.unconsumed) send_consume(l);
    stripe::StripeEvent ev;
    while (stripe_.next_event(ev)) {
        switch (ev.type) {
        case stripe::EventType::CLOSE_LEG: {
            if (ev.leg >= legs_.size() || !legs_[ev.leg].handle) break;
            Leg &l = legs_[ev.leg];
            stats_.legs_closed++;
            snprintf(leg_msg_, sizeof leg_msg_, "%s", stripe_.last_leg_message());
            // FIN after the refusal already written, so the sender reads why.
            l.closing = true;
            l.close_deadline = now + cfg_.refuse_linger_us;
            if (!l.gone) send(l, CommandType::SHUTDOWN);
            break;
        }
        case stripe::EventType::DONE:
        case stripe::EventType::FAILED:
            if (state_ == State::RUNNING) {
                state_ = ev.type == stripe::EventType::DONE ? State::DONE : State::FAILED;
                linger_until_ = now + cfg_.linger_us;
                if (state_ == State::FAILED)
                    for (Leg &l : legs_)
                        if (l.handle && !l.closing) {
                            // Graceful: the end ack with the verdict goes first.
                            l.closing = true;
                            l.close_deadline = linger_until_;
                            if (!l.gone) send(l, CommandType::SHUTDOWN);
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
                if (legs_[i].handle && !legs_[i].closing)
                    drop_leg(i, now, "no FIN after the sender closed its other legs (dead link?)");
        // A leg closed from both sides (its FIN answered by ours: LAST-ACK)
        // waits only for the sender's final ACK. A sender that exits at once
        // can take that ACK with it (a memif client leaving takes its rings),
        // and nothing is left to deliver on it: it keeps the receiver no
        // longer than a straggler would.
        const bool last_acks_expired =
            state_ == State::DONE && sender_closed_ && now >= sender_closed_at_ + cfg_.straggler_us;
        bool open = false;
        for (const Leg &l : legs_)
            if (l.handle && !(last_acks_expired && l.closing && l.peer_fin)) open = true;
        if ((!open && (sender_closed_ || state_ == State::FAILED)) || now >= linger_until_) {
            for (uint32_t i = 0; i < legs_.size(); i++)
                if (legs_[i].handle) drop_leg(i, now, "linger expired");
            finished_ = true;
        }
    }
}

uint64_t RxCore::next_deadline() const {
    if (poll_due_) return 0;
    uint64_t t = UINT64_MAX;
    for (const Leg &l : legs_) {
        if (!l.handle) continue;
        t = std::min(t, l.close_deadline);
    }
    if (state_ != State::RUNNING && !finished_) t = std::min(t, linger_until_);
    if (state_ == State::DONE && sender_closed_ && !finished_)
        for (const Leg &l : legs_)
            if (l.handle && (!l.closing || l.peer_fin)) t = std::min(t, sender_closed_at_ + cfg_.straggler_us);
    return t;
}

} // namespace millipede::session

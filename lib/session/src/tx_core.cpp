// TxCore: stripe sender events become commands to the hosts of the legs;
// host reports become stripe leg_up/leg_down and input. See tx_core.h.
#include "millipede/session/tx_core.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common.h"

namespace millipede::session {

struct TxCore::Leg {
    LegSpec spec;
    ConnHandle handle = 0; // the current connection (0: none)
    uint32_t host = 0;
    tcp::Endpoints ep;
    TxLegState st = TxLegState::IDLE;
    uint64_t written = 0;    // bytes written to this connection
    uint64_t window_end = 0; // may write up to here (CREDIT)
    uint64_t acked = 0;      // TCP-acknowledged payload bytes
    bool dirty = false;      // written since the last FLUSH
    bool peer_fin = false;
    bool closed = false;     // CLOSED or ENDED after the session ended
    uint64_t connecting_since = 0; // when its CONNECT went out
};

// The stripe sender's view of the legs: credit, writes and TCP delivery.
struct TxCore::Io final : stripe::LegIo {
    explicit Io(TxCore &c) : c(c) {}
    size_t writable(uint32_t leg) override {
        const Leg &l = c.legs_[leg];
        if (l.st != TxLegState::ESTABLISHED || l.window_end <= l.written) return 0;
        return static_cast<size_t>(l.window_end - l.written);
    }
    size_t write(uint32_t leg, const uint8_t *p, size_t n) override {
        Leg &l = c.legs_[leg];
        n = std::min(n, writable(leg));
        if (n == 0) return 0;
        LegCommand cmd;
        cmd.handle = l.handle;
        cmd.leg = static_cast<uint16_t>(leg);
        if (n <= kInlineBytes) {
            cmd.type = CommandType::WRITE_INLINE;
            cmd.len = static_cast<uint8_t>(n);
            std::memcpy(cmd.bytes, p, n);
        } else {
            // The stripe sender keeps chunk bytes unchanged until the
            // receiver (or, compat, TCP) acknowledged them, which is after
            // the host ran this command: the host copies them then.
            cmd.type = CommandType::WRITE_REF;
            cmd.ref.p = p;
            cmd.ref.n = static_cast<uint32_t>(n);
            cmd.ref.ref = 0;
            c.last_data_leg_ = static_cast<int32_t>(leg);
        }
        if (!c.send(l, cmd)) return 0;
        l.written += n;
        l.dirty = true;
        return n;
    }
    size_t write_ref(uint32_t leg, const uint8_t *p, size_t n, uint64_t ref) override {
        Leg &l = c.legs_[leg];
        n = std::min(n, writable(leg));
        if (n == 0) return 0;
        LegCommand cmd;
        cmd.type = CommandType::WRITE_REF;
        cmd.handle = l.handle;
        cmd.leg = static_cast<uint16_t>(leg);
        cmd.ref.p = p;
        cmd.ref.n = static_cast<uint32_t>(n);
        cmd.ref.ref = ref;
        if (!c.send(l, cmd)) return 0;
        c.last_data_leg_ = static_cast<int32_t>(leg);
        l.written += n;
        l.dirty = true;
        return n;
    }
    uint64_t delivered(uint32_t leg) override {
        const Leg &l = c.legs_[leg];
        return l.st == TxLegState::ESTABLISHED ? l.acked : 0;
    }
    TxCore &c;
};

namespace {

stripe::SenderConfig sender_config(const TxConfig &cfg, const tcp::Random &rng) {
    if (cfg.legs.empty() || cfg.legs.size() > stripe::kMaxLegs)
        throw std::invalid_argument("tx session: need 1.." + std::to_string(stripe::kMaxLegs) + " legs, got " +
                                    std::to_string(cfg.legs.size()));
    for (size_t i = 0; i < cfg.legs.size(); i++)
        if (cfg.legs[i].remote_port == 0)
            throw std::invalid_argument("tx session: leg " + std::to_string(i) + " has no remote port");
    if (cfg.ephemeral_first == 0 || cfg.ephemeral_last < cfg.ephemeral_first)
        throw std::invalid_argument("tx session: need 0 < ephemeral_first <= ephemeral_last");
    if (!rng) throw std::invalid_argument("tx session: no random source");
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

TxCore::TxCore(const TxConfig &cfg, CommandOut &out, tcp::Random rng)
    : cfg_(cfg), out_(out), rng_(std::move(rng)), stripe_(sender_config(cfg_, rng_)) {
    if (out_.hosts() == 0) throw std::invalid_argument("tx session: no leg host");
    if (cfg_.stripe.session_id == 0) {
        // Advance our own generator past the draws sender_config() made on a
        // copy, so later draws do not repeat the session id's bits.
        rng_();
        rng_();
    }
    legs_.resize(cfg_.legs.size());
    for (size_t i = 0; i < legs_.size(); i++) legs_[i].spec = cfg_.legs[i];
    io_ = std::make_unique<Io>(*this);
    retired_.reserve(2 * stripe::kMaxLegs);
    port_cursor_ = rng_() % (uint32_t(cfg_.ephemeral_last) - cfg_.ephemeral_first + 1);
}

TxCore::~TxCore() = default;

uint32_t TxCore::legs() const { return static_cast<uint32_t>(legs_.size()); }

ConnHandle TxCore::leg_handle(uint32_t leg) const { return leg < legs_.size() ? legs_[leg].handle : 0; }

const tcp::Endpoints *TxCore::leg_endpoints(uint32_t leg) const {
    return leg < legs_.size() && legs_[leg].handle ? &legs_[leg].ep : nullptr;
}

const char *TxCore::message() const { return fail_msg_[0] ? fail_msg_ : stripe_.message(); }

TxLegState TxCore::leg_state(uint32_t leg) const {
    if (leg >= legs_.size() || !legs_[leg].handle) return TxLegState::IDLE;
    const Leg &l = legs_[leg];
    if (l.st == TxLegState::ESTABLISHED && state_ != State::RUNNING) return TxLegState::CLOSING;
    return l.st;
}

void TxCore::internal_failure(const char *what) {
    if (fail_msg_[0]) return;
    snprintf(fail_msg_, sizeof fail_msg_, "internal: %s", what);
    if (state_ == State::RUNNING) {
        state_ = State::FAILED;
        end(0);
    }
}

bool TxCore::send_to(uint32_t host, const LegCommand &c) {
    if (out_.send(host, c)) return true;
    internal_failure("the command queue to a worker is full");
    return false;
}

bool TxCore::send(const Leg &l, const LegCommand &c) { return send_to(l.host, c); }

uint16_t TxCore::next_port(const LegSpec &spec) {
    if (spec.local_port) return spec.local_port;
    const uint32_t range = uint32_t(cfg_.ephemeral_last) - cfg_.ephemeral_first + 1;
    for (uint32_t tries = 0; tries < range; tries++) {
        const uint16_t p = static_cast<uint16_t>(cfg_.ephemeral_first + (port_cursor_++ % range));
        bool used = false;
        for (const Leg &l : legs_)
            if (l.handle && l.ep.local_port == p && l.ep.local_ip == spec.local_ip) used = true;
        // (A retired connection's port comes round again only after the
        // whole range: by then it has long closed.)
        if (!used) return p;
    }
    return cfg_.ephemeral_first; // more legs than ports: cannot happen with <= 64 legs
}

uint32_t TxCore::legs_on_host(uint32_t host) const {
    uint32_t n = 0;
    for (const Leg &l : legs_) n += l.handle && l.host == host;
    return n;
}

int32_t TxCore::leg_of(const LegReport &r) const {
    if (r.leg < legs_.size() && legs_[r.leg].handle == r.handle && r.handle) return r.leg;
    return -1;
}

void TxCore::start_leg(uint32_t i, uint64_t now) {
    Leg &l = legs_[i];
    if (l.handle) give_up(i);
    l.ep = tcp::Endpoints{l.spec.local_ip, l.spec.remote_ip, next_port(l.spec), l.spec.remote_port};
    l.host = out_.pick_host(l.ep) % out_.hosts();
    uint32_t id = next_id_++ & kConnectIdMask; // (never kAcceptedBit: messages.h)
    if (id == 0) id = next_id_++ & kConnectIdMask;
    l.handle = (l.host << kHostShift) | id;
    l.st = TxLegState::CONNECTING;
    l.connecting_since = now;
    l.written = l.window_end = l.acked = 0;
    l.dirty = l.peer_fin = l.closed = false;
    LegCommand c;
    c.type = CommandType::CONNECT;
    c.handle = l.handle;
    c.leg = static_cast<uint16_t>(i);
    c.ep = l.ep;
    stats_.connects++;
    if (!send(l, c)) l.handle = 0;
}

// Gives up leg i's connection. Native: RST (every chunk the receiver holds
// is acknowledged by the stripe layer, nothing is lost). viamillipede: FIN,
// and the host keeps serving it until it closes: what TCP delivered but the
// receiving application has not read yet survives, and the receiver reads
// to a clean end of stream.
void TxCore::give_up(uint32_t i) {
    Leg &l = legs_[i];
    if (!l.handle) return;
    const bool compat = cfg_.stripe.codec == stripe::Codec::VIAMILLIPEDE;
    LegCommand c;
    c.handle = l.handle;
    c.leg = static_cast<uint16_t>(i);
    if (compat && l.st == TxLegState::ESTABLISHED && retired_.size() < retired_.capacity()) {
        c.type = CommandType::RETIRE;
        retired_.push_back(l.handle);
        stats_.retired++;
    } else {
        c.type = CommandType::ABORT;
    }
    send(l, c);
    l.handle = 0;
    l.st = TxLegState::IDLE;
    l.dirty = false;
}

void TxCore::lose_leg(uint32_t i, uint64_t now, bool watchdog, const char *why, uint64_t delivered) {
    Leg &l = legs_[i];
    char msg[sizeof leg_msg_] = "";
    if (l.handle) {
        char ep[128];
        detail::format_endpoints(l.ep, ep, sizeof ep);
        snprintf(msg, sizeof msg, "leg %u (%s): %s", i, ep, why);
    }
    const bool was_up = l.st == TxLegState::ESTABLISHED;
    if (l.handle) give_up(i);
    l.st = TxLegState::IDLE;
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
        if (*msg) std::memcpy(leg_msg_, msg, sizeof msg);
        stats_.legs_lost++;
        stats_.watchdog_kills += watchdog;
        stats_.last_leg_lost_us = now;
    } else {
        if (*msg) std::memcpy(leg_msg_, msg, sizeof msg);
        stats_.connect_failures++;
        stripe_.leg_connect_failed(i, now);
    }
}

void TxCore::on_report(const LegReport &r, uint64_t now) {
    if (r.type == ReportType::CLOSED) {
        auto it = std::find(retired_.begin(), retired_.end(), r.handle);
        if (it != retired_.end()) {
            retired_.erase(it);
            return;
        }
    }
    const int32_t li = leg_of(r);
    if (li < 0) return; // a connection this core has already given up: the host forgets it by itself
    const uint32_t i = static_cast<uint32_t>(li);
    Leg &l = legs_[i];
    switch (r.type) {
    case ReportType::CONNECTED:
        l.st = TxLegState::ESTABLISHED;
        l.acked = r.credit.acked;
        l.window_end = r.credit.window_end;
        if (state_ == State::RUNNING) stripe_.leg_up(i, now);
        if (state_ == State::DONE) {
            // Still connecting when the transfer ended (end() kept it): a
            // FIN now, not a reset to the SYN-ACK.
            LegCommand c;
            c.type = CommandType::SHUTDOWN;
            c.handle = l.handle;
            c.leg = static_cast<uint16_t>(i);
            send(l, c);
            c.type = CommandType::FLUSH;
            send(l, c);
        }
        break;
    case ReportType::CONNECT_FAILED: {
        char why[96];
        if (r.cause == EndCause::RESET)
            snprintf(why, sizeof why, "connection reset (%s)", tcp::close_reason_name(r.reason));
        else if (r.cause == EndCause::NO_ROOM)
            snprintf(why, sizeof why, "no connection slot on its worker");
        else if (r.reason == tcp::CloseReason::SYN_TIMED_OUT)
            snprintf(why, sizeof why, "connect timed out");
        else
            snprintf(why, sizeof why, "connection timed out (%s)", tcp::close_reason_name(r.reason));
        char ep[128];
        detail::format_endpoints(l.ep, ep, sizeof ep);
        snprintf(leg_msg_, sizeof leg_msg_, "leg %u (%s): %s", i, ep, why);
        l.handle = 0; // the host freed it
        l.st = TxLegState::CONNECTING;
        lose_leg(i, now, false, why);
        break;
    }
    case ReportType::INPUT: {
        // Replies, acks and resend requests are tiny; the stripe sender always
        // takes everything (and ignores bytes once the session is over).
        stripe_.leg_input(i, r.input.p, r.input.n, now);
        LegCommand c;
        c.type = CommandType::CONSUME;
        c.handle = l.handle;
        c.leg = static_cast<uint16_t>(i);
        c.n = r.input.n;
        send(l, c);
        break;
    }
    case ReportType::CREDIT:
        l.acked = std::max(l.acked, r.credit.acked);
        l.window_end = std::max(l.window_end, r.credit.window_end);
        break;
    case ReportType::PEER_FIN:
        l.acked = std::max(l.acked, r.credit.acked);
        l.peer_fin = true;
        // (A leg that ended the session in compat mode: its DONE is handled by poll().)
        if (state_ == State::RUNNING && stripe_.state() == stripe::SessionState::RUNNING)
            lose_leg(i, now, false, "the receiver closed the connection mid-stream", l.acked);
        break;
    case ReportType::ENDED: {
        char why[96];
        if (r.cause == EndCause::WATCHDOG)
            snprintf(why, sizeof why, "no acknowledgement after RTO expiry: leg declared dead, chunks re-queued");
        else if (r.cause == EndCause::RESET)
            snprintf(why, sizeof why, "connection reset (%s)", tcp::close_reason_name(r.reason));
        else if (r.cause == EndCause::TIMED_OUT)
            snprintf(why, sizeof why, "connection timed out (%s)", tcp::close_reason_name(r.reason));
        else
            snprintf(why, sizeof why, "connection ended (%s)", tcp::close_reason_name(r.reason));
        // The host keeps nothing of ours: let it go, then count the loss.
        LegCommand c;
        c.type = CommandType::RELEASE;
        c.handle = l.handle;
        c.leg = static_cast<uint16_t>(i);
        send(l, c);
        if (state_ != State::RUNNING) {
            l.closed = true;
            break;
        }
        // What the peer acknowledged up to the end (in the report): a stock
        // receiver's reset after the end header may carry its last ACK.
        l.acked = std::max(l.acked, r.credit.acked);
        const uint64_t delivered = l.acked;
        char ep[128];
        detail::format_endpoints(l.ep, ep, sizeof ep);
        char msg[sizeof leg_msg_];
        snprintf(msg, sizeof msg, "leg %u (%s): %s", i, ep, why);
        l.handle = 0; // (released above: nothing to give up)
        const uint64_t lost_before = stats_.legs_lost + stats_.connect_failures;
        lose_leg(i, now, r.cause == EndCause::WATCHDOG, why, delivered);
        if (stats_.legs_lost + stats_.connect_failures != lost_before) std::memcpy(leg_msg_, msg, sizeof msg);
        break;
    }
    case ReportType::CLOSED: {
        l.closed = true;
        l.acked = std::max(l.acked, r.credit.acked);
        LegCommand c;
        c.type = CommandType::RELEASE;
        c.handle = l.handle;
        c.leg = static_cast<uint16_t>(i);
        send(l, c);
        break;
    }
    case ReportType::ACCEPTED:
        break; // senders accept nothing
    }
}

bool TxCore::break_leg(uint32_t i) {
    if (i >= legs_.size() || !legs_[i].handle || legs_[i].st != TxLegState::ESTABLISHED) return false;
    if (cfg_.stripe.codec == stripe::Codec::VIAMILLIPEDE) return stripe_.break_leg(i);
    LegCommand c;
    c.type = CommandType::BREAK;
    c.handle = legs_[i].handle;
    c.leg = static_cast<uint16_t>(i);
    return send(legs_[i], c);
}

uint64_t TxCore::handshake_deadline(const Leg &l) const { return l.connecting_since + cfg_.tcp.rto_initial_us / 2; }

// RST from a synchronized state, nothing from SYN-SENT (the host's abort);
// the core forgets the connection at once (no RELEASE follows an ABORT).
void TxCore::abort_leg(uint32_t i) {
    Leg &l = legs_[i];
    LegCommand c;
    c.type = CommandType::ABORT;
    c.handle = l.handle;
    c.leg = static_cast<uint16_t>(i);
    send(l, c);
    l.handle = 0;
    l.st = TxLegState::IDLE;
}

void TxCore::end(uint64_t now) {
    for (uint32_t i = 0; i < legs_.size(); i++) {
        Leg &l = legs_[i];
        if (!l.handle) continue;
        LegCommand c;
        c.handle = l.handle;
        c.leg = static_cast<uint16_t>(i);
        if (state_ == State::DONE && l.st == TxLegState::CONNECTING) {
            // Its handshake ends as a peer expects, then a FIN (CONNECTED
            // above); one that has not completed half a SYN timeout after
            // its SYN is dropped silently (poll, handshake_deadline).
        } else if (state_ == State::DONE && l.st == TxLegState::ESTABLISHED) {
            c.type = CommandType::SHUTDOWN; // FIN after everything written
            send(l, c);
            c.type = CommandType::FLUSH;
            send(l, c);
        } else {
            abort_leg(i);
        }
        l.dirty = false;
    }
    linger_until_ = now + cfg_.linger_us;
}

void TxCore::poll(uint64_t now) {
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && state_ == State::RUNNING) {
            stripe_.poll(now, *io_);
            for (uint32_t i = 0; i < legs_.size(); i++) {
                Leg &l = legs_[i];
                if (!l.dirty) continue;
                l.dirty = false;
                if (!l.handle) continue;
                LegCommand c;
                c.type = CommandType::FLUSH;
                c.handle = l.handle;
                c.leg = static_cast<uint16_t>(i);
                send(l, c);
            }
        }
        stripe::StripeEvent ev;
        while (stripe_.next_event(ev)) {
            switch (ev.type) {
            case stripe::EventType::CONNECT_LEG:
                if (state_ == State::RUNNING) start_leg(ev.leg, now);
                break;
            case stripe::EventType::CLOSE_LEG:
                if (ev.leg < legs_.size() && legs_[ev.leg].handle) give_up(ev.leg);
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
        // A leg whose handshake has not completed half a SYN timeout after
        // its SYN will not complete before the SYN is sent again: its SYN-ACK
        // was lost. The transfer no longer needs it, and a receiver that has
        // everything has closed its port by the time that SYN arrives (a RST
        // from it, and this core would linger for nothing). RFC 9293 3.10.5:
        // aborting in SYN-SENT sends nothing.
        for (uint32_t i = 0; i < legs_.size(); i++) {
            const Leg &l = legs_[i];
            if (!l.handle || l.st != TxLegState::CONNECTING || now < handshake_deadline(l)) continue;
            abort_leg(i);
            stats_.connects_abandoned++;
        }
        bool open = false;
        for (Leg &l : legs_) {
            if (!l.handle) continue;
            if (l.closed) {
                // Only with the end acknowledged: a viamillipede receiver
                // (no acknowledgement) may still be draining a leg.
                if (state_ == State::DONE && confirmed() && l.peer_fin && first_closed_at_ == UINT64_MAX)
                    first_closed_at_ = now;
                continue;
            }
            open = true;
        }
        if (!retired_.empty()) open = true;
        const bool stragglers = first_closed_at_ != UINT64_MAX && now >= first_closed_at_ + cfg_.straggler_us;
        if (!open || now >= linger_until_ || stragglers) {
            // viamillipede: no RST even now; a receiver may still be reading
            // what TCP delivered on a leg that never finished closing.
            const bool compat = cfg_.stripe.codec == stripe::Codec::VIAMILLIPEDE;
            if (open && !compat)
                for (uint32_t i = 0; i < legs_.size(); i++)
                    if (legs_[i].handle && !legs_[i].closed) abort_leg(i);
            retired_.clear();
            finished_ = true;
        }
    }
}

uint64_t TxCore::next_deadline() const {
    uint64_t t = UINT64_MAX;
    if (state_ == State::RUNNING)
        t = std::min(t, stripe_.next_wakeup_us());
    else if (!finished_) {
        t = std::min({t, linger_until_, first_closed_at_ == UINT64_MAX ? UINT64_MAX : first_closed_at_ + cfg_.straggler_us});
        for (const Leg &l : legs_)
            if (l.handle && l.st == TxLegState::CONNECTING) t = std::min(t, handshake_deadline(l));
    }
    return t;
}

} // namespace millipede::session

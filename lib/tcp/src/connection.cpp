// TCP-lite connection state machine. Each step cites the RFC section it
// implements; RFC 9293 is the base specification.
#include "millipede/tcp/connection.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "internal.h"
#include "millipede/tcp/seq.h"

namespace millipede::tcp {

namespace {
constexpr uint64_t kNever = UINT64_MAX;
constexpr uint32_t kDupThresh = 3; // RFC 5681 3.2, RFC 6675 2
constexpr uint64_t kClockGranularityUs = 1000; // our TSval ticks in ms (RFC 6298 "G")

const char *const kDropNames[] = {
#define MILLIPEDE_TCP_DROP(sym, name, desc) name,
#include "millipede/tcp/drops.def"
#undef MILLIPEDE_TCP_DROP
};
const char *const kDropDescs[] = {
#define MILLIPEDE_TCP_DROP(sym, name, desc) desc,
#include "millipede/tcp/drops.def"
#undef MILLIPEDE_TCP_DROP
};
const char *const kCloseNames[] = {
#define MILLIPEDE_TCP_CLOSE(sym, name, desc) name,
#include "millipede/tcp/close_reasons.def"
#undef MILLIPEDE_TCP_CLOSE
};
} // namespace

const char *drop_name(Drop d) { return d < Drop::COUNT ? kDropNames[static_cast<size_t>(d)] : "?"; }
const char *drop_description(Drop d) { return d < Drop::COUNT ? kDropDescs[static_cast<size_t>(d)] : "?"; }
const char *close_reason_name(CloseReason r) {
    return r < CloseReason::COUNT ? kCloseNames[static_cast<size_t>(r)] : "?";
}

const char *state_name(State s) {
    switch (s) {
    case State::Closed: return "CLOSED";
    case State::SynSent: return "SYN-SENT";
    case State::SynReceived: return "SYN-RECEIVED";
    case State::Established: return "ESTABLISHED";
    case State::FinWait1: return "FIN-WAIT-1";
    case State::FinWait2: return "FIN-WAIT-2";
    case State::CloseWait: return "CLOSE-WAIT";
    case State::Closing: return "CLOSING";
    case State::LastAck: return "LAST-ACK";
    case State::TimeWait: return "TIME-WAIT";
    }
    return "?";
}

// ---------------------------------------------------------------- set-up

Connection::Connection(const Config &cfg, const Endpoints &ep, SegmentSink sink, Random rng)
    : cfg_(cfg), ep_(ep), sink_(std::move(sink)), rng_(std::move(rng)) {
    init_common();
}

Connection::Connection(const Config &cfg, const PassiveOpen &po, SegmentSink sink, Random rng)
    : cfg_(cfg), ep_(po.ep), sink_(std::move(sink)), rng_(std::move(rng)) {
    init_common();
    // RFC 9293 3.10.7.2: state after our SYN-ACK in answer to the peer's SYN.
    iss_ = po.iss;
    irs_ = po.irs;
    ts_offset_ = po.ts_offset;
    rcv_nxt_ = irs_ + 1;
    rcv_q_.set_base(rcv_nxt_);
    rcv_adv_ = rcv_nxt_ + detail::syn_window(cfg_);
    last_ack_sent_ = rcv_nxt_;
    snd_una_ = iss_;
    snd_nxt_ = snd_max_ = iss_ + 1;
    snd_data_seq_ = iss_ + 1;
    recover_ = iss_;
    negotiate(po.peer_syn, true);
    snd_wnd_ = po.peer_window; // unscaled in a SYN (RFC 7323 2.2)
    max_snd_wnd_ = snd_wnd_;
    snd_wl1_ = irs_;
    snd_wl2_ = iss_;
    if (ts_ok_) ts_recent_ = po.peer_syn.ts_val;
    if (po.syn_ack_sent_us != 0) { // 0: SYN-ACK was retransmitted (Karn)
        rtt_timing_ = true;
        rtt_seq_ = iss_;
        rtt_start_us_ = po.syn_ack_sent_us;
    }
    state_ = State::SynReceived;
}

Connection::~Connection() = default;

void Connection::init_common() {
    if (cfg_.send_buffer == 0 || cfg_.recv_buffer == 0) throw std::invalid_argument("tcp: buffers must be non-empty");
    if (cfg_.mss < 64) throw std::invalid_argument("tcp: mss below 64");
    if (cfg_.rto_min_us == 0 || cfg_.rto_min_us > cfg_.rto_max_us || cfg_.rto_initial_us == 0)
        throw std::invalid_argument("tcp: bad RTO bounds");
    if (!sink_) throw std::invalid_argument("tcp: no segment sink");
    if (!rng_) throw std::invalid_argument("tcp: no random generator");
    rcv_wscale_offer_ = cfg_.window_scale ? detail::wscale_for_buffer(cfg_.recv_buffer) : 0;
    rcv_capacity_ = cfg_.recv_buffer;
    // Slack of 2 scale units: the advertised right edge is rounded up to the
    // window-scale unit so that it never moves left (RFC 9293 3.8.6.2.2), and
    // every byte inside it must have a place in the ring.
    const size_t rcv_arena = rcv_capacity_ + (size_t{2} << rcv_wscale_offer_);
    rcv_q_.allocate(rcv_arena, cfg_.max_extents ? cfg_.max_extents : cfg_.recv_buffer / 256 + 64, cfg_.ref_ops);
    snd_q_.allocate(cfg_.send_buffer, cfg_.send_buffer,
                    cfg_.max_extents ? cfg_.max_extents : cfg_.send_buffer / 256 + 64, cfg_.ref_ops);
    cc_ = make_congestion_control(cfg_.cc);
    cc_->init(cfg_.mss, cfg_.initial_cwnd_segments, 0);
    if (cc_->model_based()) cc_->seed(uint64_t(rng_()) << 32 | rng_());
    // One record per segment in flight: enough for the send ring in
    // segments of 512 bytes on average (tx_records.h: a segment without a
    // record is still recovered, by RFC 6675 and the RTO).
    txr_.allocate(cfg_.send_buffer / 512 + 64);
    min_rtt_.reset(UINT64_MAX, 0);
    rto_us_ = std::clamp(cfg_.rto_initial_us, cfg_.rto_min_us, cfg_.rto_max_us);
}

void Connection::negotiate(const Options &peer, bool) {
    // RFC 9293 3.7.1: send MSS defaults to 536 (IPv4) / 1220 (IPv6) without
    // the option; the effective MSS subtracts the TCP options we always send.
    peer_mss_ = peer.has_mss ? peer.mss : (ep_.remote_ip.is_v6 ? 1220 : 536);
    peer_mss_ = std::max<uint16_t>(peer_mss_, 64);
    // RFC 7323 2.2 / 3.2, RFC 2018 2: an option is used only if both SYNs
    // carried it.
    const bool ws = cfg_.window_scale && peer.has_wscale;
    snd_wscale_ = ws ? std::min<uint8_t>(peer.wscale, 14) : 0; // RFC 7323 2.3
    rcv_wscale_ = ws ? rcv_wscale_offer_ : 0;
    sack_ok_ = cfg_.sack && peer.sack_permitted;
    ts_ok_ = cfg_.timestamps && peer.has_ts;
    omit_checksums_ = cfg_.checksum_trust_use && peer.checksum_trust;
    eff_mss_ = static_cast<uint16_t>(std::min(peer_mss_, cfg_.mss) - (ts_ok_ ? 12 : 0));
    if (cfg_.send_mss_cap && eff_mss_ > cfg_.send_mss_cap) eff_mss_ = cfg_.send_mss_cap;
    cc_->init(eff_mss_, cfg_.initial_cwnd_segments, 0);
}

// ---------------------------------------------------------------- application

bool Connection::connect(uint64_t now) {
    if (state_ != State::Closed || close_reason_ != CloseReason::NONE || iss_ != 0 || snd_max_ != 0) return false;
    // RFC 9293 3.4.1 / RFC 6528: ISN from the injected generator; RFC 7323
    // 5.4: a random timestamp offset per connection.
    iss_ = rng_();
    ts_offset_ = rng_();
    snd_una_ = iss_;
    snd_nxt_ = snd_max_ = iss_ + 1;
    snd_data_seq_ = iss_ + 1;
    recover_ = iss_;
    state_ = State::SynSent;
    rtt_timing_ = true;
    rtt_seq_ = iss_;
    rtt_start_us_ = now;
    send_control(flag::SYN, iss_, now, true);
    arm_rto(now);
    return true;
}

size_t Connection::writable_bytes() const {
    switch (state_) {
    case State::SynSent:
    case State::SynReceived:
    case State::Established:
    case State::CloseWait:
        return fin_queued_ ? 0 : snd_q_.room_for_copy();
    default:
        return 0;
    }
}

size_t Connection::send(std::span<const uint8_t> data, uint64_t now) {
    const size_t n = send_corked(data);
    if (n && (state_ == State::Established || state_ == State::CloseWait)) output(now);
    return n;
}

size_t Connection::send_corked(std::span<const uint8_t> data) {
    const size_t n = std::min(data.size(), writable_bytes());
    if (n == 0) return 0;
    return snd_q_.append_copy(data.first(n));
}

size_t Connection::send_ref(const uint8_t *p, size_t n, BufRef ref) {
    if (!cfg_.ref_ops || ref == 0) return send_corked({p, n});
    switch (state_) {
    case State::SynSent:
    case State::SynReceived:
    case State::Established:
    case State::CloseWait:
        if (fin_queued_) return 0;
        return snd_q_.append_ref(p, n, ref);
    default:
        return 0;
    }
}

void Connection::flush(uint64_t now) {
    if (state_ == State::Established || state_ == State::CloseWait) output(now);
}

size_t Connection::peek(size_t skip, std::span<const uint8_t> *out, size_t max) const {
    return rcv_readable_ > skip ? rcv_q_.peek_from(skip, rcv_nxt_, out, max) : 0;
}

void Connection::peek(std::span<const uint8_t> &first, std::span<const uint8_t> &second) const {
    std::span<const uint8_t> v[2];
    const size_t n = peek(v, 2);
    first = n > 0 ? v[0] : std::span<const uint8_t>{};
    second = n > 1 ? v[1] : std::span<const uint8_t>{};
}

size_t Connection::recv(std::span<uint8_t> out, uint64_t now) {
    size_t copied = 0;
    std::span<const uint8_t> v[8];
    for (;;) {
        const size_t n = peek(v, 8);
        size_t got = 0;
        for (size_t i = 0; i < n && copied + got < out.size(); i++) {
            const size_t k = std::min(v[i].size(), out.size() - copied - got);
            std::memcpy(out.data() + copied + got, v[i].data(), k);
            got += k;
        }
        if (got == 0) break;
        consume(got, now); // frees the space; may send a window update
        copied += got;
    }
    return copied;
}

size_t Connection::consume(size_t n, uint64_t now) {
    n = std::min(n, rcv_readable_);
    if (n == 0) return 0;
    rcv_q_.pop(n);
    rcv_readable_ -= n;
    // RFC 9293 3.8.6.2.2 (receiver SWS avoidance) and 3.8.6.3: tell the peer
    // about freed space once the right edge can move by min(buffer/2, MSS).
    // Only space the window field can express counts (65535 << scale):
    // beyond it the edge cannot move and the ACK would be a duplicate.
    if (state_ == State::Established || state_ == State::FinWait1 || state_ == State::FinWait2) {
        const size_t free = std::min<size_t>(rcv_capacity_ > rcv_readable_ ? rcv_capacity_ - rcv_readable_ : 0,
                                             size_t(65535) << rcv_wscale_);
        const uint32_t edge = rcv_nxt_ + static_cast<uint32_t>(free);
        const uint32_t thresh = static_cast<uint32_t>(std::min<size_t>(rcv_capacity_ / 2, cfg_.mss));
        // Only when the peer's view of the window has fallen to half of the
        // largest we can offer, and the update at least doubles it (Linux's
        // tcp_cleanup_rbuf rule): an application that reads as fast as data
        // arrives otherwise sends a window update for every segment, on top
        // of the RFC 1122 ACK for every second one -- one ACK per segment.
        const uint32_t peer_view = seq_gt(rcv_adv_, rcv_nxt_) ? rcv_adv_ - rcv_nxt_ : 0;
        const size_t max_window = std::min<size_t>(rcv_capacity_, size_t(65535) << rcv_wscale_);
        if (seq_geq(edge, rcv_adv_ + thresh) && 2 * size_t(peer_view) <= max_window && free >= 2 * size_t(peer_view))
            send_ack(now);
    }
    return n;
}

void Connection::shutdown_write(uint64_t now) {
    if (fin_queued_) return;
    switch (state_) {
    case State::SynSent:
    case State::SynReceived:
        fin_queued_ = true; // sent after establishment (RFC 9293 3.10.4)
        return;
    case State::Established:
        fin_queued_ = true;
        state_ = State::FinWait1;
        break;
    case State::CloseWait:
        fin_queued_ = true;
        state_ = State::LastAck;
        break;
    default:
        return;
    }
    output(now);
}

void Connection::abort(uint64_t now) {
    // RFC 9293 3.10.5: RST in synchronized states; none from SYN-SENT. Its
    // SEQ is the highest sequence sent: after an RTO our SND.NXT is rewound
    // to SND.UNA (go-back), which may lie below a peer that got everything
    // and only lost its ACKs; that RST would be out of its window and
    // dropped. At SND.MAX it is exact or in-window (a challenge ACK, which
    // our RST answers exactly once the connection is gone).
    // In CLOSING, LAST-ACK and TIME-WAIT the TCB goes without a RST: the
    // peer closed its side too and has everything we sent but our FIN's
    // (or its final ACK's) fate.
    if (state_ == State::Closed) return;
    const bool both_closed = state_ == State::Closing || state_ == State::LastAck || state_ == State::TimeWait;
    if (state_ != State::SynSent && !both_closed) send_rst(snd_max_, rcv_nxt_, true, now);
    terminate(EventType::Closed, CloseReason::ABORTED);
}

bool Connection::poll_event(Event &ev) {
    if (ev_count_ == 0) return false;
    ev = events_[ev_head_];
    ev_head_ = (ev_head_ + 1) % events_.size();
    ev_count_--;
    return true;
}

void Connection::push_event(EventType type, CloseReason reason) {
    if (ev_count_ == events_.size()) return; // at most 3 events per life; cannot happen
    events_[(ev_head_ + ev_count_) % events_.size()] = Event{type, reason};
    ev_count_++;
}

void Connection::terminate(EventType type, CloseReason reason) {
    if (state_ == State::Closed && close_reason_ != CloseReason::NONE) return;
    state_ = State::Closed;
    close_reason_ = reason;
    snd_q_.clear(); // nothing more will be sent: give referenced memory back now
    t_rto_ = t_persist_ = t_delack_ = t_keepalive_ = t_close_ = t_probe_ = kNever;
    t_rack_ = t_tlp_ = t_pace_ = kNever;
    push_event(type, reason);
}

Stats Connection::stats() const {
    Stats s = stats_;
    s.srtt_us = srtt_us_;
    s.rttvar_us = rttvar_us_;
    s.rto_us = rto_us_;
    s.cwnd = cwnd();
    s.ssthresh = cc_->ssthresh();
    s.peer_rwnd = snd_wnd_;
    s.our_rwnd = static_cast<uint32_t>(rcv_capacity_ > rcv_readable_ ? rcv_capacity_ - rcv_readable_ : 0);
    return s;
}

uint32_t Connection::cwnd() const {
    return (in_recovery_ && !sack_ok_ && !cc_->model_based()) ? recovery_cwnd_ : cc_->cwnd();
}

// ---------------------------------------------------------------- input

void Connection::on_bytes(std::span<const uint8_t> bytes, const IpAddr &src, const IpAddr &dst, uint64_t now) {
    Segment seg;
    switch (parse_segment(bytes, src, dst, seg)) {
    case ParseResult::Ok:
        on_segment(seg, now);
        return;
    case ParseResult::BadChecksum:
        stats_.bad_checksums++;
        count(Drop::BAD_CHECKSUM);
        return;
    case ParseResult::Truncated:
        count(Drop::TRUNCATED);
        return;
    case ParseResult::BadDataOffset:
        count(Drop::BAD_DATA_OFFSET);
        return;
    }
}

void Connection::on_segment(const Segment &seg, uint64_t now) {
    stats_.segments_in++;
    if (seg.dst_port != ep_.local_port || seg.src_port != ep_.remote_port) {
        count(Drop::WRONG_PORT);
        return;
    }
    switch (state_) {
    case State::Closed:
        // RFC 9293 3.10.7.1: CLOSED answers everything but RST with RST.
        count(Drop::BAD_STATE);
        if (!seg.has(flag::RST)) {
            if (seg.has(flag::ACK)) send_rst(seg.ack, 0, false, now);
            else send_rst(0, seg.seq + seg.seq_len(), true, now);
        }
        return;
    case State::SynSent:
        input_syn_sent(seg, now);
        break;
    default:
        input_synchronized(seg, now);
        break;
    }
    if (state_ != State::Closed) output(now);
}

void Connection::input_syn_sent(const Segment &seg, uint64_t now) {
    // RFC 9293 3.10.7.3, first: the ACK must cover our SYN and nothing more.
    if (seg.has(flag::ACK) && (seq_leq(seg.ack, iss_) || seq_gt(seg.ack, snd_max_))) {
        count(Drop::ACK_UNSENT);
        if (!seg.has(flag::RST)) send_rst(seg.ack, 0, false, now);
        return;
    }
    // Second: RST is acceptable only with an acceptable ACK (RFC 5961 3.2
    // leaves SYN-SENT to RFC 9293).
    if (seg.has(flag::RST)) {
        if (seg.has(flag::ACK)) terminate(EventType::Reset, CloseReason::REFUSED);
        else count(Drop::RST_OUT_OF_WINDOW);
        return;
    }
    // Fourth: SYN. Without ACK this would be a simultaneous open, which
    // TCP-lite does not implement.
    if (!seg.has(flag::SYN) || !seg.has(flag::ACK)) {
        count(Drop::BAD_STATE);
        return;
    }
    irs_ = seg.seq;
    rcv_nxt_ = irs_ + 1;
    rcv_q_.set_base(rcv_nxt_);
    rcv_adv_ = rcv_nxt_ + detail::syn_window(cfg_);
    snd_una_ = seg.ack;
    negotiate(seg.opt, true);
    snd_wnd_ = seg.window; // RFC 7323 2.2: never scaled in a SYN
    max_snd_wnd_ = snd_wnd_;
    snd_wl1_ = seg.seq;
    snd_wl2_ = seg.ack;
    if (ts_ok_) {
        ts_recent_ = seg.opt.ts_val;
        if (seg.opt.ts_ecr != 0) rtt_sample(uint64_t(ts_now(now) - seg.opt.ts_ecr) * 1000);
    } else if (rtt_timing_) {
        rtt_sample(now - rtt_start_us_);
    }
    rtt_timing_ = false;
    if (syn_retransmitted_ && !have_rtt_) rto_us_ = std::clamp<uint64_t>(3'000'000, cfg_.rto_min_us, cfg_.rto_max_us); // RFC 6298 5.7
    rto_retries_ = 0;
    t_rto_ = kNever;
    state_ = State::Established;
    push_event(EventType::Established);
    if (cfg_.keepalive) t_keepalive_ = now + cfg_.keepalive_idle_us;
    if (fin_queued_) state_ = State::FinWait1;
    ack_now_ = true; // RFC 9293 3.10.7.3: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
    // Data or FIN in the SYN-ACK: continue at the sixth step.
    if (seg.payload_len() || seg.has(flag::FIN)) {
        uint32_t len = seg.payload_len();
        const uint32_t wnd = rcv_adv_ - rcv_nxt_;
        bool fin = seg.has(flag::FIN);
        if (len > wnd) {
            len = wnd;
            fin = false;
        }
        process_data(seg, rcv_nxt_, len, fin, now);
    }
}

bool Connection::acceptable(uint32_t seq, uint32_t len) const {
    // RFC 9293 3.10.7.4, the four cases of the acceptability test.
    const uint32_t wnd = seq_gt(rcv_adv_, rcv_nxt_) ? rcv_adv_ - rcv_nxt_ : 0;
    if (len == 0) {
        if (wnd == 0) return seq == rcv_nxt_;
        return seq_in(seq, rcv_nxt_, rcv_nxt_ + wnd);
    }
    if (wnd == 0) return false;
    return seq_in(seq, rcv_nxt_, rcv_nxt_ + wnd) || seq_in(seq + len - 1, rcv_nxt_, rcv_nxt_ + wnd);
}

void Connection::send_challenge_ack(uint64_t now) {
    // RFC 5961 7: rate-limit challenge ACKs per connection.
    if (cfg_.challenge_ack_limit) {
        if (now - challenge_window_start_ >= 1'000'000) {
            challenge_window_start_ = now;
            challenge_in_window_ = 0;
        }
        if (++challenge_in_window_ > cfg_.challenge_ack_limit) return;
    }
    stats_.challenge_acks++;
    send_ack(now);
}

void Connection::input_synchronized(const Segment &seg, uint64_t now) {
    const uint32_t wnd = seq_gt(rcv_adv_, rcv_nxt_) ? rcv_adv_ - rcv_nxt_ : 0;

    // RFC 5961 3.2 (RFC 9293 3.10.7.4 second): RST exactly at RCV.NXT resets;
    // in window but not exact draws a challenge ACK; outside is ignored.
    if (seg.has(flag::RST)) {
        if (seg.seq == rcv_nxt_) {
            if (state_ == State::TimeWait) return; // RFC 1337: no TIME-WAIT assassination
            terminate(EventType::Reset, CloseReason::RESET_BY_PEER);
        } else if (seq_in(seg.seq, rcv_nxt_, rcv_nxt_ + std::max<uint32_t>(wnd, 1))) {
            count(Drop::RST_NOT_EXACT);
            send_challenge_ack(now);
        } else {
            count(Drop::RST_OUT_OF_WINDOW);
        }
        return;
    }
    // RFC 5961 4.2 (RFC 9293 3.10.7.4 fourth): any SYN in a synchronized state
    // draws a challenge ACK, whatever its sequence number.
    if (seg.has(flag::SYN)) {
        count(Drop::SYN_IN_WINDOW);
        send_challenge_ack(now);
        return;
    }
    // RFC 7323 5.3 R1 (PAWS): a timestamp older than TS.Recent is a stale
    // duplicate; acknowledge and drop. (Segments without TSopt are accepted,
    // as Linux does, though 3.2 says SHOULD drop.)
    if (ts_ok_ && seg.opt.has_ts && seq_lt(seg.opt.ts_val, ts_recent_)) {
        count(Drop::PAWS);
        stats_.duplicate_segments++;
        send_ack(now);
        return;
    }
    // RFC 9293 3.10.7.4 first: acceptability.
    const uint32_t len = seg.seq_len();
    uint32_t dlen = seg.payload_len(); // the payload starts at seg.seq (no SYN here)
    bool fin = seg.has(flag::FIN);
    uint32_t seq = seg.seq;
    if (!acceptable(seq, len)) {
        if (wnd == 0 && seq == rcv_nxt_) {
            // "Special allowance should be made to accept valid ACKs": a
            // zero-window probe still carries the peer's ACK and window.
            dlen = 0;
            fin = false;
            ack_now_ = true;
        } else {
            if (len > 0 && seq_leq(seq + len, rcv_nxt_)) stats_.duplicate_segments++;
            count(Drop::NOT_ACCEPTABLE);
            if (state_ == State::TimeWait && fin) t_close_ = now + cfg_.time_wait_us; // RFC 9293 3.10.7.4 eighth
            send_ack(now);
            return;
        }
    }
    // Any acceptable segment proves the peer alive (RFC 1122 4.2.3.6).
    keepalive_sent_ = 0;
    if (cfg_.keepalive && t_keepalive_ != kNever) t_keepalive_ = now + cfg_.keepalive_idle_us;
    if (state_ == State::FinWait2 && cfg_.fin_wait2_timeout_us) t_close_ = now + cfg_.fin_wait2_timeout_us;

    // Trim to the window (RFC 9293 3.10.7.4 "segments ... trimmed").
    if (seq_lt(seq, rcv_nxt_)) {
        const uint32_t d = rcv_nxt_ - seq;
        if (d > dlen) fin = false; // the FIN too is old (already received)
        dlen -= std::min(d, dlen);
        seq = rcv_nxt_;
    }
    if (dlen && seq_gt(seq + dlen, rcv_adv_)) {
        const uint32_t over = seq + dlen - rcv_adv_;
        dlen -= std::min(over, dlen);
        fin = false;
    }

    // RFC 9293 3.10.7.4 fifth: the ACK field.
    if (!seg.has(flag::ACK)) {
        count(Drop::NO_ACK);
        return;
    }
    if (state_ == State::SynReceived) {
        if (!(seq_lt(snd_una_, seg.ack) && seq_leq(seg.ack, snd_max_))) {
            count(Drop::ACK_UNSENT);
            send_rst(seg.ack, 0, false, now);
            return;
        }
        state_ = State::Established;
        push_event(EventType::Established);
        if (cfg_.keepalive) t_keepalive_ = now + cfg_.keepalive_idle_us;
        if (fin_queued_) state_ = State::FinWait1;
        // SND.WND from this segment, now scaled (RFC 7323 2.2).
        snd_wnd_ = uint32_t(seg.window) << snd_wscale_;
        max_snd_wnd_ = std::max(max_snd_wnd_, snd_wnd_);
        snd_wl1_ = seg.seq;
        snd_wl2_ = seg.ack;
    }
    if (!process_ack(seg, now)) return;
    if (state_ == State::Closed) return;

    // RFC 7323 4.3: TS.Recent follows the segment that occupies
    // Last.ACK.sent.
    if (ts_ok_ && seg.opt.has_ts && seq_geq(seg.opt.ts_val, ts_recent_) && seq_leq(seg.seq, last_ack_sent_))
        ts_recent_ = seg.opt.ts_val;

    // Seventh/eighth: text and FIN, only while the peer may still send.
    switch (state_) {
    case State::Established:
    case State::FinWait1:
    case State::FinWait2:
        process_data(seg, seq, dlen, fin, now);
        break;
    case State::TimeWait:
        if (fin) { // retransmitted FIN: re-ACK and restart 2 MSL
            ack_now_ = true;
            t_close_ = now + cfg_.time_wait_us;
        }
        break;
    default:
        break;
    }
}

bool Connection::update_scoreboard_blocks(const Segment &seg) {
    // RFC 6675 4 "Update()": record SACKed ranges above SND.UNA (D-SACK
    // blocks at or below SND.UNA, RFC 2883, are ignored).
    bool changed = false;
    for (size_t i = 0; i < seg.opt.sack_count; ++i) {
        uint32_t l = seg.opt.sack[i].left, r = seg.opt.sack[i].right;
        if (!seq_lt(l, r) || !seq_gt(r, snd_una_) || seq_gt(r, snd_max_)) continue;
        if (seq_lt(l, snd_una_)) l = snd_una_;
        // Merge into the sorted interval list.
        size_t pos = 0;
        while (pos < sb_count_ && seq_lt(sb_[pos].right, l)) ++pos;
        if (pos < sb_count_ && seq_leq(sb_[pos].left, r)) {
            // Overlaps or touches sb_[pos]: extend and absorb followers.
            const Interval before = sb_[pos];
            sb_[pos].left = seq_min(sb_[pos].left, l);
            sb_[pos].right = seq_max(sb_[pos].right, r);
            size_t j = pos + 1;
            while (j < sb_count_ && seq_leq(sb_[j].left, sb_[pos].right)) {
                sb_[pos].right = seq_max(sb_[pos].right, sb_[j].right);
                ++j;
            }
            const size_t removed = j - pos - 1;
            for (size_t k = pos + 1; k + removed < sb_count_; ++k) sb_[k] = sb_[k + removed];
            sb_count_ -= removed;
            if (before.left != sb_[pos].left || before.right != sb_[pos].right) changed = true;
        } else {
            if (sb_count_ == sb_.size()) continue; // full: forget this block, data will be resent
            for (size_t k = sb_count_; k > pos; --k) sb_[k] = sb_[k - 1];
            sb_[pos] = {l, r};
            sb_count_++;
            changed = true;
        }
    }
    return changed;
}

uint32_t Connection::sacked_above(uint32_t seq) const {
    uint32_t n = 0;
    for (size_t i = 0; i < sb_count_; ++i) {
        if (seq_geq(sb_[i].left, seq)) n += sb_[i].right - sb_[i].left;
        else if (seq_gt(sb_[i].right, seq)) n += sb_[i].right - seq;
    }
    return n;
}

bool Connection::is_lost(uint32_t seq) const {
    // RFC 6675 4 IsLost(): DupThresh discontiguous SACKed blocks above, or
    // more than (DupThresh - 1) * SMSS SACKed bytes above.
    size_t blocks = 0;
    for (size_t i = 0; i < sb_count_; ++i)
        if (seq_gt(sb_[i].left, seq)) ++blocks;
    if (blocks >= kDupThresh || sacked_above(seq) > (kDupThresh - 1) * eff_mss_) return true;
    // RFC 8985 6.2: or RACK marked it lost (and it was not re-sent since).
    if (rack_on()) {
        const TxRecord *r = txr_.find(seq);
        return r && r->lost;
    }
    return false;
}

bool Connection::is_sacked(uint32_t seq, uint32_t *run_end) const {
    for (size_t i = 0; i < sb_count_; ++i)
        if (seq_in(seq, sb_[i].left, sb_[i].right)) {
            if (run_end) *run_end = sb_[i].right;
            return true;
        }
    return false;
}

uint32_t Connection::sacked_in(uint32_t left, uint32_t right) const {
    uint32_t n = 0;
    for (size_t i = 0; i < sb_count_; ++i) {
        const uint32_t a = seq_max(left, sb_[i].left), b = seq_min(right, sb_[i].right);
        if (seq_lt(a, b)) n += b - a;
    }
    return n;
}

void Connection::note_retransmit(uint32_t left, uint32_t right) {
    if (!seq_lt(left, right)) return;
    if (rtx_count_ && !rtx_[rtx_count_ - 1].lost && rtx_[rtx_count_ - 1].right == left) {
        rtx_[rtx_count_ - 1].right = right;
        rtx_[rtx_count_ - 1].mark = snd_max_; // the later (more conservative) mark
        return;
    }
    if (rtx_count_ == rtx_.size()) return; // not watched: an RTO recovers it
    rtx_[rtx_count_++] = RtxRange{left, right, snd_max_, false};
}

void Connection::detect_lost_retransmits() {
    // Lost retransmissions (RFC 6675 cannot see them: its NextSeg never goes
    // below HighRxt, so each one used to cost an RTO). RFC 8985 2 / 6.2: a
    // segment is lost when a segment sent after it has been delivered and
    // the reordering allowance has passed. Here "sent after" is "above SND.MAX
    // at the retransmission" and the allowance is RFC 6675's IsLost() margin:
    // more than (DupThresh - 1) * SMSS such bytes SACKed while the range is
    // still a hole. With RACK on, RACK does this itself on send times.
    if (rack_on()) {
        rtx_count_ = 0;
        return;
    }
    size_t keep = 0;
    for (size_t i = 0; i < rtx_count_; ++i) {
        RtxRange r = rtx_[i];
        if (!seq_gt(r.right, snd_una_)) continue; // cumulatively acknowledged
        if (seq_lt(r.left, snd_una_)) r.left = snd_una_;
        if (sacked_in(r.left, r.right) == r.right - r.left) continue; // delivered
        if (!r.lost && sacked_above(r.mark) > (kDupThresh - 1) * eff_mss_) {
            r.lost = true;
            stats_.lost_retransmits++;
        }
        rtx_[keep++] = r;
    }
    rtx_count_ = keep;
}

bool Connection::resend_lost_retransmit(uint64_t now) {
    // Re-send the lowest retransmitted range found lost (below HighRxt, which
    // stays put: RFC 6675 C.3 concerns first retransmissions).
    for (;;) {
        size_t best = rtx_count_;
        for (size_t i = 0; i < rtx_count_; ++i)
            if (rtx_[i].lost && (best == rtx_count_ || seq_lt(rtx_[i].left, rtx_[best].left))) best = i;
        if (best == rtx_count_) return false;
        RtxRange &r = rtx_[best];
        uint32_t a = seq_max(r.left, snd_una_), run_end = 0;
        while (seq_lt(a, r.right) && is_sacked(a, &run_end)) a = run_end;
        uint32_t b = r.right;
        for (size_t i = 0; i < sb_count_; ++i)
            if (seq_gt(sb_[i].left, a)) b = seq_min(b, sb_[i].left);
        const uint32_t used = seq_lt(a, b) ? send_range(a, b, now, Tx::Fast) : 0;
        if (!used) { // nothing left to send in it
            rtx_[best] = rtx_[--rtx_count_];
            continue;
        }
        if (seq_geq(a + used, r.right)) {
            r.left = a;
            r.mark = snd_max_;
            r.lost = false;
        } else if (rtx_count_ < rtx_.size()) {
            r.left = a + used; // the rest stays lost
            rtx_[rtx_count_++] = RtxRange{a, a + used, snd_max_, false};
        } else {
            r.mark = snd_max_; // no room to split: watch the whole range again
            r.lost = false;
        }
        return true;
    }
}

uint32_t Connection::pipe() const {
    if (rack_on()) {
        // RFC 8985: outstanding minus SACKed minus lost-and-not-yet-re-sent
        // (a re-sent segment is in flight once).
        const uint32_t out = snd_max_ - snd_una_;
        const uint32_t gone = txr_.sacked_bytes() + txr_.lost_bytes();
        return out > gone ? out - gone : 0;
    }
    // RFC 6675 4 SetPipe(): every unSACKed octet not deemed lost counts once,
    // and once more if it was retransmitted (below HighRxt).
    uint32_t p = 0;
    uint32_t cursor = snd_una_;
    auto hole = [&](uint32_t a, uint32_t b) {
        if (!seq_lt(a, b)) return;
        if (!is_lost(a)) p += b - a;
        if (in_recovery_ && seq_lt(a, high_rxt_)) p += seq_min(b, high_rxt_) - a;
    };
    for (size_t i = 0; i < sb_count_; ++i) {
        hole(cursor, sb_[i].left);
        cursor = seq_max(cursor, sb_[i].right);
    }
    hole(cursor, snd_max_);
    // A retransmission found lost is no longer in the network.
    for (size_t i = 0; i < rtx_count_; ++i) {
        if (!rtx_[i].lost || !in_recovery_) continue;
        const uint32_t a = seq_max(rtx_[i].left, snd_una_), b = seq_min(rtx_[i].right, high_rxt_);
        if (!seq_lt(a, b)) continue;
        const uint32_t gone = (b - a) - sacked_in(a, b);
        p = p > gone ? p - gone : 0;
    }
    return p;
}

void Connection::rtt_sample(uint64_t r) {
    // RFC 6298 2.2 / 2.3 with alpha = 1/8, beta = 1/4, K = 4.
    if (!have_rtt_) {
        srtt_us_ = r;
        rttvar_us_ = r / 2;
        have_rtt_ = true;
    } else {
        const uint64_t diff = srtt_us_ > r ? srtt_us_ - r : r - srtt_us_;
        rttvar_us_ = (3 * rttvar_us_ + diff) / 4;
        srtt_us_ = (7 * srtt_us_ + r) / 8;
    }
    // The floor applies to the variance term, as Linux's (tcp_set_rto():
    // RTO >= SRTT + rto_min), not to the sum: on a long path whose queue
    // keeps RTTVAR small, SRTT + 4 RTTVAR clamped to a floor below the
    // next RTT fires during an ordinary fast recovery.
    rto_us_ = std::min(srtt_us_ + std::max({kClockGranularityUs, 4 * rttvar_us_, cfg_.rto_min_us}), cfg_.rto_max_us);
}

bool Connection::process_ack(const Segment &seg, uint64_t now) {
    const uint32_t ack = seg.ack;
    // RFC 9293 3.10.7.4 fifth: an ACK for something not yet sent is answered
    // with an ACK and dropped.
    if (seq_gt(ack, snd_max_)) {
        count(Drop::ACK_UNSENT);
        send_ack(now);
        return false;
    }
    // RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
    if (seq_lt(ack, snd_una_ - max_snd_wnd_)) {
        count(Drop::ACK_TOO_OLD);
        send_challenge_ack(now);
        return false;
    }
    persist_unanswered_ = 0;
    bool new_sack = false;
    if (sack_ok_ && seg.opt.sack_count) new_sack = update_scoreboard_blocks(seg);

    const uint32_t scaled_wnd = uint32_t(seg.window) << snd_wscale_;
    // RFC 5681 2 "duplicate acknowledgment" (with SACK: new SACK info,
    // RFC 6675 2).
    const bool dup = ack == snd_una_ && snd_max_ != snd_una_ && seg.payload_len() == 0 && !seg.has(flag::SYN) &&
                     !seg.has(flag::FIN) && ((sack_ok_ && new_sack) || scaled_wnd == snd_wnd_);
    if (seq_gt(ack, snd_una_)) {
        on_new_ack(ack, seg, now);
        if (state_ == State::Closed) return false;
        if (in_recovery_ && sack_ok_) detect_lost_retransmits();
    }
    // RACK first (RFC 8985 6.2: time-based marks, recovery on a loss it
    // finds), then the DupThresh rule for what it has not marked.
    rack_and_rate(seg, now);
    if (dup) on_dup_ack(now);
    if (in_recovery_ && sack_ok_ && new_sack) detect_lost_retransmits();
    // Rescue probe (send_rescue()): PTO = 2 SRTT from the latest ACK, at
    // least 2 clock ticks; 1 s without an RTT sample (RFC 8985 7.2). Like a
    // TLP probe it may exceed cwnd by one segment.
    if (in_recovery_ && sack_ok_ && !rescue_used_)
        t_probe_ = now + (have_rtt_ ? std::max<uint64_t>(2 * srtt_us_, 2 * kClockGranularityUs) : 1'000'000);
    else
        t_probe_ = kNever;
    // RFC 9293 3.10.7.4: window update guarded by SND.WL1 / SND.WL2.
    if (seq_lt(snd_wl1_, seg.seq) || (snd_wl1_ == seg.seq && seq_leq(snd_wl2_, ack))) {
        snd_wnd_ = scaled_wnd;
        snd_wl1_ = seg.seq;
        snd_wl2_ = ack;
        max_snd_wnd_ = std::max(max_snd_wnd_, snd_wnd_);
    }
    if (in_persist_ && snd_wnd_ > 0) {
        // The window opened: leave persist (RFC 9293 3.8.6.1).
        in_persist_ = false;
        persist_backoff_ = 0;
        t_persist_ = kNever;
    }
    return true;
}

void Connection::on_new_ack(uint32_t ack, const Segment &seg, uint64_t now) {
    const uint32_t flight_before = snd_max_ - snd_una_;
    const bool fin_was_sent = fin_sent();
    const uint32_t data_end = data_end_seq();
    // Free acknowledged bytes from the send ring.
    uint32_t acked_bytes = 0;
    const uint32_t new_start = seq_min(ack, data_end);
    if (seq_gt(new_start, snd_data_seq_)) {
        acked_bytes = new_start - snd_data_seq_;
        snd_q_.pop(acked_bytes);
        snd_data_seq_ = new_start;
        stats_.bytes_acked += acked_bytes;
    }
    const bool fin_ack = fin_was_sent && seq_gt(ack, data_end);
    snd_una_ = ack;
    if (seq_lt(snd_nxt_, snd_una_)) snd_nxt_ = snd_una_;
    rto_retries_ = 0;
    // Drop scoreboard entries now below SND.UNA.
    size_t keep = 0;
    for (size_t i = 0; i < sb_count_; ++i) {
        if (seq_leq(sb_[i].right, snd_una_)) continue;
        Interval iv = sb_[i];
        if (seq_lt(iv.left, snd_una_)) iv.left = snd_una_;
        sb_[keep++] = iv;
    }
    sb_count_ = keep;

    // RTT: RFC 7323 4.1 (TSecr of an ACK that advances SND.UNA) or RFC 6298
    // with Karn's rule (timed segment never retransmitted).
    uint64_t rtt = 0;
    if (ts_ok_ && seg.opt.has_ts && seg.opt.ts_ecr != 0) {
        const int32_t r_ms = static_cast<int32_t>(ts_now(now) - seg.opt.ts_ecr);
        if (r_ms >= 0) {
            rtt = uint64_t(r_ms) * 1000;
            rtt_sample(rtt);
        }
    } else if (rtt_timing_ && seq_gt(ack, rtt_seq_)) {
        rtt = now - rtt_start_us_;
        rtt_sample(rtt);
        rtt_timing_ = false;
    }
    if (rtt == 0) rtt = srtt_us_;

    if (in_recovery_) {
        if (seq_geq(ack, recover_)) {
            // Full ACK: RFC 6582 3.2 step 3 / RFC 6675 5 (RecoveryPoint).
            in_recovery_ = false;
            dupacks_ = 0;
            rtx_count_ = 0;
            txr_.on_recovery_end();
            cc_->on_recovery_exit(now);
        } else if (!sack_ok_) {
            // Partial ACK, RFC 6582 3.2 step 4: retransmit the first
            // unacknowledged segment, deflate by the amount acked, add back
            // one SMSS if that was at least one SMSS.
            const uint32_t acked_space = flight_before - (snd_max_ - snd_una_);
            recovery_cwnd_ = recovery_cwnd_ > acked_space ? recovery_cwnd_ - acked_space : 0;
            if (acked_space >= eff_mss_) recovery_cwnd_ += eff_mss_;
            recovery_cwnd_ = std::max<uint32_t>(recovery_cwnd_, eff_mss_);
            send_range(snd_una_, snd_max_, now, Tx::Fast);
        } else {
            // SACK recovery: retransmissions continue from HighRxt.
            high_rxt_ = seq_max(high_rxt_, snd_una_);
        }
    } else {
        dupacks_ = 0;
        if (acked_bytes && !cc_->model_based()) {
            if (cwnd_may_grow()) cc_->on_ack(acked_bytes, flight_before, rtt, now);
            else stats_.cwnd_growth_held++;
        }
    }

    // RFC 6298 5.2 / 5.3: stop the timer when all is acknowledged, else
    // restart it.
    if (snd_una_ == snd_max_) t_rto_ = kNever;
    else if (!in_persist_) arm_rto(now);
    // RFC 8985 7.4: the probe's episode ends once it is acknowledged;
    // 7.2: an ACK of new data restarts the probe timer.
    if (tlp_outstanding_ && seq_geq(ack, tlp_end_seq_)) tlp_outstanding_ = false;
    arm_tlp(now);

    if (fin_ack) fin_acked(now);
}

void Connection::fin_acked(uint64_t now) {
    // RFC 9293 3.10.7.4 fifth, state-specific ACK processing.
    switch (state_) {
    case State::FinWait1:
        state_ = State::FinWait2;
        if (cfg_.fin_wait2_timeout_us) t_close_ = now + cfg_.fin_wait2_timeout_us;
        break;
    case State::Closing:
        enter_time_wait(now);
        break;
    case State::LastAck:
        terminate(EventType::Closed, CloseReason::NORMAL);
        break;
    default:
        break;
    }
}

void Connection::on_dup_ack(uint64_t now) {
    dupacks_++;
    if (in_recovery_) {
        // RFC 5681 3.2 step 4 / RFC 6582: inflate by one SMSS per dup ACK.
        if (!sack_ok_) recovery_cwnd_ += eff_mss_;
        return;
    }
    const bool trigger = dupacks_ >= kDupThresh || (sack_ok_ && is_lost(snd_una_));
    if (trigger) enter_recovery(now, true);
}

void Connection::enter_recovery(uint64_t now, bool retransmit) {
    // RFC 6582 3.2 step 2: no new recovery unless the ACK covers "recover".
    if (in_recovery_ || !seq_geq(snd_una_, recover_)) return;
    in_recovery_ = true;
    t_tlp_ = kNever; // RFC 8985 7.2: no probes during recovery
    recover_ = snd_max_;
    stats_.fast_recoveries++;
    rtt_timing_ = false; // Karn
    cc_->on_congestion_event(snd_max_ - snd_una_, now);
    if (!sack_ok_) {
        // RFC 5681 3.2 steps 2-3 / RFC 6582: retransmit, cwnd = ssthresh + 3 SMSS.
        recovery_cwnd_ = cc_->ssthresh() + kDupThresh * eff_mss_;
        send_range(snd_una_, snd_max_, now, Tx::Fast);
    } else {
        // RFC 6675 5 step 4: RecoveryPoint = HighData, retransmit the first
        // segment presumed lost, then continue with NextSeg() in output().
        high_rxt_ = snd_una_;
        rtx_count_ = 0;
        rescue_used_ = false;
        if (!retransmit) {
            // RACK found the loss: re-send its first lost segment now, as
            // fast retransmit does (RFC 6675 5 step 4 is not bound by
            // cwnd); output() continues with NextSeg().
            resend_first_lost(now);
            return;
        }
        uint32_t limit = snd_max_;
        if (sb_count_) limit = seq_min(limit, sb_[0].left);
        const uint32_t used = send_range(snd_una_, limit, now, Tx::Fast);
        high_rxt_ = snd_una_ + used;
        note_retransmit(snd_una_, high_rxt_);
    }
}

namespace {

// The pieces of the segment's payload covering [seq, seq + len); the
// payload starts at `start`. Returns the number of pieces written.
size_t payload_pieces(const Segment &seg, uint32_t start, uint32_t seq, uint32_t len, Piece *out, size_t max) {
    size_t n = 0;
    uint32_t skip = seq - start;
    auto take = [&](const uint8_t *d, uint32_t l, BufRef ref) {
        if (len == 0 || n == max) return;
        if (skip >= l) {
            skip -= l;
            return;
        }
        const uint32_t k = std::min(l - skip, len);
        out[n++] = Piece{d + skip, k, ref};
        len -= k;
        skip = 0;
    };
    take(seg.payload.data(), static_cast<uint32_t>(seg.payload.size()), 0);
    take(seg.payload2.data(), static_cast<uint32_t>(seg.payload2.size()), 0);
    for (size_t i = 0; i < seg.npieces; i++) take(seg.pieces[i].data, seg.pieces[i].len, seg.pieces[i].ref);
    return n;
}

} // namespace

void Connection::process_data(const Segment &seg, uint32_t seq, uint32_t len, bool fin, uint64_t now) {
    if (len == 0 && !fin) return;
    if (peer_fin_) return; // nothing after the FIN
    // Where this segment's payload begins (after the SYN in a SYN-ACK).
    const uint32_t start = seg.seq + (seg.has(flag::SYN) ? 1 : 0);
    Piece pieces[Connection::kMaxPieces + 2];
    const size_t np = len ? payload_pieces(seg, start, seq, len, pieces, Connection::kMaxPieces + 2) : 0;
    if (seq == rcv_nxt_) {
        // In order: append, then absorb out-of-order intervals that are now
        // contiguous (RFC 9293 3.10.7.4 seventh).
        if (len && !rcv_q_.insert(seq, pieces, np)) {
            count(Drop::OOO_NO_SPACE); // no room to hold it: the peer retransmits
            ack_now_ = true;
            return;
        }
        rcv_readable_ += len;
        rcv_nxt_ += len;
        stats_.bytes_received += len;
        const bool had_ooo = ooo_count_ > 0;
        while (ooo_count_ && seq_leq(ooo_[0].left, rcv_nxt_)) {
            if (seq_gt(ooo_[0].right, rcv_nxt_)) {
                const uint32_t d = ooo_[0].right - rcv_nxt_;
                rcv_readable_ += d;
                stats_.bytes_received += d;
                rcv_nxt_ = ooo_[0].right;
            }
            for (size_t k = 1; k < ooo_count_; ++k) ooo_[k - 1] = ooo_[k];
            ooo_count_--;
        }
        if (had_ooo) ack_now_ = true; // RFC 5681 4.2: ACK at once when a gap fills
        if (fin && seq + len == rcv_nxt_) {
            // RFC 9293 3.10.7.4 eighth: FIN.
            rcv_q_.drop_from(rcv_nxt_); // (nothing can follow it)
            rcv_nxt_++;
            peer_fin_ = true;
            ooo_count_ = 0;
            push_event(EventType::PeerFin);
            ack_now_ = true;
            switch (state_) {
            case State::SynReceived:
            case State::Established:
                state_ = State::CloseWait;
                break;
            case State::FinWait1:
                state_ = State::Closing; // our FIN not yet acknowledged (else we'd be in FIN-WAIT-2)
                break;
            case State::FinWait2:
                enter_time_wait(now);
                break;
            default:
                break;
            }
            return;
        }
        if (len) {
            // RFC 9293 3.8.6.3 / RFC 5681 4.2: delayed ACK, at least every
            // second full-sized segment.
            unacked_segs_++;
            // Also at once when this segment leaves the peer no room for a
            // full one: it is window-limited and waits for this ACK, and a
            // 40 ms delay makes a Linux sender fire its tail-loss probe.
            const uint32_t room = seq_gt(rcv_adv_, rcv_nxt_) ? rcv_adv_ - rcv_nxt_ : 0;
            if (cfg_.delayed_ack_us == 0 || unacked_segs_ >= 2 || room < cfg_.mss) ack_now_ = true;
            else if (t_delack_ == kNever) t_delack_ = now + cfg_.delayed_ack_us;
        }
        return;
    }
    // Out of order (seq > RCV.NXT after trimming): keep it by sequence
    // number, remember the interval, ACK at once (RFC 5681 4.2). A FIN out
    // of order is dropped; the peer will retransmit it.
    stats_.out_of_order_segments++;
    ack_now_ = true;
    if (len == 0) return;
    const uint32_t l = seq, r = seq + len;
    size_t pos = 0;
    while (pos < ooo_count_ && seq_lt(ooo_[pos].right, l)) ++pos;
    const bool joins = pos < ooo_count_ && seq_leq(ooo_[pos].left, r);
    if (!joins && ooo_count_ == ooo_.size()) {
        count(Drop::OOO_NO_SPACE);
        return;
    }
    if (!rcv_q_.insert(seq, pieces, np)) {
        count(Drop::OOO_NO_SPACE);
        return;
    }
    if (joins) {
        ooo_[pos].left = seq_min(ooo_[pos].left, l);
        ooo_[pos].right = seq_max(ooo_[pos].right, r);
        size_t j = pos + 1;
        while (j < ooo_count_ && seq_leq(ooo_[j].left, ooo_[pos].right)) {
            ooo_[pos].right = seq_max(ooo_[pos].right, ooo_[j].right);
            ++j;
        }
        const size_t removed = j - pos - 1;
        for (size_t k = pos + 1; k + removed < ooo_count_; ++k) ooo_[k] = ooo_[k + removed];
        ooo_count_ -= removed;
    } else {
        for (size_t k = ooo_count_; k > pos; --k) ooo_[k] = ooo_[k - 1];
        ooo_[pos] = {l, r};
        ooo_count_++;
    }
    last_ooo_ = ooo_[pos];
}

// ---------------------------------------------------------------- output

uint16_t Connection::window_to_advertise() {
    // RFC 9293 3.8.6.2.2: offer free buffer space, but move the right edge
    // only by at least min(buffer / 2, MSS) (receiver SWS avoidance) and
    // never move it left. The value is rounded up to the scale unit; the
    // ring's slack holds the difference.
    const size_t free = rcv_capacity_ > rcv_readable_ ? rcv_capacity_ - rcv_readable_ : 0;
    const uint32_t cur = seq_gt(rcv_adv_, rcv_nxt_) ? rcv_adv_ - rcv_nxt_ : 0;
    const uint32_t thresh = static_cast<uint32_t>(std::min<size_t>(rcv_capacity_ / 2, cfg_.mss));
    uint64_t win = cur;
    if (free >= uint64_t(cur) + thresh) win = free;
    const uint32_t unit = 1u << rcv_wscale_;
    uint64_t units = (win + unit - 1) >> rcv_wscale_;
    // The physical edge: first unread byte + ring size.
    const uint32_t phys_edge = rcv_nxt_ - static_cast<uint32_t>(rcv_readable_) + static_cast<uint32_t>(rcv_q_.arena_capacity());
    if (units && seq_gt(rcv_nxt_ + static_cast<uint32_t>(units << rcv_wscale_), phys_edge)) units = win >> rcv_wscale_;
    if (units > 65535) units = 65535;
    rcv_adv_ = seq_max(rcv_adv_, rcv_nxt_ + static_cast<uint32_t>(units << rcv_wscale_));
    return static_cast<uint16_t>(units);
}

void Connection::fill_common(Segment &s, uint64_t now) {
    s.src_ip = ep_.local_ip;
    s.dst_ip = ep_.remote_ip;
    s.src_port = ep_.local_port;
    s.dst_port = ep_.remote_port;
    s.checksum_offload = cfg_.checksum_offload || omit_checksums_;
    if (s.has(flag::ACK)) s.ack = rcv_nxt_;
    if (s.has(flag::SYN)) {
        s.window = detail::syn_window(cfg_);
        rcv_adv_ = seq_max(rcv_adv_, rcv_nxt_ + s.window);
    } else {
        s.window = window_to_advertise();
        // RFC 7323 3.2: once negotiated, TSopt goes on every non-RST segment.
        if (ts_ok_) {
            s.opt.has_ts = true;
            s.opt.ts_val = ts_now(now);
            s.opt.ts_ecr = ts_recent_;
        }
        // RFC 2018 4: SACK blocks, the most recently changed first.
        if (sack_ok_ && ooo_count_ && s.has(flag::ACK)) {
            const size_t maxb = ts_ok_ ? 3 : 4;
            size_t n = 0;
            size_t first = ooo_count_;
            for (size_t i = 0; i < ooo_count_; ++i)
                if (seq_in(last_ooo_.left, ooo_[i].left, ooo_[i].right) || ooo_[i].left == last_ooo_.left) first = i;
            if (first < ooo_count_) s.opt.sack[n++] = {ooo_[first].left, ooo_[first].right};
            for (size_t i = 0; i < ooo_count_ && n < maxb; ++i)
                if (i != first) s.opt.sack[n++] = {ooo_[i].left, ooo_[i].right};
            s.opt.sack_count = static_cast<uint8_t>(n);
        }
    }
    if (s.has(flag::ACK)) {
        last_ack_sent_ = rcv_nxt_;
        ack_now_ = false;
        unacked_segs_ = 0;
        t_delack_ = kNever;
    }
    stats_.segments_out++;
}

void Connection::send_control(uint8_t flags, uint32_t seq, uint64_t now, bool with_syn_options) {
    Segment s;
    s.flags = flags;
    s.seq = seq;
    if (with_syn_options) s.opt = detail::syn_options(cfg_, nullptr, ts_now(now));
    fill_common(s, now);
    sink_(s);
}

void Connection::send_rst(uint32_t seq, uint32_t ack, bool with_ack, uint64_t now) {
    // RFC 9293 3.10.7: RSTs carry no options and no window.
    (void)now;
    Segment s;
    s.src_ip = ep_.local_ip;
    s.dst_ip = ep_.remote_ip;
    s.src_port = ep_.local_port;
    s.dst_port = ep_.remote_port;
    s.flags = static_cast<uint8_t>(flag::RST | (with_ack ? flag::ACK : 0));
    s.seq = seq;
    s.ack = with_ack ? ack : 0;
    s.checksum_offload = cfg_.checksum_offload || omit_checksums_;
    stats_.segments_out++;
    sink_(s);
}

uint32_t Connection::send_data_segment(uint32_t seq, uint32_t len, bool fin, uint64_t now, Tx kind) {
    Segment s;
    size_t covered = 0;
    if (len) {
        s.npieces = static_cast<uint8_t>(snd_q_.gather(seq - snd_data_seq_, len, tx_pieces_.data(), kMaxPieces, covered));
        s.pieces = tx_pieces_.data();
        s.pieces_len = static_cast<uint32_t>(covered);
        if (covered < len) { // more pieces than a segment may carry: a shorter one, no FIN yet
            len = static_cast<uint32_t>(covered);
            fin = false;
        }
    }
    s.flags = flag::ACK;
    if (fin) s.flags |= flag::FIN;
    if (len && seq + len == data_end_seq()) s.flags |= flag::PSH;
    s.seq = seq;
    fill_common(s, now);
    stats_.bytes_sent += len;
    if (len) {
        // Transmit record (tx_records.h), C.inflight before this send.
        const uint32_t inflight = pipe();
        txr_.on_send(seq, seq + len, now, inflight, s.opt.has_ts ? s.opt.ts_val : 0, seq_lt(seq, snd_max_));
        flight_peak_ = std::max(flight_peak_, inflight + len);
        if (kind == Tx::New || kind == Tx::Fast || kind == Tx::Timeout) paced(len, now);
    }
    if (kind == Tx::Timeout) stats_.retransmits_timeout++;
    else if (kind == Tx::Fast) stats_.retransmits_fast++;
    else if (kind == Tx::Probe) stats_.zero_window_probes++;
    if (kind == Tx::Timeout || kind == Tx::Fast) {
        rtt_timing_ = false; // RFC 6298 3 (Karn): no sample across a retransmission
    } else if (kind == Tx::New && !rtt_timing_ && !ts_ok_ && len && seq == snd_max_) {
        rtt_timing_ = true;
        rtt_seq_ = seq;
        rtt_start_us_ = now;
    }
    sink_(s);
    if (t_rto_ == kNever && !in_persist_) arm_rto(now); // RFC 6298 5.1
    // A fast retransmission of the first unacknowledged segment restarts
    // the RTO (as Linux's tcp_xmit_retransmit_queue() does): the timer
    // then covers this transmission's round trip. Restarted only by ACKs
    // of new data (RFC 6298 5.3), it ran from the last such ACK, often
    // shorter than the hole's repair takes when the queue is full, and a
    // spurious RTO re-sends the whole window.
    if (kind == Tx::Fast && seq == snd_una_ && rack_on() && t_rto_ != kNever) arm_rto(now);
    if (kind == Tx::New && !tlp_outstanding_) arm_tlp(now); // RFC 8985 7.2
    return len + (fin ? 1 : 0);
}

uint32_t Connection::send_range(uint32_t seq, uint32_t limit, uint64_t now, Tx kind) {
    const uint32_t end = data_end_seq();
    uint32_t len = 0;
    if (seq_lt(seq, end)) len = std::min<uint32_t>({end - seq, limit - seq, eff_mss_});
    const bool fin = fin_queued_ && seq + len == end && seq_gt(limit, end);
    if (len == 0 && !fin) return 0;
    return send_data_segment(seq, len, fin, now, kind);
}

void Connection::output_sack_recovery(uint64_t now) {
    // RFC 6675 5 step (C): while cwnd - pipe >= 1 SMSS, send NextSeg().
    for (int guard = 0; guard < 1024; ++guard) {
        const uint32_t p = pipe();
        const uint32_t cw = cc_->cwnd();
        if (cw < p + eff_mss_) {
            cwnd_limited_ = window_full_ = true;
            break;
        }
        if (!pacing_allows(now)) break;
        // RFC 8985 6.2: first what RACK marked lost, lowest first (a
        // lost retransmission included).
        if (rack_on() && resend_first_lost(now)) continue;
        // First a retransmission found lost (detect_lost_retransmits()).
        if (resend_lost_retransmit(now)) continue;
        // NextSeg() rule 1: lowest unSACKed, lost sequence >= HighRxt below
        // the highest SACKed byte; rule 3 (below, when rules 1 and 2 fail):
        // the same without IsLost(). C.3: HighRxt follows both.
        auto first_hole = [&](bool need_lost) {
            uint32_t cursor = snd_una_;
            for (size_t i = 0; i < sb_count_; ++i) {
                const uint32_t a = seq_max(cursor, high_rxt_), b = sb_[i].left;
                if (seq_lt(a, b) && (!need_lost || is_lost(a))) {
                    const uint32_t used = send_range(a, b, now, Tx::Fast);
                    if (used) {
                        high_rxt_ = a + used;
                        note_retransmit(a, a + used);
                        return true;
                    }
                }
                cursor = seq_max(cursor, sb_[i].right);
            }
            return false;
        };
        if (first_hole(true)) continue;
        // Rule 2: new data, if the receive window allows.
        const uint32_t end = data_end_seq();
        const uint32_t wnd_edge = snd_una_ + snd_wnd_;
        const bool fin_pending = fin_queued_ && seq_leq(snd_nxt_, end);
        if ((seq_lt(snd_nxt_, end) && seq_lt(snd_nxt_, wnd_edge)) || (fin_pending && snd_nxt_ == end)) {
            const uint32_t limit = seq_lt(snd_nxt_, end) ? seq_min(wnd_edge, end + 1) : end + 1;
            const uint32_t used = send_range(snd_nxt_, limit, now, Tx::New);
            if (!used) break;
            snd_nxt_ += used;
            snd_max_ = seq_max(snd_max_, snd_nxt_);
            continue;
        }
        // Rule 3: an unSACKed hole with SACKed data above it, not yet lost.
        if (first_hole(false)) continue;
        break;
    }
}

bool Connection::send_rescue(uint64_t now) {
    // RFC 6675 NextSeg() rule 4: one rescue retransmission per recovery
    // (RescueRxt), of the segment holding the highest unSACKed octet, so a
    // loss at the tail is repaired by this recovery instead of an RTO.
    // HighRxt is not updated. Sent only when the ACK clock has stopped for a
    // probe timeout (RFC 8985 7.2, PTO = 2 SRTT): sent while later segments
    // are merely still on their way, it would be a needless copy.
    if (rescue_used_ || !in_recovery_ || !sack_ok_ || !seq_lt(snd_una_, snd_max_)) return false;
    uint32_t top = snd_max_;
    size_t i = sb_count_;
    while (i > 0 && sb_[i - 1].right == top) top = sb_[--i].left;
    // Below HighRxt too: the highest unSACKed octet may be a retransmission
    // that was lost with nothing sent after it to reveal that.
    const uint32_t low = i > 0 ? seq_max(snd_una_, sb_[i - 1].right) : snd_una_;
    if (!seq_gt(top, low)) return false;
    const uint32_t start = top - std::min<uint32_t>(top - low, eff_mss_);
    rescue_used_ = true;
    if (!send_range(start, top, now, Tx::Fast)) return false;
    stats_.rescue_retransmits++;
    return true;
}

void Connection::output(uint64_t now) {
    switch (state_) {
    case State::Established:
    case State::CloseWait:
    case State::FinWait1:
    case State::Closing:
    case State::LastAck:
        break;
    case State::FinWait2:
    case State::TimeWait:
    case State::SynReceived:
        if (ack_now_) send_ack(now);
        return;
    default:
        return;
    }
    if (in_recovery_ && sack_ok_) {
        output_sack_recovery(now);
    } else if (!in_persist_) {
        for (int guard = 0; guard < 4096; ++guard) {
            const uint32_t end = data_end_seq();
            const uint32_t avail = seq_lt(snd_nxt_, end) ? end - snd_nxt_ : 0;
            const bool fin_pending = fin_queued_ && seq_leq(snd_nxt_, end);
            if (!avail && !fin_pending) break;
            // After an RTO this resends from SND.UNA (go-back-N); the SACK
            // scoreboard was cleared then (RFC 2018 8), so nothing is skipped.
            // RFC 3042 limited transmit: on the first two duplicate ACKs, one
            // new segment each beyond cwnd (never a go-back-N resend), so a
            // small window still yields DupThresh duplicates.
            uint32_t cw = cwnd();
            const bool limited = !in_recovery_ && dupacks_ > 0 && dupacks_ < kDupThresh && snd_nxt_ == snd_max_;
            if (limited) cw += dupacks_ * eff_mss_;
            const uint32_t wnd = std::min(snd_wnd_, cw);
            const uint32_t in_flight = snd_nxt_ - snd_una_;
            const uint32_t usable = wnd > in_flight ? wnd - in_flight : 0;
            const uint32_t len = std::min<uint32_t>({avail, usable, eff_mss_});
            const bool fin = fin_pending && len == avail;
            // The window, not the data, stops the next full segment: cwnd is
            // in use (NewReno and CUBIC grow it only then, cwnd_may_grow()).
            if (avail && usable < std::min<uint32_t>(avail, eff_mss_) && cw <= snd_wnd_) window_full_ = true;
            if (len == 0 && !fin) {
                // BBR's C.is_cwnd_limited keeps its narrower reading (no
                // room at all): with the wider one its legs out-probe a
                // CUBIC flow on a shared bottleneck (tests/sim cc_goals).
                if (avail && cw <= snd_wnd_) cwnd_limited_ = true;
                break;
            }
            if (len < eff_mss_ && len < avail) {
                // RFC 9293 3.8.6.2.1 sender SWS avoidance: a short segment
                // only when nothing is in flight or it is >= half the
                // largest window the peer offered.
                if (in_flight > 0 && len < max_snd_wnd_ / 2) break;
            }
            // RFC 9293 3.7.4 Nagle: hold a short segment while data is unacked.
            if (cfg_.nagle && len < eff_mss_ && !fin && in_flight > 0) break;
            const Tx kind = seq_lt(snd_nxt_, snd_max_) ? Tx::Timeout : Tx::New;
            if (len && !pacing_allows(now)) break;
            if (len && cc_->model_based() && in_flight == 0) cc_->on_transmit(conn_state(), now);
            if (limited && in_flight + len > cwnd()) stats_.limited_transmits++;
            snd_nxt_ += send_data_segment(snd_nxt_, len, fin, now, kind);
            snd_max_ = seq_max(snd_max_, snd_nxt_);
        }
        // Delivery-rate estimation 3.4: nothing left to send and cwnd not
        // full: the connection is application-limited.
        if (!seq_lt(snd_nxt_, data_end_seq()) && pipe() + eff_mss_ <= cwnd()) txr_.mark_app_limited(pipe());
        // RFC 9293 3.8.6.1: data waiting, zero window, nothing in flight:
        // start the persist timer.
        if (snd_wnd_ == 0 && snd_una_ == snd_max_ && seq_lt(snd_nxt_, data_end_seq())) {
            in_persist_ = true;
            persist_backoff_ = 0;
            t_rto_ = kNever;
            t_persist_ = now + rto_us_;
        }
    }
    if (ack_now_) send_ack(now);
}

// ---------------------------------------------------------------- timers

void Connection::arm_rto(uint64_t now) { t_rto_ = now + rto_us_; }

uint64_t Connection::next_timer_deadline() const {
    return std::min({t_rto_, t_persist_, t_delack_, t_keepalive_, t_close_, t_probe_, t_rack_, t_tlp_, t_pace_});
}

void Connection::on_timer(uint64_t now) {
    if (t_delack_ <= now) {
        t_delack_ = kNever;
        if (state_ != State::Closed) send_ack(now);
    }
    if (t_probe_ <= now) {
        t_probe_ = kNever;
        if (state_ != State::Closed && send_rescue(now)) output(now);
    }
    if (t_rack_ <= now) {
        // RFC 8985 6.3: the reordering window of a segment passed.
        t_rack_ = kNever;
        if (state_ != State::Closed && rack_on()) {
            uint32_t lost = 0;
            rack_detect(now, &lost);
            if (lost && !in_recovery_) enter_recovery(now, false);
            if (lost) output(now);
        }
    }
    if (t_tlp_ <= now) {
        t_tlp_ = kNever;
        if (state_ != State::Closed) on_tlp(now);
    }
    if (t_pace_ <= now) {
        t_pace_ = kNever;
        if (state_ != State::Closed) output(now);
    }
    if (t_rto_ <= now) {
        t_rto_ = kNever;
        on_rto(now);
    }
    if (t_persist_ <= now) {
        t_persist_ = kNever;
        on_persist(now);
    }
    if (t_keepalive_ <= now) {
        t_keepalive_ = kNever;
        on_keepalive(now);
    }
    if (t_close_ <= now) {
        t_close_ = kNever;
        if (state_ == State::TimeWait) terminate(EventType::Closed, CloseReason::NORMAL);
        else if (state_ == State::FinWait2) terminate(EventType::Closed, CloseReason::FIN_WAIT2_TIMEOUT);
    }
}

void Connection::on_rto(uint64_t now) {
    if (state_ == State::SynSent) {
        // RFC 6298 5.5 applied to the SYN; bounded retries.
        if (++rto_retries_ > cfg_.syn_retries) {
            terminate(EventType::TimedOut, CloseReason::SYN_TIMED_OUT);
            return;
        }
        syn_retransmitted_ = true;
        rtt_timing_ = false;
        rto_us_ = std::min(rto_us_ * 2, cfg_.rto_max_us);
        stats_.retransmits_timeout++;
        send_control(flag::SYN, iss_, now, true);
        arm_rto(now);
        return;
    }
    if (state_ == State::Closed || state_ == State::TimeWait || snd_una_ == snd_max_) return;
    if (snd_wnd_ == 0) {
        // Peer closed its window on data in flight: probe instead (3.8.6.1).
        snd_nxt_ = snd_una_;
        in_persist_ = true;
        t_persist_ = now + rto_us_;
        return;
    }
    // RFC 9293 3.8.3 R2: give up after the retry bound.
    if (++rto_retries_ > cfg_.max_retransmits) {
        terminate(EventType::TimedOut, CloseReason::TIMED_OUT);
        return;
    }
    stats_.rto_events++;
    // RFC 5681 3.1 eq. 4 + loss window; RFC 6582 4: recover = HighData so
    // stale dup ACKs do not start fast retransmit; RFC 2018 8 / RFC 6675 5.1:
    // forget SACK state; RFC 6298 5.5: back off; 5.4: retransmit the earliest
    // unacknowledged segment (go-back-N from SND.UNA).
    cc_->on_rto(snd_max_ - snd_una_, now);
    // RFC 8985 6.3 / RFC 6675 5.1: every outstanding segment is lost.
    txr_.mark_all_lost([&](const TxRecord &r) { on_record_lost(r, now); });
    in_recovery_ = false;
    t_probe_ = t_rack_ = t_tlp_ = kNever;
    tlp_outstanding_ = false;
    dupacks_ = 0;
    recover_ = snd_max_;
    sb_count_ = 0;
    rtx_count_ = 0;
    rtt_timing_ = false;
    rto_us_ = std::min(rto_us_ * 2, cfg_.rto_max_us);
    snd_nxt_ = snd_una_;
    output(now);
    if (state_ != State::Closed && snd_una_ != snd_max_) arm_rto(now); // RFC 6298 5.6
}

void Connection::on_persist(uint64_t now) {
    if (!in_persist_ || state_ == State::Closed) return;
    // RFC 1122 4.2.2.17: probe as long as the peer answers; give up only when
    // probes go unanswered for the retry bound.
    if (++persist_unanswered_ > cfg_.max_retransmits) {
        terminate(EventType::TimedOut, CloseReason::PERSIST_TIMEOUT);
        return;
    }
    // RFC 9293 3.8.6.1: send one byte of new data beyond the zero window.
    if (seq_lt(snd_nxt_, data_end_seq())) {
        send_data_segment(snd_nxt_, 1, false, now, Tx::Probe);
        snd_max_ = seq_max(snd_max_, snd_nxt_ + 1);
    }
    if (persist_backoff_ < 16) persist_backoff_++;
    t_persist_ = now + std::min(rto_us_ << persist_backoff_, cfg_.rto_max_us);
}

void Connection::on_keepalive(uint64_t now) {
    if (!cfg_.keepalive || (state_ != State::Established && state_ != State::CloseWait)) return;
    if (snd_una_ != snd_max_ || in_persist_ || snd_q_.buffered() > 0) {
        // Data outstanding: the retransmission timer watches liveness.
        t_keepalive_ = now + cfg_.keepalive_idle_us;
        return;
    }
    if (keepalive_sent_ >= cfg_.keepalive_probes) {
        terminate(EventType::TimedOut, CloseReason::KEEPALIVE_TIMEOUT);
        return;
    }
    // RFC 1122 4.2.3.6 / RFC 9293 3.8.4: SEG.SEQ = SND.NXT - 1, no data, so
    // the peer must answer with an ACK.
    keepalive_sent_++;
    stats_.keepalive_probes++;
    send_control(flag::ACK, snd_una_ - 1, now, false);
    t_keepalive_ = now + cfg_.keepalive_interval_us;
}

void Connection::enter_time_wait(uint64_t now) {
    // RFC 9293 3.10.7.4: TIME-WAIT for 2 MSL (configurable, short).
    state_ = State::TimeWait;
    t_rto_ = t_persist_ = t_keepalive_ = t_probe_ = kNever;
    t_rack_ = t_tlp_ = t_pace_ = kNever;
    t_close_ = now + cfg_.time_wait_us;
    ack_now_ = true;
}

} // namespace millipede::tcp

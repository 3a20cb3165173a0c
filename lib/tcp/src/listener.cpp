#include "millipede/tcp/listener.h"

#include <stdexcept>

#include "internal.h"
#include "millipede/tcp/seq.h"

namespace millipede::tcp {

Listener::Listener(const Config &cfg, IpAddr local_ip, uint16_t port, size_t max_half_open, SegmentSink sink,
                   Random rng)
    : cfg_(cfg), local_ip_(local_ip), port_(port), sink_(std::move(sink)), rng_(std::move(rng)) {
    if (max_half_open == 0) throw std::invalid_argument("tcp listener: max_half_open must be > 0");
    if (!sink_ || !rng_) throw std::invalid_argument("tcp listener: sink and random generator required");
    table_.resize(max_half_open);
}

Listener::HalfOpen *Listener::find(const Segment &seg) {
    for (auto &h : table_)
        if (h.used && h.po.ep.remote_port == seg.src_port && h.po.ep.remote_ip == seg.src_ip &&
            h.po.ep.local_ip == seg.dst_ip)
            return &h;
    return nullptr;
}

void Listener::send_syn_ack(const HalfOpen &h, uint64_t now) {
    // RFC 9293 3.10.7.2: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, options only
    // those the SYN offered (RFC 7323 2.2 / 3.2, RFC 2018 2).
    Segment s;
    s.src_ip = h.po.ep.local_ip;
    s.dst_ip = h.po.ep.remote_ip;
    s.src_port = h.po.ep.local_port;
    s.dst_port = h.po.ep.remote_port;
    s.flags = flag::SYN | flag::ACK;
    s.seq = h.po.iss;
    s.ack = h.po.irs + 1;
    s.window = detail::syn_window(cfg_);
    s.opt = detail::syn_options(cfg_, &h.po.peer_syn, detail::ts_clock(now, h.po.ts_offset));
    s.checksum_offload = cfg_.checksum_offload;
    stats_.syn_acks_sent++;
    sink_(s);
}

void Listener::send_rst_for(const Segment &seg) {
    // RFC 9293 3.10.7.2 (LISTEN, ACK bit on): <SEQ=SEG.ACK><CTL=RST>.
    Segment s;
    s.src_ip = seg.dst_ip;
    s.dst_ip = seg.src_ip;
    s.src_port = seg.dst_port;
    s.dst_port = seg.src_port;
    s.flags = flag::RST;
    s.seq = seg.ack;
    s.checksum_offload = cfg_.checksum_offload;
    stats_.rsts_sent++;
    sink_(s);
}

std::unique_ptr<Connection> Listener::on_bytes(std::span<const uint8_t> bytes, const IpAddr &src, const IpAddr &dst,
                                               uint64_t now) {
    Segment seg;
    switch (parse_segment(bytes, src, dst, seg)) {
    case ParseResult::Ok:
        return on_segment(seg, now);
    case ParseResult::BadChecksum:
        stats_.bad_checksums++;
        count(Drop::BAD_CHECKSUM);
        return nullptr;
    case ParseResult::Truncated:
        count(Drop::TRUNCATED);
        return nullptr;
    case ParseResult::BadDataOffset:
        count(Drop::BAD_DATA_OFFSET);
        return nullptr;
    }
    return nullptr;
}

std::unique_ptr<Connection> Listener::on_segment(const Segment &seg, uint64_t now) {
    if (seg.dst_port != port_) {
        count(Drop::WRONG_PORT);
        return nullptr;
    }
    HalfOpen *h = find(seg);
    if (seg.has(flag::RST)) {
        // RFC 9293 3.10.7.2: ignore RST in LISTEN; in SYN-RECEIVED only the
        // exact sequence number counts (RFC 5961 3.2).
        if (h && seg.seq == h->po.irs + 1) {
            h->used = false;
            used_--;
        } else {
            count(Drop::RST_OUT_OF_WINDOW);
        }
        return nullptr;
    }
    if (seg.has(flag::SYN) && !seg.has(flag::ACK)) {
        stats_.syns_received++;
        if (h) {
            // Retransmitted SYN: answer with the same SYN-ACK.
            if (seg.seq == h->po.irs) send_syn_ack(*h, now);
            else count(Drop::BAD_STATE);
            return nullptr;
        }
        if (used_ == table_.size()) {
            count(Drop::SYN_QUEUE_FULL);
            return nullptr;
        }
        HalfOpen *slot = nullptr;
        for (auto &e : table_)
            if (!e.used) {
                slot = &e;
                break;
            }
        slot->used = true;
        used_++;
        PassiveOpen &po = slot->po;
        po = PassiveOpen{};
        po.ep.local_ip = seg.dst_ip;
        po.ep.remote_ip = seg.src_ip;
        po.ep.local_port = port_;
        po.ep.remote_port = seg.src_port;
        po.iss = rng_(); // RFC 9293 3.4.1 / RFC 6528
        po.irs = seg.seq;
        po.peer_syn = seg.opt;
        po.peer_syn.sack_count = 0;
        po.peer_window = seg.window;
        po.ts_offset = rng_();
        po.syn_ack_sent_us = now ? now : 1;
        slot->rto_us = cfg_.rto_initial_us;
        slot->retries = 0;
        slot->deadline = now + slot->rto_us;
        send_syn_ack(*slot, now);
        return nullptr;
    }
    if (!seg.has(flag::ACK) || seg.has(flag::SYN)) {
        count(Drop::BAD_STATE);
        return nullptr;
    }
    if (!h) {
        count(Drop::NO_HALF_OPEN);
        send_rst_for(seg);
        return nullptr;
    }
    if (seg.ack != h->po.iss + 1) {
        // RFC 9293 3.10.7.4 (SYN-RECEIVED, unacceptable ACK): RST.
        count(Drop::ACK_UNSENT);
        send_rst_for(seg);
        return nullptr;
    }
    auto conn = std::make_unique<Connection>(cfg_, h->po, sink_, rng_);
    h->used = false;
    used_--;
    stats_.connections_created++;
    conn->on_segment(seg, now); // SYN-RECEIVED -> ESTABLISHED, plus any data
    return conn;
}

void Listener::on_timer(uint64_t now) {
    for (auto &h : table_) {
        if (!h.used || h.deadline > now) continue;
        if (h.retries >= cfg_.syn_retries) {
            h.used = false;
            used_--;
            stats_.half_open_expired++;
            continue;
        }
        // RFC 6298 5.5 back-off for the SYN-ACK; Karn: no RTT sample now.
        h.retries++;
        h.rto_us = std::min(h.rto_us * 2, cfg_.rto_max_us);
        h.po.syn_ack_sent_us = 0;
        h.deadline = now + h.rto_us;
        stats_.syn_ack_retransmits++;
        send_syn_ack(h, now);
    }
}

uint64_t Listener::next_timer_deadline() const {
    uint64_t d = UINT64_MAX;
    for (const auto &h : table_)
        if (h.used && h.deadline < d) d = h.deadline;
    return d;
}

} // namespace millipede::tcp

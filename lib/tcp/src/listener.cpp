#include "millipede/tcp/listener.h"

#include <algorithm>
#include <stdexcept>

#include "internal.h"
#include "millipede/tcp/seq.h"

namespace millipede::tcp {

uint64_t siphash24(const std::array<uint64_t, 2> &key, std::span<const uint8_t> m) {
    auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
    auto sipround = [&] {
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);
    };
    auto compress = [&](uint64_t w) {
        v3 ^= w;
        sipround();
        sipround();
        v0 ^= w;
    };
    const size_t n = m.size();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int k = 0; k < 8; k++) w |= uint64_t{m[i + k]} << (8 * k);
        compress(w);
    }
    uint64_t last = uint64_t{n & 0xff} << 56;
    for (size_t k = 0; i + k < n; k++) last |= uint64_t{m[i + k]} << (8 * k);
    compress(last);
    v2 ^= 0xff;
    for (int r = 0; r < 4; r++) sipround();
    return v0 ^ v1 ^ v2 ^ v3;
}

namespace {

// SYN-ACK TSval bits that carry a cookie's options (RFC 4987 3.6 leaves the
// encoding open; this is Linux's idea): bits 0-3 the peer's window scale,
// 15 for none; bit 4 SACK-permitted.
constexpr uint32_t kTsOptMask = 0x1f;
constexpr uint32_t kTsNoWscale = 0xf;
constexpr uint32_t kTsSack = 0x10;
// What a SYN-ACK's ISS keeps for the cookie's MSS index.
constexpr uint32_t kIssMssMask = 0x7;
// What the cookie hash covers besides the endpoints and the SYN's sequence
// number: the period and the MSS index. The timestamp offset's hash has its
// own value, which no period reaches.
constexpr uint64_t cookie_input(uint64_t period, uint32_t mss_index) { return period << 3 | mss_index; }
constexpr uint64_t kTsOffsetDomain = ~uint64_t{0};

} // namespace

Listener::Listener(const Config &cfg, IpAddr local_ip, uint16_t port, size_t max_half_open, SegmentSink sink,
                   Random rng)
    : cfg_(cfg), local_ip_(local_ip), port_(port), sink_(std::move(sink)), rng_(std::move(rng)) {
    if (max_half_open == 0) throw std::invalid_argument("tcp listener: max_half_open must be > 0");
    if (!sink_ || !rng_) throw std::invalid_argument("tcp listener: sink and random generator required");
    table_.resize(max_half_open);
    for (uint64_t &k : cookie_key_) k = uint64_t{rng_()} << 32 | rng_();
}

uint32_t Listener::cookie_hash(const IpAddr &local, const IpAddr &remote, uint16_t remote_port, uint32_t irs,
                               uint64_t extra) const {
    uint8_t m[16 + 16 + 1 + 2 + 2 + 4 + 8];
    size_t n = 0;
    for (uint8_t b : local.bytes) m[n++] = b;
    for (uint8_t b : remote.bytes) m[n++] = b;
    m[n++] = local.is_v6;
    for (uint32_t v : {uint32_t{port_}, uint32_t{remote_port}})
        for (int k = 0; k < 2; k++) m[n++] = uint8_t(v >> (8 * k));
    for (int k = 0; k < 4; k++) m[n++] = uint8_t(irs >> (8 * k));
    for (int k = 0; k < 8; k++) m[n++] = uint8_t(extra >> (8 * k));
    return static_cast<uint32_t>(siphash24(cookie_key_, {m, n}));
}

Listener::HalfOpen *Listener::find(const Segment &seg) {
    for (auto &h : table_)
        if (h.used && h.po.ep.remote_port == seg.src_port && h.po.ep.remote_ip == seg.src_ip &&
            h.po.ep.local_ip == seg.dst_ip)
            return &h;
    return nullptr;
}

void Listener::send_syn_ack(const PassiveOpen &po, uint32_t ts_val) {
    // RFC 9293 3.10.7.2: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, options only
    // those the SYN offered (RFC 7323 2.2 / 3.2, RFC 2018 2).
    Segment s;
    s.src_ip = po.ep.local_ip;
    s.dst_ip = po.ep.remote_ip;
    s.src_port = po.ep.local_port;
    s.dst_port = po.ep.remote_port;
    s.flags = flag::SYN | flag::ACK;
    s.seq = po.iss;
    s.ack = po.irs + 1;
    s.window = detail::syn_window(cfg_);
    s.opt = detail::syn_options(cfg_, &po.peer_syn, ts_val);
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
            if (seg.seq == h->po.irs) send_syn_ack(h->po, detail::ts_clock(now, h->po.ts_offset));
            else count(Drop::BAD_STATE);
            return nullptr;
        }
        if (used_ == table_.size()) {
            answer_with_cookie(seg, now); // RFC 4987 3.6
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
        send_syn_ack(slot->po, detail::ts_clock(now, po.ts_offset));
        return nullptr;
    }
    if (!seg.has(flag::ACK) || seg.has(flag::SYN)) {
        count(Drop::BAD_STATE);
        return nullptr;
    }
    if (!h) {
        if (auto conn = connection_from_cookie(seg, now)) return conn;
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
        send_syn_ack(h.po, detail::ts_clock(now, h.po.ts_offset));
    }
}

void Listener::answer_with_cookie(const Segment &syn, uint64_t now) {
    PassiveOpen po;
    po.ep.local_ip = syn.dst_ip;
    po.ep.remote_ip = syn.src_ip;
    po.ep.local_port = port_;
    po.ep.remote_port = syn.src_port;
    po.irs = syn.seq;
    // RFC 9293 3.7.1 default when the SYN has no MSS option.
    const uint16_t peer_mss = syn.opt.has_mss ? syn.opt.mss : (syn.src_ip.is_v6 ? 1220 : 536);
    uint32_t mss_index = 0;
    for (uint32_t i = 0; i < kCookieMss.size(); i++)
        if (kCookieMss[i] <= peer_mss) mss_index = i;
    // The index is hashed too: an ACK that changes it fails the check.
    po.iss = (cookie_hash(po.ep.local_ip, po.ep.remote_ip, po.ep.remote_port, po.irs,
                          cookie_input(now / kCookiePeriodUs, mss_index)) &
              ~kIssMssMask) |
             mss_index;
    po.peer_syn = syn.opt;
    po.peer_syn.sack_count = 0;
    uint32_t ts_val = 0;
    if (cfg_.timestamps && syn.opt.has_ts) {
        // The offset is a keyed hash too, so that the connection made from
        // the ACK continues this SYN-ACK's clock; TSval never runs ahead of
        // that clock (later TSvals must not be smaller, RFC 7323 5.4).
        po.ts_offset = cookie_hash(po.ep.local_ip, po.ep.remote_ip, po.ep.remote_port, po.irs, kTsOffsetDomain);
        const uint32_t clock = detail::ts_clock(now, po.ts_offset);
        const uint32_t opts = (cfg_.window_scale && syn.opt.has_wscale ? std::min<uint32_t>(syn.opt.wscale, 14)
                                                                        : kTsNoWscale) |
                              (cfg_.sack && syn.opt.sack_permitted ? kTsSack : 0);
        ts_val = (clock & ~kTsOptMask) | opts;
        if (static_cast<int32_t>(ts_val - clock) > 0) ts_val -= kTsOptMask + 1;
    } else {
        // Nothing would bring window scale and SACK back from the ACK.
        po.peer_syn.has_wscale = false;
        po.peer_syn.sack_permitted = false;
    }
    stats_.syn_cookies_sent++;
    send_syn_ack(po, ts_val);
}

std::unique_ptr<Connection> Listener::connection_from_cookie(const Segment &ack, uint64_t now) {
    const uint32_t iss = ack.ack - 1, irs = ack.seq - 1;
    const uint64_t period = now / kCookiePeriodUs;
    bool valid = false;
    for (uint64_t p = period; !valid && p + 1 >= period && p != UINT64_MAX; p--)
        valid = ((cookie_hash(ack.dst_ip, ack.src_ip, ack.src_port, irs, cookie_input(p, iss & kIssMssMask)) ^ iss) &
                 ~kIssMssMask) == 0;
    if (!valid) return nullptr;
    PassiveOpen po;
    po.ep.local_ip = ack.dst_ip;
    po.ep.remote_ip = ack.src_ip;
    po.ep.local_port = port_;
    po.ep.remote_port = ack.src_port;
    po.iss = iss;
    po.irs = irs;
    po.peer_syn.has_mss = true;
    po.peer_syn.mss = kCookieMss[iss & kIssMssMask];
    if (cfg_.timestamps && ack.opt.has_ts) {
        // Timestamps in the ACK: both SYNs had them (RFC 7323 3.2), and the
        // SYN's other options come back in TSecr.
        const uint32_t opts = ack.opt.ts_ecr & kTsOptMask;
        po.peer_syn.has_wscale = (opts & kTsNoWscale) != kTsNoWscale;
        po.peer_syn.wscale = static_cast<uint8_t>(opts & kTsNoWscale);
        po.peer_syn.sack_permitted = (opts & kTsSack) != 0;
        po.peer_syn.has_ts = true;
        po.peer_syn.ts_val = ack.opt.ts_val;
        po.ts_offset = cookie_hash(ack.dst_ip, ack.src_ip, ack.src_port, irs, kTsOffsetDomain);
    }
    po.peer_window = ack.window; // the ACK's own window replaces it at once
    po.syn_ack_sent_us = 0;      // no RTT sample: when the SYN-ACK left is not known
    auto conn = std::make_unique<Connection>(cfg_, po, sink_, rng_);
    stats_.syn_cookies_accepted++;
    stats_.connections_created++;
    conn->on_segment(ack, now); // SYN-RECEIVED -> ESTABLISHED, plus any data
    return conn;
}

uint64_t Listener::next_timer_deadline() const {
    // Asked on every poll of the worker's loop: without half-open entries
    // (the usual case) no scan of the whole table.
    if (used_ == 0) return UINT64_MAX;
    uint64_t d = UINT64_MAX;
    for (const auto &h : table_)
        if (h.used && h.deadline < d) d = h.deadline;
    return d;
}

} // namespace millipede::tcp

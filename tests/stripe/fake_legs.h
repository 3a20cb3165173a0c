// Test helpers: legs as plain byte queues, and a record collector.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "millipede/stripe/leg_io.h"
#include "millipede/stripe/wire.h"

namespace stripe_test {

using namespace millipede::stripe;

// One direction of every leg: a byte queue with a capacity (the "send window").
struct FakeIo : LegIo {
    explicit FakeIo(size_t legs, size_t cap = 1 << 20) : q(legs), cap(legs, cap) {}
    size_t writable(uint32_t leg) override { return q[leg].size() >= cap[leg] ? 0 : cap[leg] - q[leg].size(); }
    size_t write(uint32_t leg, const uint8_t *p, size_t n) override {
        size_t k = std::min(n, writable(leg));
        q[leg].insert(q[leg].end(), p, p + k);
        return k;
    }
    std::vector<uint8_t> take(uint32_t leg) {
        std::vector<uint8_t> v(q[leg].begin(), q[leg].end());
        q[leg].clear();
        return v;
    }
    // Empty: the transport acknowledges everything at once; else per leg.
    uint64_t delivered(uint32_t leg) override { return acked.empty() ? UINT64_MAX : acked[leg]; }
    std::vector<std::deque<uint8_t>> q;
    std::vector<size_t> cap;
    std::vector<uint64_t> acked;
};

// The sender's CONNECT_LEG requests, each answered at once: the leg comes
// up at both ends with empty queues (and is marked in `up` when given).
template <class Sender, class Receiver>
void connect_requested_legs(Sender &tx, Receiver &rx, FakeIo &s2r, FakeIo &r2s, uint64_t now,
                            std::vector<bool> *up = nullptr) {
    StripeEvent ev;
    while (tx.next_event(ev))
        if (ev.type == EventType::CONNECT_LEG) {
            s2r.q[ev.leg].clear();
            r2s.q[ev.leg].clear();
            if (up) (*up)[ev.leg] = true;
            rx.leg_up(ev.leg, now);
            tx.leg_up(ev.leg, now);
        }
}

struct Rec {
    EventKind kind;
    ChunkHeader chunk;
    std::vector<uint8_t> payload;
    bool crc_ok = false;
    Decoded d;
};

// Decode everything in `bytes` (optionally one byte at a time).
inline std::vector<Rec> decode_all(Decoder &dec, const std::vector<uint8_t> &bytes, bool bytewise = false,
                                   Error *err = nullptr) {
    std::vector<Rec> out;
    size_t used = 0;
    Decoded d;
    Rec *cur = nullptr;
    for (;;) {
        size_t avail = bytes.size() - used;
        if (bytewise && avail > 1) avail = 1;
        size_t k = dec.feed(bytes.data() + used, avail, d);
        used += k;
        if (d.kind == EventKind::NEED_MORE) {
            if (used == bytes.size()) break;
            continue;
        }
        if (d.kind == EventKind::ERROR) {
            if (err) *err = d.error;
            out.push_back({d.kind, {}, {}, false, d});
            break;
        }
        if (d.kind == EventKind::CHUNK_DATA) {
            cur->payload.insert(cur->payload.end(), d.data, d.data + d.data_len);
            continue;
        }
        if (d.kind == EventKind::CHUNK_END) {
            cur->crc_ok = d.crc_ok;
            continue;
        }
        out.push_back({d.kind, d.chunk, {}, false, d});
        if (d.kind == EventKind::CHUNK_HEADER) cur = &out.back();
        if (d.kind == EventKind::HELLO_VERSION) break;
    }
    return out;
}

inline std::vector<uint8_t> hello_bytes(const Hello &h) {
    std::vector<uint8_t> v(kHelloSize);
    encode_hello(v.data(), h);
    return v;
}

inline std::vector<uint8_t> chunk_bytes(uint64_t seq, uint64_t offset, const std::vector<uint8_t> &payload,
                                        bool corrupt = false) {
    ChunkHeader h;
    h.seq = seq;
    h.offset = offset;
    h.length = static_cast<uint32_t>(payload.size());
    h.crc32c = crc32c(payload.data(), payload.size());
    std::vector<uint8_t> v(kChunkHeaderSize);
    encode_chunk_header(v.data(), h);
    v.insert(v.end(), payload.begin(), payload.end());
    if (corrupt) v.back() ^= 0x40;
    return v;
}

inline void append(std::vector<uint8_t> &a, const std::vector<uint8_t> &b) { a.insert(a.end(), b.begin(), b.end()); }

} // namespace stripe_test

// The parity-with-compress-and-key harness (docs/wire.md 2.21): a sender and
// a receiver over in-memory legs, whole chunk records passed through a hook
// that may drop or change them. Shared by the unit tests with the fake AEAD
// (parity_combo_test.cpp) and by tests/eal/seal_test.cpp with the real
// cryptodev AES-256-GCM.
#pragma once

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fake_aead.h"
#include "fake_legs.h"
#include "millipede/codec/chunk_codec.h"
#include "millipede/net/bytes.h"
#include "millipede/stripe/parity.h"
#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"

namespace stripe_test {

namespace codec = millipede::codec;

constexpr uint32_t kChunk = 4096;
constexpr uint64_t kSession = 0x70a11c0b0ull;

// What the test does to one chunk record on its way to the receiver:
// deliver it (false), or drop it (true). It may change the record's bytes.
using RecordHook = std::function<bool(const ChunkHeader &h, std::vector<uint8_t> &record)>;

struct ComboRun {
    std::vector<uint8_t> out; // what reached "stdout"
    SessionState tx = SessionState::RUNNING, rx = SessionState::RUNNING;
    std::string tx_msg, rx_msg;
    Error rx_error = Error::NONE;
    uint64_t rebuilt = 0, resent = 0, parity_sent = 0, inflate_failures = 0;
    uint32_t hello_features = 0, reply_features = 0;
    std::vector<ChunkHeader> dropped; // headers of the records the hook dropped
};

struct Chunks {
    std::vector<std::vector<uint8_t>> held; // by ref; room for the tag after the bytes
    static void release(void *, uint64_t) {}
};

// Stream `pieces` (each one chunk's input) over `legs` legs with parity K,
// optionally compressing each piece (as the pipeio pool does: sent
// compressed only when it shrinks) and sealing with the fake AEAD.
inline ComboRun run_combo(const std::vector<std::vector<uint8_t>> &pieces, uint32_t legs, uint32_t k, bool compress,
                   Aead *tx_aead, Aead *rx_aead, const RecordHook &hook) {
    SenderConfig sc;
    sc.legs = legs;
    sc.parity_k = k;
    sc.chunk_bytes = kChunk;
    sc.max_chunks_in_flight = 8;
    sc.session_id = kSession;
    sc.backoff_initial_us = 1000;
    sc.backoff_max_us = 8000;
    sc.external_chunks = true;
    sc.release_chunk = &Chunks::release;
    sc.aead = tx_aead;
    if (compress) sc.features |= kFeatureCompress;
    ReceiverConfig rc;
    rc.max_legs = legs;
    rc.window_chunks = 4 * legs;
    rc.max_chunk_bytes = kChunk;
    rc.features |= kFeatureCompress; // as dataplane's rx: it inflates whatever the sender compressed
    rc.aead = rx_aead;
    StripeSender tx(sc);
    StripeReceiver rx(rc);
    FakeIo s2r(legs), r2s(legs);
    codec::Compressor deflate(kChunk);
    codec::Decompressor inflate(kChunk);
    std::vector<uint8_t> inflated(kChunk);
    Chunks chunks;
    chunks.held.reserve(pieces.size());
    std::vector<std::vector<uint8_t>> pending(legs); // per leg: bytes up to a record boundary
    std::vector<std::vector<uint8_t>> ready(legs);   // per leg: whole records for the receiver
    ComboRun r;
    size_t pushed = 0;
    uint64_t inflate_next = 0, now = 0;
    bool finished = false;
    for (int it = 0; it < 100000; it++) {
        now += 50;
        while (pushed < pieces.size() && tx.chunk_room()) {
            const auto &in = pieces[pushed];
            std::vector<uint8_t> buf(kChunk);
            StripeSender::ChunkSums sums;
            uint32_t len = 0;
            const uint32_t crc = crc32c(in.data(), in.size());
            if (compress) len = deflate.compress(in.data(), static_cast<uint32_t>(in.size()), crc, buf.data(), kChunk);
            if (len) {
                sums.crc32c = crc32c(buf.data(), len);
                sums.original_len = static_cast<uint32_t>(in.size());
            } else {
                len = static_cast<uint32_t>(in.size());
                std::memcpy(buf.data(), in.data(), len);
                sums.crc32c = crc;
            }
            sums.digest_after = crc64(in.data(), in.size(), pushed ? tx.stream_digest() : 0);
            chunks.held.push_back(std::move(buf));
            if (!tx.push_chunk(chunks.held.back().data(), len, pushed + 1, now, &sums)) {
                ADD_FAILURE() << "push_chunk refused chunk " << pushed;
                return r;
            }
            pushed++;
        }
        if (pushed == pieces.size() && !finished) {
            tx.finish_input(now);
            finished = true;
        }
        tx.poll(now, s2r);
        connect_requested_legs(tx, rx, s2r, r2s, now);
        for (uint32_t l = 0; l < legs; l++) {
            std::vector<uint8_t> &p = pending[l];
            append(p, s2r.take(l));
            std::vector<uint8_t> deliver;
            size_t at = 0;
            // Whole records only: hello and key proof (32), chunk (32 + length), end (32).
            while (p.size() - at >= kChunkHeaderSize) {
                const uint8_t type = p[at + 4];
                size_t size = 32;
                if (type == kTypeHello) r.hello_features = millipede::net::load_le32(p.data() + at + 20);
                if (type == kTypeChunk) size += millipede::net::load_le32(p.data() + at + 24);
                if (p.size() - at < size) break;
                std::vector<uint8_t> rec(p.begin() + at, p.begin() + at + size);
                at += size;
                if (type == kTypeChunk && hook) {
                    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
                    const std::vector<uint8_t> hb = hello_bytes(Hello{});
                    Decoded d;
                    dec.feed(hb.data(), hb.size(), d);
                    dec.feed(rec.data(), kChunkHeaderSize, d);
                    if (hook(d.chunk, rec)) {
                        r.dropped.push_back(d.chunk);
                        continue;
                    }
                }
                append(deliver, rec);
            }
            p.erase(p.begin(), p.begin() + at);
            // What the receiver does not take (beyond its window) waits.
            std::vector<uint8_t> &q = ready[l];
            append(q, deliver);
            size_t used = 0;
            while (used < q.size()) {
                const size_t n = rx.leg_input(l, q.data() + used, q.size() - used, now);
                if (n == 0) break;
                used += n;
            }
            q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(used));
        }
        // The owner's output: in order; compressed sessions inflate as the
        // dataplane's pool does (nothing of a chunk that fails is written).
        if (rx.compressed_session()) {
            StripeReceiver::Held h;
            if (inflate_next < rx.output_base()) inflate_next = rx.output_base();
            while (rx.state() != SessionState::FAILED && r.inflate_failures == 0 && rx.held(inflate_next, h)) {
                if (h.len) {
                    const uint8_t *bytes = h.data;
                    uint32_t n = h.len;
                    if (h.compressed) {
                        if (inflate.decompress(h.data, h.len, inflated.data(), kChunk, n) != codec::InflateStatus::OK) {
                            r.inflate_failures++;
                            break;
                        }
                        bytes = inflated.data();
                    }
                    r.out.insert(r.out.end(), bytes, bytes + n);
                    rx.digest_output(bytes, n);
                }
                rx.output_consumed(h.len);
                inflate_next++;
            }
        } else {
            auto o = rx.output();
            r.out.insert(r.out.end(), o.begin(), o.end());
            rx.output_consumed(o.size());
        }
        rx.poll(now, r2s);
        StripeEvent ev;
        while (rx.next_event(ev)) {
        }
        for (uint32_t l = 0; l < legs; l++) {
            std::vector<uint8_t> back = r2s.take(l);
            if (back.size() >= 16 && back[4] == kTypeHelloReply) r.reply_features = millipede::net::load_le32(back.data() + 8);
            tx.leg_input(l, back.data(), back.size(), now);
        }
        if (r.inflate_failures) break;
        if (tx.state() != SessionState::RUNNING && (rx.state() != SessionState::RUNNING || tx.state() == SessionState::FAILED))
            break;
        if (rx.state() == SessionState::FAILED) break;
    }
    r.tx = tx.state();
    r.rx = rx.state();
    r.tx_msg = tx.message();
    r.rx_msg = rx.message();
    for (unsigned e = 1; e < kErrorCount; e++)
        if (rx.stats().errors[e] && r.rx_error == Error::NONE) r.rx_error = static_cast<Error>(e);
    r.rebuilt = rx.stats().parity_rebuilt;
    r.resent = tx.stats().chunks_resent;
    r.parity_sent = tx.stats().parity_chunks_sent;
    return r;
}

inline std::vector<uint8_t> compressible(size_t n, uint32_t seed) {
    std::string s;
    while (s.size() < n) s += "zfs send stream block " + std::to_string(seed++ % 37) + " of dataset tank/home; ";
    return std::vector<uint8_t>(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
}

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto &b : v) b = static_cast<uint8_t>(rng());
    return v;
}

inline std::vector<uint8_t> concat(const std::vector<std::vector<uint8_t>> &pieces) {
    std::vector<uint8_t> v;
    for (const auto &p : pieces) append(v, p);
    return v;
}

// Drops the first transmission of the chunks at `seqs`.
inline RecordHook drop_seqs(std::vector<uint64_t> seqs) {
    return [seqs](const ChunkHeader &h, std::vector<uint8_t> &) {
        for (uint64_t s : seqs)
            if (h.seq == s && !(h.flags & kChunkFlagResent)) return true;
        return false;
    };
}

// Pieces fit a keyed chunk (the tag takes 16 bytes of the chunk size).
constexpr uint32_t kPiece = kChunk - 16;

// Changes parity record `rec` (parity 1 over 2 data chunks) so that the
// chunk 0 rebuilt from it differs from chunk 0's unit (`wire_len` bytes on
// the wire) in bit 0 of byte `at`, with the unit's CRC32C field moved along
// (CRC32C is affine over equal lengths) and the record's own CRC32C
// recomputed, so the record is accepted and only a later check can object.
inline void change_rebuilt_chunk_0(std::vector<uint8_t> &rec, uint32_t wire_len, size_t at) {
    std::vector<uint8_t> e(wire_len, 0), zero(wire_len, 0), delta(kParityUnitPrefix + wire_len, 0);
    e[at] = 0x01;
    millipede::net::store_le32(delta.data() + 12, crc32c(e.data(), e.size()) ^ crc32c(zero.data(), zero.size()));
    delta[kParityUnitPrefix + at] = 0x01;
    std::vector<uint8_t> pdelta(delta.size(), 0);
    uint8_t *pp[1] = {pdelta.data()};
    ParityCodec(2, 1).encode_update(0, delta.data(), delta.size(), pp);
    for (size_t i = 0; i < pdelta.size() && kChunkHeaderSize + i < rec.size(); i++) rec[kChunkHeaderSize + i] ^= pdelta[i];
    millipede::net::store_le32(rec.data() + 28, crc32c(rec.data() + kChunkHeaderSize, rec.size() - kChunkHeaderSize));
}

// 3 legs, parity 1 (seqs 0, 1 data, 2 parity): drops chunk 0 and changes
// parity chunk 2 so that the rebuilt chunk 0 has one payload bit flipped:
// only the AEAD tag can catch it.
inline RecordHook lose_0_and_flip_its_bit_through_parity(uint32_t wire_len, bool &tampered) {
    return [wire_len, &tampered](const ChunkHeader &h, std::vector<uint8_t> &rec) {
        if (h.seq == 0) return true;
        if (h.seq != 2) return false;
        change_rebuilt_chunk_0(rec, wire_len, 100);
        tampered = true;
        return false;
    };
}

} // namespace stripe_test

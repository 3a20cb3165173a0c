// Parity together with compressed and with encrypted chunks (docs/wire.md
// 2.21): the parity covers the chunks as they go on the wire, a data unit's
// prefix carries the chunk's flags, and a rebuilt chunk goes through what a
// chunk that arrived goes through (the AEAD tag, then inflation and the
// CRC32C of the original bytes). Chunks are dropped on their way to the
// receiver while their legs stay up, so nothing but a rebuild can bring
// them; and rebuilt bytes tampered with fail the session cleanly.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "fake_aead.h"
#include "fake_legs.h"
#include "millipede/codec/chunk_codec.h"
#include "millipede/stripe/parity.h"
#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"

using namespace stripe_test;
namespace codec = millipede::codec;

namespace {

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
ComboRun run_combo(const std::vector<std::vector<uint8_t>> &pieces, uint32_t legs, uint32_t k, bool compress,
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
        StripeEvent ev;
        while (tx.next_event(ev))
            if (ev.type == EventType::CONNECT_LEG) {
                s2r.q[ev.leg].clear();
                r2s.q[ev.leg].clear();
                rx.leg_up(ev.leg, now);
                tx.leg_up(ev.leg, now);
            }
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

std::vector<uint8_t> compressible(size_t n, uint32_t seed) {
    std::string s;
    while (s.size() < n) s += "zfs send stream block " + std::to_string(seed++ % 37) + " of dataset tank/home; ";
    return std::vector<uint8_t>(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto &b : v) b = static_cast<uint8_t>(rng());
    return v;
}

std::vector<uint8_t> concat(const std::vector<std::vector<uint8_t>> &pieces) {
    std::vector<uint8_t> v;
    for (const auto &p : pieces) append(v, p);
    return v;
}

// Drops the first transmission of the chunks at `seqs`.
RecordHook drop_seqs(std::vector<uint64_t> seqs) {
    return [seqs](const ChunkHeader &h, std::vector<uint8_t> &) {
        for (uint64_t s : seqs)
            if (h.seq == s && !(h.flags & kChunkFlagResent)) return true;
        return false;
    };
}

// Pieces fit a keyed chunk (the tag takes 16 bytes of the chunk size).
constexpr uint32_t kPiece = kChunk - 16;

// 4 legs, parity 2: stripe 0 is data seqs 0 and 1, parity seqs 2 and 3.
// Chunk 0 compresses, chunk 1 (random) goes raw; both are lost and both
// come back from the two parity chunks, one inflated and one as it is.
TEST(ParityCombo, CompressedAndRawChunkLostAndRebuilt) {
    std::vector<std::vector<uint8_t>> pieces = {compressible(kPiece, 1), random_bytes(kPiece, 2),
                                                compressible(kPiece, 3), random_bytes(kPiece - 100, 4),
                                                compressible(1000, 5)};
    ComboRun r = run_combo(pieces, 4, 2, true, nullptr, nullptr, drop_seqs({0, 1}));
    ASSERT_EQ(r.tx, SessionState::DONE) << r.tx_msg << " | " << r.rx_msg;
    ASSERT_EQ(r.rx, SessionState::DONE) << r.rx_msg;
    ASSERT_EQ(r.dropped.size(), 2u);
    EXPECT_TRUE(r.dropped[0].flags & kChunkFlagCompressed) << "chunk 0 should have gone compressed";
    EXPECT_FALSE(r.dropped[1].flags & kChunkFlagCompressed) << "chunk 1 should have gone raw";
    EXPECT_LT(r.dropped[0].length, kPiece);
    EXPECT_EQ(r.rebuilt, 2u);
    EXPECT_EQ(r.resent, 0u) << "a rebuilt chunk is never sent again";
    EXPECT_EQ(r.inflate_failures, 0u);
    EXPECT_EQ(r.out, concat(pieces));
    EXPECT_TRUE(r.hello_features & kFeatureParityFlags);
    EXPECT_TRUE(r.reply_features & kFeatureParityFlags);
}

// A keyed session (3 legs, parity 1): a chunk lost in every stripe is
// rebuilt from the sealed bytes and opens; the output is byte-exact.
TEST(ParityCombo, KeyedChunkLostAndRebuiltOpens) {
    FakeAead tx_key(42), rx_key(42);
    std::vector<std::vector<uint8_t>> pieces;
    for (uint32_t i = 0; i < 9; i++) pieces.push_back(random_bytes(kPiece - 7 * i, 10 + i));
    // stripes of 3 seqs: lose data chunk 1 of stripe 0, 0 of stripe 1, 1 of stripe 2
    ComboRun r = run_combo(pieces, 3, 1, false, &tx_key, &rx_key, drop_seqs({1, 3, 7}));
    ASSERT_EQ(r.tx, SessionState::DONE) << r.tx_msg << " | " << r.rx_msg;
    ASSERT_EQ(r.rx, SessionState::DONE) << r.rx_msg;
    ASSERT_EQ(r.dropped.size(), 3u);
    for (const auto &h : r.dropped) EXPECT_TRUE(h.flags & kChunkFlagEncrypted);
    EXPECT_EQ(r.rebuilt, 3u);
    EXPECT_EQ(r.resent, 0u);
    EXPECT_EQ(r.out, concat(pieces));
    EXPECT_TRUE(r.reply_features & kFeatureParityFlags);
}

// All three: compressed, then sealed, then parity; a compressed and a raw
// chunk are lost from one stripe (4 legs, parity 2).
TEST(ParityCombo, CompressedKeyedChunksLostAndRebuilt) {
    FakeAead tx_key(7), rx_key(7);
    std::vector<std::vector<uint8_t>> pieces = {random_bytes(kPiece, 20), compressible(kPiece, 21),
                                                compressible(kPiece, 22), random_bytes(300, 23)};
    ComboRun r = run_combo(pieces, 4, 2, true, &tx_key, &rx_key, drop_seqs({0, 1, 4}));
    ASSERT_EQ(r.tx, SessionState::DONE) << r.tx_msg << " | " << r.rx_msg;
    ASSERT_EQ(r.rx, SessionState::DONE) << r.rx_msg;
    ASSERT_EQ(r.dropped.size(), 3u);
    EXPECT_FALSE(r.dropped[0].flags & kChunkFlagCompressed);
    EXPECT_TRUE(r.dropped[1].flags & kChunkFlagCompressed);
    EXPECT_TRUE(r.dropped[2].flags & kChunkFlagCompressed);
    for (const auto &h : r.dropped) EXPECT_TRUE(h.flags & kChunkFlagEncrypted);
    EXPECT_EQ(r.rebuilt, 3u);
    EXPECT_EQ(r.resent, 0u);
    EXPECT_EQ(r.out, concat(pieces));
}

// Without compress or key the units keep their old form: no flag byte,
// no hello bit 6 (a receiver from before this change reads them as before).
TEST(ParityCombo, ParityAloneKeepsTheOldUnitFormat) {
    std::vector<std::vector<uint8_t>> pieces = {random_bytes(kChunk, 30), random_bytes(kChunk, 31),
                                                random_bytes(2000, 32)};
    std::vector<uint8_t> parity_payload;
    ComboRun r = run_combo(pieces, 3, 1, false, nullptr, nullptr, [&](const ChunkHeader &h, std::vector<uint8_t> &rec) {
        if (h.seq == 2) parity_payload.assign(rec.begin() + kChunkHeaderSize, rec.end());
        return h.seq == 0;
    });
    ASSERT_EQ(r.rx, SessionState::DONE) << r.rx_msg;
    EXPECT_EQ(r.out, concat(pieces));
    EXPECT_EQ(r.rebuilt, 1u);
    EXPECT_FALSE(r.hello_features & kFeatureParityFlags);
    // The parity unit, recomputed the old way (prefix: offset, length, CRC32C).
    ParityCodec pc(2, 1);
    std::vector<uint8_t> want(kParityUnitPrefix + kChunk, 0);
    uint8_t *par[1] = {want.data()};
    uint64_t off = 0;
    for (unsigned j = 0; j < 2; j++) {
        std::vector<uint8_t> unit(kParityUnitPrefix + kChunk, 0);
        millipede::net::store_le64(unit.data(), off);
        millipede::net::store_le32(unit.data() + 8, static_cast<uint32_t>(pieces[j].size()));
        millipede::net::store_le32(unit.data() + 12, crc32c(pieces[j].data(), pieces[j].size()));
        std::memcpy(unit.data() + kParityUnitPrefix, pieces[j].data(), pieces[j].size());
        pc.encode_update(j, unit.data(), unit.size(), par);
        off += pieces[j].size();
    }
    EXPECT_EQ(parity_payload, want);
}

// An attacker who changes a parity chunk so that the rebuilt chunk's bytes
// still match the CRC32C its prefix claims (the code is linear: the change
// is computed with the same ParityCodec) gets past the CRC but not the tag:
// the session fails with auth_failed and nothing of the chunk is written.
TEST(ParityCombo, TamperedRebuiltChunkFailsItsTag) {
    FakeAead tx_key(9), rx_key(9);
    std::vector<std::vector<uint8_t>> pieces;
    for (uint32_t i = 0; i < 4; i++) pieces.push_back(random_bytes(kPiece, 40 + i));
    // 3 legs, parity 1: seqs 0,1 data, 2 parity. Lose 0; tamper with 2.
    const uint32_t wire_len = kPiece + 16;
    bool tampered = false;
    ComboRun r = run_combo(pieces, 3, 1, false, &tx_key, &rx_key, [&](const ChunkHeader &h, std::vector<uint8_t> &rec) {
        if (h.seq == 0) return true;
        if (h.seq != 2) return false;
        // The wanted change of chunk 0's unit: one payload bit, and its
        // CRC32C field moved along (CRC32C is affine over equal lengths).
        std::vector<uint8_t> e(wire_len, 0), zero(wire_len, 0), delta(kParityUnitPrefix + wire_len, 0);
        e[100] = 0x01;
        const uint32_t dcrc = crc32c(e.data(), e.size()) ^ crc32c(zero.data(), zero.size());
        millipede::net::store_le32(delta.data() + 12, dcrc);
        delta[kParityUnitPrefix + 100] = 0x01;
        std::vector<uint8_t> pdelta(delta.size(), 0);
        uint8_t *pp[1] = {pdelta.data()};
        ParityCodec(2, 1).encode_update(0, delta.data(), delta.size(), pp);
        for (size_t i = 0; i < pdelta.size() && kChunkHeaderSize + i < rec.size(); i++)
            rec[kChunkHeaderSize + i] ^= pdelta[i];
        millipede::net::store_le32(rec.data() + 28, crc32c(rec.data() + kChunkHeaderSize, rec.size() - kChunkHeaderSize));
        tampered = true;
        return false;
    });
    ASSERT_TRUE(tampered);
    EXPECT_EQ(r.rx, SessionState::FAILED);
    EXPECT_EQ(r.rx_error, Error::AUTH_FAILED) << r.rx_msg;
    EXPECT_NE(r.rx_msg.find("rebuilt from its stripe's parity failed authentication"), std::string::npos) << r.rx_msg;
    EXPECT_TRUE(r.out.empty()) << "chunk 0 is the first: nothing may reach stdout";
    EXPECT_EQ(r.rebuilt, 0u);
}

// A parity chunk damaged (its own CRC32C recomputed, so it is held): the
// rebuilt chunk fails the CRC32C its prefix claims, the session fails and
// nothing of it is written.
TEST(ParityCombo, CorruptRebuiltCompressedChunkFailsCleanly) {
    std::vector<std::vector<uint8_t>> pieces = {compressible(kChunk, 50), compressible(kChunk, 51)};
    ComboRun r = run_combo(pieces, 3, 1, true, nullptr, nullptr, [&](const ChunkHeader &h, std::vector<uint8_t> &rec) {
        if (h.seq == 0) return true;
        if (h.seq == 2) {
            rec[kChunkHeaderSize + kParityUnitPrefix + 20] ^= 0x5A;
            millipede::net::store_le32(rec.data() + 28,
                                       crc32c(rec.data() + kChunkHeaderSize, rec.size() - kChunkHeaderSize));
        }
        return false;
    });
    EXPECT_EQ(r.rx, SessionState::FAILED);
    EXPECT_EQ(r.rx_error, Error::CRC_MISMATCH) << r.rx_msg;
    EXPECT_NE(r.rx_msg.find("rebuilt from its stripe's parity does not verify"), std::string::npos) << r.rx_msg;
    EXPECT_TRUE(r.out.empty());
}

// The same linear trick on a compressed chunk without a key: the rebuilt
// payload matches its wire CRC32C, so the receiver holds it as compressed;
// the inflater's check of the original bytes' CRC32C stops it (what the
// dataplane's pool does for a received chunk: the session fails, nothing of
// it written).
TEST(ParityCombo, TamperedRebuiltCompressedChunkFailsInflation) {
    std::vector<std::vector<uint8_t>> pieces = {compressible(kChunk, 60), compressible(kChunk, 61)};
    uint32_t wire_len = 0;
    bool tampered = false;
    ComboRun r = run_combo(pieces, 3, 1, true, nullptr, nullptr, [&](const ChunkHeader &h, std::vector<uint8_t> &rec) {
        if (h.seq == 0) {
            wire_len = h.length;
            return true;
        }
        if (h.seq != 2 || wire_len == 0) return false;
        std::vector<uint8_t> e(wire_len, 0), zero(wire_len, 0), delta(kParityUnitPrefix + wire_len, 0);
        e[4] = 0x01; // the prefix's CRC32C of the original bytes
        millipede::net::store_le32(delta.data() + 12, crc32c(e.data(), e.size()) ^ crc32c(zero.data(), zero.size()));
        delta[kParityUnitPrefix + 4] = 0x01;
        std::vector<uint8_t> pdelta(delta.size(), 0);
        uint8_t *pp[1] = {pdelta.data()};
        ParityCodec(2, 1).encode_update(0, delta.data(), delta.size(), pp);
        for (size_t i = 0; i < pdelta.size() && kChunkHeaderSize + i < rec.size(); i++)
            rec[kChunkHeaderSize + i] ^= pdelta[i];
        millipede::net::store_le32(rec.data() + 28, crc32c(rec.data() + kChunkHeaderSize, rec.size() - kChunkHeaderSize));
        tampered = true;
        return false;
    });
    ASSERT_TRUE(tampered);
    EXPECT_EQ(r.rebuilt, 1u) << r.rx_msg;
    EXPECT_EQ(r.inflate_failures, 1u);
    EXPECT_TRUE(r.out.empty());
}

// A short stripe (end of input) whose only parity chunk is lost: the
// receiver proves its data count from where its last chunk ends and where
// the end record says the stream ends - in stream bytes, which for a
// compressed chunk is its original length, not its payload's.
TEST(ParityCombo, ShortCompressedStripeWithoutItsParity) {
    for (bool keyed : {false, true}) {
        FakeAead tx_key(3), rx_key(3);
        std::vector<std::vector<uint8_t>> pieces = {compressible(kPiece, 70), compressible(kPiece / 2, 71)};
        // 4 legs, parity 1: N = 3, the one stripe has 2 data chunks; its parity is seq 3.
        ComboRun r = run_combo(pieces, 4, 1, true, keyed ? &tx_key : nullptr, keyed ? &rx_key : nullptr,
                               drop_seqs({3}));
        ASSERT_EQ(r.dropped.size(), 1u);
        EXPECT_TRUE(r.dropped[0].flags & kChunkFlagParity);
        ASSERT_EQ(r.rx, SessionState::DONE) << "keyed " << keyed << ": " << r.tx_msg << " | " << r.rx_msg;
        ASSERT_EQ(r.tx, SessionState::DONE) << r.tx_msg;
        EXPECT_EQ(r.out, concat(pieces));
    }
}

// Many mixes: 2..6 legs, parity 1..3, compressible and random chunks of
// random sizes, with and without a key; up to K data chunks of each stripe
// are dropped. Byte-exact every time, the drops rebuilt, nothing re-sent.
TEST(ParityCombo, RandomDropsManySeeds) {
    uint64_t total_rebuilt = 0, total_dropped = 0, compressed_dropped = 0;
    for (uint32_t seed = 1; seed <= 150; seed++) {
        std::mt19937 rng(seed);
        auto rnd = [&](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); };
        const uint32_t legs = rnd(2, 6), k = rnd(1, std::min<uint32_t>(3, legs - 1)), g = legs;
        const bool keyed = rnd(0, 1) == 1;
        std::vector<std::vector<uint8_t>> pieces(rnd(1, 24));
        for (auto &p : pieces) {
            const uint32_t n = rnd(1, kPiece);
            p = rnd(0, 2) ? compressible(n, rnd(0, 1000)) : random_bytes(n, rnd(0, 1u << 30));
        }
        std::vector<uint32_t> dropped_in_stripe(64, 0);
        FakeAead tx_key(seed), rx_key(seed);
        ComboRun r = run_combo(pieces, legs, k, true, keyed ? &tx_key : nullptr, keyed ? &rx_key : nullptr,
                               [&](const ChunkHeader &h, std::vector<uint8_t> &) {
                                   const uint64_t t = h.seq / g;
                                   if ((h.flags & (kChunkFlagParity | kChunkFlagResent)) || t >= 64 ||
                                       dropped_in_stripe[t] >= k || rnd(0, 2) != 0)
                                       return false;
                                   dropped_in_stripe[t]++;
                                   return true;
                               });
        ASSERT_EQ(r.rx, SessionState::DONE) << "seed " << seed << ": " << r.tx_msg << " | " << r.rx_msg;
        ASSERT_EQ(r.tx, SessionState::DONE) << "seed " << seed << ": " << r.tx_msg;
        ASSERT_EQ(r.out, concat(pieces)) << "seed " << seed;
        EXPECT_EQ(r.resent, 0u) << "seed " << seed;
        EXPECT_EQ(r.rebuilt, r.dropped.size()) << "seed " << seed;
        total_rebuilt += r.rebuilt;
        total_dropped += r.dropped.size();
        for (const auto &h : r.dropped) compressed_dropped += (h.flags & kChunkFlagCompressed) != 0;
    }
    EXPECT_GT(total_dropped, 300u);
    EXPECT_GT(compressed_dropped, 100u);
    EXPECT_EQ(total_rebuilt, total_dropped);
}

// Negotiation: a receiver refuses a hello that asks for parity over
// compressed chunks without bit 6 (its units would not carry the flags).
TEST(ParityCombo, ReceiverRefusesParityOverCompressionWithoutBit6) {
    ReceiverConfig rc;
    rc.max_legs = 3;
    rc.window_chunks = 12;
    rc.features |= kFeatureCompress;
    StripeReceiver rx(rc);
    rx.leg_up(0, 0);
    Hello h;
    h.session_id = 5;
    h.chunk_bytes = 1000;
    h.features = kFeaturesV1 | kFeatureCompress | parity_feature(2, 1);
    std::vector<uint8_t> b = hello_bytes(h);
    rx.leg_input(0, b.data(), b.size(), 0);
    EXPECT_EQ(rx.stats().legs_refused, 1u);
    EXPECT_NE(std::string(rx.last_leg_message()).find("bit 6"), std::string::npos) << rx.last_leg_message();
    // With bit 6 it is accepted and echoed.
    StripeReceiver rx2(rc);
    rx2.leg_up(0, 0);
    h.features |= kFeatureParityFlags;
    b = hello_bytes(h);
    rx2.leg_input(0, b.data(), b.size(), 0);
    FakeIo back(3);
    rx2.poll(0, back);
    std::vector<uint8_t> reply = back.take(0);
    ASSERT_GE(reply.size(), kHelloReplySize);
    EXPECT_EQ(reply[6], 0) << "accepted";
    EXPECT_TRUE(millipede::net::load_le32(reply.data() + 8) & kFeatureParityFlags);
}

// A sender with parity and compress fails at the hello when the receiver
// does not echo bit 6 (one from before parity could be combined).
TEST(ParityCombo, SenderFailsAtTheHelloWithoutBit6) {
    SenderConfig sc;
    sc.legs = 3;
    sc.parity_k = 1;
    sc.chunk_bytes = 1000;
    sc.max_chunks_in_flight = 4;
    sc.features |= kFeatureCompress;
    StripeSender tx(sc);
    FakeIo io(3);
    tx.poll(0, io);
    StripeEvent ev;
    while (tx.next_event(ev))
        if (ev.type == EventType::CONNECT_LEG) tx.leg_up(ev.leg, 0);
    tx.poll(1, io);
    HelloReply r;
    r.features = kFeaturesV1 | kFeatureCompress | parity_feature(2, 1); // no bit 6
    r.window_chunks = 16;
    uint8_t buf[kHelloReplySize];
    const size_t n = encode_hello_reply(buf, r);
    tx.leg_input(0, buf, n, 2);
    EXPECT_EQ(tx.state(), SessionState::FAILED);
    EXPECT_NE(std::string(tx.message()).find("bit 6"), std::string::npos) << tx.message();
}

} // namespace

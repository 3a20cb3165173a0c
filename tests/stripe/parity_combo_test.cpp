// Parity together with compressed and with encrypted chunks (docs/wire.md
// 2.21): the parity covers the chunks as they go on the wire, a data unit's
// prefix carries the chunk's flags, and a rebuilt chunk goes through what a
// chunk that arrived goes through (the AEAD tag, then inflation and the
// CRC32C of the original bytes). Chunks are dropped on their way to the
// receiver while their legs stay up, so nothing but a rebuild can bring
// them; and rebuilt bytes tampered with fail the session cleanly.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "parity_combo_harness.h"

using namespace stripe_test;

namespace {


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
    ComboRun r = run_combo(pieces, 3, 1, false, &tx_key, &rx_key, lose_0_and_flip_its_bit_through_parity(wire_len, tampered));
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
        change_rebuilt_chunk_0(rec, wire_len, 4); // the prefix's CRC32C of the original bytes
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

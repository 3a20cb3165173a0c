// key FILE in the stripe cores (docs/wire.md 2.22), EAL-free: the handshake
// records, the encrypted-chunk layout and every refusal, with a test double
// for the cipher. The same cases run on the real AES-256-GCM through
// cryptodev in tests/eal/seal_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "aead_harness.h"
#include "fake_aead.h"

using namespace stripe_test;

namespace {

std::vector<uint8_t> input(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(i * 7 + (i >> 9));
    return v;
}

// Fixes a chunk record's CRC32C after its payload was changed, so only the
// AEAD tag can notice (an attacker recomputes a CRC).
void fix_crc(std::vector<uint8_t> &w, size_t at) {
    const uint32_t len = millipede::net::load_le32(w.data() + at + 24);
    millipede::net::store_le32(w.data() + at + 28, crc32c(w.data() + at + kChunkHeaderSize, len));
}

// A keyed transfer of `in` (both sides hold the same key) in which an
// attacker on the path changes the first sender-to-receiver batch that holds
// at least `min_chunks` chunk records, once. `edited` says whether the
// attacker had that chance, so a test cannot pass without its edit.
struct EditedRun {
    AeadRun run;
    bool edited = false;
};
EditedRun run_with_one_edit(const std::vector<uint8_t> &in, size_t min_chunks,
                            const std::function<void(std::vector<uint8_t> &, const std::vector<size_t> &)> &edit) {
    FakeAead a(42), b(42);
    EditedRun r;
    r.run = run_aead(in, &a, &b, 1016, [&](std::vector<uint8_t> &w) {
        const auto at = chunk_records(w);
        if (r.edited || at.size() < min_chunks) return;
        edit(w, at);
        r.edited = true;
    });
    return r;
}

} // namespace

TEST(StripeAead, RoundTripIsByteExactAndTheWireIsEncrypted) {
    FakeAead a(42), b(42);
    const std::vector<uint8_t> in = input(10'000);
    const AeadRun r = run_aead(in, &a, &b, 1016);
    ASSERT_EQ(r.tx, SessionState::DONE) << r.tx_msg;
    ASSERT_EQ(r.rx, SessionState::DONE) << r.rx_msg;
    EXPECT_EQ(r.out, in);
    // 10,000 bytes in chunks of 1000 input bytes: 10 sealed chunks.
    EXPECT_EQ(a.seals, 10u);
    const auto at = chunk_records(r.wire);
    ASSERT_EQ(at.size(), 10u);
    for (size_t i = 0; i < at.size(); i++) {
        const uint8_t *h = r.wire.data() + at[i];
        EXPECT_EQ(h[5] & kChunkFlagEncrypted, kChunkFlagEncrypted) << "chunk " << i;
        EXPECT_EQ(millipede::net::load_le64(h + 16), i * 1000) << "offset counts input bytes";
        EXPECT_EQ(millipede::net::load_le32(h + 24), 1000u + kAeadTagBytes) << "length = input + tag";
        EXPECT_NE(0, std::memcmp(h + kChunkHeaderSize, in.data() + i * 1000, 1000)) << "chunk " << i << " in clear";
    }
    // The hello announces bit 4 and a 'K' record follows it at once.
    ASSERT_GE(r.wire.size(), kHelloSize + kKeyProofSize);
    EXPECT_TRUE(millipede::net::load_le32(r.wire.data() + 20) & kFeatureAead);
    EXPECT_EQ(r.wire[kHelloSize + 4], kTypeKeyProof);
}

TEST(StripeAead, WrongKeyFailsBothSidesBeforeAnyChunk) {
    FakeAead a(42), b(43);
    const AeadRun r = run_aead(input(5000), &a, &b, 1016);
    EXPECT_EQ(r.tx, SessionState::FAILED);
    EXPECT_EQ(r.tx_error, Error::KEY_MISMATCH);
    EXPECT_NE(r.tx_msg.find("key mismatch"), std::string::npos) << r.tx_msg;
    EXPECT_NE(r.rx_leg_msg.find("key proof did not verify"), std::string::npos) << r.rx_leg_msg;
    EXPECT_EQ(r.legs_refused, 1u);
    EXPECT_TRUE(r.out.empty());
    EXPECT_TRUE(chunk_records(r.wire).empty()) << "a chunk left before the keys were proven";
}

TEST(StripeAead, KeyOnOneSideOnlyIsRefused) {
    FakeAead a(42);
    AeadRun r = run_aead(input(5000), &a, nullptr, 1016);
    EXPECT_EQ(r.tx, SessionState::FAILED);
    EXPECT_NE(r.tx_msg.find("key mismatch"), std::string::npos) << r.tx_msg;
    EXPECT_NE(r.rx_leg_msg.find("the sender encrypts (key FILE) and this receiver has no key"), std::string::npos)
        << r.rx_leg_msg;
    EXPECT_TRUE(r.out.empty());
    r = run_aead(input(5000), nullptr, &a, 1016);
    EXPECT_EQ(r.tx, SessionState::FAILED);
    EXPECT_NE(r.tx_msg.find("start tx with the receiver's key FILE"), std::string::npos) << r.tx_msg;
    EXPECT_NE(r.rx_leg_msg.find("this receiver has a key (key FILE) and the sender has none"), std::string::npos)
        << r.rx_leg_msg;
    EXPECT_TRUE(r.out.empty());
}

TEST(StripeAead, TamperedChunkFailsAndNothingOfItIsWritten) {
    const std::vector<uint8_t> in = input(3000);
    // The second chunk record: one payload byte flipped.
    const EditedRun e = run_with_one_edit(in, 2, [](std::vector<uint8_t> &w, const std::vector<size_t> &at) {
        w[at[1] + kChunkHeaderSize + 500] ^= 0x80;
        fix_crc(w, at[1]);
    });
    ASSERT_TRUE(e.edited) << "the hook never saw two chunks in one batch";
    const AeadRun &r = e.run;
    EXPECT_EQ(r.rx, SessionState::FAILED);
    EXPECT_EQ(r.rx_error, Error::AUTH_FAILED);
    EXPECT_NE(r.rx_msg.find("chunk 1 (stream bytes 1000.., leg 0) failed authentication"), std::string::npos) << r.rx_msg;
    // Chunk 0 verified and may be out; not one byte of chunk 1.
    EXPECT_LE(r.out.size(), 1000u);
    EXPECT_TRUE(std::equal(r.out.begin(), r.out.end(), in.begin()));
}

TEST(StripeAead, ChunkReplayedAtAnotherPlaceFails) {
    const std::vector<uint8_t> in = input(3000);
    // Chunk 0's sealed bytes offered as chunk 1 (CRC fixed): its tag was made
    // for seq 0 at offset 0.
    const EditedRun e = run_with_one_edit(in, 2, [](std::vector<uint8_t> &w, const std::vector<size_t> &at) {
        std::memcpy(w.data() + at[1] + kChunkHeaderSize, w.data() + at[0] + kChunkHeaderSize, 1000 + kAeadTagBytes);
        fix_crc(w, at[1]);
    });
    ASSERT_TRUE(e.edited);
    const AeadRun &r = e.run;
    EXPECT_EQ(r.rx, SessionState::FAILED);
    EXPECT_EQ(r.rx_error, Error::AUTH_FAILED);
    EXPECT_LE(r.out.size(), 1000u);
    EXPECT_TRUE(std::equal(r.out.begin(), r.out.end(), in.begin()));
}

TEST(StripeAead, ExactReplayOfADeliveredChunkIsDroppedNotWrittenTwice) {
    const std::vector<uint8_t> in = input(3000);
    // Chunk 0's record again, right behind the original.
    const EditedRun e = run_with_one_edit(in, 1, [](std::vector<uint8_t> &w, const std::vector<size_t> &at) {
        const size_t rec = kChunkHeaderSize + 1000 + kAeadTagBytes;
        std::vector<uint8_t> copy(w.begin() + at[0], w.begin() + at[0] + rec);
        w.insert(w.begin() + at[0] + rec, copy.begin(), copy.end());
    });
    ASSERT_TRUE(e.edited);
    ASSERT_EQ(e.run.rx, SessionState::DONE) << e.run.rx_msg;
    EXPECT_EQ(e.run.out, in);
    EXPECT_GE(e.run.duplicates, 1u);
}

TEST(StripeAead, UnencryptedChunkInAKeyedSessionFails) {
    const EditedRun e = run_with_one_edit(input(3000), 1, [](std::vector<uint8_t> &w, const std::vector<size_t> &at) {
        w[at[0] + 5] &= static_cast<uint8_t>(~kChunkFlagEncrypted);
    });
    ASSERT_TRUE(e.edited);
    EXPECT_EQ(e.run.rx, SessionState::FAILED);
    EXPECT_NE(e.run.rx_msg.find("is not encrypted"), std::string::npos) << e.run.rx_msg;
    EXPECT_TRUE(e.run.out.empty());
}

TEST(StripeAead, ForgedReceiverProofFailsTheSender) {
    FakeAead a(42), b(42);
    bool done = false;
    const AeadRun r = run_aead(input(3000), &a, &b, 1016, nullptr, [&](std::vector<uint8_t> &w) {
        // The receiver's 'k' follows its 16-byte hello reply: one tag bit off,
        // as someone posing as the receiver without the key would send it.
        if (done || w.size() < kHelloReplySize + kKeyProofSize || w[kHelloReplySize + 4] != kTypeKeyProofReply) return;
        w[kHelloReplySize + 16] ^= 0x01;
        done = true;
    });
    ASSERT_TRUE(done);
    EXPECT_EQ(r.tx, SessionState::FAILED);
    EXPECT_EQ(r.tx_error, Error::KEY_MISMATCH);
    EXPECT_NE(r.tx_msg.find("the receiver's key proof did not verify"), std::string::npos) << r.tx_msg;
    EXPECT_TRUE(chunk_records(r.wire).empty()) << "a chunk left before the receiver proved the key";
}

TEST(StripeAead, SecondSessionWaitingForItsProofCannotReplaceTheAdoptedKey) {
    // Two senders (sessions A and B, same key) say hello before either
    // proof arrives; A's proof is adopted first. B's must be refused without
    // deriving B's key, or A's chunks would stop opening.
    FakeAead rx_aead(42), a_aead(42), b_aead(42);
    ReceiverConfig rc;
    rc.max_legs = 2;
    rc.window_chunks = 4;
    rc.max_chunk_bytes = 1016;
    rc.aead = &rx_aead;
    StripeReceiver rx(rc);
    const uint64_t A = 0xA, B = 0xB;
    ASSERT_TRUE(a_aead.start_session(A) && b_aead.start_session(B));
    auto hello_and_proof = [](FakeAead &k, uint64_t session) {
        Hello h;
        h.session_id = session;
        h.features = kFeaturesV1 | kFeatureAead;
        h.chunk_bytes = 1016;
        std::vector<uint8_t> hb = hello_bytes(h);
        KeyProof p;
        p.challenge = 1;
        uint8_t aad[kAeadAadBytes];
        encode_proof_aad(aad, session, 1, 0);
        k.proof(kNonceProofTx, 1, aad, p.tag);
        std::vector<uint8_t> kb(kKeyProofSize);
        encode_key_proof(kb.data(), kTypeKeyProof, p);
        return std::make_pair(hb, kb);
    };
    auto [ha, ka] = hello_and_proof(a_aead, A);
    auto [hb, kb] = hello_and_proof(b_aead, B);
    rx.leg_up(0, 0);
    rx.leg_up(1, 0);
    rx.leg_input(0, ha.data(), ha.size(), 1);
    rx.leg_input(1, hb.data(), hb.size(), 1);
    rx.leg_input(0, ka.data(), ka.size(), 2);
    EXPECT_EQ(rx.leg_state(0), ReceiverLegState::OPEN);
    rx.leg_input(1, kb.data(), kb.size(), 2);
    EXPECT_EQ(rx.leg_state(1), ReceiverLegState::REFUSING);
    EXPECT_NE(std::string(rx.last_leg_message()).find("session mismatch"), std::string::npos) << rx.last_leg_message();
    // A's chunk 0 still opens.
    std::vector<uint8_t> payload = input(100);
    payload.resize(100 + kAeadTagBytes);
    uint8_t aad[kAeadAadBytes];
    encode_chunk_aad(aad, A, 0, 0, 100);
    ASSERT_TRUE(a_aead.seal(0, aad, payload.data(), 100));
    std::vector<uint8_t> rec = chunk_bytes(0, 0, payload);
    rec[5] |= kChunkFlagEncrypted;
    rx.leg_input(0, rec.data(), rec.size(), 3);
    EXPECT_EQ(rx.state(), SessionState::RUNNING) << rx.message();
    auto out = rx.output();
    EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.end()), input(100));
}

TEST(StripeAead, KeyProofRecordLayout) {
    KeyProof k;
    k.challenge = 0x0102030405060708ull;
    for (int i = 0; i < 16; i++) k.tag[i] = static_cast<uint8_t>(0xA0 + i);
    uint8_t b[kKeyProofSize];
    ASSERT_EQ(encode_key_proof(b, kTypeKeyProof, k), 32u);
    const uint8_t want[32] = {'M', 'L', 'P', 'D', 'K', 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1,
                              0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF};
    EXPECT_EQ(0, std::memcmp(b, want, 32));
    uint8_t aad[kAeadAadBytes];
    encode_chunk_aad(aad, 0x1111, 2, 0x3333, 0x44);
    EXPECT_EQ(millipede::net::load_le64(aad), 0x1111u);
    EXPECT_EQ(millipede::net::load_le64(aad + 8), 2u);
    EXPECT_EQ(millipede::net::load_le64(aad + 16), 0x3333u);
    EXPECT_EQ(millipede::net::load_le32(aad + 24), 0x44u);
    EXPECT_EQ(millipede::net::load_le32(aad + 28), 0u);
    // The receiver decodes 'K' once after the hello, and not before it.
    Decoder rx(Codec::NATIVE, Direction::FROM_SENDER);
    std::vector<uint8_t> bytes = hello_bytes(Hello{});
    bytes.insert(bytes.end(), b, b + 32);
    const auto recs = decode_all(rx, bytes, true);
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[1].kind, EventKind::KEY_PROOF);
    EXPECT_EQ(recs[1].d.key.challenge, k.challenge);
    Decoder early(Codec::NATIVE, Direction::FROM_SENDER);
    Error err = Error::NONE;
    decode_all(early, std::vector<uint8_t>(b, b + 32), false, &err);
    EXPECT_EQ(err, Error::UNEXPECTED_RECORD);
}

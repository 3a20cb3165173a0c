// key FILE's AES-256-GCM through the real cryptodev (crypto_ipsec_mb's
// aesni_gcm vdev): round trip, OpenSSL as an independent oracle for the
// format (session key derivation, nonce, AAD, tag), and the refusals: a
// tampered byte anywhere, a wrong key, a chunk replayed under another seq,
// offset or session.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <cstring>
#include <string>
#include <vector>

#include "millipede/net/bytes.h"
#include "millipede/seal/cryptodev_aead.h"

using millipede::seal::CryptodevAead;
using millipede::seal::Key;
namespace stripe = millipede::stripe;

namespace {

Key key_of(uint8_t base) {
    Key k;
    for (size_t i = 0; i < k.size(); i++) k[i] = static_cast<uint8_t>(base + 7 * i);
    return k;
}

std::unique_ptr<CryptodevAead> make(const Key &k, uint64_t session) {
    std::string err;
    auto a = CryptodevAead::create(k, err);
    EXPECT_TRUE(a) << err;
    if (a) {
        EXPECT_TRUE(a->start_session(session));
    }
    return a;
}

// OpenSSL's AES-256-GCM, one shot; returns false when decrypt's tag fails.
bool ossl_gcm(bool enc, const uint8_t *key, const uint8_t iv[12], const uint8_t *aad, size_t aad_len, uint8_t *buf,
              size_t len, uint8_t tag[16]) {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int out = 0;
    bool ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), nullptr, key, iv, enc ? 1 : 0) == 1 &&
              EVP_CipherUpdate(c, nullptr, &out, aad, static_cast<int>(aad_len)) == 1 &&
              (len == 0 || EVP_CipherUpdate(c, buf, &out, buf, static_cast<int>(len)) == 1);
    if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, buf + len, &out) == 1;
    if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

void make_iv(uint8_t iv[12], uint32_t label, uint64_t counter) {
    millipede::net::store_le32(iv, label);
    millipede::net::store_le64(iv + 4, counter);
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n + stripe::kAeadTagBytes);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 8));
    return v;
}

} // namespace

TEST(Seal, RoundTripAndOpenSslAgrees) {
    const Key k = key_of(3);
    const uint64_t session = 0x1122334455667788ull;
    auto tx = make(k, session);
    auto rx = make(k, session);
    ASSERT_TRUE(tx && rx);
    const size_t n = (1u << 20) - 16; // a full 1 MiB chunk on the wire
    std::vector<uint8_t> plain = pattern(n, 9), buf = plain;
    uint8_t aad[stripe::kAeadAadBytes];
    stripe::encode_chunk_aad(aad, session, 5, 5 * n, static_cast<uint32_t>(n));
    ASSERT_TRUE(tx->seal(5, aad, buf.data(), static_cast<uint32_t>(n)));
    EXPECT_NE(0, std::memcmp(buf.data(), plain.data(), n)) << "not encrypted";

    // The oracle: derive the session key as docs/wire.md 2.22 says and
    // open the chunk with OpenSSL.
    uint8_t skey[32] = {}, zero_aad[32] = {}, iv[12], tag[16];
    make_iv(iv, stripe::kNonceKdf, session);
    ASSERT_TRUE(ossl_gcm(true, k.data(), iv, zero_aad, 32, skey, 32, tag));
    std::vector<uint8_t> copy = buf;
    make_iv(iv, stripe::kNonceChunk, 5);
    std::memcpy(tag, copy.data() + n, 16);
    ASSERT_TRUE(ossl_gcm(false, skey, iv, aad, sizeof aad, copy.data(), n, tag)) << "OpenSSL refused our tag";
    EXPECT_EQ(0, std::memcmp(copy.data(), plain.data(), n));

    ASSERT_TRUE(rx->open(5, aad, buf.data(), static_cast<uint32_t>(n + 16)));
    EXPECT_EQ(0, std::memcmp(buf.data(), plain.data(), n));
    EXPECT_EQ(rx->auth_failures(), 0u);
}

TEST(Seal, TamperedCiphertextTagOrAadIsRefusedAndWiped) {
    const Key k = key_of(4);
    auto tx = make(k, 77);
    auto rx = make(k, 77);
    ASSERT_TRUE(tx && rx);
    const size_t n = 4096;
    uint8_t aad[stripe::kAeadAadBytes];
    stripe::encode_chunk_aad(aad, 77, 1, 4096, n);
    std::vector<uint8_t> sealed = pattern(n, 1);
    ASSERT_TRUE(tx->seal(1, aad, sealed.data(), n));
    for (size_t at : {size_t(0), n / 2, n - 1, n, n + 15}) { // payload and tag bytes
        std::vector<uint8_t> b = sealed;
        b[at] ^= 0x01;
        EXPECT_FALSE(rx->open(1, aad, b.data(), n + 16)) << "byte " << at;
        EXPECT_EQ(std::vector<uint8_t>(n + 16, 0), b) << "unverified bytes left in the buffer";
    }
    uint8_t other[stripe::kAeadAadBytes];
    stripe::encode_chunk_aad(other, 77, 1, 4096, n - 1); // a different claimed length
    std::vector<uint8_t> b = sealed;
    EXPECT_FALSE(rx->open(1, other, b.data(), n + 16));
    EXPECT_EQ(rx->auth_failures(), 6u);
}

TEST(Seal, WrongKeyFailsProofAndChunks) {
    auto tx = make(key_of(5), 99);
    auto rx = make(key_of(6), 99);
    ASSERT_TRUE(tx && rx);
    uint8_t aad[stripe::kAeadAadBytes], t1[16], t2[16];
    stripe::encode_proof_aad(aad, 99, 1234, 0);
    ASSERT_TRUE(tx->proof(stripe::kNonceProofTx, 1234, aad, t1));
    ASSERT_TRUE(rx->proof(stripe::kNonceProofTx, 1234, aad, t2));
    EXPECT_NE(0, std::memcmp(t1, t2, 16)) << "different keys gave the same proof";
    auto same = make(key_of(5), 99);
    ASSERT_TRUE(same->proof(stripe::kNonceProofTx, 1234, aad, t2));
    EXPECT_EQ(0, std::memcmp(t1, t2, 16)) << "the same key must give the same proof";

    std::vector<uint8_t> b = pattern(1000, 2);
    stripe::encode_chunk_aad(aad, 99, 0, 0, 1000);
    ASSERT_TRUE(tx->seal(0, aad, b.data(), 1000));
    EXPECT_FALSE(rx->open(0, aad, b.data(), 1016));
}

TEST(Seal, ReplayUnderAnotherSeqOffsetOrSessionIsRefused) {
    const Key k = key_of(7);
    auto tx = make(k, 500);
    ASSERT_TRUE(tx);
    const uint32_t n = 2048;
    uint8_t aad[stripe::kAeadAadBytes];
    stripe::encode_chunk_aad(aad, 500, 3, 3 * n, n);
    std::vector<uint8_t> sealed = pattern(n, 3);
    ASSERT_TRUE(tx->seal(3, aad, sealed.data(), n));

    auto rx = make(k, 500);
    ASSERT_TRUE(rx);
    std::vector<uint8_t> b = sealed;
    uint8_t moved[stripe::kAeadAadBytes];
    stripe::encode_chunk_aad(moved, 500, 4, 4 * n, n); // chunk 3's bytes offered as chunk 4
    EXPECT_FALSE(rx->open(4, moved, b.data(), n + 16));
    b = sealed;
    stripe::encode_chunk_aad(moved, 500, 3, 0, n); // at another offset
    EXPECT_FALSE(rx->open(3, moved, b.data(), n + 16));

    auto later = make(k, 501); // the same chunk replayed into another session
    ASSERT_TRUE(later);
    b = sealed;
    stripe::encode_chunk_aad(moved, 501, 3, 3 * n, n);
    EXPECT_FALSE(later->open(3, moved, b.data(), n + 16));
    b = sealed;
    EXPECT_FALSE(later->open(3, aad, b.data(), n + 16)) << "session 500's chunk opened under session 501's key";

    b = sealed; // and where it belongs it opens
    EXPECT_TRUE(rx->open(3, aad, b.data(), n + 16));
}

// The stripe cores on the real cipher: the handshake, a byte-exact
// transfer, a wrong key and a tampered chunk.
#include "../stripe/aead_harness.h"

namespace {
std::vector<uint8_t> stream(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(i * 13 + (i >> 11));
    return v;
}
std::unique_ptr<CryptodevAead> device_for(const Key &k) {
    std::string err;
    auto a = CryptodevAead::create(k, err);
    EXPECT_TRUE(a) << err;
    return a;
}
} // namespace

TEST(SealStripe, TransferIsByteExactThroughCryptodev) {
    auto tx = device_for(key_of(11)), rx = device_for(key_of(11));
    ASSERT_TRUE(tx && rx);
    const std::vector<uint8_t> in = stream(300'000);
    const auto r = stripe_test::run_aead(in, tx.get(), rx.get(), 65536);
    ASSERT_EQ(r.tx, stripe::SessionState::DONE) << r.tx_msg;
    ASSERT_EQ(r.rx, stripe::SessionState::DONE) << r.rx_msg;
    EXPECT_EQ(r.out, in);
    EXPECT_GE(tx->ops(), 5u + 1u) << "5 chunks and at least one key proof";
    EXPECT_EQ(rx->auth_failures(), 0u);
}

TEST(SealStripe, WrongKeyIsRefusedBeforeAnyChunk) {
    auto tx = device_for(key_of(11)), rx = device_for(key_of(12));
    ASSERT_TRUE(tx && rx);
    const auto r = stripe_test::run_aead(stream(100'000), tx.get(), rx.get(), 65536);
    EXPECT_EQ(r.tx, stripe::SessionState::FAILED);
    EXPECT_NE(r.tx_msg.find("key mismatch"), std::string::npos) << r.tx_msg;
    EXPECT_NE(r.rx_leg_msg.find("key proof did not verify"), std::string::npos) << r.rx_leg_msg;
    EXPECT_TRUE(r.out.empty());
    EXPECT_TRUE(stripe_test::chunk_records(r.wire).empty());
}

TEST(SealStripe, TamperedChunkFailsTheReceiver) {
    auto tx = device_for(key_of(11)), rx = device_for(key_of(11));
    ASSERT_TRUE(tx && rx);
    const std::vector<uint8_t> in = stream(200'000);
    bool done = false;
    const auto r = stripe_test::run_aead(in, tx.get(), rx.get(), 65536, [&](std::vector<uint8_t> &w) {
        const auto at = stripe_test::chunk_records(w);
        if (done || at.size() < 2) return;
        const size_t h = at[1];
        w[h + stripe::kChunkHeaderSize + 12345] ^= 0x10;
        const uint32_t len = millipede::net::load_le32(w.data() + h + 24);
        millipede::net::store_le32(w.data() + h + 28, stripe::crc32c(w.data() + h + stripe::kChunkHeaderSize, len));
        done = true;
    });
    ASSERT_TRUE(done);
    EXPECT_EQ(r.rx, stripe::SessionState::FAILED);
    EXPECT_NE(r.rx_msg.find("failed authentication"), std::string::npos) << r.rx_msg;
    EXPECT_LE(r.out.size(), 65536u - 16u);
    EXPECT_TRUE(std::equal(r.out.begin(), r.out.end(), in.begin()));
    EXPECT_EQ(rx->auth_failures(), 1u);
}

// The queue-pair path (what QAT or mlx5 crypto would use), forced on the
// software device: the same bytes as the CPU path, chunks spanning many
// 32 KiB mbuf segments, refusals, and the stripe cores on top.
TEST(SealQueuePair, SameBytesAsTheCpuPathAndTheSameRefusals) {
    const Key k = key_of(21);
    std::string err;
    auto cpu = CryptodevAead::create(k, err, CryptodevAead::Path::CPU);
    ASSERT_TRUE(cpu) << err;
    auto qp = CryptodevAead::create(k, err, CryptodevAead::Path::QUEUE_PAIR);
    ASSERT_TRUE(qp) << err;
    ASSERT_TRUE(qp->queue_pair_path());
    ASSERT_FALSE(cpu->queue_pair_path());
    ASSERT_TRUE(cpu->start_session(31) && qp->start_session(31));
    for (const uint32_t n : {1u, 32768u, 32769u, (1u << 20) - 16, (2u << 20) - 16}) {
        SCOPED_TRACE(n);
        std::vector<uint8_t> plain = pattern(n, 4), a = plain, b = plain;
        uint8_t aad[stripe::kAeadAadBytes];
        stripe::encode_chunk_aad(aad, 31, 9, 123, n);
        ASSERT_TRUE(cpu->seal(9, aad, a.data(), n));
        ASSERT_TRUE(qp->seal(9, aad, b.data(), n));
        ASSERT_EQ(a, b) << "the two paths sealed differently";
        ASSERT_TRUE(qp->open(9, aad, b.data(), n + 16));
        EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + n, b.begin()));
        a[n / 2] ^= 4;
        EXPECT_FALSE(qp->open(9, aad, a.data(), n + 16));
        EXPECT_EQ(std::vector<uint8_t>(n + 16, 0), a) << "unverified bytes left in the buffer";
    }
    uint8_t proof_aad[stripe::kAeadAadBytes], t1[16], t2[16];
    stripe::encode_proof_aad(proof_aad, 31, 5, 0);
    ASSERT_TRUE(cpu->proof(stripe::kNonceProofTx, 5, proof_aad, t1));
    ASSERT_TRUE(qp->proof(stripe::kNonceProofTx, 5, proof_aad, t2));
    EXPECT_EQ(0, std::memcmp(t1, t2, 16));
}

TEST(SealQueuePair, TransferIsByteExact) {
    std::string err;
    auto tx = CryptodevAead::create(key_of(22), err, CryptodevAead::Path::QUEUE_PAIR);
    auto rx = CryptodevAead::create(key_of(22), err, CryptodevAead::Path::QUEUE_PAIR);
    ASSERT_TRUE(tx && rx) << err;
    const std::vector<uint8_t> in = stream(500'000);
    const auto r = stripe_test::run_aead(in, tx.get(), rx.get(), 200'000);
    ASSERT_EQ(r.tx, stripe::SessionState::DONE) << r.tx_msg;
    ASSERT_EQ(r.rx, stripe::SessionState::DONE) << r.rx_msg;
    EXPECT_EQ(r.out, in);
}

// Parity over sealed chunks (docs/wire.md 2.21) on the real cipher: the
// receiver rebuilds a lost chunk's ciphertext from its stripe and opens it
// with AES-256-GCM, and a rebuilt chunk whose bytes were changed through the
// parity fails the real tag before anything of it is written.
#include "../stripe/parity_combo_harness.h"

TEST(SealParity, LostCompressedAndRawChunksAreRebuiltAndOpen) {
    auto tx = device_for(key_of(31)), rx = device_for(key_of(31));
    ASSERT_TRUE(tx && rx);
    using stripe_test::compressible;
    using stripe_test::random_bytes;
    const std::vector<std::vector<uint8_t>> pieces = {random_bytes(stripe_test::kPiece, 50),
                                                      compressible(stripe_test::kPiece, 51),
                                                      compressible(stripe_test::kPiece, 52), random_bytes(300, 53)};
    // 4 legs, parity 2: one stripe is seqs 0-1 data, 2-3 parity.
    const auto r = stripe_test::run_combo(pieces, 4, 2, true, tx.get(), rx.get(), stripe_test::drop_seqs({0, 1, 4}));
    ASSERT_EQ(r.tx, stripe::SessionState::DONE) << r.tx_msg << " | " << r.rx_msg;
    ASSERT_EQ(r.rx, stripe::SessionState::DONE) << r.rx_msg;
    ASSERT_EQ(r.dropped.size(), 3u);
    EXPECT_FALSE(r.dropped[0].flags & stripe::kChunkFlagCompressed);
    EXPECT_TRUE(r.dropped[1].flags & stripe::kChunkFlagCompressed);
    for (const auto &h : r.dropped) EXPECT_TRUE(h.flags & stripe::kChunkFlagEncrypted);
    EXPECT_EQ(r.rebuilt, 3u);
    EXPECT_EQ(r.resent, 0u) << "a rebuilt chunk is never sent again";
    EXPECT_EQ(r.out, stripe_test::concat(pieces));
    EXPECT_EQ(rx->auth_failures(), 0u);
}

TEST(SealParity, ARebuiltChunkChangedThroughTheParityFailsTheTag) {
    auto tx = device_for(key_of(32)), rx = device_for(key_of(32));
    ASSERT_TRUE(tx && rx);
    std::vector<std::vector<uint8_t>> pieces;
    for (uint32_t i = 0; i < 4; i++) pieces.push_back(stripe_test::random_bytes(stripe_test::kPiece, 60 + i));
    bool tampered = false;
    const auto r = stripe_test::run_combo(
        pieces, 3, 1, false, tx.get(), rx.get(),
        stripe_test::lose_0_and_flip_its_bit_through_parity(stripe_test::kPiece + 16, tampered));
    ASSERT_TRUE(tampered);
    EXPECT_EQ(r.rx, stripe::SessionState::FAILED);
    EXPECT_EQ(r.rx_error, stripe::Error::AUTH_FAILED) << r.rx_msg;
    EXPECT_NE(r.rx_msg.find("rebuilt from its stripe's parity failed authentication"), std::string::npos) << r.rx_msg;
    EXPECT_TRUE(r.out.empty()) << "chunk 0 is the first: nothing may reach stdout";
    EXPECT_EQ(rx->auth_failures(), 1u);
}

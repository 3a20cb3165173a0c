// The authenticated-encryption interface the stripe cores use with a
// pre-shared key (`key FILE`, docs/wire.md 2.22). The cores stay pure: the
// real implementation (lib/seal, AES-256-GCM through DPDK cryptodev) is
// injected by the owner; unit tests may inject a test double.
//
// Contract
// - One object per session side, used by ONE thread (the thread that owns
//   the StripeSender/StripeReceiver and, on tx, the one that seals chunks).
//   Not thread-safe. No method allocates after start_session().
// - start_session() derives the session key from the pre-shared key and the
//   64-bit session id; every other call uses that session key. It may be
//   called again with another id (a receiver adopting a new session).
// - Nonces (12 bytes): 4-byte label || 8-byte counter, little-endian.
//   Chunks use label kNonceChunk and the chunk seq; handshake proofs use
//   kNonceProofTx / kNonceProofRx and the sender's challenge. Under one
//   session key a (label, counter) pair is used for one message only; a
//   re-sent chunk reuses its seq with the SAME bytes (same plaintext, same
//   AAD), which is a repeat of the same message, not a nonce reuse.
// - seal()/open() work in place on `buf`: seal() encrypts buf[0..len) and
//   writes the 16-byte tag to buf[len..len+16) (room must exist); open()
//   verifies the tag at buf[len-16..len) over buf[0..len-16) and the AAD and
//   only then decrypts; on a bad tag it returns false and buf's bytes are
//   not plaintext (the caller must not use them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "millipede/net/bytes.h"

namespace millipede::stripe {

inline constexpr size_t kAeadKeyBytes = 32;  // AES-256
inline constexpr size_t kAeadTagBytes = 16;  // GCM tag
inline constexpr size_t kAeadIvBytes = 12;   // GCM IV
inline constexpr size_t kAeadAadBytes = 32;  // every AAD has this fixed size
inline constexpr uint32_t kNonceChunk = 0;             // chunk seq follows
inline constexpr uint32_t kNonceProofTx = 0x5854504Bu; // "KPTX": sender's proof
inline constexpr uint32_t kNonceProofRx = 0x5852504Bu; // "KPRX": receiver's proof
inline constexpr uint32_t kNonceKdf = 0x444B4C4Du;     // "MLKD": session key derivation (pre-shared key)
// Chunks per session key. GCM with deterministic nonces would allow more,
// but past this the sender fails instead of getting close to any limit
// (docs/wire.md 2.22: a new transfer means a new session key).
inline constexpr uint64_t kAeadMaxChunks = uint64_t(1) << 32;

// The chunk AAD: session id, seq, stream offset and original (plaintext)
// length, then 4 zero bytes; 32 bytes, little-endian (docs/wire.md 2.22).
inline void encode_chunk_aad(uint8_t out[kAeadAadBytes], uint64_t session_id, uint64_t seq, uint64_t offset,
                             uint32_t plain_len) {
    net::store_le64(out, session_id);
    net::store_le64(out + 8, seq);
    net::store_le64(out + 16, offset);
    net::store_le32(out + 24, plain_len);
    net::store_le32(out + 28, 0);
}

// The handshake AAD: session id, the sender's challenge, the receiver's
// challenge (0 in the sender's proof), then "MLPDPROF".
inline void encode_proof_aad(uint8_t out[kAeadAadBytes], uint64_t session_id, uint64_t tx_challenge,
                             uint64_t rx_challenge) {
    net::store_le64(out, session_id);
    net::store_le64(out + 8, tx_challenge);
    net::store_le64(out + 16, rx_challenge);
    net::store_le64(out + 24, 0x464F525044504C4Dull); // "MLPDPROF"
}

class Aead {
  public:
    virtual ~Aead() = default;
    virtual bool start_session(uint64_t session_id) = 0;
    // GMAC: a tag over `aad` only (no payload), nonce = label || counter.
    virtual bool proof(uint32_t label, uint64_t counter, const uint8_t aad[kAeadAadBytes],
                       uint8_t tag[kAeadTagBytes]) = 0;
    virtual bool seal(uint64_t seq, const uint8_t aad[kAeadAadBytes], uint8_t *buf, uint32_t len) = 0;
    virtual bool open(uint64_t seq, const uint8_t aad[kAeadAadBytes], uint8_t *buf, uint32_t len) = 0;
};

} // namespace millipede::stripe

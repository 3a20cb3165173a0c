// lib/stripe wire formats: millipede's native framing inside each TCP byte
// stream ("leg") and viamillipede's own format (compatibility mode), both
// byte-for-byte as docs/wire.md describes them.
//
// Contract
// - Pure C++: no EAL, no sockets, no threads, no clock. Any thread may use
//   any object here; an object (Decoder) is not thread-safe and belongs to
//   the thread that feeds it (the lcore that owns the leg).
// - encode_*() write exactly k*Size bytes at `out` (caller provides room),
//   little-endian, through millipede/net/bytes.h. They never allocate.
// - Decoder is a streaming decoder: it accepts bytes in fragments of any size
//   (one byte at a time works), validates every length field against a bound
//   before it trusts it, never allocates, and never copies payload: chunk
//   payload comes back as spans of the caller's input. After an ERROR the
//   decoder stays in error (the leg must be closed).
// - CRC32C is ISA-L's crc32_iscsi with init/final xor 0xFFFFFFFF (check value
//   0xE3069283 for "123456789"); the stream digest is CRC-64/XZ, ISA-L's
//   crc64_ecma_refl (check value 0x995DC9BBDF1939FA).
#pragma once

#include <cstddef>
#include <cstdint>

#include "millipede/net/bytes.h"

namespace millipede::stripe {

// ---------------------------------------------------------------- errors --
enum class Error : uint8_t {
    NONE = 0,
#define MILLIPEDE_STRIPE_ERROR(sym, name, desc) sym,
#include "millipede/stripe/errors.def"
#undef MILLIPEDE_STRIPE_ERROR
    COUNT_
};
inline constexpr unsigned kErrorCount = static_cast<unsigned>(Error::COUNT_);
const char *error_name(Error e);        // "none" for NONE
const char *error_description(Error e); // one line

// -------------------------------------------------------------- checksums --
// Standard CRC32C (Castagnoli). Chaining: crc32c(b, crc32c(a)) == crc32c(ab).
uint32_t crc32c(const uint8_t *p, size_t n, uint32_t prev = 0);
// CRC-64/XZ (ECMA-182 polynomial, reflected, init/xorout all ones).
// Chaining as above; crc64(empty) == 0.
uint64_t crc64(const uint8_t *p, size_t n, uint64_t prev = 0);
// Both of the above over the same bytes, in blocks small enough to stay in
// the L1/L2 cache between the two: one trip through memory, not two.
void crc32c_and_crc64(const uint8_t *p, size_t n, uint32_t &crc32c_state, uint64_t &crc64_state);
// crc64(AB) from crc64(A), crc64(B) and B's length, without reading A or B
// (GF(2) arithmetic modulo the polynomial, as zlib's crc32_combine): a
// receiver whose chunks complete out of order sums each on arrival, while
// it is in cache, and chains the sums in stream order. About 1 us per call;
// the last length's power is cached (thread-local).
uint64_t crc64_combine(uint64_t crc_a, uint64_t crc_b, uint64_t len_b);

// -------------------------------------------------------------- codecs ----
enum class Codec : uint8_t {
    NATIVE,       // millipede framing, acks, end-to-end digest
    VIAMILLIPEDE, // stock viamillipede v0.89 wire format, no acks
};

// Whose bytes a Decoder reads.
enum class Direction : uint8_t {
    FROM_SENDER,   // the receiver decodes: hello, chunks, end
    FROM_RECEIVER, // the sender decodes: hello reply, acks, resend, end ack
};

// ------------------------------------------------------- native format ----
inline constexpr uint32_t kMagic = 0x44504C4D; // bytes "MLPD" on the wire
inline constexpr uint8_t kVersion = 1;
inline constexpr uint32_t kMaxChunkBytes = 2u << 20; // 2 MiB, hard ceiling

inline constexpr uint8_t kTypeHello = 'H';
inline constexpr uint8_t kTypeHelloReply = 'h';
inline constexpr uint8_t kTypeChunk = 'C';
inline constexpr uint8_t kTypeAck = 'A';
inline constexpr uint8_t kTypeResend = 'R';
inline constexpr uint8_t kTypeEnd = 'E';
inline constexpr uint8_t kTypeEndAck = 'e';
inline constexpr uint8_t kTypeKeyProof = 'K';      // sender's key proof, right after the hello (2.22)
inline constexpr uint8_t kTypeKeyProofReply = 'k'; // receiver's key proof, right after the hello reply

inline constexpr size_t kPrefixSize = 8; // magic, type, 3 bytes; same in every version
inline constexpr size_t kHelloSize = 32;
inline constexpr size_t kHelloReplySize = 16;
inline constexpr size_t kChunkHeaderSize = 32;
inline constexpr size_t kAckSize = 24;
inline constexpr size_t kResendSize = 24;
inline constexpr size_t kEndSize = 32;
inline constexpr size_t kEndAckSize = 32;
inline constexpr size_t kKeyProofSize = 32;
inline constexpr size_t kMaxRecordHeader = 40; // >= every fixed header above and compat's

inline constexpr uint32_t kFeatureCrc32c = 1u << 0;      // required in v1
inline constexpr uint32_t kFeatureAckBitmap = 1u << 1;   // selective-ack bitmap honoured
inline constexpr uint32_t kFeaturesV1 = kFeatureCrc32c | kFeatureAckBitmap;
inline constexpr uint32_t kFeatureCompress = 1u << 2;    // chunks may be compressed (2.20); optional
// Parity across legs (section 2.21): bit 3, with the stripe geometry in the
// top bytes of the same field: bits 16..23 = K parity chunks, bits 24..31 =
// N data chunks per stripe (both 0 without bit 3).
inline constexpr uint32_t kFeatureParity = 1u << 3;
inline constexpr uint32_t kFeatureParityGeometryMask = 0xFFFF0000u;
inline constexpr uint32_t parity_feature(uint32_t n, uint32_t k) { return kFeatureParity | (k & 0xFF) << 16 | (n & 0xFF) << 24; }
inline constexpr uint32_t parity_feature_k(uint32_t features) { return (features >> 16) & 0xFF; }
inline constexpr uint32_t parity_feature_n(uint32_t features) { return features >> 24; }
inline constexpr uint32_t kFeatureAead = 1u << 4;        // key FILE: AES-256-GCM chunks (2.22)
// The stream carries a tunnel's records (2.23), not a plain byte stream:
// both ends must agree, or a plain receiver would write the records to its
// stdout.
inline constexpr uint32_t kFeatureTunnel = 1u << 5;
// Parity with compressed or encrypted chunks (section 2.21): a data unit's
// prefix carries the chunk's flags in the top byte of its length field, so
// that a rebuilt chunk is opened and inflated like one that arrived. Asked
// for with bit 3 exactly when the chunks can be compressed or encrypted; a
// receiver that knows it echoes it with bit 3 (an older one clears it and
// the sender fails the session at the hello, not at the first rebuild).
inline constexpr uint32_t kFeatureParityFlags = 1u << 6;
// Feature bits a sender or receiver may be configured with (besides the
// v1 set); parity and AEAD come from their own settings.
inline constexpr uint32_t kFeaturesOptional = kFeatureCompress | kFeatureTunnel;

inline constexpr uint8_t kChunkFlagResent = 1u << 0;
inline constexpr uint8_t kChunkFlagCompressed = 1u << 1; // payload = 8-byte prefix + raw deflate (2.20)
// A parity chunk (section 2.21): its payload is a parity unit, up to
// kParityUnitPrefix bytes longer than the largest data chunk.
inline constexpr uint8_t kChunkFlagParity = 1u << 2;
inline constexpr uint8_t kChunkFlagEncrypted = 1u << 3; // payload = ciphertext || 16-byte tag (2.22)
inline constexpr uint8_t kChunkFlagsKnown =
    kChunkFlagResent | kChunkFlagCompressed | kChunkFlagParity | kChunkFlagEncrypted;
inline constexpr uint32_t kParityUnitPrefix = 16; // a data unit: offset u64, length u32, crc32c u32, payload
// The data unit's prefix (2.21): the chunk's offset, its payload length on
// the wire, its flags (kChunkFlagCompressed, kChunkFlagEncrypted: only with
// kFeatureParityFlags, else 0) in bits 24..31 of the length word (a length
// never exceeds 2 MiB, bit 21), and the CRC32C of the payload on the wire.
inline constexpr uint8_t kParityUnitFlagsKnown = kChunkFlagCompressed | kChunkFlagEncrypted;
struct ParityUnitPrefix {
    uint64_t offset = 0;
    uint32_t length = 0; // payload bytes on the wire
    uint8_t flags = 0;
    uint32_t crc32c = 0; // of those payload bytes
};
inline void encode_parity_unit_prefix(uint8_t *out, const ParityUnitPrefix &p) {
    net::store_le64(out, p.offset);
    net::store_le32(out + 8, (p.length & 0x00FFFFFFu) | static_cast<uint32_t>(p.flags) << 24);
    net::store_le32(out + 12, p.crc32c);
}
inline ParityUnitPrefix decode_parity_unit_prefix(const uint8_t *in) {
    ParityUnitPrefix p;
    p.offset = net::load_le64(in);
    const uint32_t w = net::load_le32(in + 8);
    p.length = w & 0x00FFFFFFu;
    p.flags = static_cast<uint8_t>(w >> 24);
    p.crc32c = net::load_le32(in + 12);
    return p;
}
// A compressed payload starts with the original length (u32) and the
// original bytes' CRC32C (u32); lib/codec writes and inflates it.
inline constexpr size_t kCompressedPrefixSize = 8;

inline constexpr uint8_t kResendReasonCrc = 1;

enum class HelloStatus : uint8_t {
    ACCEPT = 0,
    CHECKPHRASE_MISMATCH = 1,
    VERSION_MISMATCH = 2,
    SESSION_MISMATCH = 3,
    BAD_HELLO = 4,
    MISSING_FEATURE = 5,
    KEY_MISMATCH = 6, // the sender's key proof did not verify (2.22)
};
inline constexpr uint8_t kHelloStatusMax = 6;

enum class EndStatus : uint8_t {
    OK = 0,
    COUNT_MISMATCH = 1,
    LENGTH_MISMATCH = 2,
    DIGEST_MISMATCH = 3,
};
inline constexpr uint8_t kEndStatusMax = 3;

struct Hello {
    uint8_t version = kVersion;
    uint64_t session_id = 0;
    uint32_t stream_index = 0;
    uint32_t features = kFeaturesV1;
    char checkphrase[4] = {'y', 'o', 'e', 's'};
    uint32_t chunk_bytes = 1u << 20; // the sender's largest chunk payload
};

struct HelloReply {
    uint8_t version = kVersion;      // the receiver's version
    HelloStatus status = HelloStatus::ACCEPT;
    uint8_t hello_version = kVersion; // the version the receiver saw in the hello
    uint32_t features = kFeaturesV1;  // accepted = intersection
    uint32_t window_chunks = 0;       // receiver's reorder window (chunks)
};

struct ChunkHeader {
    uint8_t flags = 0;
    uint64_t seq = 0;
    uint64_t offset = 0;   // stream offset of the payload's first byte
    uint32_t length = 0;   // payload bytes following the header
    uint32_t crc32c = 0;   // of the payload
};

// 'K' (sender) and 'k' (receiver): a GMAC tag under the session key over
// (session id, challenge), docs/wire.md 2.22.
struct KeyProof {
    uint64_t challenge = 0;
    uint8_t tag[16] = {};
};

struct Ack {
    uint64_t cumulative = 0; // every chunk with seq < cumulative is held
    uint64_t bitmap = 0;     // bit i: chunk cumulative + 1 + i is held
};

struct Resend {
    uint8_t reason = kResendReasonCrc;
    uint64_t seq = 0;
    uint32_t crc_header = 0;   // CRC32C the chunk header claimed
    uint32_t crc_computed = 0; // CRC32C the receiver computed
};

struct End {
    uint64_t chunks = 0; // number of chunks (seq 0 .. chunks-1)
    uint64_t bytes = 0;  // total stream length
    uint64_t digest = 0; // CRC-64/XZ of the whole stream in order
};

struct EndAck {
    EndStatus status = EndStatus::OK;
    uint64_t chunks = 0;
    uint64_t bytes = 0;
    uint64_t digest = 0;
};

size_t encode_hello(uint8_t *out, const Hello &h);            // kHelloSize
size_t encode_hello_reply(uint8_t *out, const HelloReply &r); // kHelloReplySize
size_t encode_chunk_header(uint8_t *out, const ChunkHeader &c); // kChunkHeaderSize
size_t encode_ack(uint8_t *out, const Ack &a);                // kAckSize
size_t encode_resend(uint8_t *out, const Resend &r);          // kResendSize
size_t encode_end(uint8_t *out, const End &e);                // kEndSize
size_t encode_end_ack(uint8_t *out, const EndAck &e);         // kEndAckSize
size_t encode_key_proof(uint8_t *out, uint8_t type, const KeyProof &k); // kKeyProofSize; type 'K' or 'k'

const char *hello_status_text(HelloStatus s);
const char *end_status_text(EndStatus s);

// ------------------------------------------------- viamillipede format ----
// viamillipede calls each chunk a "leg"; here a leg is a TCP connection and
// viamillipede's leg is a chunk (its leg_id is our chunk seq).
inline constexpr uint64_t kCompatPreamble = 0xa5a5a5a55a5a5a5aull;
inline constexpr uint64_t kCompatOpMore = 0xcafe;
inline constexpr uint64_t kCompatOpEnd = 0xdead;
inline constexpr size_t kCompatHeaderSize = 40;
inline constexpr size_t kCompatPhraseSize = 4;
inline constexpr size_t kCompatOkSize = 2;
inline constexpr uint32_t kCompatMaxChunkBytes = 2048u * 1024u; // viamillipede's kfootsize

struct CompatHeader {
    uint64_t chunk_seq = 0; // viamillipede's leg_id
    uint64_t size = 0;      // payload bytes, <= 2 MiB, 0 for the end header
    uint64_t checksum = 0;  // 0 = checksums off
    uint64_t opcode = kCompatOpMore; // only the low 32 bits travel (see compat_opcode)
};

// 40 bytes; the opcode's 8-byte field is written as the low 32 bits of
// h.opcode followed by 4 zero bytes.
size_t encode_compat_header(uint8_t *out, const CompatHeader &h);

// The opcode in a header's 8-byte opcode field (bytes 32-39): its low 32
// bits, whatever bytes 36-39 hold. viamillipede v0.6 to v0.81 declare the
// opcode a C int followed by 4 bytes of struct padding that may be stack
// garbage (seen on the wire: fe ca 00 00 fd 7f 00 00); v0.89 declares it
// u_long and zero-fills. Stock receivers compare only what they declared.
uint64_t compat_opcode(const uint8_t *field);

// viamillipede's checksum, reproduced bit-exactly from its source
// (agokhale/viamillipede, plumbing.c mix(), tx.c txingest(), rx.c rxworker()):
//   unsigned long mix(unsigned int seed, void *data, unsigned long size) {
//     unsigned acc = seed;
//     for (cursor = 0; cursor <= size; cursor += 8) acc += *(unsigned long *)data + cursor;
//     return acc; }
// i.e. it only ever reads the first 8 bytes of the chunk (and, because acc is
// 32-bit, only the first 4 count). Chunks shorter than 4 bytes read bytes
// past the payload; we define them as zero (see docs/wire.md).
uint32_t viamillipede_mix(uint32_t seed, const uint8_t *p, uint64_t size);

// The chained checksum: checksum(chunk k) = mix(saved + k, chunk), saved
// starts at 0xff and becomes each chunk's checksum, in seq order.
class CompatChecksumChain {
  public:
    uint64_t next(uint64_t seq, const uint8_t *p, uint64_t size) {
        uint64_t c = viamillipede_mix(static_cast<uint32_t>(saved_ + seq), p, size);
        saved_ = c;
        return c;
    }
    // Receiver side: returns true when `claimed` matches (0 = not checked).
    bool verify(uint64_t seq, const uint8_t *p, uint64_t size, uint64_t claimed);

  private:
    uint64_t saved_ = 0xff;
};

// --------------------------------------------------------------- decoder --
enum class EventKind : uint8_t {
    NEED_MORE,      // all input consumed, no event yet
    HELLO,          // native hello of our version: `hello`
    HELLO_VERSION,  // native hello of another version: `hello.version` only; decoder stops
    HELLO_REPLY,    // `reply`
    CHUNK_HEADER,   // `chunk` (compat: seq, length, checksum in `compat_checksum`)
    CHUNK_DATA,     // `data`, `data_len`: payload bytes inside the caller's input
    CHUNK_END,      // native: `crc_ok`, `crc_computed`
    ACK,            // `ack`
    RESEND,         // `resend`
    END,            // `end` (compat: only end.chunks is meaningful)
    END_ACK,        // `end_ack`
    KEY_PROOF,      // 'K' from the sender or 'k' from the receiver: `key`
    COMPAT_PHRASE,  // `phrase`
    COMPAT_OK,      // the receiver's "ok"
    ERROR,          // `error`; see also `bad_value`
};

struct Decoded {
    EventKind kind = EventKind::NEED_MORE;
    Error error = Error::NONE;
    uint64_t bad_value = 0; // the offending field for ERROR (length, type, version...)
    Hello hello;
    HelloReply reply;
    ChunkHeader chunk;
    uint64_t compat_checksum = 0;
    const uint8_t *data = nullptr;
    size_t data_len = 0;
    bool crc_ok = false;
    uint32_t crc_computed = 0;
    uint64_t crc64_computed = 0; // native CHUNK_END: CRC-64 of the payload as it came
    Ack ack;
    Resend resend;
    End end;
    EndAck end_ack;
    KeyProof key;
    char phrase[4] = {};
};

class Decoder {
  public:
    // max_chunk_bytes: payload lengths above it are refused before any byte of
    // payload is accepted; clamped to kMaxChunkBytes.
    Decoder(Codec codec, Direction dir, uint32_t max_chunk_bytes = kMaxChunkBytes);

    // Consumes from [p, p+n) until one event is complete or input runs out;
    // returns the bytes consumed (<= n). Call again with the rest.
    size_t feed(const uint8_t *p, size_t n, Decoded &out);

    void reset();
    void set_max_chunk_bytes(uint32_t v);
    bool failed() const { return state_ == State::FAILED; }
    bool in_payload() const { return state_ == State::PAYLOAD; }
    // Part of a record consumed, the rest still to come.
    bool mid_record() const {
        return state_ == State::PAYLOAD || state_ == State::CHUNK_DONE || (state_ == State::HEADER && have_ > 0);
    }
    Codec codec() const { return codec_; }

  private:
    enum class State : uint8_t { START, HEADER, PAYLOAD, CHUNK_DONE, DONE, FAILED };
    size_t fail(Decoded &out, Error e, uint64_t v, size_t consumed);
    size_t feed_native(const uint8_t *p, size_t n, Decoded &out);
    size_t feed_compat(const uint8_t *p, size_t n, Decoded &out);
    bool native_header_complete(Decoded &out, Error &err, uint64_t &bad);

    Codec codec_;
    Direction dir_;
    uint32_t max_chunk_;
    State state_ = State::START;
    bool seen_first_ = false; // hello / hello-reply / compat phrase / ok seen
    bool seen_key_ = false;   // a key proof seen (one per leg)
    uint8_t hdr_[kMaxRecordHeader] = {};
    size_t have_ = 0;
    size_t need_ = 0;
    uint64_t remaining_ = 0; // payload bytes still to come
    uint32_t crc_state_ = 0;
    uint64_t crc64_state_ = 0;
    uint32_t crc_claimed_ = 0;
    Error err_ = Error::NONE;
};

} // namespace millipede::stripe

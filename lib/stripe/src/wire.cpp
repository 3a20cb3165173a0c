// Encoders, checksums and the streaming decoder for both wire formats.
// Byte layouts: docs/wire.md (sections 2 and 3).
#include "millipede/stripe/wire.h"

#include <algorithm>
#include <iterator>
#include <cstring>

#include <isa-l/crc.h>
#include <isa-l/crc64.h>

#include "millipede/net/bytes.h"

namespace millipede::stripe {

using net::load_le32;
using net::load_le64;
using net::store_le32;
using net::store_le64;

namespace {

struct ErrorInfo {
    const char *name;
    const char *desc;
};

constexpr ErrorInfo kErrorInfo[] = {
    {"none", "no error"},
#define MILLIPEDE_STRIPE_ERROR(sym, name, desc) {name, desc},
#include "millipede/stripe/errors.def"
#undef MILLIPEDE_STRIPE_ERROR
};

void put_prefix(uint8_t *out, uint8_t type, uint8_t b5 = 0, uint8_t b6 = 0, uint8_t b7 = 0) {
    store_le32(out, kMagic);
    out[4] = type;
    out[5] = b5;
    out[6] = b6;
    out[7] = b7;
}

} // namespace

const char *error_name(Error e) {
    auto i = static_cast<unsigned>(e);
    return i < std::size(kErrorInfo) ? kErrorInfo[i].name : "unknown";
}

const char *error_description(Error e) {
    auto i = static_cast<unsigned>(e);
    return i < std::size(kErrorInfo) ? kErrorInfo[i].desc : "unknown error";
}

uint32_t crc32c(const uint8_t *p, size_t n, uint32_t prev) {
    // ISA-L's crc32_iscsi neither pre- nor post-inverts; the standard
    // CRC32C does both. Inverting around it also makes chaining work.
    if (n == 0) return prev;
    return ~crc32_iscsi(const_cast<uint8_t *>(p), static_cast<int>(n), ~prev);
}

uint64_t crc64(const uint8_t *p, size_t n, uint64_t prev) {
    if (n == 0) return prev;
    return crc64_ecma_refl(prev, p, n); // inverts internally: CRC-64/XZ
}

void crc32c_and_crc64(const uint8_t *p, size_t n, uint32_t &crc32c_state, uint64_t &crc64_state) {
    constexpr size_t kBlock = 16384; // half a typical L1d + L2 share: still there for the second sum
    for (size_t off = 0; off < n; off += kBlock) {
        size_t k = std::min(kBlock, n - off);
        crc32c_state = crc32c(p + off, k, crc32c_state);
        crc64_state = crc64(p + off, k, crc64_state);
    }
}

namespace {

// CRC-64/XZ's polynomial, reflected; x^0 is the top bit in this form.
constexpr uint64_t kCrc64Poly = 0xC96C5795D7870F42ull;
constexpr uint64_t kX0 = 1ull << 63;

// a * b mod P over GF(2), both reflected.
uint64_t mult_mod_p(uint64_t a, uint64_t b) {
    uint64_t m = kX0, product = 0;
    for (;;) {
        if (a & m) {
            product ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ kCrc64Poly : b >> 1;
    }
    return product;
}

struct PowersOfX {
    uint64_t x2k[64]; // x^(2^k) mod P
    PowersOfX() {
        uint64_t p = kX0 >> 1; // x^1
        for (auto &v : x2k) {
            v = p;
            p = mult_mod_p(p, p);
        }
    }
};

// x^(8 n) mod P: shifting a CRC over n zero bytes.
uint64_t x8n_mod_p(uint64_t n) {
    static const PowersOfX powers;
    uint64_t p = kX0;
    for (unsigned k = 3; n != 0; n >>= 1, ++k)
        if (n & 1) p = mult_mod_p(powers.x2k[k & 63], p);
    return p;
}

} // namespace

uint64_t crc64_combine(uint64_t crc_a, uint64_t crc_b, uint64_t len_b) {
    thread_local uint64_t cached_len = 0, cached_power = kX0;
    if (len_b != cached_len) {
        cached_power = x8n_mod_p(len_b);
        cached_len = len_b;
    }
    return mult_mod_p(cached_power, crc_a) ^ crc_b;
}

size_t encode_hello(uint8_t *out, const Hello &h) {
    put_prefix(out, kTypeHello, h.version);
    store_le64(out + 8, h.session_id);
    store_le32(out + 16, h.stream_index);
    store_le32(out + 20, h.features);
    std::memcpy(out + 24, h.checkphrase, 4);
    store_le32(out + 28, h.chunk_bytes);
    return kHelloSize;
}

size_t encode_hello_reply(uint8_t *out, const HelloReply &r) {
    put_prefix(out, kTypeHelloReply, r.version, static_cast<uint8_t>(r.status), r.hello_version);
    store_le32(out + 8, r.features);
    store_le32(out + 12, r.window_chunks);
    return kHelloReplySize;
}

size_t encode_chunk_header(uint8_t *out, const ChunkHeader &c) {
    put_prefix(out, kTypeChunk, c.flags);
    store_le64(out + 8, c.seq);
    store_le64(out + 16, c.offset);
    store_le32(out + 24, c.length);
    store_le32(out + 28, c.crc32c);
    return kChunkHeaderSize;
}

size_t encode_key_proof(uint8_t *out, uint8_t type, const KeyProof &k) {
    put_prefix(out, type);
    store_le64(out + 8, k.challenge);
    std::memcpy(out + 16, k.tag, sizeof k.tag);
    return kKeyProofSize;
}

size_t encode_ack(uint8_t *out, const Ack &a) {
    put_prefix(out, kTypeAck);
    store_le64(out + 8, a.cumulative);
    store_le64(out + 16, a.bitmap);
    return kAckSize;
}

size_t encode_resend(uint8_t *out, const Resend &r) {
    put_prefix(out, kTypeResend, r.reason);
    store_le64(out + 8, r.seq);
    store_le32(out + 16, r.crc_header);
    store_le32(out + 20, r.crc_computed);
    return kResendSize;
}

size_t encode_end(uint8_t *out, const End &e) {
    put_prefix(out, kTypeEnd);
    store_le64(out + 8, e.chunks);
    store_le64(out + 16, e.bytes);
    store_le64(out + 24, e.digest);
    return kEndSize;
}

size_t encode_end_ack(uint8_t *out, const EndAck &e) {
    put_prefix(out, kTypeEndAck, static_cast<uint8_t>(e.status));
    store_le64(out + 8, e.chunks);
    store_le64(out + 16, e.bytes);
    store_le64(out + 24, e.digest);
    return kEndAckSize;
}

const char *hello_status_text(HelloStatus s) {
    switch (s) {
    case HelloStatus::ACCEPT: return "accepted";
    case HelloStatus::CHECKPHRASE_MISMATCH: return "checkphrase mismatch";
    case HelloStatus::VERSION_MISMATCH: return "version mismatch";
    case HelloStatus::SESSION_MISMATCH: return "session mismatch";
    case HelloStatus::BAD_HELLO: return "malformed hello";
    case HelloStatus::MISSING_FEATURE: return "missing required feature";
    case HelloStatus::KEY_MISMATCH: return "key mismatch";
    }
    return "unknown status";
}

const char *end_status_text(EndStatus s) {
    switch (s) {
    case EndStatus::OK: return "verified";
    case EndStatus::COUNT_MISMATCH: return "chunk count mismatch";
    case EndStatus::LENGTH_MISMATCH: return "stream length mismatch";
    case EndStatus::DIGEST_MISMATCH: return "CRC64 digest mismatch";
    }
    return "unknown status";
}

size_t encode_compat_header(uint8_t *out, const CompatHeader &h) {
    store_le64(out, kCompatPreamble);
    store_le64(out + 8, h.chunk_seq);
    store_le64(out + 16, h.size);
    store_le64(out + 24, h.checksum);
    // The opcode as v0.89's u_long with its high half zero: read right both
    // by v0.89 (compares 8 bytes) and by 2018 receivers (compare 4).
    store_le64(out + 32, h.opcode & 0xffffffffu);
    return kCompatHeaderSize;
}

uint64_t compat_opcode(const uint8_t *field) { return load_le64(field) & 0xffffffffu; }

uint32_t viamillipede_mix(uint32_t seed, const uint8_t *p, uint64_t size) {
    uint8_t first[8] = {};
    std::memcpy(first, p, static_cast<size_t>(std::min<uint64_t>(size, 8)));
    // The loop adds (word + cursor) for cursor = 0, 8, ..., <= size into a
    // 32-bit accumulator; closed form: n*word + 8*(0+1+...+(n-1)), mod 2^32.
    uint64_t word = load_le64(first);
    uint64_t n = size / 8 + 1;
    uint64_t tri = (n % 2 == 0) ? (n / 2) * (n - 1) : n * ((n - 1) / 2);
    return static_cast<uint32_t>(seed + n * word + 8 * tri);
}

bool CompatChecksumChain::verify(uint64_t seq, const uint8_t *p, uint64_t size, uint64_t claimed) {
    if (claimed == 0) { // checksums off (or a chunk whose checksum happens to be 0)
        saved_ = 0;
        return true;
    }
    uint64_t c = viamillipede_mix(static_cast<uint32_t>(saved_ + seq), p, size);
    saved_ = claimed; // stay in step with the sender's chain
    if (size < 4) return true; // viamillipede itself reads stale bytes here
    return c == claimed;
}

// ----------------------------------------------------------------- decoder

Decoder::Decoder(Codec codec, Direction dir, uint32_t max_chunk_bytes)
    : codec_(codec), dir_(dir) {
    set_max_chunk_bytes(max_chunk_bytes);
}

void Decoder::set_max_chunk_bytes(uint32_t v) {
    uint32_t ceiling = codec_ == Codec::NATIVE ? kMaxChunkBytes : kCompatMaxChunkBytes;
    max_chunk_ = std::min(v == 0 ? ceiling : v, ceiling);
}

void Decoder::reset() {
    state_ = State::START;
    seen_first_ = false;
    seen_key_ = false;
    have_ = need_ = 0;
    remaining_ = 0;
    err_ = Error::NONE;
}

size_t Decoder::fail(Decoded &out, Error e, uint64_t v, size_t consumed) {
    state_ = State::FAILED;
    err_ = e;
    out.kind = EventKind::ERROR;
    out.error = e;
    out.bad_value = v;
    return consumed;
}

size_t Decoder::feed(const uint8_t *p, size_t n, Decoded &out) {
    out.kind = EventKind::NEED_MORE;
    out.error = Error::NONE;
    out.data = nullptr;
    out.data_len = 0;
    if (state_ == State::FAILED) {
        out.kind = EventKind::ERROR;
        out.error = err_;
        return 0;
    }
    return codec_ == Codec::NATIVE ? feed_native(p, n, out) : feed_compat(p, n, out);
}

size_t Decoder::feed_native(const uint8_t *p, size_t n, Decoded &out) {
    size_t used = 0;
    for (;;) {
        switch (state_) {
        case State::START:
            have_ = 0;
            need_ = kPrefixSize;
            state_ = State::HEADER;
            [[fallthrough]];
        case State::HEADER: {
            size_t k = std::min(n - used, need_ - have_);
            if (k) std::memcpy(hdr_ + have_, p + used, k); // p may be null when n == 0
            have_ += k;
            used += k;
            if (have_ < need_) return used;
            if (have_ == kPrefixSize) {
                uint32_t magic = load_le32(hdr_);
                if (magic != kMagic) return fail(out, Error::BAD_MAGIC, magic, used);
                uint8_t type = hdr_[4];
                size_t size = 0;
                if (dir_ == Direction::FROM_SENDER) {
                    if (type == kTypeHello) {
                        if (seen_first_) return fail(out, Error::UNEXPECTED_RECORD, type, used);
                        if (hdr_[5] != kVersion) {
                            // Only the 8-byte prefix is common to all versions;
                            // refuse without reading a body of unknown size.
                            out.hello.version = hdr_[5];
                            out.kind = EventKind::HELLO_VERSION;
                            state_ = State::FAILED;
                            err_ = Error::VERSION_MISMATCH;
                            return used;
                        }
                        size = kHelloSize;
                    } else if (type == kTypeChunk || type == kTypeEnd) {
                        if (!seen_first_) return fail(out, Error::UNEXPECTED_RECORD, type, used);
                        size = type == kTypeChunk ? kChunkHeaderSize : kEndSize;
                    } else if (type == kTypeKeyProof) {
                        if (!seen_first_ || seen_key_) return fail(out, Error::UNEXPECTED_RECORD, type, used);
                        size = kKeyProofSize;
                    } else {
                        return fail(out, Error::BAD_RECORD_TYPE, type, used);
                    }
                } else {
                    if (type == kTypeHelloReply) {
                        if (seen_first_) return fail(out, Error::UNEXPECTED_RECORD, type, used);
                        size = kHelloReplySize;
                    } else if (type == kTypeAck || type == kTypeResend || type == kTypeEndAck) {
                        if (!seen_first_) return fail(out, Error::UNEXPECTED_RECORD, type, used);
                        size = type == kTypeAck ? kAckSize
                               : type == kTypeResend ? kResendSize
                                                     : kEndAckSize;
                    } else if (type == kTypeKeyProofReply) {
                        if (!seen_first_ || seen_key_) return fail(out, Error::UNEXPECTED_RECORD, type, used);
                        size = kKeyProofSize;
                    } else {
                        return fail(out, Error::BAD_RECORD_TYPE, type, used);
                    }
                }
                need_ = size;
                if (have_ < need_) continue;
            }
            Error err = Error::NONE;
            uint64_t bad = 0;
            if (!native_header_complete(out, err, bad)) return fail(out, err, bad, used);
            return used;
        }
        case State::PAYLOAD: {
            if (used == n) return used;
            size_t k = static_cast<size_t>(std::min<uint64_t>(n - used, remaining_));
            out.kind = EventKind::CHUNK_DATA;
            out.data = p + used;
            out.data_len = k;
            crc32c_and_crc64(p + used, k, crc_state_, crc64_state_);
            remaining_ -= k;
            if (remaining_ == 0) state_ = State::CHUNK_DONE;
            return used + k;
        }
        case State::CHUNK_DONE:
            out.kind = EventKind::CHUNK_END;
            out.crc_computed = crc_state_;
            out.crc64_computed = crc64_state_;
            out.crc_ok = crc_state_ == crc_claimed_;
            state_ = State::START;
            return used;
        case State::DONE:
        case State::FAILED:
            return used;
        }
    }
}

bool Decoder::native_header_complete(Decoded &out, Error &err, uint64_t &bad) {
    const uint8_t *h = hdr_;
    uint8_t type = h[4];
    state_ = State::START;
    auto reserved_zero = [&](size_t from, size_t to) {
        for (size_t i = from; i < to; i++)
            if (h[i] != 0) {
                err = Error::RESERVED_NONZERO;
                bad = i;
                return false;
            }
        return true;
    };
    switch (type) {
    case kTypeHello:
        if (!reserved_zero(6, 8)) return false;
        out.hello.version = h[5];
        out.hello.session_id = load_le64(h + 8);
        out.hello.stream_index = load_le32(h + 16);
        out.hello.features = load_le32(h + 20);
        std::memcpy(out.hello.checkphrase, h + 24, 4);
        out.hello.chunk_bytes = load_le32(h + 28);
        if (out.hello.chunk_bytes == 0 || out.hello.chunk_bytes > kMaxChunkBytes) {
            err = Error::OVERSIZE_CHUNK;
            bad = out.hello.chunk_bytes;
            return false;
        }
        seen_first_ = true;
        out.kind = EventKind::HELLO;
        return true;
    case kTypeHelloReply:
        if (h[6] > kHelloStatusMax) {
            err = Error::BAD_COUNT;
            bad = h[6];
            return false;
        }
        out.reply.version = h[5];
        out.reply.status = static_cast<HelloStatus>(h[6]);
        out.reply.hello_version = h[7];
        out.reply.features = load_le32(h + 8);
        out.reply.window_chunks = load_le32(h + 12);
        if (out.reply.status == HelloStatus::ACCEPT && out.reply.window_chunks == 0) {
            err = Error::BAD_COUNT;
            bad = 0;
            return false;
        }
        seen_first_ = true;
        out.kind = EventKind::HELLO_REPLY;
        return true;
    case kTypeChunk: {
        if (!reserved_zero(6, 8)) return false;
        if (h[5] & ~kChunkFlagsKnown) {
            err = Error::RESERVED_NONZERO;
            bad = 5;
            return false;
        }
        ChunkHeader &c = out.chunk;
        c.flags = h[5];
        c.seq = load_le64(h + 8);
        c.offset = load_le64(h + 16);
        c.length = load_le32(h + 24);
        c.crc32c = load_le32(h + 28);
        if (c.length == 0) {
            err = Error::EMPTY_CHUNK;
            bad = 0;
            return false;
        }
        if (c.length > max_chunk_ + ((c.flags & kChunkFlagParity) ? kParityUnitPrefix : 0)) {
            err = Error::OVERSIZE_CHUNK;
            bad = c.length;
            return false;
        }
        remaining_ = c.length;
        crc_state_ = 0;
        crc64_state_ = 0;
        crc_claimed_ = c.crc32c;
        state_ = State::PAYLOAD;
        out.kind = EventKind::CHUNK_HEADER;
        return true;
    }
    case kTypeAck:
        if (!reserved_zero(5, 8)) return false;
        out.ack.cumulative = load_le64(h + 8);
        out.ack.bitmap = load_le64(h + 16);
        out.kind = EventKind::ACK;
        return true;
    case kTypeResend:
        if (!reserved_zero(6, 8)) return false;
        if (h[5] != kResendReasonCrc) {
            err = Error::BAD_COUNT;
            bad = h[5];
            return false;
        }
        out.resend.reason = h[5];
        out.resend.seq = load_le64(h + 8);
        out.resend.crc_header = load_le32(h + 16);
        out.resend.crc_computed = load_le32(h + 20);
        out.kind = EventKind::RESEND;
        return true;
    case kTypeEnd:
        if (!reserved_zero(5, 8)) return false;
        out.end.chunks = load_le64(h + 8);
        out.end.bytes = load_le64(h + 16);
        out.end.digest = load_le64(h + 24);
        out.kind = EventKind::END;
        return true;
    case kTypeKeyProof:
    case kTypeKeyProofReply:
        if (!reserved_zero(5, 8)) return false;
        out.key.challenge = load_le64(h + 8);
        std::memcpy(out.key.tag, h + 16, sizeof out.key.tag);
        seen_key_ = true;
        out.kind = EventKind::KEY_PROOF;
        return true;
    case kTypeEndAck:
        if (!reserved_zero(6, 8)) return false;
        if (h[5] > kEndStatusMax) {
            err = Error::BAD_COUNT;
            bad = h[5];
            return false;
        }
        out.end_ack.status = static_cast<EndStatus>(h[5]);
        out.end_ack.chunks = load_le64(h + 8);
        out.end_ack.bytes = load_le64(h + 16);
        out.end_ack.digest = load_le64(h + 24);
        out.kind = EventKind::END_ACK;
        return true;
    }
    err = Error::BAD_RECORD_TYPE;
    bad = type;
    return false;
}

size_t Decoder::feed_compat(const uint8_t *p, size_t n, Decoded &out) {
    size_t used = 0;
    for (;;) {
        switch (state_) {
        case State::START:
            have_ = 0;
            if (dir_ == Direction::FROM_SENDER)
                need_ = seen_first_ ? kCompatHeaderSize : kCompatPhraseSize;
            else
                need_ = kCompatOkSize;
            state_ = State::HEADER;
            [[fallthrough]];
        case State::HEADER: {
            if (dir_ == Direction::FROM_RECEIVER && seen_first_) {
                // viamillipede's receiver never sends anything after "ok".
                if (used == n) return used;
                return fail(out, Error::COMPAT_UNEXPECTED, p[used], used + 1);
            }
            size_t k = std::min(n - used, need_ - have_);
            if (k) std::memcpy(hdr_ + have_, p + used, k); // p may be null when n == 0
            have_ += k;
            used += k;
            if (have_ < need_) return used;
            state_ = State::START;
            if (!seen_first_) {
                seen_first_ = true;
                if (dir_ == Direction::FROM_SENDER) {
                    std::memcpy(out.phrase, hdr_, 4);
                    out.kind = EventKind::COMPAT_PHRASE;
                    return used;
                }
                if (hdr_[0] != 'o' || hdr_[1] != 'k')
                    return fail(out, Error::COMPAT_BAD_OK, hdr_[0] | (hdr_[1] << 8), used);
                out.kind = EventKind::COMPAT_OK;
                state_ = State::HEADER; // anything more is an error
                return used;
            }
            uint64_t pre = load_le64(hdr_);
            uint64_t seq = load_le64(hdr_ + 8);
            uint64_t size = load_le64(hdr_ + 16);
            uint64_t sum = load_le64(hdr_ + 24);
            // Only the low 32 bits are the opcode: 2018-era senders (v0.6 to
            // v0.81) declare it a C int, so bytes 36-39 are struct padding,
            // which may hold stack garbage (docs/wire.md section 3).
            const uint64_t op = compat_opcode(hdr_ + 32);
            if (pre != kCompatPreamble) return fail(out, Error::COMPAT_BAD_PREAMBLE, pre, used);
            if (op == kCompatOpEnd) {
                if (size != 0) return fail(out, Error::COMPAT_BAD_END, size, used);
                out.end = End{};
                out.end.chunks = seq;
                out.kind = EventKind::END;
                return used;
            }
            if (op != kCompatOpMore) return fail(out, Error::COMPAT_BAD_OPCODE, op, used);
            if (size > max_chunk_) return fail(out, Error::OVERSIZE_CHUNK, size, used);
            out.chunk = ChunkHeader{};
            out.chunk.seq = seq;
            out.chunk.length = static_cast<uint32_t>(size);
            out.compat_checksum = sum;
            remaining_ = size;
            state_ = size ? State::PAYLOAD : State::CHUNK_DONE;
            out.kind = EventKind::CHUNK_HEADER;
            return used;
        }
        case State::PAYLOAD: {
            if (used == n) return used;
            size_t k = static_cast<size_t>(std::min<uint64_t>(n - used, remaining_));
            out.kind = EventKind::CHUNK_DATA;
            out.data = p + used;
            out.data_len = k;
            remaining_ -= k;
            if (remaining_ == 0) state_ = State::CHUNK_DONE;
            return used + k;
        }
        case State::CHUNK_DONE:
            out.kind = EventKind::CHUNK_END;
            out.crc_ok = true; // compat checksums are chained: checked in order by the receiver
            state_ = State::START;
            return used;
        case State::DONE:
        case State::FAILED:
            return used;
        }
    }
}

} // namespace millipede::stripe

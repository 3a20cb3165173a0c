// StripeReceiver: hello handling, the reorder window, in-order delivery,
// acknowledgements, CRC resend requests and end-of-stream verification.
// Design notes: docs/wire.md section 6.
#include "millipede/stripe/receiver.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "millipede/net/bytes.h"

namespace millipede::stripe {

struct StripeReceiver::Slot {
    enum class St : uint8_t { FREE, RECEIVING, HELD };
    uint8_t *buf = nullptr;
    uint32_t len = 0;
    uint32_t filled = 0;
    uint64_t seq = 0;
    uint64_t offset = 0;
    uint64_t compat_sum = 0;
    bool compressed = false;
    uint32_t stream_len = 0; // compressed: the prefix's original length, checked on delivery
    St st = St::FREE;
    uint32_t fillers = 0; // legs writing a copy of this chunk (more than one: a re-send racing its original)
    bool mixed = false;   // bytes from more than one copy: verify the buffer itself at the end
    uint32_t crc = 0;     // the chunk header's CRC32C (parity: part of a data chunk's unit)
    // The CRC-64 of the bytes now in `buf`, summed as they arrived; valid
    // only for one plain copy (not mixed, sealed, compressed or rebuilt).
    // Delivery chains it into the stream digest instead of reading `buf`.
    bool crc64_valid = false;
    uint64_t crc64 = 0;
    bool parity = false;  // a parity unit; `stripe_data`: its stripe's data chunk count
    uint32_t stripe_data = 0;
};

struct StripeReceiver::Leg {
    Leg(Codec c, uint32_t max_chunk) : dec(c, Direction::FROM_SENDER, max_chunk) {}
    ReceiverLegState st = ReceiverLegState::DOWN;
    Decoder dec;
    bool have_pending = false; // chunk header parsed, not yet given a slot
    ChunkHeader pending;
    uint64_t pending_sum = 0;
    int32_t slot = -1;
    uint32_t chunk_off = 0;    // payload bytes of its copy of the chunk read so far
    bool discard = false;      // payload of a duplicate: drop it
    bool ack_pending = false;
    uint8_t ctl[128] = {};
    uint32_t ctl_len = 0;
    uint32_t ctl_off = 0;
    bool ctl_has_end_ack = false;
    bool key_wait = false;     // key FILE: hello accepted so far, the sender's key proof ('K') must follow
    Hello hello;               // that hello, answered once the proof verified
    uint64_t *ring = nullptr;  // resend requests (seq) for chunks that came on this leg
    uint32_t ring_head = 0, ring_count = 0, ring_cap = 0;
    uint32_t ring_crc[2] = {}; // last pair of CRCs, for the record's diagnostics
};

namespace {
void printable_phrase(const char *in, char out[5]) {
    for (int i = 0; i < 4; i++) out[i] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[4] = 0;
}
} // namespace

StripeReceiver::StripeReceiver(const ReceiverConfig &cfg)
    : cfg_(cfg), events_(static_cast<size_t>(cfg.max_legs) * 2 + 8) {
    if (cfg.max_legs == 0 || cfg.max_legs > kMaxLegs)
        throw std::invalid_argument("stripe receiver: max_legs must be 1.." + std::to_string(kMaxLegs));
    if (cfg.window_chunks == 0 || cfg.window_chunks > 65536)
        throw std::invalid_argument("stripe receiver: window_chunks must be 1..65536");
    uint32_t ceiling = cfg.codec == Codec::NATIVE ? kMaxChunkBytes : kCompatMaxChunkBytes;
    if (cfg.max_chunk_bytes == 0 || cfg.max_chunk_bytes > ceiling)
        throw std::invalid_argument("stripe receiver: max_chunk_bytes must be 1.." + std::to_string(ceiling));
    if ((cfg.features & kFeaturesV1) != kFeaturesV1 || (cfg.features & ~(kFeaturesV1 | kFeaturesOptional)))
        throw std::invalid_argument("stripe receiver: features must be the v1 set, optionally with compression and the tunnel");
    // Each buffer has kParityUnitPrefix bytes of headroom (a data chunk's
    // parity unit prefix goes there for a rebuild) and room for a parity
    // unit, up to kParityUnitPrefix bytes longer than a chunk.
    const size_t stride = static_cast<size_t>(cfg.max_chunk_bytes) + 2 * kParityUnitPrefix;
    pool_.reset(new uint8_t[static_cast<size_t>(cfg.window_chunks) * stride]);
    slots_.resize(cfg.window_chunks);
    for (size_t i = 0; i < slots_.size(); i++) slots_[i].buf = pool_.get() + i * stride + kParityUnitPrefix;
    uint32_t ring_cap = 2 * cfg.window_chunks;
    resend_pool_.reset(new uint64_t[static_cast<size_t>(ring_cap) * cfg.max_legs]);
    legs_.reserve(cfg.max_legs);
    for (uint32_t i = 0; i < cfg.max_legs; i++) {
        legs_.emplace_back(cfg.codec, cfg.max_chunk_bytes);
        legs_[i].ring = resend_pool_.get() + static_cast<size_t>(i) * ring_cap;
        legs_[i].ring_cap = ring_cap;
    }
    session_ = cfg.session_id;
    session_known_ = cfg.session_id != 0;
}

StripeReceiver::~StripeReceiver() = default;

void StripeReceiver::fail(Error e, const char *fmt, ...) {
    if (state_ != SessionState::RUNNING) return;
    state_ = SessionState::FAILED;
    stats_.errors[static_cast<unsigned>(e)]++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message_, sizeof message_, fmt, ap);
    va_end(ap);
    events_.push({EventType::FAILED, 0, e});
}

void StripeReceiver::close_leg(uint32_t leg, Error e, const char *fmt, ...) {
    Leg &l = legs_[leg];
    stats_.errors[static_cast<unsigned>(e)]++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(leg_message_, sizeof leg_message_, fmt, ap);
    va_end(ap);
    release_leg(leg);
    if (l.st == ReceiverLegState::CLOSED) return;
    l.st = ReceiverLegState::CLOSED;
    events_.push({EventType::CLOSE_LEG, leg, e});
}

void StripeReceiver::release_leg(uint32_t leg) {
    Leg &l = legs_[leg];
    if (l.slot >= 0) {
        Slot &s = slots_[l.slot];
        if (s.st == Slot::St::RECEIVING && s.fillers > 0 && --s.fillers == 0) s.st = Slot::St::FREE;
        l.slot = -1;
    }
    l.have_pending = false;
    l.discard = false;
    l.ack_pending = false;
    l.ring_count = 0;
    l.key_wait = false;
}

ReceiverLegState StripeReceiver::leg_state(uint32_t leg) const {
    return leg < legs_.size() ? legs_[leg].st : ReceiverLegState::CLOSED;
}

bool StripeReceiver::leg_blocked(uint32_t leg) const {
    return leg < legs_.size() && legs_[leg].have_pending;
}

bool StripeReceiver::leg_mid_record(uint32_t leg) const {
    if (leg >= legs_.size()) return false;
    const Leg &l = legs_[leg];
    return l.have_pending || l.slot >= 0 || l.dec.mid_record();
}

uint64_t StripeReceiver::buffered_bytes() const {
    uint64_t b = 0;
    for (const auto &s : slots_)
        if (s.st != Slot::St::FREE) b += s.filled;
    return b;
}

void StripeReceiver::leg_up(uint32_t leg, uint64_t) {
    if (leg >= legs_.size()) return;
    Leg &l = legs_[leg];
    release_leg(leg);
    l.dec.reset();
    l.dec.set_max_chunk_bytes(cfg_.max_chunk_bytes);
    l.ctl_len = l.ctl_off = 0;
    l.ctl_has_end_ack = false;
    l.st = ReceiverLegState::HELLO;
}

void StripeReceiver::leg_down(uint32_t leg, uint64_t) {
    if (leg >= legs_.size()) return;
    Leg &l = legs_[leg];
    release_leg(leg);
    l.ctl_len = l.ctl_off = 0;
    l.ctl_has_end_ack = false; // the sender re-sends its end record on another leg
    l.st = ReceiverLegState::DOWN;
}

bool StripeReceiver::ctl_append(Leg &l, const uint8_t *p, size_t n) {
    if (l.ctl_off == l.ctl_len) l.ctl_off = l.ctl_len = 0;
    if (l.ctl_off > 0 && l.ctl_len + n > sizeof l.ctl) {
        std::memmove(l.ctl, l.ctl + l.ctl_off, l.ctl_len - l.ctl_off);
        l.ctl_len -= l.ctl_off;
        l.ctl_off = 0;
    }
    if (l.ctl_len + n > sizeof l.ctl) return false;
    std::memcpy(l.ctl + l.ctl_len, p, n);
    l.ctl_len += static_cast<uint32_t>(n);
    return true;
}

// ------------------------------------------------------------------ input

size_t StripeReceiver::leg_input(uint32_t leg, const uint8_t *p, size_t n, uint64_t) {
    // After DONE the legs are still served: a sender whose end acknowledgement
    // was lost with its leg sends the end record again on another leg
    // (section 2.7) and must get its answer; chunks can only be duplicates.
    if (leg >= legs_.size() || state_ == SessionState::FAILED) return n;
    Leg &l = legs_[leg];
    if (l.st != ReceiverLegState::HELLO && l.st != ReceiverLegState::OPEN) return n;
    if (l.have_pending && !place_chunk(leg)) {
        stats_.stalls++;
        return 0;
    }
    size_t used = 0;
    Decoded d;
    while (state_ != SessionState::FAILED &&
           (l.st == ReceiverLegState::HELLO || l.st == ReceiverLegState::OPEN)) {
        used += l.dec.feed(p + used, n - used, d);
        switch (d.kind) {
        case EventKind::NEED_MORE:
            return used;
        case EventKind::ERROR:
            close_leg(leg, d.error, "leg %u: protocol error from the sender: %s (%s; value 0x%llx)", leg,
                      error_name(d.error), error_description(d.error),
                      static_cast<unsigned long long>(d.bad_value));
            return n;
        case EventKind::HELLO:
        case EventKind::HELLO_VERSION:
        case EventKind::COMPAT_PHRASE:
            on_hello(leg, d);
            break;
        case EventKind::CHUNK_HEADER:
            if ((d.chunk.flags & kChunkFlagCompressed) &&
                (!compressed_session_ || d.chunk.length <= kCompressedPrefixSize)) {
                close_leg(leg, Error::BAD_COMPRESSED,
                          compressed_session_ ? "leg %u: compressed chunk %llu of %u bytes is shorter than its prefix"
                                              : "leg %u: compressed chunk %llu (%u bytes) but compression was not "
                                                "negotiated",
                          leg, static_cast<unsigned long long>(d.chunk.seq), d.chunk.length);
                return n;
            }
            if (l.key_wait) { // key FILE: no chunk before the sender's key proof
                close_leg(leg, Error::UNEXPECTED_RECORD, "leg %u: a chunk before the sender's key proof", leg);
                return n;
            }
            l.pending = d.chunk;
            l.pending_sum = d.compat_checksum;
            l.have_pending = true;
            if (!place_chunk(leg)) {
                stats_.stalls++;
                return used;
            }
            break;
        case EventKind::CHUNK_DATA:
            if (l.slot >= 0) {
                // Each byte is written once, by the first copy to reach it
                // (the decoder bounds data_len by the chunk's length).
                Slot &s = slots_[l.slot];
                const uint32_t end = l.chunk_off + static_cast<uint32_t>(d.data_len);
                if (end > s.filled) {
                    const uint32_t from = std::max(l.chunk_off, s.filled);
                    std::memcpy(s.buf + from, d.data + (from - l.chunk_off), end - from);
                    stats_.bytes_copied += end - from; // the receive path's one copy
                    s.filled = end;
                }
                l.chunk_off = end;
            }
            break;
        case EventKind::CHUNK_END:
            on_chunk_end(leg, d);
            break;
        case EventKind::END:
            if (l.key_wait) {
                close_leg(leg, Error::UNEXPECTED_RECORD, "leg %u: an end record before the sender's key proof", leg);
                return n;
            }
            on_end(leg, d);
            break;
        case EventKind::KEY_PROOF:
            on_key_proof(leg, d);
            break;
        default:
            close_leg(leg, Error::UNEXPECTED_RECORD, "leg %u: unexpected record from the sender", leg);
            return n;
        }
    }
    return l.st == ReceiverLegState::HELLO || l.st == ReceiverLegState::OPEN ? used : n;
}

void StripeReceiver::on_hello(uint32_t leg, const Decoded &d) {
    Leg &l = legs_[leg];
    if (d.kind == EventKind::COMPAT_PHRASE) {
        if (std::memcmp(d.phrase, cfg_.checkphrase, 4) != 0) {
            char got[5], want[5];
            printable_phrase(d.phrase, got);
            printable_phrase(cfg_.checkphrase, want);
            stats_.legs_refused++;
            close_leg(leg, Error::CHECKPHRASE_MISMATCH,
                      "leg %u: checkphrase mismatch: the sender said \"%s\", this receiver expects \"%s\"",
                      leg, got, want);
            return;
        }
        static const uint8_t ok[2] = {'o', 'k'};
        ctl_append(l, ok, 2);
        l.st = ReceiverLegState::OPEN;
        return;
    }
    HelloReply r;
    r.version = kVersion;
    r.hello_version = d.hello.version;
    r.features = 0;
    r.window_chunks = 0;
    Error e = Error::NONE;
    if (d.kind == EventKind::HELLO_VERSION) {
        r.status = HelloStatus::VERSION_MISMATCH;
        e = Error::VERSION_MISMATCH;
        snprintf(leg_message_, sizeof leg_message_,
                 "leg %u refused: version mismatch: the sender speaks millipede wire v%u, this "
                 "receiver speaks v%u",
                 leg, d.hello.version, kVersion);
    } else if (std::memcmp(d.hello.checkphrase, cfg_.checkphrase, 4) != 0) {
        char got[5], want[5];
        printable_phrase(d.hello.checkphrase, got);
        printable_phrase(cfg_.checkphrase, want);
        r.status = HelloStatus::CHECKPHRASE_MISMATCH;
        e = Error::CHECKPHRASE_MISMATCH;
        snprintf(leg_message_, sizeof leg_message_,
                 "leg %u refused: checkphrase mismatch: the sender said \"%s\", this receiver expects \"%s\"",
                 leg, got, want);
    } else if (session_known_ && d.hello.session_id != session_) {
        r.status = HelloStatus::SESSION_MISMATCH;
        e = Error::SESSION_MISMATCH;
        snprintf(leg_message_, sizeof leg_message_,
                 "leg %u refused: session mismatch: it belongs to session 0x%llx, this receiver serves 0x%llx",
                 leg, static_cast<unsigned long long>(d.hello.session_id),
                 static_cast<unsigned long long>(session_));
    } else if (!(d.hello.features & kFeatureCrc32c)) {
        r.status = HelloStatus::MISSING_FEATURE;
        e = Error::MISSING_FEATURE;
        snprintf(leg_message_, sizeof leg_message_, "leg %u refused: the sender does not send CRC32C", leg);
    } else if (d.hello.chunk_bytes > cfg_.max_chunk_bytes) {
        r.status = HelloStatus::BAD_HELLO;
        e = Error::OVERSIZE_CHUNK;
        snprintf(leg_message_, sizeof leg_message_,
                 "leg %u refused: the sender's chunks of %u bytes exceed this receiver's limit of %u",
                 leg, d.hello.chunk_bytes, cfg_.max_chunk_bytes);
    } else if (!cfg_.aead != !(d.hello.features & kFeatureAead)) {
        r.status = HelloStatus::KEY_MISMATCH;
        e = Error::KEY_MISMATCH;
        snprintf(leg_message_, sizeof leg_message_,
                 cfg_.aead ? "leg %u refused: key mismatch: this receiver has a key (key FILE) and the sender has none"
                           : "leg %u refused: key mismatch: the sender encrypts (key FILE) and this receiver has no key",
                 leg);
    } else if (!(cfg_.features & kFeatureTunnel) != !(d.hello.features & kFeatureTunnel)) {
        r.status = HelloStatus::MISSING_FEATURE;
        e = Error::MISSING_FEATURE;
        snprintf(leg_message_, sizeof leg_message_,
                 (cfg_.features & kFeatureTunnel)
                     ? "leg %u refused: this end runs a tunnel (terminate/initiate) and the sender sends a plain "
                       "stream; give the sender the other tunnel word"
                     : "leg %u refused: the sender is a tunnel end (terminate/initiate) and this receiver writes a "
                       "plain stream; give this side the other tunnel word",
                 leg);
    } else if (cfg_.codec == Codec::NATIVE) {
        // parity (2.21): geometry in the features' top bytes
        const bool wants = d.hello.features & kFeatureParity;
        const uint32_t n = parity_feature_n(d.hello.features), k = parity_feature_k(d.hello.features);
        const char *why = nullptr;
        if (wants && (n == 0 || k == 0 || n + k > kMaxLegs))
            why = "parity geometry out of range";
        else if (wants && 2 * (n + k) > cfg_.window_chunks)
            why = "this receiver's window does not hold two parity stripes (raise rx's window)";
        else if ((wants && pk_ && (n != pn_ || k != pk_)) || (!wants && pk_))
            why = "its parity geometry differs from the session's other legs";
        else if (wants && (d.hello.features & (kFeatureCompress | kFeatureAead)) &&
                 !(d.hello.features & kFeatureParityFlags))
            why = "parity over compressed or encrypted chunks without hello feature bit 6 (its parity units "
                  "would not say how to open a rebuilt chunk)";
        if (why) {
            r.status = HelloStatus::BAD_HELLO;
            e = Error::BAD_COUNT;
            snprintf(leg_message_, sizeof leg_message_,
                     "leg %u refused: %s (parity N=%u K=%u, window %u chunks)", leg, why, wants ? n : 0,
                     wants ? k : 0, cfg_.window_chunks);
        }
    }
    if (e != Error::NONE) {
        refuse(leg, r, e);
        return;
    }
    if (cfg_.aead) {
        // The hello is answered once the sender proved it holds the key
        // (on_key_proof); nothing is adopted before.
        l.key_wait = true;
        l.hello = d.hello;
        return;
    }
    accept(leg, d.hello);
}

void StripeReceiver::refuse(uint32_t leg, const HelloReply &r, Error e) {
    Leg &l = legs_[leg];
    uint8_t buf[kHelloReplySize];
    stats_.errors[static_cast<unsigned>(e)]++;
    stats_.legs_refused++;
    std::memcpy(refusal_message_, leg_message_, sizeof refusal_message_);
    release_leg(leg);
    l.ctl_len = l.ctl_off = 0;
    l.key_wait = false;
    ctl_append(l, buf, encode_hello_reply(buf, r));
    l.st = ReceiverLegState::REFUSING;
}

void StripeReceiver::accept(uint32_t leg, const Hello &h) {
    Leg &l = legs_[leg];
    uint8_t buf[kHelloReplySize];
    HelloReply r;
    r.version = kVersion;
    r.hello_version = h.version;
    session_ = h.session_id;
    session_known_ = true;
    r.status = HelloStatus::ACCEPT;
    r.features = h.features & (cfg_.features | (cfg_.aead ? kFeatureAead : 0));
    compressed_session_ = (r.features & kFeatureCompress) != 0;
    if (h.features & kFeatureParity) {
        r.features |= h.features & (kFeatureParity | kFeatureParityGeometryMask | kFeatureParityFlags);
        if (!pk_) {
            pn_ = parity_feature_n(h.features);
            pk_ = parity_feature_k(h.features);
            parity_ = std::make_unique<ParityCodec>(pn_, pk_);
            // key FILE: a rebuild re-seals the held chunks' plaintext here,
            // one at a time, to get back the units the sender encoded.
            if (cfg_.aead) reseal_.reset(new uint8_t[static_cast<size_t>(cfg_.max_chunk_bytes) + 2 * kParityUnitPrefix]);
        }
    }
    r.window_chunks = cfg_.window_chunks;
    ctl_append(l, buf, encode_hello_reply(buf, r));
    l.st = ReceiverLegState::OPEN;
}

// key FILE (docs/wire.md 2.22): the sender's 'K' must carry the tag of
// (session id, challenge) under the session key; then we accept the hello
// and prove our key with 'k' over the same challenge.
void StripeReceiver::on_key_proof(uint32_t leg, const Decoded &d) {
    Leg &l = legs_[leg];
    if (!cfg_.aead || !l.key_wait) {
        close_leg(leg, Error::UNEXPECTED_RECORD, "leg %u: a key proof where none belongs", leg);
        return;
    }
    l.key_wait = false;
    if (session_known_ && l.hello.session_id != session_) {
        // Another session's hello waited for its proof while this one was
        // adopted: deriving its key now would replace the adopted session's.
        HelloReply r;
        r.hello_version = l.hello.version;
        r.status = HelloStatus::SESSION_MISMATCH;
        r.features = 0;
        r.window_chunks = 0;
        snprintf(leg_message_, sizeof leg_message_,
                 "leg %u refused: session mismatch: it belongs to session 0x%llx, this receiver serves 0x%llx", leg,
                 static_cast<unsigned long long>(l.hello.session_id), static_cast<unsigned long long>(session_));
        refuse(leg, r, Error::SESSION_MISMATCH);
        return;
    }
    uint8_t aad[kAeadAadBytes], want[kAeadTagBytes] = {};
    bool ok = (aead_session_known_ && aead_session_ == l.hello.session_id) || cfg_.aead->start_session(l.hello.session_id);
    if (ok) {
        aead_session_ = l.hello.session_id;
        aead_session_known_ = true;
        encode_proof_aad(aad, l.hello.session_id, d.key.challenge, 0);
        ok = cfg_.aead->proof(kNonceProofTx, d.key.challenge, aad, want);
    }
    uint8_t diff = ok ? 0 : 1;
    for (size_t i = 0; i < kAeadTagBytes; i++) diff |= static_cast<uint8_t>(want[i] ^ d.key.tag[i]);
    if (diff) {
        HelloReply r;
        r.hello_version = l.hello.version;
        r.status = HelloStatus::KEY_MISMATCH;
        r.features = 0;
        r.window_chunks = 0;
        snprintf(leg_message_, sizeof leg_message_,
                 ok ? "leg %u refused: key mismatch: the sender's key proof did not verify (it holds another key FILE)"
                    : "leg %u refused: the crypto device failed the key proof",
                 leg);
        refuse(leg, r, ok ? Error::KEY_MISMATCH : Error::AEAD_FAILED);
        return;
    }
    accept(leg, l.hello);
    KeyProof k;
    k.challenge = d.key.challenge;
    encode_proof_aad(aad, l.hello.session_id, d.key.challenge, 1);
    if (!cfg_.aead->proof(kNonceProofRx, d.key.challenge, aad, k.tag)) {
        fail(Error::AEAD_FAILED, "the crypto device failed to compute the key proof");
        return;
    }
    uint8_t buf[kKeyProofSize];
    ctl_append(l, buf, encode_key_proof(buf, kTypeKeyProofReply, k));
}

bool StripeReceiver::place_chunk(uint32_t leg) {
    Leg &l = legs_[leg];
    const ChunkHeader &c = l.pending;
    uint64_t s = c.seq;
    if (end_known_ && s >= end_.chunks) {
        fail(Error::SEQ_OUT_OF_RANGE, "chunk %llu arrived on leg %u but the end record says %llu chunks",
             static_cast<unsigned long long>(s), leg, static_cast<unsigned long long>(end_.chunks));
        l.have_pending = false; // (after DONE fail() does nothing: drop the payload)
        l.discard = true;
        return true;
    }
    const bool is_parity = c.flags & kChunkFlagParity;
    uint32_t stripe_data = 0;
    if (is_parity || pk_) {
        // parity (2.21): stripe t owns seqs t*(N+K).., data first, then the
        // K parity chunks, whose offset field carries the geometry.
        const uint64_t g = pn_ + pk_;
        const char *why = nullptr;
        if (!pk_)
            why = "a parity chunk, but the hello did not ask for parity";
        else if (is_parity != (s % g >= pn_))
            why = is_parity ? "a parity chunk at a data chunk's place in its stripe"
                            : "a data chunk at a parity chunk's place in its stripe";
        if (!why && is_parity) {
            stripe_data = static_cast<uint32_t>(c.offset >> 24) & 0xFF;
            if ((c.offset & 0xFF) != s % g - pn_ || ((c.offset >> 8) & 0xFF) != pn_ || ((c.offset >> 16) & 0xFF) != pk_ ||
                (c.offset >> 32) != 0 || stripe_data == 0 || stripe_data > pn_ || c.length <= kParityUnitPrefix)
                why = "a parity chunk whose geometry disagrees with the hello";
            else if (c.flags & (kChunkFlagEncrypted | kChunkFlagCompressed))
                why = "a parity chunk marked encrypted or compressed (parity is neither: it covers the sealed chunks)";
        } else if (!why && c.length > cfg_.max_chunk_bytes) {
            why = "a data chunk longer than the chunk limit";
        }
        if (why) {
            close_leg(leg, is_parity ? Error::BAD_COUNT : Error::UNEXPECTED_RECORD, "leg %u: chunk %llu: %s", leg,
                      static_cast<unsigned long long>(s), why);
            l.have_pending = false;
            return true;
        }
    }
    const uint64_t w = cfg_.window_chunks;
    Slot *sl = (s >= next_ && s - base_ < w) ? &slots_[s % w] : nullptr;
    if (s < next_ || (sl && sl->st == Slot::St::HELD)) {
        // Already delivered or held: a re-send that raced the original.
        stats_.duplicates++;
        l.discard = true;
        l.have_pending = false;
        return true;
    }
    if (!sl) return false; // beyond the window: back-pressure
    if (sl->st == Slot::St::RECEIVING) {
        // Another leg is filling this chunk: a re-send racing the copy on a
        // leg the sender gave up, which may never deliver the rest, or may
        // (a viamillipede sender closes such a leg with FIN, and its bytes
        // arrive late). Both copies carry the same bytes, so both fill the
        // one buffer and the first to complete it delivers it; waiting for
        // either alone could wait forever or lose the chunk with its leg.
        if (c.length != sl->len || c.offset != sl->offset || ((c.flags & kChunkFlagCompressed) != 0) != sl->compressed) {
            stats_.duplicates++; // not the same chunk: keep the first, drop this
            l.discard = true;
            l.have_pending = false;
            return true;
        }
        sl->fillers++;
        sl->mixed = true;
        sl->crc64_valid = false;
        stats_.takeovers++;
        l.slot = static_cast<int32_t>(s % w);
        l.chunk_off = 0;
        l.discard = false;
        l.have_pending = false;
        return true;
    }
    sl->st = Slot::St::RECEIVING;
    sl->fillers = 1;
    sl->mixed = false;
    sl->crc64_valid = false;
    sl->seq = s;
    sl->len = c.length;
    sl->filled = 0;
    sl->offset = c.offset;
    sl->crc = c.crc32c;
    sl->parity = is_parity;
    sl->stripe_data = stripe_data;
    sl->compressed = (c.flags & kChunkFlagCompressed) != 0;
    sl->compat_sum = l.pending_sum;
    l.slot = static_cast<int32_t>(s % w);
    l.chunk_off = 0;
    l.discard = false;
    l.have_pending = false;
    return true;
}

void StripeReceiver::on_chunk_end(uint32_t leg, const Decoded &d) {
    Leg &l = legs_[leg];
    l.ack_pending = true;
    if (l.discard || l.slot < 0) {
        l.discard = false;
        return;
    }
    const int32_t idx = l.slot;
    Slot &s = slots_[idx];
    l.slot = -1;
    if (s.fillers > 0) s.fillers--;
    // A buffer filled from two copies is verified as it is, not by the
    // running CRC of this leg's copy alone.
    const bool crc_ok = cfg_.codec != Codec::NATIVE || !s.mixed ? d.crc_ok : crc32c(s.buf, s.len) == l.pending.crc32c;
    if (!crc_ok) {
        // Never delivered: ask for it again on the leg it came on (if that
        // leg dies the sender re-sends it anyway). A copy still arriving on
        // another leg keeps the slot; a bad prefix of ours in the buffer is
        // caught when that copy ends, by the check above.
        if (s.fillers == 0) s.st = Slot::St::FREE;
        stats_.crc_failures++;
        stats_.errors[static_cast<unsigned>(Error::CRC_MISMATCH)]++;
        snprintf(leg_message_, sizeof leg_message_,
                 "chunk %llu (leg %u) failed CRC32C: header 0x%08x, computed 0x%08x; asked for it again",
                 static_cast<unsigned long long>(s.seq), leg, l.pending.crc32c, d.crc_computed);
        if (l.ring_count == l.ring_cap) {
            close_leg(leg, Error::CRC_MISMATCH, "leg %u: too many CRC32C failures queued", leg);
            return;
        }
        l.ring[(l.ring_head + l.ring_count) % l.ring_cap] = s.seq;
        l.ring_count++;
        l.ring_crc[0] = l.pending.crc32c;
        l.ring_crc[1] = d.crc_computed;
        return;
    }
    if (s.filled < s.len) return; // (cannot happen: this copy reached its end)
    if (!cfg_.aead && (l.pending.flags & kChunkFlagEncrypted)) {
        fail(Error::KEY_MISMATCH, "chunk %llu (leg %u) is encrypted but this receiver has no key (key FILE)",
             static_cast<unsigned long long>(s.seq), leg);
        return;
    }
    // A parity chunk is not sealed: it is a combination of sealed chunks,
    // and what is rebuilt from it is opened like any chunk (2.21).
    if (cfg_.aead && !s.parity && !open_chunk(leg, s)) return;
    // The wire bytes are the stream's bytes only for a native chunk from one
    // copy and without a key (a sealed one was just opened in place).
    // Compressed chunks never reach the digest through this sum (advance()).
    s.crc64_valid = cfg_.codec == Codec::NATIVE && !s.mixed && !s.parity && !cfg_.aead;
    s.crc64 = d.crc64_computed;
    s.st = Slot::St::HELD;
    if (s.parity) stats_.parity_chunks++;
    if (s.fillers > 0) detach_fillers(idx); // the other copy's rest is read and dropped
    advance();
}

void StripeReceiver::detach_fillers(int32_t idx) {
    for (auto &o : legs_)
        if (o.slot == idx) {
            o.slot = -1;
            o.discard = true;
        }
    slots_[idx].fillers = 0;
}

// parity (2.21): called when next_ is the first seq of a stripe. True once
// every data chunk of the stripe is held, rebuilding the missing ones from
// any N of its chunks when a parity chunk is held (which also says how many
// data chunks a short stripe has); stripe_n_ is set then.
bool StripeReceiver::resolve_stripe(uint64_t s0) {
    const uint64_t w = cfg_.window_chunks;
    const auto held = [&](uint64_t q) -> Slot * {
        if (q - base_ >= w) return nullptr;
        Slot &x = slots_[q % w];
        return x.st == Slot::St::HELD && x.seq == q ? &x : nullptr;
    };
    uint32_t known = 0, plen = 0, have_parity = 0;
    bool present[kMaxLegs] = {};
    for (uint32_t i = 0; i < pk_; i++)
        if (Slot *p = held(s0 + pn_ + i)) {
            if (!known) known = p->stripe_data, plen = p->len;
            if (p->len != plen || p->stripe_data != known) {
                fail(Error::BAD_COUNT, "stripe at chunk %llu: its parity chunks disagree on length or data count",
                     static_cast<unsigned long long>(s0));
                return false;
            }
            present[pn_ + i] = true;
            have_parity++;
        }
    const uint32_t nd = known ? known : pn_;
    uint32_t have_data = 0;
    for (uint32_t j = 0; j < nd; j++)
        if (held(s0 + j)) present[j] = true, have_data++;
    if (have_data == nd) {
        stripe_n_ = nd;
        return true;
    }
    if (!known) {
        // No parity chunk came (all lost): a short stripe's data count is
        // proved by its data chunks 0..j-1 ending exactly where the next
        // stripe's first chunk starts, or where the end record says the
        // stream ends.
        uint32_t j = 0;
        while (j < pn_ && present[j]) j++;
        if (j == 0 || have_data != j) return false;
        const Slot *last = held(s0 + j - 1);
        // Offsets count stream bytes: a compressed chunk stands for its
        // prefix's original length, not its payload's (2.20).
        const uint64_t end_off =
            last->offset + (last->compressed && last->len >= kCompressedPrefixSize ? net::load_le32(last->buf) : last->len);
        const Slot *next = held(s0 + pn_ + pk_);
        if ((next && next->offset == end_off) ||
            (end_known_ && end_.chunks == s0 + pn_ + pk_ && end_.bytes == end_off)) {
            stripe_n_ = j;
            return true;
        }
        return false;
    }
    if (have_data + have_parity < nd) return false;
    for (uint32_t j = 0; j < nd; j++)
        if (!present[j] && s0 + j - base_ >= w) return false; // no buffer for it yet: output must drain first
    // Rebuild. A data unit is the chunk as the sender encoded it (2.21):
    // the prefix (offset, length and flags, CRC32C of the payload on the
    // wire) in the buffer's headroom, that payload, zeros up to the parity
    // length. The payload on the wire is what a held chunk's buffer has,
    // except with a key: a held chunk was opened in place, so its unit is
    // sealed again (rebuild_keyed).
    uint8_t *units[kMaxLegs] = {};
    for (uint32_t j = 0; j < nd; j++) {
        const int32_t idx = static_cast<int32_t>((s0 + j) % w);
        Slot &x = slots_[idx];
        units[j] = x.buf - kParityUnitPrefix;
        if (present[j]) {
            const uint32_t wire_len = x.len + (cfg_.aead ? static_cast<uint32_t>(kAeadTagBytes) : 0);
            if (kParityUnitPrefix + wire_len > plen) {
                fail(Error::BAD_COUNT, "chunk %llu is longer than its stripe's parity",
                     static_cast<unsigned long long>(s0 + j));
                return false;
            }
            if (!cfg_.aead) {
                encode_parity_unit_prefix(units[j], unit_prefix(x, x.len));
                std::memset(x.buf + x.len, 0, plen - kParityUnitPrefix - x.len);
            }
        } else if (x.st == Slot::St::RECEIVING) {
            detach_fillers(idx); // a copy still coming (or never: its leg died) is dropped
        }
    }
    for (uint32_t i = 0; i < pk_; i++)
        if (present[pn_ + i]) units[pn_ + i] = slots_[(s0 + pn_ + i) % w].buf;
    if (cfg_.aead ? !rebuild_keyed(s0, nd, present, units, plen) : !parity_->rebuild(nd, present, units, plen))
        return false;
    for (uint32_t j = 0; j < nd; j++) {
        if (present[j]) continue;
        Slot &x = slots_[(s0 + j) % w];
        const ParityUnitPrefix u = decode_parity_unit_prefix(units[j]);
        if (u.length == 0 || u.length > cfg_.max_chunk_bytes || kParityUnitPrefix + u.length > plen ||
            crc32c(x.buf, u.length) != u.crc32c) {
            fail(Error::CRC_MISMATCH,
                 "chunk %llu rebuilt from its stripe's parity does not verify (length %u, CRC32C 0x%08x)",
                 static_cast<unsigned long long>(s0 + j), u.length, u.crc32c);
            return false;
        }
        // The flags say what a received chunk's header would: compressed
        // only in a session that negotiated it, encrypted exactly when the
        // session has a key (2.20, 2.22).
        if ((u.flags & ~kParityUnitFlagsKnown) || ((u.flags & kChunkFlagCompressed) && !compressed_session_) ||
            ((u.flags & kChunkFlagEncrypted) != 0) != (cfg_.aead != nullptr)) {
            fail(u.flags & kChunkFlagEncrypted || cfg_.aead ? Error::AUTH_FAILED : Error::BAD_COMPRESSED,
                 "chunk %llu rebuilt from its stripe's parity carries chunk flags 0x%02x this session does not "
                 "allow%s; none of it was written",
                 static_cast<unsigned long long>(s0 + j), u.flags,
                 cfg_.aead ? " (a session with a key)" : "");
            return false;
        }
        x.seq = s0 + j;
        x.len = x.filled = u.length;
        x.offset = u.offset;
        x.crc = u.crc32c;
        x.compressed = (u.flags & kChunkFlagCompressed) != 0;
        x.parity = false;
        x.mixed = false;
        x.crc64_valid = false;
        x.fillers = 0;
        // Then exactly what a chunk that arrived goes through: the tag, in
        // place, before it counts as held; inflation (and its CRC32C of the
        // original bytes) follows in the owner's pool, in order.
        if (cfg_.aead && !cfg_.aead->open(x.seq, chunk_aad(x).data(), x.buf, x.len)) {
            x.st = Slot::St::FREE;
            x.filled = 0;
            fail(Error::AUTH_FAILED,
                 "chunk %llu (stream bytes %llu..) rebuilt from its stripe's parity failed authentication "
                 "(AES-256-GCM tag): a chunk of its stripe was tampered with or sealed with another key; none of "
                 "it was written",
                 static_cast<unsigned long long>(x.seq), static_cast<unsigned long long>(x.offset));
            return false;
        }
        if (cfg_.aead) x.len -= static_cast<uint32_t>(kAeadTagBytes);
        if (x.compressed && x.len <= kCompressedPrefixSize) {
            fail(Error::BAD_COMPRESSED,
                 "chunk %llu rebuilt from its stripe's parity is a compressed payload of %u bytes, too short for "
                 "its prefix; none of it was written",
                 static_cast<unsigned long long>(x.seq), x.len);
            return false;
        }
        x.filled = x.len;
        x.st = Slot::St::HELD;
        stats_.parity_rebuilt++;
    }
    // Tell the sender on every leg: it holds those chunks as lost and waits
    // for exactly this acknowledgement instead of re-sending them.
    for (auto &o : legs_)
        if (o.st == ReceiverLegState::OPEN) o.ack_pending = true;
    stripe_n_ = nd;
    return true;
}

// The prefix of a held data chunk's parity unit; wire_len is its payload's
// length on the wire.
ParityUnitPrefix StripeReceiver::unit_prefix(const Slot &x, uint32_t wire_len) const {
    ParityUnitPrefix p;
    p.offset = x.offset;
    p.length = wire_len;
    p.flags = static_cast<uint8_t>((x.compressed ? kChunkFlagCompressed : 0) | (cfg_.aead ? kChunkFlagEncrypted : 0));
    p.crc32c = x.crc;
    return p;
}

// key FILE: the held data chunks hold plaintext (opened in place), the
// parity was computed over their sealed bytes. Each is sealed again into
// one scratch unit - the same plaintext under the same nonce and AAD is the
// same ciphertext and tag the sender sent, a repeat of that message, not a
// new one under its nonce (2.22) - and added into the missing units one
// survivor at a time.
bool StripeReceiver::rebuild_keyed(uint64_t s0, uint32_t nd, const bool *present, uint8_t *const *units,
                                   uint32_t plen) {
    const uint64_t w = cfg_.window_chunks;
    unsigned sources[kMaxLegs], targets[kMaxLegs];
    if (!parity_->plan_rebuild(nd, present, sources, targets)) return false;
    uint8_t *outs[kMaxLegs];
    for (unsigned t = 0; t < parity_->rebuild_targets(); t++) {
        outs[t] = units[targets[t]];
        std::memset(outs[t], 0, plen);
    }
    uint8_t *unit = reseal_.get();
    for (unsigned r = 0; r < parity_->rebuild_sources(); r++) {
        const unsigned u = sources[r];
        if (u >= pn_) {
            parity_->rebuild_update(r, units[u], plen, outs);
            continue;
        }
        const Slot &x = slots_[(s0 + u) % w];
        const uint32_t wire_len = x.len + static_cast<uint32_t>(kAeadTagBytes);
        std::memcpy(unit + kParityUnitPrefix, x.buf, x.len);
        uint8_t aad[kAeadAadBytes];
        encode_chunk_aad(aad, session_, x.seq, x.offset, x.len);
        if (!cfg_.aead->seal(x.seq, aad, unit + kParityUnitPrefix, x.len)) {
            fail(Error::AEAD_FAILED, "the crypto device failed to seal chunk %llu again for a rebuild",
                 static_cast<unsigned long long>(x.seq));
            return false;
        }
        if (crc32c(unit + kParityUnitPrefix, wire_len) != x.crc) {
            fail(Error::AEAD_FAILED,
                 "chunk %llu sealed again for a rebuild is not what arrived (CRC32C); the crypto device is not "
                 "deterministic",
                 static_cast<unsigned long long>(x.seq));
            return false;
        }
        encode_parity_unit_prefix(unit, unit_prefix(x, wire_len));
        std::memset(unit + kParityUnitPrefix + wire_len, 0, plen - kParityUnitPrefix - wire_len);
        parity_->rebuild_update(r, unit, plen, outs);
    }
    return true;
}

// key FILE: the chunk counts as held only after its tag verified; it is
// decrypted in place and shrinks to its original length. A bad tag is not
// a transmission error (the CRC32C passed): the session fails.
bool StripeReceiver::open_chunk(uint32_t leg, Slot &s) {
    if (s.len <= kAeadTagBytes || !(legs_[leg].pending.flags & kChunkFlagEncrypted)) {
        fail(Error::AUTH_FAILED, "chunk %llu (leg %u) is not encrypted (flags 0x%02x, %u bytes) in a session with a key",
             static_cast<unsigned long long>(s.seq), leg, legs_[leg].pending.flags, s.len);
        return false;
    }
    if (!cfg_.aead->open(s.seq, chunk_aad(s).data(), s.buf, s.len)) {
        s.st = Slot::St::FREE;
        s.filled = 0;
        fail(Error::AUTH_FAILED,
             "chunk %llu (stream bytes %llu.., leg %u) failed authentication (AES-256-GCM tag): tampered with, "
             "replayed from another place or session, or sealed with another key; none of it was written",
             static_cast<unsigned long long>(s.seq), static_cast<unsigned long long>(s.offset), leg);
        return false;
    }
    s.len -= static_cast<uint32_t>(kAeadTagBytes);
    return true;
}

// The AAD the sender sealed chunk `s` with: its offset and the length of
// its plaintext (s.len is the payload on the wire, tag included).
std::array<uint8_t, kAeadAadBytes> StripeReceiver::chunk_aad(const Slot &s) const {
    std::array<uint8_t, kAeadAadBytes> aad;
    encode_chunk_aad(aad.data(), session_, s.seq, s.offset, s.len - static_cast<uint32_t>(kAeadTagBytes));
    return aad;
}

void StripeReceiver::on_end(uint32_t leg, const Decoded &d) {
    if (end_known_ && (d.end.chunks != end_.chunks || d.end.bytes != end_.bytes || d.end.digest != end_.digest)) {
        fail(Error::END_COUNT_MISMATCH, "two different end records (leg %u)", leg);
        return;
    }
    end_ = d.end;
    end_known_ = true;
    end_leg_ = leg;
    if (pk_) advance(); // the last stripe's data count may follow from the end record
    if (verdict_ != Verdict::PENDING && cfg_.codec == Codec::NATIVE) {
        // A repeated end record (its first leg died): answer on this leg,
        // unless the answer is still waiting for the output to drain.
        if (!end_ack_deferred_) send_end_ack(leg);
        return;
    }
    check_end();
}

void StripeReceiver::advance() {
    if (in_advance_) return; // (output_consumed() below may call back)
    in_advance_ = true;
    const uint64_t w = cfg_.window_chunks;
    const uint64_t g = pn_ + pk_;
    while (state_ == SessionState::RUNNING) {
        if (pk_) {
            // A data chunk held in order goes out at once (its buffer stays
            // until the stripe is complete, for a rebuild: output_consumed);
            // at the first seq not held as data - a lost chunk, a seq a
            // short stripe left out, or the parity - the stripe must be
            // complete: rebuilt if need be, its data count known.
            const uint64_t pos = next_ % g;
            if (!stripe_ready_) {
                const Slot &x = slots_[next_ % w];
                const bool data_here =
                    pos < pn_ && next_ - base_ < w && x.st == Slot::St::HELD && x.seq == next_ && !x.parity;
                if (!data_here) {
                    if (!resolve_stripe(next_ - pos)) break;
                    stripe_ready_ = true;
                }
            }
            if (stripe_ready_ && pos >= stripe_n_) {
                // A parity chunk, or a data seq a short stripe left out: no
                // bytes; held (acknowledged) whether it came or not.
                if (next_ - base_ >= w) break;
                const int32_t idx = static_cast<int32_t>(next_ % w);
                Slot &x = slots_[idx];
                if (x.st == Slot::St::RECEIVING) detach_fillers(idx);
                x.st = Slot::St::HELD;
                x.seq = next_;
                x.len = x.filled = 0;
                x.parity = false;
                x.compressed = false;
                next_++;
                if (next_ % g == 0) stripe_ready_ = false;
                continue;
            }
        }
        Slot &s = slots_[next_ % w];
        if (s.st != Slot::St::HELD || s.seq != next_) break;
        if (cfg_.codec == Codec::NATIVE && s.offset != stats_.bytes_delivered) {
            fail(Error::OFFSET_MISMATCH, "chunk %llu claims stream offset %llu but %llu bytes precede it",
                 static_cast<unsigned long long>(s.seq), static_cast<unsigned long long>(s.offset),
                 static_cast<unsigned long long>(stats_.bytes_delivered));
            break;
        }
        if (cfg_.codec == Codec::VIAMILLIPEDE && !compat_chain_.verify(s.seq, s.buf, s.len, s.compat_sum)) {
            fail(Error::COMPAT_CHECKSUM,
                 "viamillipede chunk %llu (stream bytes %llu..) failed its checksum 0x%llx; viamillipede's "
                 "protocol cannot ask for it again",
                 static_cast<unsigned long long>(s.seq),
                 static_cast<unsigned long long>(stats_.bytes_delivered),
                 static_cast<unsigned long long>(s.compat_sum));
            break;
        }
        if (compressed_session_) {
            // The stream bytes are the owner's to produce (decompression
            // pool) and digest (digest_output()); the prefix's length is
            // checked here so offsets stay verifiable.
            s.stream_len = s.len;
            if (s.compressed) {
                s.stream_len = net::load_le32(s.buf);
                if (s.stream_len == 0 || s.stream_len > cfg_.max_chunk_bytes) {
                    fail(Error::BAD_COMPRESSED,
                         "compressed chunk %llu announces %u original bytes; this receiver's limit is %u",
                         static_cast<unsigned long long>(s.seq), s.stream_len, cfg_.max_chunk_bytes);
                    break; // (leaves in_advance_ clear: the session has failed)
                }
            }
            stats_.bytes_delivered += s.stream_len;
            stats_.chunks_delivered++;
            next_++;
            continue;
        }
        digest_ = s.crc64_valid ? crc64_combine(digest_, s.crc64, s.len) : crc64(s.buf, s.len, digest_);
        stats_.bytes_delivered += s.len;
        stats_.chunks_delivered++;
        next_++;
        if (pk_ && next_ % g == 0) stripe_ready_ = false;
    }
    in_advance_ = false;
    output_consumed(0); // releases chunks with nothing left to write (empty compat chunks, parity)
    check_end();
}

void StripeReceiver::check_end() {
    if (!end_known_ || verdict_ != Verdict::PENDING || state_ != SessionState::RUNNING) return;
    if (next_ < end_.chunks) return;
    if (compressed_session_ && next_ == end_.chunks && digested_bytes_ < stats_.bytes_delivered) return;
    if (cfg_.codec == Codec::VIAMILLIPEDE) {
        verdict_ = next_ == end_.chunks ? Verdict::OK : Verdict::BAD;
        if (verdict_ == Verdict::BAD)
            fail(Error::END_COUNT_MISMATCH, "viamillipede end header says %llu chunks, %llu were received",
                 static_cast<unsigned long long>(end_.chunks), static_cast<unsigned long long>(next_));
        return;
    }
    EndStatus st = EndStatus::OK;
    if (next_ != end_.chunks)
        st = EndStatus::COUNT_MISMATCH;
    else if (stats_.bytes_delivered != end_.bytes)
        st = EndStatus::LENGTH_MISMATCH;
    else if (digest_ != end_.digest)
        st = EndStatus::DIGEST_MISMATCH;
    end_status_ = st;
    verdict_ = st == EndStatus::OK ? Verdict::OK : Verdict::BAD;
    // A mismatch is reported at once; success only once the output took
    // every byte (output_consumed / poll send it then).
    if (st == EndStatus::OK && out_ < next_)
        end_ack_deferred_ = true;
    else
        send_end_ack(end_leg_);
    const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
    switch (st) {
    case EndStatus::OK:
        break;
    case EndStatus::COUNT_MISMATCH:
        fail(Error::END_COUNT_MISMATCH, "end record: the sender sent %llu chunks, %llu were received",
             u(end_.chunks), u(next_));
        break;
    case EndStatus::LENGTH_MISMATCH:
        fail(Error::END_LENGTH_MISMATCH,
             "end record: stream length mismatch: the sender sent %llu bytes, %llu were received; the "
             "output is incomplete",
             u(end_.bytes), u(stats_.bytes_delivered));
        break;
    case EndStatus::DIGEST_MISMATCH:
        fail(Error::END_DIGEST_MISMATCH,
             "end record: CRC64 digest mismatch over %llu bytes: the sender's is 0x%016llx, the received "
             "data's is 0x%016llx; the output is corrupt",
             u(end_.bytes), u(end_.digest), u(digest_));
        break;
    }
}

// ----------------------------------------------------------------- output

bool StripeReceiver::held(uint64_t seq, Held &out) const {
    if (seq < base_ || seq >= next_) return false;
    const Slot &s = slots_[seq % cfg_.window_chunks];
    out.data = s.buf;
    out.len = s.len;
    out.compressed = s.compressed;
    out.stream_len = compressed_session_ ? s.stream_len : s.len;
    return true;
}

void StripeReceiver::digest_output(const uint8_t *p, size_t n) {
    digest_ = crc64(p, n, digest_);
    digested_bytes_ += n;
    check_end();
}

std::span<const uint8_t> StripeReceiver::output() const {
    if (out_ >= next_) return {};
    const Slot &s = slots_[out_ % cfg_.window_chunks];
    return {s.buf + out_off_, s.len - out_off_};
}

void StripeReceiver::send_end_ack(uint32_t leg) {
    EndAck a{end_status_, next_, stats_.bytes_delivered, digest_};
    uint8_t buf[kEndAckSize];
    if (ctl_append(legs_[leg], buf, encode_end_ack(buf, a))) legs_[leg].ctl_has_end_ack = true;
}

void StripeReceiver::output_consumed(size_t n) {
    out_off_ += n;
    stats_.bytes_out += n;
    const uint64_t base_was = base_;
    while (out_ < next_) {
        const Slot &s = slots_[out_ % cfg_.window_chunks];
        if (out_off_ < s.len) break;
        out_off_ -= s.len;
        out_++;
    }
    // A buffer is freed once written out, except (parity) the chunks of a
    // stripe not complete yet: a rebuild needs them.
    const uint64_t keep = pk_ && !stripe_ready_ ? next_ - next_ % (pn_ + pk_) : next_;
    while (base_ < out_ && base_ < keep) {
        Slot &s = slots_[base_ % cfg_.window_chunks];
        s.st = Slot::St::FREE;
        s.filled = 0;
        base_++;
    }
    // parity: a stripe waiting for buffers (to rebuild into, or to hold
    // its parity seqs) may go on now.
    if (pk_ && base_ != base_was && !in_advance_) advance();
}

// ------------------------------------------------------------------ legs

void StripeReceiver::write_leg(uint32_t leg, LegIo &io) {
    Leg &l = legs_[leg];
    for (;;) {
        if (l.ctl_off < l.ctl_len) {
            size_t w = io.writable(leg);
            if (w == 0) return;
            size_t ask = std::min<size_t>(w, l.ctl_len - l.ctl_off);
            size_t k = io.write(leg, l.ctl + l.ctl_off, ask);
            l.ctl_off += static_cast<uint32_t>(k);
            if (k < ask) return;
            if (l.ctl_off < l.ctl_len) continue;
            l.ctl_off = l.ctl_len = 0;
            if (l.ctl_has_end_ack) {
                l.ctl_has_end_ack = false;
                end_ack_written_ = true;
            }
            if (l.st == ReceiverLegState::REFUSING) {
                l.st = ReceiverLegState::CLOSED;
                events_.push({EventType::CLOSE_LEG, leg, Error::HELLO_REFUSED});
                return;
            }
        }
        if (l.st != ReceiverLegState::OPEN || state_ == SessionState::FAILED) return;
        bool added = false;
        while (l.ring_count > 0) {
            Resend r;
            r.seq = l.ring[l.ring_head];
            r.crc_header = l.ring_crc[0];
            r.crc_computed = l.ring_crc[1];
            uint8_t buf[kResendSize];
            if (!ctl_append(l, buf, encode_resend(buf, r))) break;
            l.ring_head = (l.ring_head + 1) % l.ring_cap;
            l.ring_count--;
            added = true;
        }
        if (l.ack_pending && cfg_.codec == Codec::NATIVE) {
            Ack a;
            a.cumulative = next_;
            const uint64_t w = cfg_.window_chunks;
            for (uint64_t i = 0; i < 64; i++) {
                uint64_t s = next_ + 1 + i;
                if (s - base_ >= w) break;
                const Slot &sl = slots_[s % w];
                if (sl.st == Slot::St::HELD && sl.seq == s) a.bitmap |= 1ull << i;
            }
            uint8_t buf[kAckSize];
            if (ctl_append(l, buf, encode_ack(buf, a))) {
                l.ack_pending = false;
                stats_.acks_sent++;
                added = true;
            }
        } else {
            l.ack_pending = false; // viamillipede has no acks
        }
        if (!added) return;
    }
}

void StripeReceiver::poll(uint64_t, LegIo &io) {
    if (end_ack_deferred_ && out_ == next_) {
        end_ack_deferred_ = false;
        send_end_ack(end_leg_);
    }
    for (uint32_t i = 0; i < legs_.size(); i++) {
        ReceiverLegState st = legs_[i].st;
        if (st == ReceiverLegState::HELLO || st == ReceiverLegState::OPEN || st == ReceiverLegState::REFUSING)
            write_leg(i, io);
    }
    if (state_ == SessionState::RUNNING && verdict_ == Verdict::OK && out_ == next_ &&
        (cfg_.codec == Codec::VIAMILLIPEDE || end_ack_written_)) {
        state_ = SessionState::DONE;
        snprintf(message_, sizeof message_, "complete: %llu bytes in %llu chunks%s",
                 static_cast<unsigned long long>(stats_.bytes_delivered), static_cast<unsigned long long>(next_),
                 cfg_.codec == Codec::NATIVE ? ", length and CRC64 verified" : " (viamillipede: not verifiable)");
        events_.push({EventType::DONE, 0, Error::NONE});
    }
}

} // namespace millipede::stripe

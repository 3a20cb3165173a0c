// StripeSender: chunking, preference-order scheduling with spill-over,
// acknowledgement tracking, dead-leg re-queue and reconnect back-off.
// Design notes: docs/wire.md section 5.
#include "millipede/stripe/sender.h"

#include "millipede/net/bytes.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace millipede::stripe {

struct StripeSender::Slot {
    // COVERED (parity): lost with a leg, but the receiver rebuilds it from
    // its stripe's other chunks; it waits for that acknowledgement.
    enum class St : uint8_t { FREE, FILLING, QUEUED, RESEND, SENDING, SENT, COVERED };
    const uint8_t *buf = nullptr;
    uint8_t *own = nullptr; // this slot's buffer in the internal pool (copy mode)
    uint64_t ref = 0;       // external_chunks: the chunk's reference, while held
    uint32_t len = 0;
    uint32_t stream_len = 0; // stream bytes it stands for (len unless compressed)
    uint8_t flags = 0;       // kChunkFlagCompressed
    uint64_t seq = 0;
    uint64_t offset = 0;
    uint32_t crc = 0;
    uint64_t compat_sum = 0;
    St st = St::FREE;
    uint32_t leg = 0;
    uint32_t resends = 0;
    bool ever_sent = false;
    bool acked_while_sending = false; // the ack overtook a re-send in progress
    uint64_t delivered_at = 0;        // compat: the leg's stream offset just past this chunk
    bool parity = false;              // a parity unit (slots_[data_slots_..]); FILLING = reserved for the open stripe
};

struct StripeSender::Leg {
    explicit Leg(Codec c) : dec(c, Direction::FROM_RECEIVER) {}
    SenderLegState st = SenderLegState::DOWN;
    uint32_t failures = 0;
    uint64_t next_attempt = 0;
    Decoder dec;
    uint8_t ctl[64] = {};
    uint32_t ctl_len = 0;
    uint32_t ctl_off = 0;
    int32_t cur = -1;           // slot being written
    uint8_t hdr[kMaxRecordHeader] = {};
    uint32_t hdr_len = 0;
    uint64_t cur_off = 0;       // bytes of header+payload written
    bool fresh = true;          // no chunk bytes written since the hello
    uint64_t written = 0;       // bytes handed to the leg since it connected
    uint64_t end_at = 0;        // compat: the leg's stream offset just past the end header
    bool breaking = false;      // compat: break_leg() asked; closes once all written is delivered
    bool key_wait = false;      // key FILE: hello accepted, the receiver's key proof ('k') must follow
    uint64_t key_challenge = 0; // the challenge of this connection's key proof
    QueueAheadEstimator qa;     // parity, QueueAhead::AUTO: this leg's bandwidth-delay product
};

StripeSender::StripeSender(const SenderConfig &cfg)
    : cfg_(cfg), events_(static_cast<size_t>(cfg.legs) * 2 + 8) {
    if (cfg.legs == 0 || cfg.legs > kMaxLegs)
        throw std::invalid_argument("stripe sender: legs must be 1.." + std::to_string(kMaxLegs));
    uint32_t ceiling = cfg.codec == Codec::NATIVE ? kMaxChunkBytes : kCompatMaxChunkBytes;
    if (cfg.chunk_bytes == 0 || cfg.chunk_bytes > ceiling)
        throw std::invalid_argument("stripe sender: chunk_bytes must be 1.." + std::to_string(ceiling));
    if (cfg.max_chunks_in_flight == 0 || cfg.max_chunks_in_flight > 65536)
        throw std::invalid_argument("stripe sender: max_chunks_in_flight must be 1..65536");
    if (cfg.backoff_initial_us == 0 || cfg.backoff_max_us < cfg.backoff_initial_us)
        throw std::invalid_argument("stripe sender: need 0 < backoff_initial_us <= backoff_max_us");
    if (cfg.external_chunks && !cfg.release_chunk)
        throw std::invalid_argument("stripe sender: external chunks need a release function");
    if ((cfg.features & kFeaturesV1) != kFeaturesV1 || (cfg.features & ~(kFeaturesV1 | kFeaturesOptional)))
        throw std::invalid_argument("stripe sender: features must be the v1 set, optionally with compression and the tunnel");
    if ((cfg.features & kFeatureCompress) && cfg.codec != Codec::NATIVE)
        throw std::invalid_argument("stripe sender: compression needs the native codec");
    input_per_chunk_ = cfg.chunk_bytes;
    if (cfg.aead) {
        if (cfg.codec != Codec::NATIVE)
            throw std::invalid_argument("stripe sender: encryption (key) needs the native codec");
        if (cfg.chunk_bytes <= kAeadTagBytes)
            throw std::invalid_argument("stripe sender: with a key chunk_bytes must exceed the 16-byte tag");
        input_per_chunk_ = cfg.chunk_bytes - static_cast<uint32_t>(kAeadTagBytes);
        if (!cfg.aead->start_session(cfg.session_id))
            throw std::invalid_argument("stripe sender: the crypto device cannot derive the session key");
    }
    slots_.resize(cfg.max_chunks_in_flight);
    if (!cfg.external_chunks) {
        size_t total = static_cast<size_t>(cfg.chunk_bytes) * cfg.max_chunks_in_flight;
        pool_.reset(new uint8_t[total]);
        for (size_t i = 0; i < slots_.size(); i++) slots_[i].buf = slots_[i].own = pool_.get() + i * cfg.chunk_bytes;
    }
    data_slots_ = cfg.max_chunks_in_flight;
    if (cfg.parity_k) {
        if (cfg.codec != Codec::NATIVE)
            throw std::invalid_argument("stripe sender: parity needs the native format (viamillipede's has no parity)");
        if (cfg.parity_k >= cfg.legs)
            throw std::invalid_argument("stripe sender: parity " + std::to_string(cfg.parity_k) +
                                        " needs more legs than parity chunks (have " + std::to_string(cfg.legs) +
                                        " legs; N = legs - K data chunks per stripe must be at least 1)");
        if (cfg.parity_k > 255 || cfg.legs - cfg.parity_k > 255)
            throw std::invalid_argument("stripe sender: parity geometry above 255");
        // With a single buffer a stripe would advance one chunk per round
        // trip; that case (and a lost chunk holding the only buffer) is not
        // tested: refuse it.
        if (cfg.max_chunks_in_flight < 2)
            throw std::invalid_argument("stripe sender: parity needs max_chunks_in_flight of 2 or more");
        if (cfg.parity_queue_ahead == QueueAhead::FIXED && cfg.parity_queue_ahead_bytes == 0)
            throw std::invalid_argument("stripe sender: a fixed parity queue-ahead bound needs a byte count > 0");
        pk_ = cfg.parity_k;
        pn_ = cfg.legs - cfg.parity_k;
        parity_ = std::make_unique<ParityCodec>(pn_, pk_);
        // Enough parity buffers for every stripe that can hold a data
        // buffer, and two more; beyond that input waits (parity_room()).
        const size_t units = static_cast<size_t>(pk_) * (cfg.max_chunks_in_flight + 2);
        const size_t unit_bytes = static_cast<size_t>(cfg.chunk_bytes) + kParityUnitPrefix;
        parity_pool_.reset(new uint8_t[units * unit_bytes]);
        slots_.resize(data_slots_ + units);
        for (size_t i = 0; i < units; i++) {
            Slot &p = slots_[data_slots_ + i];
            p.buf = p.own = parity_pool_.get() + i * unit_bytes;
            p.parity = true;
        }
    }
    legs_.reserve(cfg.legs);
    for (uint32_t i = 0; i < cfg.legs; i++) legs_.emplace_back(cfg.codec);
}

StripeSender::~StripeSender() {
    for (size_t i = 0; i < slots_.size(); i++)
        if (slots_[i].ref) free_slot(static_cast<int32_t>(i));
}

void StripeSender::fail(Error e, const char *fmt, ...) {
    if (state_ != SessionState::RUNNING) return;
    state_ = SessionState::FAILED;
    stats_.errors[static_cast<unsigned>(e)]++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message_, sizeof message_, fmt, ap);
    va_end(ap);
    for (auto &l : legs_) l.st = SenderLegState::CLOSED;
    events_.push({EventType::FAILED, 0, e});
}

void StripeSender::finish(bool confirmed) {
    state_ = SessionState::DONE;
    confirmed_ = confirmed;
    snprintf(message_, sizeof message_,
             "complete: %llu bytes in %llu chunks, CRC64 0x%016llx, %s",
             static_cast<unsigned long long>(sealed_bytes_),
             static_cast<unsigned long long>(next_seq_), static_cast<unsigned long long>(digest_),
             confirmed ? "verified by the receiver"
                       : "every byte acknowledged by the receiver's TCP (viamillipede mode has no end "
                         "confirmation)");
    for (auto &l : legs_) l.st = SenderLegState::CLOSED;
    events_.push({EventType::DONE, 0, Error::NONE});
}

// ------------------------------------------------------------------ input

size_t StripeSender::input_space() const {
    if (eof_ || state_ != SessionState::RUNNING) return 0;
    size_t room = filling_ >= 0 ? cfg_.chunk_bytes - slots_[filling_].len : 0;
    if (!parity_room()) return room;
    for (uint32_t i = 0; i < data_slots_; i++)
        if (slots_[i].st == Slot::St::FREE) room += cfg_.chunk_bytes;
    return room;
}

int32_t StripeSender::grab_free_slot() const {
    for (uint32_t i = 0; i < data_slots_; i++)
        if (slots_[i].st == Slot::St::FREE) return static_cast<int32_t>(i);
    return -1;
}

bool StripeSender::chunk_room() const {
    if (eof_ || state_ != SessionState::RUNNING || !cfg_.external_chunks || !parity_room()) return false;
    for (uint32_t i = 0; i < data_slots_; i++)
        if (slots_[i].st == Slot::St::FREE) return true;
    return false;
}

bool StripeSender::push_chunk(const uint8_t *data, uint32_t len, uint64_t ref, uint64_t now_us, const ChunkSums *sums) {
    if (!cfg_.external_chunks || eof_ || state_ != SessionState::RUNNING || len == 0 || len > input_per_chunk_)
        return false;
    if (!parity_room()) return false;
    // A compressed payload only where negotiated, shorter than what it stands for (2.20).
    if (sums && sums->original_len &&
        (!(cfg_.features & kFeatureCompress) || sums->original_len <= len || sums->original_len > cfg_.chunk_bytes))
        return false;
    const int32_t i = grab_free_slot();
    if (i < 0) return false;
    if (pk_ && !stripe_open_) open_stripe();
    Slot &s = slots_[i];
    s.buf = data;
    s.ref = ref;
    s.len = len;
    s.stream_len = len;
    s.flags = 0;
    if (sums && sums->original_len) {
        // A compressed payload (it shrank: len < original_len).
        s.stream_len = sums->original_len;
        s.flags = kChunkFlagCompressed;
    }
    if (sums) {
        s.crc = sums->crc32c;
        digest_ = sums->digest_after;
    } else {
        // One read pass for both CRCs; the bytes are never copied here.
        s.crc = 0;
        crc32c_and_crc64(data, len, s.crc, digest_);
    }
    stats_.bytes_in += s.stream_len;
    filling_ = i;
    seal(now_us);
    return true;
}

size_t StripeSender::push_input(const uint8_t *p, size_t n, uint64_t now_us) {
    if (eof_ || state_ != SessionState::RUNNING || cfg_.external_chunks) return 0;
    size_t used = 0;
    while (used < n) {
        if (filling_ < 0) {
            if (!parity_room()) break; // back-pressure: every parity buffer is in flight
            filling_ = grab_free_slot();
            if (filling_ < 0) break; // back-pressure: every buffer is in flight
            if (pk_ && !stripe_open_) open_stripe();
            Slot &s = slots_[filling_];
            s.st = Slot::St::FILLING;
            s.len = 0;
            s.crc = 0;
            s.flags = 0;
            filling_since_ = now_us;
        }
        Slot &s = slots_[filling_];
        size_t k = std::min<size_t>(n - used, input_per_chunk_ - s.len);
        std::memcpy(s.own + s.len, p + used, k);
        // Both CRCs while the bytes are still in cache: a chunk (1 MiB by
        // default) summed at seal() time comes back from memory.
        crc32c_and_crc64(s.own + s.len, k, s.crc, digest_);
        stats_.bytes_copied += k;
        s.len += static_cast<uint32_t>(k);
        used += k;
        if (s.len == input_per_chunk_) seal(now_us);
    }
    stats_.bytes_in += used;
    return used;
}

void StripeSender::seal(uint64_t now_us) {
    if (filling_ < 0) return;
    Slot &s = slots_[filling_];
    filling_ = -1;
    if (s.len == 0) {
        s.st = Slot::St::FREE;
        return;
    }
    s.seq = next_seq_++;
    s.offset = sealed_bytes_;
    if (!(s.flags & kChunkFlagCompressed)) s.stream_len = s.len;
    sealed_bytes_ += s.stream_len;
    if (cfg_.aead && !encrypt(s)) return;
    s.compat_sum = cfg_.compat_checksums ? compat_chain_.next(s.seq, s.buf, s.len) : 0;
    s.st = Slot::St::QUEUED;
    s.resends = 0;
    s.ever_sent = false;
    s.acked_while_sending = false;
    stats_.chunks_sealed++;
    if (pk_) {
        // Add this chunk's unit (prefix + payload) to the stripe's parity
        // now, while the chunk is certainly here (it may be acknowledged
        // and its buffer reused before the stripe closes).
        const uint32_t j = static_cast<uint32_t>(s.seq - stripe_s0_);
        const uint32_t unit = kParityUnitPrefix + s.len;
        uint8_t *par[kMaxLegs];
        for (uint32_t i = 0; i < pk_; i++) par[i] = slots_[stripe_parity_[i]].own;
        if (unit > stripe_plen_) {
            for (uint32_t i = 0; i < pk_; i++) std::memset(par[i] + stripe_plen_, 0, unit - stripe_plen_);
            stripe_plen_ = unit;
        }
        // The unit is the chunk as it goes on the wire: compressed and
        // sealed already (push_chunk() took a compressed payload, encrypt()
        // ran above), so s.len and s.crc are the payload's on the wire, and
        // the flags let the receiver open and inflate a rebuilt chunk as it
        // would the chunk itself (docs/wire.md 2.21).
        uint8_t prefix[kParityUnitPrefix];
        ParityUnitPrefix pp;
        pp.offset = s.offset;
        pp.length = s.len;
        pp.flags = static_cast<uint8_t>((s.flags & kChunkFlagCompressed) | (cfg_.aead ? kChunkFlagEncrypted : 0));
        pp.crc32c = s.crc;
        encode_parity_unit_prefix(prefix, pp);
        parity_->encode_update(j, prefix, kParityUnitPrefix, par);
        for (uint32_t i = 0; i < pk_; i++) par[i] += kParityUnitPrefix;
        parity_->encode_update(j, s.buf, s.len, par);
        stripe_data_++;
        last_seal_us_ = now_us;
        if (stripe_data_ == pn_ || stripe_lost_) close_stripe();
    }
}

// key FILE: seal the chunk in place (docs/wire.md 2.22); offset and
// length in the AAD are those of the input bytes, the CRC-32C on the wire
// covers ciphertext and tag so that damage in transit is still re-sent.
bool StripeSender::encrypt(Slot &s) {
    if (s.seq >= kAeadMaxChunks) {
        s.st = Slot::St::FREE;
        fail(Error::AEAD_FAILED, "2^32 chunks sent under one session key; start a new transfer (a new session key)");
        return false;
    }
    uint8_t aad[kAeadAadBytes];
    encode_chunk_aad(aad, cfg_.session_id, s.seq, s.offset, s.len);
    // The buffer is ours until acknowledged (SenderConfig::aead's contract:
    // writable, with room for the tag).
    uint8_t *buf = const_cast<uint8_t *>(s.buf);
    if (!cfg_.aead->seal(s.seq, aad, buf, s.len)) {
        s.st = Slot::St::FREE;
        fail(Error::AEAD_FAILED, "the crypto device failed to encrypt chunk %llu", static_cast<unsigned long long>(s.seq));
        return false;
    }
    s.len += static_cast<uint32_t>(kAeadTagBytes);
    s.crc = crc32c(buf, s.len, 0);
    return true;
}

void StripeSender::flush_input(uint64_t now_us) {
    seal(now_us);
    if (stripe_open_ && stripe_data_ > 0 && filling_ < 0) close_stripe(); // flushed bytes should not wait for a stripe to fill
}

void StripeSender::finish_input(uint64_t now_us) {
    seal(now_us);
    if (stripe_open_) {
        if (stripe_data_ > 0) {
            close_stripe();
        } else {
            for (uint32_t i = 0; i < pk_; i++) slots_[stripe_parity_[i]].st = Slot::St::FREE;
            stripe_open_ = false;
        }
    }
    eof_ = true;
    maybe_end();
}

// ----------------------------------------------------------------- parity

bool StripeSender::parity_room() const {
    if (!pk_ || stripe_open_) return true;
    uint32_t free_units = 0;
    for (size_t i = data_slots_; i < slots_.size(); i++) free_units += slots_[i].st == Slot::St::FREE;
    return free_units >= pk_;
}

// The stripe's seqs are fixed: stripe t owns seqs t*(N+K) .. t*(N+K)+N+K-1,
// data first, parity last; a short stripe leaves its unused data seqs out.
void StripeSender::open_stripe() {
    uint32_t got = 0;
    for (size_t i = data_slots_; i < slots_.size() && got < pk_; i++)
        if (slots_[i].st == Slot::St::FREE) {
            slots_[i].st = Slot::St::FILLING;
            stripe_parity_[got++] = static_cast<int32_t>(i);
        }
    // (parity_room() was checked by the caller, so got == pk_.)
    stripe_open_ = true;
    stripe_lost_ = false;
    stripe_s0_ = next_seq_;
    stripe_data_ = 0;
    stripe_plen_ = 0;
}

void StripeSender::close_stripe() {
    if (!stripe_open_) return;
    stripe_open_ = false;
    stats_.parity_stripes++;
    if (stripe_data_ < pn_) stats_.parity_short_stripes++;
    for (uint32_t i = 0; i < pk_; i++) {
        Slot &p = slots_[stripe_parity_[i]];
        p.seq = stripe_s0_ + pn_ + i;
        p.len = stripe_plen_;
        // The offset field of a parity chunk carries its geometry.
        p.offset = static_cast<uint64_t>(i) | static_cast<uint64_t>(pn_) << 8 | static_cast<uint64_t>(pk_) << 16 |
                   static_cast<uint64_t>(stripe_data_) << 24;
        p.crc = crc32c(p.own, p.len, 0);
        p.st = Slot::St::QUEUED;
        p.resends = 0;
        p.ever_sent = false;
        p.acked_while_sending = false;
    }
    next_seq_ = stripe_s0_ + pn_ + pk_;
}

// Whether chunk `seq` on `leg` would share a loss with what that leg carries.
bool StripeSender::at_risk_on_leg(uint64_t seq, uint32_t leg) const {
    const uint64_t g = pn_ + pk_;
    const uint64_t stripe = seq / g;
    for (const auto &s : slots_) {
        if ((s.st != Slot::St::SENDING && s.st != Slot::St::SENT) || s.leg != leg) continue;
        if (s.seq / g == stripe) return true;
        // A stripe's first chunk is also the proof of where the stripe
        // before it ended, when that one is short and loses every parity
        // chunk (its data count is in them, 2.21). The receiver resolves
        // stripes in order, so it cannot rebuild this chunk first: keep it
        // off the legs that carry such a stripe's parity.
        if (seq == stripe * g && stripe > 0 && s.parity && s.seq / g == stripe - 1 &&
            ((s.offset >> 24) & 0xFF) != pn_)
            return true;
    }
    return false;
}

// After a leg died: a stripe that lost at most K chunks is rebuilt by the
// receiver from the others, so its lost chunks wait for the acknowledgement
// instead of going again. A stripe beyond that (or a short stripe whose
// every parity chunk was lost: the receiver cannot tell how many data
// chunks it has) has its lost chunks re-sent.
void StripeSender::cover_lost() {
    const uint64_t g = pn_ + pk_;
    // A lost chunk of the open stripe is rebuilt only once the stripe's
    // parity exists: close the stripe now (short) rather than wait for
    // input, and for buffers the lost chunk itself holds. A chunk still
    // filling belongs to the stripe: it closes the stripe when sealed.
    if (stripe_open_ && stripe_data_ > 0)
        for (const auto &x : slots_)
            if ((x.st == Slot::St::RESEND || x.st == Slot::St::COVERED) && !x.parity && x.seq >= stripe_s0_ &&
                x.seq < stripe_s0_ + pn_) {
                if (filling_ < 0)
                    close_stripe();
                else
                    stripe_lost_ = true;
                break;
            }
    for (size_t i = 0; i < slots_.size(); i++) {
        const Slot &x = slots_[i];
        if (x.st != Slot::St::RESEND && x.st != Slot::St::COVERED) continue;
        const uint64_t t = x.seq / g;
        uint32_t lost = 0;
        bool parity_alive = stripe_open_ && stripe_s0_ / g == t; // parity not computed yet
        uint32_t data_in_stripe = pn_;
        for (const auto &s : slots_) {
            if (s.st == Slot::St::FREE || s.st == Slot::St::FILLING || s.seq / g != t) continue;
            if (s.st == Slot::St::RESEND || s.st == Slot::St::COVERED) {
                lost++;
                if (s.parity) data_in_stripe = static_cast<uint32_t>(s.offset >> 24) & 0xFF;
            } else if (s.parity) {
                parity_alive = true;
            }
        }
        // A short stripe that lost every parity chunk: the receiver learns
        // its data count from the next stripe's first chunk (its offset) or
        // from the end record. One of them will come while a data buffer is
        // free for the next input (the end record needs none), so the lost
        // chunks wait for it even while the pipe is quiet: the data chunks
        // are delivered meanwhile, only their acknowledgement waits. If that
        // first chunk was lost too, or every data buffer waits on this
        // stripe's acknowledgement, the lost chunks are re-sent instead.
        bool proof = parity_alive || data_in_stripe == pn_;
        if (!proof) {
            const uint64_t next_first = (t + 1) * g;
            bool next_lost = false;
            for (const auto &s : slots_)
                next_lost |= !s.parity && s.seq == next_first &&
                             (s.st == Slot::St::RESEND || s.st == Slot::St::COVERED);
            proof = !next_lost && (eof_ || next_seq_ > next_first || filling_ >= 0 || grab_free_slot() >= 0);
        }
        const bool covered = lost <= pk_ && proof;
        for (auto &s : slots_) {
            if (s.st == Slot::St::FREE || s.st == Slot::St::FILLING || s.seq / g != t) continue;
            if (covered && s.st == Slot::St::RESEND) {
                s.st = Slot::St::COVERED;
                stats_.parity_covered++;
            } else if (!covered && s.st == Slot::St::COVERED) {
                s.st = Slot::St::RESEND;
            }
        }
    }
}

// ------------------------------------------------------------------- legs

SenderLegState StripeSender::leg_state(uint32_t leg) const {
    return leg < legs_.size() ? legs_[leg].st : SenderLegState::CLOSED;
}

uint64_t StripeSender::leg_backoff_until(uint32_t leg) const {
    return leg < legs_.size() ? legs_[leg].next_attempt : 0;
}

size_t StripeSender::chunks_in_flight() const {
    size_t n = 0;
    for (const auto &s : slots_)
        if (s.st != Slot::St::FREE) n++;
    return n;
}

void StripeSender::schedule_retry(Leg &l, uint64_t now_us) {
    uint64_t delay = cfg_.backoff_initial_us;
    for (uint32_t k = 0; k < l.failures && delay < cfg_.backoff_max_us; k++) delay *= 2;
    l.st = SenderLegState::DOWN;
    l.next_attempt = now_us + std::min(delay, cfg_.backoff_max_us);
}

void StripeSender::free_slot(int32_t i) {
    Slot &s = slots_[i];
    if (s.ref) {
        const uint64_t r = s.ref;
        s.ref = 0;
        s.buf = nullptr;
        cfg_.release_chunk(cfg_.release_ctx, r);
    }
    s.st = Slot::St::FREE;
    s.len = 0;
    s.acked_while_sending = false;
}

void StripeSender::requeue_leg(uint32_t leg) {
    for (size_t i = 0; i < slots_.size(); i++) {
        Slot &s = slots_[i];
        if (s.leg != leg) continue;
        if (s.st == Slot::St::SENDING || s.st == Slot::St::SENT) {
            if (s.acked_while_sending)
                free_slot(static_cast<int32_t>(i));
            else
                s.st = Slot::St::RESEND;
        }
    }
    legs_[leg].cur = -1;
}

void StripeSender::leg_up(uint32_t leg, uint64_t) {
    if (leg >= legs_.size() || state_ != SessionState::RUNNING) return;
    Leg &l = legs_[leg];
    if (l.st == SenderLegState::HELLO || l.st == SenderLegState::OPEN || l.st == SenderLegState::CLOSED)
        return;
    l.st = SenderLegState::HELLO;
    l.dec.reset();
    l.cur = -1;
    l.fresh = true;
    l.breaking = false;
    l.ctl_off = 0;
    l.written = 0;
    l.qa.new_connection();
    if (cfg_.codec == Codec::NATIVE) {
        Hello h;
        h.session_id = cfg_.session_id;
        h.stream_index = leg;
        h.features = cfg_.features | (pk_ ? parity_feature(pn_, pk_) : 0) | (cfg_.aead ? kFeatureAead : 0) |
                     (parity_flags_wanted() ? kFeatureParityFlags : 0);
        std::memcpy(h.checkphrase, cfg_.checkphrase, 4);
        h.chunk_bytes = cfg_.chunk_bytes;
        l.ctl_len = static_cast<uint32_t>(encode_hello(l.ctl, h));
        l.key_wait = false;
        if (cfg_.aead) {
            // A fresh challenge per connection: the receiver's proof over it
            // cannot be a replay (docs/wire.md 2.22).
            KeyProof k;
            k.challenge = l.key_challenge = ++key_challenges_;
            uint8_t aad[kAeadAadBytes];
            encode_proof_aad(aad, cfg_.session_id, k.challenge, 0);
            if (!cfg_.aead->proof(kNonceProofTx, k.challenge, aad, k.tag)) {
                fail(Error::AEAD_FAILED, "leg %u: the crypto device failed to compute the key proof", leg);
                return;
            }
            l.ctl_len += static_cast<uint32_t>(encode_key_proof(l.ctl + l.ctl_len, kTypeKeyProof, k));
        }
    } else {
        std::memcpy(l.ctl, cfg_.checkphrase, 4);
        l.ctl_len = kCompatPhraseSize;
    }
}

void StripeSender::leg_connect_failed(uint32_t leg, uint64_t now_us) {
    if (leg >= legs_.size() || state_ != SessionState::RUNNING) return;
    Leg &l = legs_[leg];
    if (l.st != SenderLegState::CONNECTING && l.st != SenderLegState::DOWN) return;
    l.failures++;
    stats_.connect_failures++;
    schedule_retry(l, now_us);
}

LegDown StripeSender::leg_down(uint32_t leg, uint64_t now_us, uint64_t delivered) {
    if (leg >= legs_.size() || state_ != SessionState::RUNNING) return LegDown::IGNORED;
    Leg &l = legs_[leg];
    switch (l.st) {
    case SenderLegState::CLOSED:
    case SenderLegState::DOWN:
        return LegDown::IGNORED;
    case SenderLegState::CONNECTING:
        leg_connect_failed(leg, now_us);
        return LegDown::LOST;
    case SenderLegState::HELLO:
        l.failures++; // never got as far as carrying data: back off harder
        break;
    case SenderLegState::OPEN:
        l.failures = 0;
        break;
    }
    LegDown outcome = LegDown::LOST;
    if (cfg_.codec == Codec::VIAMILLIPEDE && l.st == SenderLegState::OPEN) {
        // A stock receiver exits as soon as it has written the end record;
        // its kernel's ACK of the end header often travels in the FIN
        // itself, and the owner reports the FIN before poll() would have
        // looked at what was delivered (release_delivered). So count what
        // the leg's transport acknowledged first.
        if (release_leg(leg, delivered)) return LegDown::FINISHED;
        bool outstanding = l.cur >= 0 || l.ctl_len != 0 || delivered < l.written;
        for (const auto &s : slots_) outstanding |= s.st == Slot::St::SENT && s.leg == leg;
        const bool end_out = (end_state_ == EndState::ON_LEG || end_state_ == EndState::WRITTEN) && end_leg_ != leg;
        if (!outstanding && end_out) outcome = LegDown::DRAINED;
    }
    l.breaking = false;
    stats_.leg_deaths++;
    if (cfg_.codec == Codec::VIAMILLIPEDE && !l.fresh && outcome == LegDown::LOST) stats_.compat_deaths_unconfirmed++;
    requeue_leg(leg);
    if (pk_) cover_lost();
    l.ctl_len = l.ctl_off = 0;
    l.dec.reset();
    l.fresh = true; // its next connection carries no chunk yet
    if ((end_state_ == EndState::ON_LEG || end_state_ == EndState::WRITTEN) && end_leg_ == leg)
        end_state_ = EndState::QUEUED; // the end record is idempotent: send it again elsewhere
    schedule_retry(l, now_us);
    return outcome;
}

size_t StripeSender::leg_input(uint32_t leg, const uint8_t *p, size_t n, uint64_t now_us) {
    if (leg >= legs_.size() || state_ != SessionState::RUNNING) return n;
    Leg &l = legs_[leg];
    if (l.st != SenderLegState::HELLO && l.st != SenderLegState::OPEN) return n;
    size_t used = 0;
    Decoded d;
    while (state_ == SessionState::RUNNING) {
        size_t k = l.dec.feed(p + used, n - used, d);
        used += k;
        if (d.kind == EventKind::NEED_MORE) break;
        if (d.kind == EventKind::ERROR) {
            fail(d.error, "leg %u: protocol error from the receiver: %s (%s; value 0x%llx)", leg,
                 error_name(d.error), error_description(d.error),
                 static_cast<unsigned long long>(d.bad_value));
            break;
        }
        on_record(leg, d, now_us);
    }
    return n;
}

void StripeSender::on_record(uint32_t leg, const Decoded &d, uint64_t) {
    Leg &l = legs_[leg];
    switch (d.kind) {
    case EventKind::HELLO_REPLY: {
        const HelloReply &r = d.reply;
        if (r.status == HelloStatus::ACCEPT) {
            if (!(r.features & kFeatureCrc32c)) {
                fail(Error::MISSING_FEATURE, "leg %u: the receiver does not check CRC32C on chunks", leg);
                return;
            }
            if (pk_ && !(r.features & kFeatureParity)) {
                fail(Error::MISSING_FEATURE,
                     "leg %u: the receiver does not support parity (hello feature bit 3); run an rx that "
                     "knows `parity`, or drop `parity %u`",
                     leg, pk_);
                return;
            }
            if (parity_flags_wanted() && !(r.features & kFeatureParityFlags)) {
                fail(Error::MISSING_FEATURE,
                     "leg %u: the receiver cannot rebuild compressed or encrypted chunks from parity (hello "
                     "feature bit 6); run an rx that knows parity with %s, or drop `parity %u`",
                     leg, cfg_.aead ? ((cfg_.features & kFeatureCompress) ? "compress and key" : "key") : "compress",
                     pk_);
                return;
            }
            if (pk_ && r.window_chunks < 2 * (pn_ + pk_)) {
                fail(Error::BAD_COUNT,
                     "leg %u: parity %u over %u legs needs a receiver window of at least two stripes (%u "
                     "chunks), it holds %u; raise rx's window or use fewer legs",
                     leg, pk_, cfg_.legs, 2 * (pn_ + pk_), r.window_chunks);
                return;
            }
            if ((cfg_.features & kFeatureCompress) && !(r.features & kFeatureCompress)) {
                fail(Error::MISSING_FEATURE,
                     "leg %u: the receiver does not accept compressed chunks (hello feature bit 2); "
                     "drop `compress` or run an rx that supports it",
                     leg);
                return;
            }
            if ((cfg_.features & kFeatureTunnel) && !(r.features & kFeatureTunnel)) {
                fail(Error::MISSING_FEATURE,
                     "leg %u: the receiver is not a tunnel end (hello feature bit 5); run the far side with "
                     "the other tunnel word (terminate PORT / initiate HOST PORT)",
                     leg);
                return;
            }
            if (cfg_.aead && !(r.features & kFeatureAead)) {
                fail(Error::KEY_MISMATCH, "leg %u: the receiver accepted the hello without encryption (no key); "
                     "give both sides the same key FILE", leg);
                return;
            }
            recv_window_ = std::min(recv_window_, r.window_chunks);
            if (cfg_.aead) {
                l.key_wait = true; // OPEN once the receiver proved its key
                return;
            }
            l.st = SenderLegState::OPEN;
            l.failures = 0;
            return;
        }
        switch (r.status) {
        case HelloStatus::VERSION_MISMATCH:
            fail(Error::VERSION_MISMATCH,
                 "leg %u: receiver refused the hello: version mismatch: this sender speaks "
                 "millipede wire v%u, the receiver speaks v%u (it saw v%u)",
                 leg, kVersion, r.version, r.hello_version);
            return;
        case HelloStatus::CHECKPHRASE_MISMATCH:
            fail(Error::CHECKPHRASE_MISMATCH,
                 "leg %u: receiver refused the hello: checkphrase mismatch (we sent \"%.4s\"); "
                 "start both sides with the same checkphrase",
                 leg, cfg_.checkphrase);
            return;
        case HelloStatus::SESSION_MISMATCH:
            fail(Error::SESSION_MISMATCH,
                 "leg %u: receiver refused the hello: it is serving another session (ours is "
                 "0x%llx); restart the receiver",
                 leg, static_cast<unsigned long long>(cfg_.session_id));
            return;
        case HelloStatus::KEY_MISMATCH:
            fail(Error::KEY_MISMATCH,
                 cfg_.aead ? "leg %u: receiver refused the hello: key mismatch: it holds another key or none (our key "
                             "proof did not verify); give both sides the same key FILE"
                           : "leg %u: receiver refused the hello: key mismatch: it requires encryption; start tx with "
                             "the receiver's key FILE",
                 leg);
            return;
        case HelloStatus::MISSING_FEATURE:
            // We always send CRC32C: the one feature left to disagree on is
            // the tunnel (bit 5), which both ends must share.
            fail(Error::MISSING_FEATURE,
                 (cfg_.features & kFeatureTunnel)
                     ? "leg %u: receiver refused the hello: it is not a tunnel end (hello feature bit 5); run it "
                       "with the other tunnel word (terminate PORT / initiate HOST PORT)"
                     : "leg %u: receiver refused the hello: missing required feature (a tunnel end takes only a "
                       "tunnel: give this side terminate PORT or initiate HOST PORT)",
                 leg);
            return;
        default:
            fail(Error::HELLO_REFUSED,
                 "leg %u: receiver refused the hello: %s (our chunk size %u bytes may exceed its limit)",
                 leg, hello_status_text(r.status), cfg_.chunk_bytes);
            return;
        }
    }
    case EventKind::KEY_PROOF: {
        if (!cfg_.aead || !l.key_wait) {
            fail(Error::UNEXPECTED_RECORD, "leg %u: the receiver sent a key proof that was not asked for", leg);
            return;
        }
        l.key_wait = false;
        uint8_t aad[kAeadAadBytes], want[kAeadTagBytes] = {};
        encode_proof_aad(aad, cfg_.session_id, l.key_challenge, 1);
        const bool ok = d.key.challenge == l.key_challenge && cfg_.aead->proof(kNonceProofRx, l.key_challenge, aad, want);
        uint8_t diff = ok ? 0 : 1;
        for (size_t i = 0; i < kAeadTagBytes; i++) diff |= static_cast<uint8_t>(want[i] ^ d.key.tag[i]);
        if (diff) {
            fail(Error::KEY_MISMATCH,
                 "leg %u: key mismatch: the receiver's key proof did not verify (it holds another key FILE); "
                 "nothing was sent", leg);
            return;
        }
        l.st = SenderLegState::OPEN;
        l.failures = 0;
        return;
    }
    case EventKind::COMPAT_OK:
        l.st = SenderLegState::OPEN;
        l.failures = 0;
        return;
    case EventKind::ACK: {
        const Ack &a = d.ack;
        if (a.cumulative > next_seq_) {
            fail(Error::SEQ_OUT_OF_RANGE,
                 "leg %u: receiver acknowledged chunks up to %llu but only %llu were sent", leg,
                 static_cast<unsigned long long>(a.cumulative), static_cast<unsigned long long>(next_seq_));
            return;
        }
        cum_ack_ = std::max(cum_ack_, a.cumulative);
        for (size_t i = 0; i < slots_.size(); i++) {
            Slot &s = slots_[i];
            // (A queued chunk can be acknowledged too: with parity the
            // receiver may rebuild it before it was ever sent.)
            if (s.st == Slot::St::FREE || s.st == Slot::St::FILLING) continue;
            if (s.st == Slot::St::QUEUED && !pk_) continue;
            bool acked = s.seq < cum_ack_;
            if (!acked && s.seq > a.cumulative && s.seq - a.cumulative - 1 < 64)
                acked = (a.bitmap >> (s.seq - a.cumulative - 1)) & 1;
            if (!acked) continue;
            stats_.chunks_acked++;
            if (s.st == Slot::St::SENDING)
                s.acked_while_sending = true;
            else
                free_slot(static_cast<int32_t>(i));
        }
        maybe_end();
        return;
    }
    case EventKind::RESEND: {
        stats_.crc_resend_requests++;
        for (size_t i = 0; i < slots_.size(); i++) {
            Slot &s = slots_[i];
            if (s.st != Slot::St::SENT || s.seq != d.resend.seq) continue;
            if (++s.resends > cfg_.max_resends) {
                fail(Error::TOO_MANY_RESENDS,
                     "chunk %llu (stream bytes %llu..%llu) failed CRC32C at the receiver %u times "
                     "(header 0x%08x, computed 0x%08x); giving up",
                     static_cast<unsigned long long>(s.seq), static_cast<unsigned long long>(s.offset),
                     static_cast<unsigned long long>(s.offset + s.stream_len - 1), s.resends,
                     d.resend.crc_header, d.resend.crc_computed);
                return;
            }
            s.st = Slot::St::RESEND;
        }
        return;
    }
    case EventKind::END_ACK: {
        if (end_state_ != EndState::ON_LEG && end_state_ != EndState::WRITTEN) {
            fail(Error::UNEXPECTED_RECORD, "leg %u: end acknowledgement before the end record", leg);
            return;
        }
        const EndAck &e = d.end_ack;
        if (e.status == EndStatus::OK && e.chunks == next_seq_ && e.bytes == sealed_bytes_ &&
            e.digest == digest_) {
            end_state_ = EndState::DONE;
            finish(true);
            return;
        }
        fail(Error::END_REFUSED,
             "receiver could not verify the stream (%s): sent %llu bytes in %llu chunks with "
             "CRC64 0x%016llx, receiver got %llu bytes in %llu chunks with CRC64 0x%016llx",
             end_status_text(e.status), static_cast<unsigned long long>(sealed_bytes_),
             static_cast<unsigned long long>(next_seq_), static_cast<unsigned long long>(digest_),
             static_cast<unsigned long long>(e.bytes), static_cast<unsigned long long>(e.chunks),
             static_cast<unsigned long long>(e.digest));
        return;
    }
    default:
        fail(Error::UNEXPECTED_RECORD, "leg %u: unexpected record from the receiver", leg);
        return;
    }
}

// -------------------------------------------------------------- scheduling

void StripeSender::maybe_end() {
    if (end_state_ != EndState::NOT_YET || !eof_ || filling_ >= 0) return;
    // Parity: once every chunk was written, the end record goes without
    // waiting for the acknowledgements: a lost parity chunk of a stripe the
    // receiver completed without it is acknowledged only when the receiver's
    // in-order point passes it, and a short last stripe that lost its parity
    // is complete only by the end record's length (docs/wire.md 2.21).
    for (const auto &s : slots_) {
        if (s.st == Slot::St::FREE) continue;
        if (pk_ && (s.st == Slot::St::SENT || s.st == Slot::St::COVERED)) continue;
        return;
    }
    end_state_ = EndState::QUEUED;
}

int32_t StripeSender::pick_chunk(const Leg &l, uint32_t leg) {
    int32_t best = -1;
    // Chunks lost with a dead leg (or failing their CRC) go first. In compat
    // mode only a fresh connection may carry them: a stock viamillipede
    // receiver thread that already read a later chunk on this connection
    // waits for the earlier one forever.
    if (cfg_.codec == Codec::NATIVE || l.fresh) {
        for (size_t i = 0; i < slots_.size(); i++)
            if (slots_[i].st == Slot::St::RESEND && (best < 0 || slots_[i].seq < slots_[best].seq))
                best = static_cast<int32_t>(i);
        if (best >= 0) return best;
    }
    if (pk_) {
        // Parity: the chunks of a stripe at risk at once go on distinct
        // legs, so one dying leg takes at most one chunk of each stripe.
        // A leg skips a chunk whose stripe it already carries unacknowledged.
        const uint64_t g = pn_ + pk_;
        for (size_t i = 0; i < slots_.size(); i++) {
            const Slot &s = slots_[i];
            if (s.st != Slot::St::QUEUED || (best >= 0 && s.seq >= slots_[best].seq)) continue;
            // The receiver keeps the buffers of an incomplete stripe (up
            // to N+K-1 chunks behind its in-order point): stay that much
            // further inside its window, so no leg stalls on a chunk beyond
            // it while a chunk the stripe needs waits behind on that leg.
            if (s.seq >= cum_ack_ && s.seq - cum_ack_ + (g - 1) >= recv_window_) continue;
            if (at_risk_on_leg(s.seq, leg)) continue;
            best = static_cast<int32_t>(i);
        }
        return best;
    }
    for (size_t i = 0; i < slots_.size(); i++)
        if (slots_[i].st == Slot::St::QUEUED && (best < 0 || slots_[i].seq < slots_[best].seq))
            best = static_cast<int32_t>(i);
    if (best >= 0 && cfg_.codec == Codec::NATIVE) {
        // Never run further ahead of the receiver's in-order point than its
        // reorder window: beyond it the receiver stops reading that leg.
        uint64_t seq = slots_[best].seq;
        if (seq >= cum_ack_ && seq - cum_ack_ >= recv_window_) return -1;
    }
    return best;
}

void StripeSender::start_chunk(Leg &l, uint32_t leg, int32_t si) {
    Slot &s = slots_[si];
    s.st = Slot::St::SENDING;
    s.leg = leg;
    if (s.ever_sent)
        stats_.chunks_resent++;
    else
        stats_.chunks_sent++;
    if (s.parity && !s.ever_sent) stats_.parity_chunks_sent++;
    if (cfg_.codec == Codec::NATIVE) {
        ChunkHeader h;
        h.flags = static_cast<uint8_t>((s.ever_sent ? kChunkFlagResent : 0) | s.flags | (s.parity ? kChunkFlagParity : 0) |
                                       (cfg_.aead && !s.parity ? kChunkFlagEncrypted : 0));
        h.seq = s.seq;
        h.offset = s.offset;
        h.length = s.len;
        h.crc32c = s.crc;
        l.hdr_len = static_cast<uint32_t>(encode_chunk_header(l.hdr, h));
    } else {
        CompatHeader h;
        h.chunk_seq = s.seq;
        h.size = s.len;
        h.checksum = s.compat_sum;
        h.opcode = kCompatOpMore;
        l.hdr_len = static_cast<uint32_t>(encode_compat_header(l.hdr, h));
    }
    s.ever_sent = true;
    l.cur = si;
    l.cur_off = 0;
}

void StripeSender::write_leg(uint32_t leg, LegIo &io, uint64_t now_us) {
    Leg &l = legs_[leg];
    if (l.breaking) return;
    // parity: what the leg's transport acknowledged (for the queue-ahead
    // bound; it does not change during this call)
    const bool bounded = pk_ && cfg_.parity_queue_ahead != QueueAhead::OFF;
    const uint64_t acked = bounded ? io.delivered(leg) : UINT64_MAX;
    const bool estimating = bounded && cfg_.parity_queue_ahead == QueueAhead::AUTO && acked != UINT64_MAX;
    if (estimating) l.qa.on_delivered(acked, now_us);
    while (state_ == SessionState::RUNNING) {
        size_t w = io.writable(leg);
        if (w == 0) return;
        if (l.ctl_off < l.ctl_len) {
            size_t ask = std::min<size_t>(w, l.ctl_len - l.ctl_off);
            size_t k = io.write(leg, l.ctl + l.ctl_off, ask);
            if (estimating) l.qa.on_write(l.written, k, acked, now_us);
            l.ctl_off += static_cast<uint32_t>(k);
            l.written += k;
            if (l.ctl_off == l.ctl_len) {
                l.ctl_off = l.ctl_len = 0;
                if (end_state_ == EndState::ON_LEG && end_leg_ == leg) {
                    end_state_ = EndState::WRITTEN;
                    // compat: DONE once the receiver's TCP acknowledged it
                    // (release_delivered); there is no end acknowledgement.
                    l.end_at = l.written;
                }
            }
            if (k < ask) return;
            continue;
        }
        if (l.st != SenderLegState::OPEN) return;
        if (l.cur < 0) {
            if (end_state_ == EndState::QUEUED) {
                if (cfg_.codec == Codec::NATIVE) {
                    End e{next_seq_, sealed_bytes_, digest_};
                    l.ctl_len = static_cast<uint32_t>(encode_end(l.ctl, e));
                } else {
                    CompatHeader h;
                    h.chunk_seq = next_seq_;
                    h.size = 0;
                    h.checksum = 0;
                    h.opcode = kCompatOpEnd;
                    l.ctl_len = static_cast<uint32_t>(encode_compat_header(l.ctl, h));
                }
                l.ctl_off = 0;
                end_state_ = EndState::ON_LEG;
                end_leg_ = leg;
                continue;
            }
            if (bounded && acked != UINT64_MAX && l.written > acked && l.written - acked >= queue_ahead_bound(leg)) {
                stats_.parity_queue_ahead_holds++;
                return;
            }
            int32_t si = pick_chunk(l, leg);
            if (si < 0) return;
            start_chunk(l, leg, si);
        }
        Slot &s = slots_[l.cur];
        size_t ask, k;
        if (l.cur_off < l.hdr_len) {
            ask = std::min<size_t>(w, l.hdr_len - l.cur_off);
            k = io.write(leg, l.hdr + l.cur_off, ask);
        } else {
            uint64_t po = l.cur_off - l.hdr_len;
            ask = std::min<size_t>(w, s.len - po);
            k = s.ref ? io.write_ref(leg, s.buf + po, ask, s.ref) : io.write(leg, s.buf + po, ask);
        }
        if (estimating && l.cur_off == 0) l.qa.on_write(l.written, l.hdr_len + s.len, acked, now_us);
        l.cur_off += k;
        l.written += k;
        if (l.cur_off == l.hdr_len + s.len) {
            l.fresh = false;
            int32_t si = l.cur;
            l.cur = -1;
            if (s.acked_while_sending) {
                free_slot(si);
                maybe_end();
            } else {
                // compat: held until the leg's TCP acknowledged its last
                // byte (release_delivered); a leg that dies first has it
                // re-sent on a fresh connection.
                s.st = Slot::St::SENT;
                s.delivered_at = l.written;
            }
        }
        if (k < ask) return;
    }
}

uint64_t StripeSender::queue_ahead_bound(uint32_t leg) const {
    if (!pk_ || leg >= legs_.size()) return UINT64_MAX;
    switch (cfg_.parity_queue_ahead) {
    case QueueAhead::OFF: return UINT64_MAX;
    case QueueAhead::FIXED: return cfg_.parity_queue_ahead_bytes;
    case QueueAhead::AUTO: break;
    }
    return legs_[leg].qa.bound(cfg_.chunk_bytes);
}

const QueueAheadEstimator *StripeSender::queue_ahead_estimate(uint32_t leg) const {
    return pk_ && cfg_.parity_queue_ahead == QueueAhead::AUTO && leg < legs_.size() ? &legs_[leg].qa : nullptr;
}

void StripeSender::poll(uint64_t now_us, LegIo &io) {
    if (state_ != SessionState::RUNNING) return;
    if (!started_) {
        started_ = true;
        last_open_us_ = now_us;
    }
    bool any_open = false;
    const bool reconnect = leg_still_needed();
    for (uint32_t i = 0; i < legs_.size(); i++) {
        Leg &l = legs_[i];
        if (l.st == SenderLegState::DOWN && now_us >= l.next_attempt && reconnect) {
            l.st = SenderLegState::CONNECTING;
            stats_.connect_attempts++;
            events_.push({EventType::CONNECT_LEG, i, Error::NONE});
        }
        if (l.st == SenderLegState::OPEN) any_open = true;
    }
    if (any_open) {
        last_open_us_ = now_us;
    } else if (cfg_.no_leg_timeout_us && now_us - last_open_us_ >= cfg_.no_leg_timeout_us) {
        fail(Error::NO_LIVE_LEG, "no leg has been connected for %llu ms; giving up",
             static_cast<unsigned long long>((now_us - last_open_us_) / 1000));
        return;
    }
    if (cfg_.flush_partial_us && filling_ >= 0 && slots_[filling_].len > 0 &&
        now_us - filling_since_ >= cfg_.flush_partial_us)
        flush_input(now_us);
    // parity: the pipe went quiet with no partial chunk: close the stripe
    // (short) so its chunks are not held at the receiver for lack of parity.
    // (Not while input waits for a free buffer: that is back-pressure.)
    if (stripe_open_ && stripe_data_ > 0 && filling_ < 0 && now_us - last_seal_us_ >= cfg_.parity_idle_us &&
        grab_free_slot() >= 0)
        close_stripe();
    if (cfg_.codec == Codec::VIAMILLIPEDE) {
        release_delivered(io);
        if (state_ != SessionState::RUNNING) return;
        finish_breaks(io, now_us);
        recycle_for_resend(now_us);
    }
    maybe_end();
    for (uint32_t i = 0; i < legs_.size() && state_ == SessionState::RUNNING; i++) {
        SenderLegState st = legs_[i].st;
        if (st == SenderLegState::HELLO || st == SenderLegState::OPEN) write_leg(i, io, now_us);
    }
}

// Once the end record is on its leg and no chunk waits to be re-sent, a new
// connection would carry nothing. A receiver that already has the whole
// stream may have closed its listener, and a kernel peer answers that SYN
// with a reset (seen in the interop suite under 4 % loss, when the end's
// acknowledgement was lost and a drained leg's back-off ran out first).
// Should the end's leg die, the end is queued again and legs reconnect.
bool StripeSender::leg_still_needed() const {
    if (end_state_ != EndState::ON_LEG && end_state_ != EndState::WRITTEN) return true;
    for (const auto &s : slots_)
        if (s.st == Slot::St::RESEND) return true;
    return false;
}

// compat: a re-sent chunk may only travel on a fresh connection (see
// pick_chunk). With every leg alive and each having carried chunks, none
// would ever be fresh and the chunk would wait until some leg died (seen
// against the kernel: 19 s, until the receiver's own timeouts). So one leg
// with nothing outstanding, all it carried delivered, is closed and
// reconnected at once. Its reset lands exactly at the receiver's
// RCV.NXT, between two records.
void StripeSender::recycle_for_resend(uint64_t now_us) {
    bool resend = false;
    for (const auto &s : slots_) resend |= s.st == Slot::St::RESEND;
    bool underway = false;
    // (A leg reconnecting after it went down is fresh again; one whose link
    // keeps failing, failures > 0, does not count, nor one still waiting
    // out its back-off.)
    for (const auto &l : legs_)
        underway |= l.fresh && (l.st == SenderLegState::HELLO || l.st == SenderLegState::OPEN ||
                                (l.st == SenderLegState::CONNECTING && l.failures == 0));
    if (!resend || underway) { // (a fresh connection is on its way, not one to a link that keeps failing)
        resend_waiting_since_ = UINT64_MAX;
        return;
    }
    if (resend_waiting_since_ == UINT64_MAX) resend_waiting_since_ = now_us;
    for (uint32_t leg = 0; leg < legs_.size(); leg++) {
        Leg &l = legs_[leg];
        if (l.st != SenderLegState::OPEN || l.cur >= 0 || l.ctl_len != 0) continue;
        if ((end_state_ == EndState::ON_LEG || end_state_ == EndState::WRITTEN) && end_leg_ == leg) continue;
        bool outstanding = false;
        for (const auto &s : slots_) outstanding |= s.st == Slot::St::SENT && s.leg == leg;
        if (outstanding) continue;
        stats_.legs_recycled++;
        events_.push({EventType::CLOSE_LEG, leg, Error::NONE});
        l.ctl_len = l.ctl_off = 0;
        l.dec.reset();
        l.st = SenderLegState::DOWN;
        l.fresh = true;
        l.next_attempt = now_us; // reconnect on the next poll
        resend_waiting_since_ = UINT64_MAX;
        return;
    }
    // Every live leg still has chunks outstanding, typically because the
    // receiver stopped reading them: it waits for the very chunk that needs
    // a fresh connection. After a while one leg is closed anyway (FIN: what
    // it holds is still delivered) and its chunks are re-sent, since their
    // delivery can no longer be followed on it.
    if (now_us - resend_waiting_since_ < cfg_.force_recycle_us) return;
    for (uint32_t leg = 0; leg < legs_.size(); leg++) {
        Leg &l = legs_[leg];
        if (l.st != SenderLegState::OPEN || l.ctl_len != 0) continue;
        if ((end_state_ == EndState::ON_LEG || end_state_ == EndState::WRITTEN) && end_leg_ == leg) continue;
        stats_.legs_recycled++;
        requeue_leg(leg);
        events_.push({EventType::CLOSE_LEG, leg, Error::NONE});
        l.dec.reset();
        l.st = SenderLegState::DOWN;
        l.fresh = true;
        l.next_attempt = now_us;
        resend_waiting_since_ = UINT64_MAX;
        return;
    }
    resend_waiting_since_ = now_us; // no leg is up: look again a while later, not at every poll
}

bool StripeSender::break_leg(uint32_t leg) {
    if (cfg_.codec != Codec::VIAMILLIPEDE || leg >= legs_.size() || state_ != SessionState::RUNNING) return false;
    Leg &l = legs_[leg];
    if (l.st != SenderLegState::OPEN || l.ctl_len != 0 || l.breaking) return false;
    if ((end_state_ == EndState::ON_LEG || end_state_ == EndState::WRITTEN) && end_leg_ == leg) return false;
    l.breaking = true;
    return true;
}

// A leg being broken writes nothing more; once its transport acknowledged
// every byte written, what a receiver holds from it is known, and it closes.
// Its chunk in progress (cut short: the receiver discards it) goes again on
// a fresh connection; every earlier one was delivered.
void StripeSender::finish_breaks(LegIo &io, uint64_t now_us) {
    for (uint32_t leg = 0; leg < legs_.size(); leg++) {
        Leg &l = legs_[leg];
        if (!l.breaking || l.st != SenderLegState::OPEN || io.delivered(leg) < l.written) continue;
        l.breaking = false;
        stats_.legs_broken++;
        requeue_leg(leg);
        events_.push({EventType::CLOSE_LEG, leg, Error::NONE});
        l.ctl_len = l.ctl_off = 0;
        l.dec.reset();
        l.fresh = true;
        l.failures = 0;
        // Reconnect at once: the fresh connection for the cut chunk is
        // under way, so no other leg is recycled for it.
        l.st = SenderLegState::CONNECTING;
        stats_.connect_attempts++;
        events_.push({EventType::CONNECT_LEG, leg, Error::NONE});
    }
}

// viamillipede's receiver acknowledges nothing: the only proof that a chunk
// arrived is its leg's TCP acknowledging the chunk's last byte. Until then
// the chunk is held, so a leg that dies with it unacknowledged has it
// re-sent instead of lost; DONE waits for the end header likewise.
void StripeSender::release_delivered(LegIo &io) {
    for (uint32_t leg = 0; leg < legs_.size(); leg++) {
        const Leg &l = legs_[leg];
        if (l.st != SenderLegState::OPEN && l.st != SenderLegState::HELLO) continue;
        if (release_leg(leg, io.delivered(leg))) return;
    }
}

bool StripeSender::release_leg(uint32_t leg, uint64_t delivered) {
    const Leg &l = legs_[leg];
    for (size_t i = 0; i < slots_.size(); i++) {
        Slot &s = slots_[i];
        if (s.st == Slot::St::SENT && s.leg == leg && s.delivered_at <= delivered) {
            stats_.chunks_acked++;
            free_slot(static_cast<int32_t>(i));
        }
    }
    if (end_state_ == EndState::WRITTEN && end_leg_ == leg && l.end_at <= delivered) {
        finish(false);
        return true;
    }
    return false;
}

uint64_t StripeSender::next_wakeup_us() const {
    uint64_t t = UINT64_MAX;
    if (state_ != SessionState::RUNNING) return t;
    if (leg_still_needed())
        for (const auto &l : legs_)
            if (l.st == SenderLegState::DOWN) t = std::min(t, l.next_attempt);
    if (cfg_.flush_partial_us && filling_ >= 0 && slots_[filling_].len > 0)
        t = std::min(t, filling_since_ + cfg_.flush_partial_us);
    if (stripe_open_ && stripe_data_ > 0 && filling_ < 0 && grab_free_slot() >= 0)
        t = std::min(t, last_seal_us_ + cfg_.parity_idle_us);
    if (cfg_.no_leg_timeout_us) t = std::min(t, last_open_us_ + cfg_.no_leg_timeout_us);
    if (resend_waiting_since_ != UINT64_MAX) t = std::min(t, resend_waiting_since_ + cfg_.force_recycle_us);
    return t;
}

} // namespace millipede::stripe

// StripeReceiver: chunks from many legs, in any order, written out in
// sequence order with bounded memory.
//
// Contract
// - Single-threaded: every method is called from the owner's thread. Not
//   thread-safe. Time is passed in as `now_us`.
// - Set-up (constructor) validates the config (throws std::invalid_argument)
//   and allocates the reorder window once: window_chunks x max_chunk_bytes,
//   independent of the number of legs. Nothing allocates or throws after.
// - leg_input() consumes bytes a leg delivered and returns how many it took.
//   Fewer than offered means back-pressure: the chunk that comes next on
//   this leg is beyond the reorder window; the owner must leave the rest in
//   the TCP receive buffer
//   (so TCP closes its window) and offer it again later, after
//   output_consumed() or poll(). leg_blocked() tells which legs wait.
// - output() is the next run of in-order bytes for stdout; the owner writes
//   what it can and reports output_consumed(n). Slow output holds chunk
//   buffers, which fills the window, which stops reading legs: back-pressure
//   all the way to the senders' TCP windows.
// - A chunk is exposed by output() only after its CRC32C verified (native)
//   or its viamillipede checksum verified in order (compat). Duplicates are
//   dropped (and acknowledged again so the sender frees them). A chunk that
//   arrives while another leg is still filling the same chunk (a re-send
//   after the sender gave that leg up) fills the same buffer alongside it,
//   each byte written once by the first copy to reach it; the first copy to
//   complete it delivers it (native: the buffer's CRC32C verified as it is)
//   and the other's rest is dropped (stats().takeovers counts such races).
// - Native: acks, resend requests, hello replies and the end acknowledgement
//   are written by poll() to the legs. DONE is emitted when the end record's
//   chunk count, length and CRC64 matched and all output was consumed;
//   FAILED with a message otherwise. After DONE the legs are still served
//   (hellos accepted, duplicates acknowledged, a repeated end record answered
//   again) so that a sender whose end acknowledgement was lost with its leg
//   gets its answer on another leg.
// - Parity (hello feature bit 3, docs/wire.md 2.21): a missing chunk is
//   rebuilt from any N of its stripe's N+K chunks and acknowledged as held,
//   so the sender never re-sends it; the buffers of a stripe's chunks
//   already written out are kept until the stripe is complete. The codec's
//   tables are allocated at the first hello that asks for parity (with a
//   key, also one scratch unit: a rebuild seals the held chunks' plaintext
//   again through `aead` to get back the units the sender encoded). A
//   rebuilt chunk is verified like a received one before it is held: the
//   CRC32C and flags its unit's prefix carries, then (key) its tag; a
//   compressed one is then inflated by the owner like any other.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "millipede/stripe/aead.h"
#include "millipede/stripe/leg_io.h"
#include "millipede/stripe/parity.h"
#include "millipede/stripe/wire.h"

namespace millipede::stripe {

struct ReceiverConfig {
    Codec codec = Codec::NATIVE;
    uint32_t max_legs = 16;            // leg indices 0..max_legs-1 (owner assigns)
    uint32_t window_chunks = 16;       // reorder window; memory = window x max_chunk_bytes
    uint32_t max_chunk_bytes = 1u << 20; // largest chunk accepted (<= 2 MiB)
    uint64_t session_id = 0;           // native: 0 = adopt the first accepted hello's
    char checkphrase[4] = {'y', 'o', 'e', 's'};
    // Native hello features granted when the sender asks; kFeatureCompress
    // only when the owner turns compressed chunks into stream bytes (see
    // "compressed sessions" below).
    uint32_t features = kFeaturesV1;
    // key FILE (docs/wire.md 2.22): senders must prove the key before their
    // hello is accepted, every chunk must carry the encrypted flag and its
    // AES-256-GCM tag verifies before the chunk counts as held (then it is
    // decrypted in place). Not owned; used from the owner's thread only.
    Aead *aead = nullptr;
};

enum class ReceiverLegState : uint8_t {
    DOWN,     // no connection
    HELLO,    // waiting for hello / checkphrase
    OPEN,     // carrying chunks
    REFUSING, // refusal queued; CLOSE_LEG follows once it is written
    CLOSED,   // CLOSE_LEG emitted
};

struct ReceiverStats {
    uint64_t bytes_out = 0;        // consumed by output
    uint64_t bytes_delivered = 0;  // verified, in order
    uint64_t bytes_copied = 0;     // leg bytes copied into the reorder window
    uint64_t chunks_delivered = 0;
    uint64_t duplicates = 0;
    uint64_t crc_failures = 0;
    uint64_t stalls = 0;           // leg_input() returned short
    uint64_t takeovers = 0;        // a re-send joined a chunk another leg was still filling
    uint64_t acks_sent = 0;
    uint64_t legs_refused = 0;
    uint64_t parity_chunks = 0;    // parity chunks received (held)
    uint64_t parity_rebuilt = 0;   // data chunks rebuilt from their stripe's parity (never re-sent)
    uint64_t errors[kErrorCount] = {};
};

class StripeReceiver {
  public:
    explicit StripeReceiver(const ReceiverConfig &cfg);
    ~StripeReceiver();
    StripeReceiver(const StripeReceiver &) = delete;
    StripeReceiver &operator=(const StripeReceiver &) = delete;

    // ---- legs (the owner assigns an index to each accepted connection)
    void leg_up(uint32_t leg, uint64_t now_us);
    void leg_down(uint32_t leg, uint64_t now_us);
    size_t leg_input(uint32_t leg, const uint8_t *p, size_t n, uint64_t now_us);
    bool leg_blocked(uint32_t leg) const;
    // The leg's input stopped inside a record (a partial header or chunk):
    // if its connection ends now, that record is cut off.
    bool leg_mid_record(uint32_t leg) const;

    // ---- output (stdout)
    std::span<const uint8_t> output() const;
    void output_consumed(size_t n);

    // ---- compressed sessions (hello feature bit 2 granted, docs/wire.md 2.20)
    // The owner turns delivered chunks into stream bytes itself (in a
    // decompression pool): held() shows chunk `seq`, output_base() <= seq <
    // next_seq(), as it arrived (raw, or prefix + deflate); the owner passes
    // the stream bytes, in order, to digest_output() and, once they are
    // written, frees the chunk with output_consumed(its payload length).
    // Length and CRC64 of the end record are checked against what
    // digest_output() saw. output() is not used then.
    bool compressed_session() const { return compressed_session_; }
    struct Held {
        const uint8_t *data = nullptr;
        uint32_t len = 0;        // payload bytes
        uint32_t stream_len = 0; // stream bytes it stands for
        bool compressed = false;
    };
    bool held(uint64_t seq, Held &out) const;
    uint64_t output_base() const { return base_; }
    void digest_output(const uint8_t *p, size_t n);

    void poll(uint64_t now_us, LegIo &io);
    bool next_event(StripeEvent &ev) { return events_.pop(ev); }

    // ---- status
    SessionState state() const { return state_; }
    const char *message() const { return message_; }
    const char *last_leg_message() const { return leg_message_; } // last refused/closed leg
    // Why the latest refused leg was refused. Kept apart from
    // last_leg_message(): a reset on another leg of the same refused sender
    // must not hide the reason the user needs (the key, the checkphrase).
    const char *last_refusal_message() const { return refusal_message_; }
    ReceiverLegState leg_state(uint32_t leg) const;
    uint64_t next_seq() const { return next_; }     // every chunk below is delivered
    uint64_t buffered_bytes() const;                // held in the window
    size_t window_bytes() const { return static_cast<size_t>(cfg_.window_chunks) * cfg_.max_chunk_bytes; }
    uint64_t session_id() const { return session_; }
    const ReceiverStats &stats() const { return stats_; }

  private:
    struct Slot;
    struct Leg;
    void fail(Error e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    void close_leg(uint32_t leg, Error e, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
    void release_leg(uint32_t leg);
    bool place_chunk(uint32_t leg); // false: stalled
    void on_hello(uint32_t leg, const Decoded &d);
    void refuse(uint32_t leg, const HelloReply &r, Error e);
    void accept(uint32_t leg, const Hello &h);
    void on_key_proof(uint32_t leg, const Decoded &d);
    bool open_chunk(uint32_t leg, Slot &s);
    std::array<uint8_t, kAeadAadBytes> chunk_aad(const Slot &s) const; // s.len: on the wire, tag included
    ParityUnitPrefix unit_prefix(const Slot &x, uint32_t wire_len) const;
    bool rebuild_keyed(uint64_t s0, uint32_t nd, const bool *present, uint8_t *const *units, uint32_t plen);
    void on_chunk_end(uint32_t leg, const Decoded &d);
    void on_end(uint32_t leg, const Decoded &d);
    void advance();
    bool resolve_stripe(uint64_t s0); // parity: the stripe's data all held (rebuilt if need be)
    void detach_fillers(int32_t idx);
    void check_end();
    void write_leg(uint32_t leg, LegIo &io);
    bool ctl_append(Leg &l, const uint8_t *p, size_t n);

    ReceiverConfig cfg_;
    std::unique_ptr<uint8_t[]> pool_;
    std::vector<Slot> slots_;
    std::vector<Leg> legs_;
    std::unique_ptr<uint64_t[]> resend_pool_; // per-leg rings of seqs to ask for again
    EventQueue events_;
    SessionState state_ = SessionState::RUNNING;
    char message_[256] = "running";
    char leg_message_[256] = "";
    char refusal_message_[256] = "";
    uint64_t session_ = 0;
    bool session_known_ = false;
    uint64_t aead_session_ = 0;     // the session id the aead's session key belongs to
    bool aead_session_known_ = false;

    uint64_t base_ = 0;   // oldest chunk still holding a buffer
    uint64_t next_ = 0;   // in-order frontier
    uint64_t out_ = 0;    // chunk being written out (base_ <= out_ <= next_; parity keeps a stripe's buffers)
    size_t out_off_ = 0;  // bytes of chunk out_ consumed by output
    uint64_t digest_ = 0;
    bool compressed_session_ = false;
    uint64_t digested_bytes_ = 0; // compressed session: stream bytes given to digest_output()
    CompatChecksumChain compat_chain_;

    bool end_known_ = false;
    End end_;
    uint32_t end_leg_ = 0;
    enum class Verdict : uint8_t { PENDING, OK, BAD } verdict_ = Verdict::PENDING;
    EndStatus end_status_ = EndStatus::OK;
    bool end_ack_written_ = false;
    // A successful end acknowledgement waits until every byte has been
    // consumed by the output (written to stdout), so the sender's "done"
    // means delivered, not merely received.
    bool end_ack_deferred_ = false;
    void send_end_ack(uint32_t leg);
    ReceiverStats stats_;

    // parity (docs/wire.md 2.21), geometry from the first hello that asks for it
    uint32_t pn_ = 0, pk_ = 0;  // N data, K parity chunks per stripe; 0: no parity
    std::unique_ptr<ParityCodec> parity_;
    std::unique_ptr<uint8_t[]> reseal_; // key FILE: one data unit, sealed again for a rebuild
    bool stripe_ready_ = false; // the stripe next_ is in has all its data held
    uint32_t stripe_n_ = 0;     // ... and that many data chunks
    bool in_advance_ = false;
};

} // namespace millipede::stripe

// StripeSender: one pipe cut into chunks and scheduled over many legs.
//
// Contract
// - Single-threaded: every method is called from the owner's thread (the
//   worker lcore that owns the legs). Not thread-safe. Time is passed in as
//   `now_us` (any monotonic microsecond clock).
// - Set-up (constructor) validates the config and throws std::invalid_argument
//   with a message; it allocates every chunk buffer (max_chunks_in_flight x
//   chunk_bytes) and per-leg state once. After that nothing allocates and
//   nothing throws: the data path returns results.
// - Input: push_input() copies pipe bytes into chunk buffers and returns how
//   many it took; 0 means back-pressure (all chunk buffers are in flight):
//   stop reading the pipe until input_space() > 0 again.
// - Legs are in the user's preference order (index 0 first). poll() fills
//   leg 0 up to its writable() capacity, then spills to leg 1, and so on.
//   Chunks lost with a dead leg are re-sent first, on the other live legs.
// - A chunk buffer is freed only when the receiver acknowledges the chunk
//   (native codec) or, in viamillipede compat mode (no acks exist there),
//   when the leg's transport acknowledged its last byte (LegIo::delivered).
// - Dead legs are retried with bounded exponential back-off: poll() emits
//   CONNECT_LEG; the owner connects and reports leg_up()/leg_connect_failed().
// - Completion: after finish_input() and every chunk acknowledged the end
//   record is sent; DONE is emitted only when the receiver confirmed the
//   stream length and CRC64 (native). In compat mode DONE means the leg's
//   transport acknowledged every chunk and the end header; confirmed() is
//   false.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "millipede/stripe/aead.h"
#include "millipede/stripe/leg_io.h"
#include "millipede/stripe/parity.h"
#include "millipede/stripe/queue_ahead.h"
#include "millipede/stripe/wire.h"

namespace millipede::stripe {

struct SenderConfig {
    Codec codec = Codec::NATIVE;
    uint32_t legs = 1;                    // 1..kMaxLegs, in preference order
    uint32_t chunk_bytes = 1u << 20;      // 1..2 MiB
    uint32_t max_chunks_in_flight = 16;   // memory = this x chunk_bytes
    uint64_t session_id = 1;              // native: identifies this run to the receiver
    char checkphrase[4] = {'y', 'o', 'e', 's'};
    uint64_t backoff_initial_us = 100'000;
    uint64_t backoff_max_us = 10'000'000;
    uint32_t max_resends = 3;             // CRC32C failures per chunk before giving up
    uint64_t flush_partial_us = 0;        // seal a partial chunk after this long (0: full/flush/EOF only)
    uint64_t no_leg_timeout_us = 0;       // fail when no leg is up for this long (0: never)
    bool compat_checksums = false;        // compat: fill viamillipede's checksum field
    uint64_t force_recycle_us = 1'000'000; // compat: a re-sent chunk waits at most this long for a fresh connection
    // Zero copy: chunks arrive as filled buffers (push_chunk()) instead of
    // bytes (push_input()); no chunk memory is allocated here, and each
    // chunk's reference is dropped through `release_chunk` once the chunk is
    // acknowledged (or the session ends). Legs get the payload by reference
    // (LegIo::write_ref).
    bool external_chunks = false;
    void (*release_chunk)(void *ctx, uint64_t ref) = nullptr;
    void *release_ctx = nullptr;
    // Parity across legs (docs/wire.md 2.21; native only): each stripe of
    // N = legs - parity_k data chunks gets parity_k Reed-Solomon parity
    // chunks, so the receiver rebuilds up to parity_k chunks lost with legs
    // without waiting for a re-send. 0: off.
    uint32_t parity_k = 0;
    // A stripe with data is closed early (short) when the pipe brought
    // nothing for this long and no partial chunk is waiting.
    uint64_t parity_idle_us = 1000;
    // Parity: a leg takes its next chunk only while fewer than a bound of
    // bytes it was handed are not yet TCP-acknowledged (LegIo::delivered()),
    // so the chunk the receiver needs next goes to the leg that drains
    // first instead of queueing behind others in one leg's send buffer.
    // AUTO (default): per leg, chunk_bytes + 2 x its measured
    // bandwidth-delay product (queue_ahead.h): a fixed bound below a leg's
    // BDP would starve it. FIXED: parity_queue_ahead_bytes (> 0) on every
    // leg. OFF: no bound (the send buffer is the only limit).
    QueueAhead parity_queue_ahead = QueueAhead::AUTO;
    uint64_t parity_queue_ahead_bytes = 0;
    // Native hello features asked for; the receiver must grant every one
    // (kFeatureCompress: the `compress` word) or the session fails.
    uint32_t features = kFeaturesV1;
    // key FILE (docs/wire.md 2.22, native codec only): each hello is
    // followed by a key proof and a leg opens only after the receiver's
    // proof verified; each chunk is sealed IN PLACE when it is sealed
    // (AES-256-GCM, the tag appended), so a chunk carries at most
    // chunk_bytes - kAeadTagBytes bytes of input and, with external_chunks,
    // push_chunk()'s buffer must be writable with kAeadTagBytes of room
    // after `len`. start_session(session_id) is called by the constructor.
    // Not owned; used from the owner's thread only.
    Aead *aead = nullptr;
};

// What leg_down() made of a leg's end.
enum class LegDown : uint8_t {
    IGNORED,  // not a live leg (already down, closed) or the session is over
    LOST,     // a lost leg: what it carried and its transport did not acknowledge goes again
    FINISHED, // compat: its transport had acknowledged the end header: the session is DONE
    DRAINED,  // compat: after the end header went out on another leg, this leg ended with every
              // byte written on it acknowledged: the receiver finishing, nothing to send again
};

enum class SenderLegState : uint8_t {
    DOWN,       // waiting for its back-off to expire
    CONNECTING, // CONNECT_LEG emitted, waiting for leg_up()/leg_connect_failed()
    HELLO,      // connected, hello (or checkphrase) sent, waiting for the reply
    OPEN,       // carrying chunks
    CLOSED,     // closed for good (session over)
};

struct SenderStats {
    uint64_t bytes_in = 0;
    uint64_t bytes_copied = 0;       // pipe bytes copied into chunk buffers (0 with external chunks)
    uint64_t chunks_sealed = 0;
    uint64_t chunks_sent = 0;        // first transmissions
    uint64_t chunks_resent = 0;      // after a dead leg or a CRC failure
    uint64_t chunks_acked = 0;
    uint64_t crc_resend_requests = 0;
    uint64_t leg_deaths = 0;
    uint64_t connect_attempts = 0;
    uint64_t connect_failures = 0;
    uint64_t compat_deaths_unconfirmed = 0; // compat: a leg died after carrying whole chunks
    uint64_t legs_recycled = 0;      // compat: closed and reconnected to carry a re-sent chunk
    uint64_t legs_broken = 0;        // compat: closed on request (break_leg: chaos)
    uint64_t parity_stripes = 0;     // parity: stripes closed (parity computed)
    uint64_t parity_short_stripes = 0; // ... of which with fewer than N data chunks (idle, flush, EOF)
    uint64_t parity_chunks_sent = 0; // parity chunks written (first transmissions)
    uint64_t parity_covered = 0;     // chunks lost with a leg that parity covers: not re-sent
    uint64_t parity_queue_ahead_holds = 0; // poll()s in which the queue-ahead bound held a leg's next chunk (per leg)
    uint64_t errors[kErrorCount] = {};
};

class StripeSender {
  public:
    explicit StripeSender(const SenderConfig &cfg);
    ~StripeSender();
    StripeSender(const StripeSender &) = delete;
    StripeSender &operator=(const StripeSender &) = delete;

    // ---- pipe side
    size_t input_space() const;
    size_t push_input(const uint8_t *p, size_t n, uint64_t now_us);
    // external_chunks: adopts `len` (1..chunk_bytes) bytes at `data` as the
    // next chunk, holding `ref` (one reference, handed over) until the chunk
    // is acknowledged. The bytes must not change meanwhile. False (nothing
    // taken) when max_chunks_in_flight chunks are in flight, at EOF or after
    // the session ended: the caller keeps the buffer and offers it again.
    // `sums` (optional): the chunk's CRC-32C and the stream's CRC-64 through
    // its last byte, computed by whoever produced the bytes while they were
    // hot (pipeio's on_piece); the sender then reads none of them.
    // original_len != 0: `data` is a compressed payload (docs/wire.md 2.20,
    // lib/codec) standing for original_len stream bytes; crc32c is then the
    // payload's, digest_after still the stream's. Refused (false) without
    // kFeatureCompress in `features`, or unless len < original_len <= chunk_bytes.
    struct ChunkSums {
        uint32_t crc32c = 0;
        uint64_t digest_after = 0;
        uint32_t original_len = 0;
    };
    // With cfg.aead, len <= chunk_bytes - kAeadTagBytes and the bytes are
    // sealed in place (see SenderConfig::aead); `sums` still describe the
    // input bytes (the CRC-32C on the wire is then computed here).
    bool push_chunk(const uint8_t *data, uint32_t len, uint64_t ref, uint64_t now_us, const ChunkSums *sums = nullptr);
    bool chunk_room() const; // push_chunk() would take a chunk now
    void flush_input(uint64_t now_us);  // seal the partial chunk now
    void finish_input(uint64_t now_us); // end of input (EOF)

    // ---- leg side
    void leg_up(uint32_t leg, uint64_t now_us);             // connection established
    void leg_connect_failed(uint32_t leg, uint64_t now_us); // connect attempt failed
    // The leg's connection died, was reset or closed by the peer.
    // `delivered`: bytes written on it since it connected that its transport
    // acknowledged by then (LegIo::delivered). compat mode counts those first,
    // so a peer FIN that carried (or followed) the ACK of the end header ends
    // the session (FINISHED) instead of re-queuing the end record, and a FIN
    // after everything a leg carried was acknowledged re-sends nothing.
    LegDown leg_down(uint32_t leg, uint64_t now_us, uint64_t delivered = 0);
    // compat fault injection (the `chaos` word): stop writing to an open
    // leg; once its transport acknowledged everything written on it, close
    // it (CLOSE_LEG: the owner ends it with FIN, which a stock receiver
    // survives, unlike a reset), reconnect it at once and re-send the chunk
    // it was in the middle of on a fresh connection. A receiver discards a
    // chunk cut short by a FIN; nothing it already has goes again, so no
    // duplicate reaches it. False (nothing done) when the leg is not open,
    // carries the end record, or the codec is native (abort the connection
    // instead: native acknowledgements say what to re-send).
    bool break_leg(uint32_t leg);
    // Bytes the receiver sent on `leg` (replies, acks, resend requests).
    // Always consumes everything (these records are tiny).
    size_t leg_input(uint32_t leg, const uint8_t *p, size_t n, uint64_t now_us);

    // Timers, connection requests, and writing to legs.
    void poll(uint64_t now_us, LegIo &io);
    bool next_event(StripeEvent &ev) { return events_.pop(ev); }
    // Earliest time poll() has timer work (UINT64_MAX: none).
    uint64_t next_wakeup_us() const;

    // ---- status
    SessionState state() const { return state_; }
    bool confirmed() const { return confirmed_; } // receiver verified length + digest
    const char *message() const { return message_; }
    SenderLegState leg_state(uint32_t leg) const;
    uint64_t leg_backoff_until(uint32_t leg) const;
    size_t chunks_in_flight() const; // chunk buffers not free
    uint64_t bytes_in() const { return stats_.bytes_in; }
    uint64_t stream_digest() const { return digest_; } // CRC-64/XZ of input so far
    // parity: the queue-ahead bound `leg` has now (UINT64_MAX: none), and
    // its estimate (AUTO).
    uint64_t queue_ahead_bound(uint32_t leg) const;
    const QueueAheadEstimator *queue_ahead_estimate(uint32_t leg) const;
    const SenderStats &stats() const { return stats_; }
    const SenderConfig &config() const { return cfg_; }

  private:
    struct Slot;
    struct Leg;
    int32_t grab_free_slot() const;
    void seal(uint64_t now_us);
    bool encrypt(Slot &s);
    void fail(Error e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    void schedule_retry(Leg &l, uint64_t now_us);
    void requeue_leg(uint32_t leg);
    int32_t pick_chunk(const Leg &l, uint32_t leg);
    // ---- parity (docs/wire.md 2.21)
    bool parity_room() const; // a new data chunk may start (its stripe has or can reserve parity buffers)
    // Parity over compressed or encrypted chunks: hello feature bit 6.
    bool parity_flags_wanted() const { return pk_ && (cfg_.aead || (cfg_.features & kFeatureCompress)); }
    void open_stripe();
    void close_stripe();
    void cover_lost();
    bool at_risk_on_leg(uint64_t seq, uint32_t leg) const; // chunk `seq` would share a risk on `leg`
    void start_chunk(Leg &l, uint32_t leg, int32_t slot);
    void write_leg(uint32_t leg, LegIo &io, uint64_t now_us);
    void on_record(uint32_t leg, const Decoded &d, uint64_t now_us);
    void free_slot(int32_t s);
    void maybe_end();
    void release_delivered(LegIo &io);
    bool release_leg(uint32_t leg, uint64_t delivered); // true: the end header was delivered (DONE)
    bool leg_still_needed() const;
    void recycle_for_resend(uint64_t now_us);
    void finish_breaks(LegIo &io, uint64_t now_us);
    void finish(bool confirmed);

    SenderConfig cfg_;
    std::unique_ptr<uint8_t[]> pool_;
    std::vector<Slot> slots_;
    std::vector<Leg> legs_;
    EventQueue events_;
    SessionState state_ = SessionState::RUNNING;
    bool confirmed_ = false;
    char message_[256] = "running";

    int32_t filling_ = -1;         // slot receiving pipe bytes
    uint64_t filling_since_ = 0;
    bool eof_ = false;
    uint64_t next_seq_ = 0;
    uint64_t sealed_bytes_ = 0;
    uint64_t digest_ = 0;
    uint64_t cum_ack_ = 0;           // native: every chunk < this is held by the receiver
    uint32_t recv_window_ = UINT32_MAX; // native: receiver's reorder window (chunks)
    CompatChecksumChain compat_chain_;

    enum class EndState : uint8_t { NOT_YET, QUEUED, ON_LEG, WRITTEN, DONE };
    EndState end_state_ = EndState::NOT_YET;
    uint32_t end_leg_ = 0;
    bool started_ = false;
    uint64_t resend_waiting_since_ = UINT64_MAX; // compat: a re-sent chunk waiting for a fresh connection
    uint64_t last_open_us_ = 0;
    uint64_t key_challenges_ = 0;     // key FILE: challenges sent in hellos' key proofs
    uint32_t input_per_chunk_ = 0;    // chunk_bytes less the tag with a key
    SenderStats stats_;

    // parity: slots_[0, data_slots_) carry data, the rest parity units
    std::unique_ptr<ParityCodec> parity_;
    std::unique_ptr<uint8_t[]> parity_pool_;
    uint32_t data_slots_ = 0;
    uint32_t pn_ = 0, pk_ = 0;    // N data, K parity chunks per stripe
    bool stripe_open_ = false;    // parity buffers reserved for the stripe at stripe_s0_
    uint64_t stripe_s0_ = 0;
    uint32_t stripe_data_ = 0;    // data chunks sealed into it
    bool stripe_lost_ = false;    // a chunk of it was lost with a leg: close it at the next seal
    uint32_t stripe_plen_ = 0;    // parity unit length so far (prefix + longest payload)
    int32_t stripe_parity_[kMaxLegs] = {};
    uint64_t last_seal_us_ = 0;
};

} // namespace millipede::stripe

// Byte storage of a TCP-lite connection without copying payload.
//
// A connection's send and receive queues hold *extents*: runs of bytes in
// memory the connection does not own, each with an opaque reference (BufRef)
// that keeps that memory alive, or bytes copied into the connection's own
// arena (BufRef 0). The owner of the memory (the DPDK application: a chunk
// buffer on tx, an rte_mbuf on rx; a test: a counting table) supplies the
// RefOps that take and drop one reference.
//
// Why: a stripe chunk read from stdin is referenced by every segment that
// carries it, retransmissions included, and returns to its pool only when
// the last of them is gone (tx: zero copies); received mbufs stay in the
// receive queue until the application has consumed their bytes (rx: the
// only copy is the application's own).
//
// Contract
// - Single-threaded: owned by one Connection, used from its lcore. RefOps
//   are called synchronously from the queue's methods on that thread; they
//   may be called for the same ref many times (once per extent holding it).
// - Memory: everything is allocated by allocate(); afterwards nothing
//   allocates. Capacities are in bytes (the TCP buffer sizes) and in
//   extents (a bound on how fragmented the bytes may be).
// - Pure: no EAL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace millipede::tcp {

// An opaque handle on externally owned memory; 0: no reference (bytes that
// are copied, or that live in the connection's own arena).
using BufRef = uint64_t;

// How the memory owner counts references. Both may be null when no
// referenced bytes are ever offered (then every byte is copied).
struct RefOps {
    void (*retain)(void *ctx, BufRef ref) = nullptr;
    void (*release)(void *ctx, BufRef ref) = nullptr;
    void *ctx = nullptr;
};

// One contiguous piece of a segment's payload. `ref` names the memory's
// owner (0: the bytes live in the connection's arena or the caller's
// buffer and must be copied during the call that hands them out).
struct Piece {
    const uint8_t *data = nullptr;
    uint32_t len = 0;
    BufRef ref = 0;
};

// The send queue: bytes handed to the connection, from SND.UNA onwards.
class SendQueue {
  public:
    SendQueue() = default;
    ~SendQueue();
    SendQueue(const SendQueue &) = delete;
    SendQueue &operator=(const SendQueue &) = delete;

    void allocate(size_t capacity_bytes, size_t arena_bytes, size_t max_extents, const RefOps *ops);
    size_t capacity() const { return cap_; }
    size_t buffered() const { return bytes_; }
    // Bytes that can be queued now (by copy: also bounded by arena room).
    size_t room_for_ref() const;
    size_t room_for_copy() const;

    // Copies `src` into the arena; returns the bytes taken.
    size_t append_copy(std::span<const uint8_t> src);
    // Queues a reference to `n` bytes at `p` (retains `ref` once when it
    // takes any byte); returns the bytes taken (fewer when full).
    size_t append_ref(const uint8_t *p, size_t n, BufRef ref);
    // Drops the first `n` bytes (acknowledged), releasing references.
    void pop(size_t n);
    // Releases everything.
    void clear();
    // Up to `max` pieces covering bytes [off, off + len) (off from the
    // queue's front); returns the number of pieces and sets `covered` to the
    // bytes they hold (less than len when `max` pieces run out first).
    size_t gather(size_t off, size_t len, Piece *out, size_t max, size_t &covered) const;

  private:
    struct Extent {
        const uint8_t *data;
        uint32_t len;
        BufRef ref; // 0: arena bytes
    };
    Extent &at(size_t i) { return ext_[(ext_head_ + i) % ext_cap_]; }
    const Extent &at(size_t i) const { return ext_[(ext_head_ + i) % ext_cap_]; }
    bool push_extent(const uint8_t *p, uint32_t len, BufRef ref);

    std::unique_ptr<Extent[]> ext_;
    size_t ext_cap_ = 0, ext_head_ = 0, ext_count_ = 0;
    std::unique_ptr<uint8_t[]> arena_;
    size_t arena_cap_ = 0, arena_head_ = 0, arena_used_ = 0;
    size_t cap_ = 0, bytes_ = 0;
    const RefOps *ops_ = nullptr;
    // gather() is called with increasing offsets between pops: remember
    // where the last lookup ended (mutable: a cache, not state).
    mutable size_t cursor_idx_ = 0, cursor_off_ = 0;
};

// The receive queue: bytes from RCV.NXT - readable (the first unread) to
// the highest out-of-order byte, as sorted, non-overlapping extents.
class RecvQueue {
  public:
    RecvQueue() = default;
    ~RecvQueue();
    RecvQueue(const RecvQueue &) = delete;
    RecvQueue &operator=(const RecvQueue &) = delete;

    // `arena_bytes` must cover the largest window ever advertised (copied
    // bytes are placed by sequence number, so in-window bytes never collide).
    void allocate(size_t arena_bytes, size_t max_extents, const RefOps *ops);
    size_t arena_capacity() const { return arena_cap_; }
    size_t extents_free() const { return ext_cap_ - count_; }
    void set_base(uint32_t seq) { base_seq_ = seq; }

    // Stores the bytes of [seq, seq + total) given as pieces, skipping what
    // is already held; copies pieces whose ref is 0 into the arena and
    // retains the others (without RefOps every piece is copied). Returns
    // false (storing nothing) when the extent table would overflow.
    bool insert(uint32_t seq, const Piece *pieces, size_t npieces);
    // Up to `max` readable spans from the front (bytes below `limit_seq`,
    // i.e. RCV.NXT); returns the count.
    size_t peek(uint32_t limit_seq, std::span<const uint8_t> *out, size_t max) const { return peek_from(0, limit_seq, out, max); }
    // The same, starting `skip` bytes after the front.
    size_t peek_from(size_t skip, uint32_t limit_seq, std::span<const uint8_t> *out, size_t max) const;
    // Drops `n` bytes from the front, releasing references.
    void pop(size_t n);
    // Forgets everything at or above `seq` (after a FIN nothing follows).
    void drop_from(uint32_t seq);
    void clear();

  private:
    struct Extent {
        uint32_t seq;
        uint32_t len;
        const uint8_t *data;
        BufRef ref; // 0: arena bytes
    };
    Extent &at(size_t i) { return ext_[(head_ + i) % ext_cap_]; }
    const Extent &at(size_t i) const { return ext_[(head_ + i) % ext_cap_]; }
    bool place(size_t pos, uint32_t seq, const uint8_t *data, uint32_t len, BufRef ref);
    std::unique_ptr<Extent[]> ext_; // a ring, sorted by seq from head_ (out-of-order inserts shift the tail)
    size_t ext_cap_ = 0, head_ = 0, count_ = 0;
    std::unique_ptr<uint8_t[]> arena_;
    size_t arena_cap_ = 0;
    uint32_t base_seq_ = 0; // arena position of seq s: (s - base_seq_) % arena_cap_
    const RefOps *ops_ = nullptr;
};

} // namespace millipede::tcp

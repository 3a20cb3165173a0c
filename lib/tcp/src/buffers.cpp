// SendQueue / RecvQueue: extents of referenced or arena-copied bytes. See
// buffers.h.
#include "millipede/tcp/buffers.h"

#include <algorithm>
#include <cstring>

#include "millipede/tcp/seq.h"

namespace millipede::tcp {

namespace {
inline void retain(const RefOps *ops, BufRef r) {
    if (r && ops && ops->retain) ops->retain(ops->ctx, r);
}
inline void release(const RefOps *ops, BufRef r) {
    if (r && ops && ops->release) ops->release(ops->ctx, r);
}
} // namespace

// ------------------------------------------------------------- SendQueue

SendQueue::~SendQueue() { clear(); }

void SendQueue::allocate(size_t capacity_bytes, size_t arena_bytes, size_t max_extents, const RefOps *ops) {
    clear();
    cap_ = capacity_bytes;
    arena_cap_ = arena_bytes;
    arena_.reset(new uint8_t[arena_bytes ? arena_bytes : 1]); // (not zeroed: pages are touched as used)
    ext_cap_ = std::max<size_t>(max_extents, 4);
    ext_ = std::make_unique<Extent[]>(ext_cap_);
    ext_head_ = ext_count_ = 0;
    arena_head_ = arena_used_ = 0;
    bytes_ = 0;
    ops_ = ops;
    cursor_idx_ = cursor_off_ = 0;
}

size_t SendQueue::room_for_ref() const {
    if (ext_count_ == ext_cap_) return 0;
    return cap_ - bytes_;
}

size_t SendQueue::room_for_copy() const {
    // Copies may need two extents (arena wrap) unless they extend the last.
    if (ext_count_ + 2 > ext_cap_) return 0;
    return std::min(cap_ - bytes_, arena_cap_ - arena_used_);
}

bool SendQueue::push_extent(const uint8_t *p, uint32_t len, BufRef ref) {
    if (ext_count_) {
        Extent &last = at(ext_count_ - 1);
        // Contiguous bytes of one owner (or of the arena) form one extent.
        if (last.ref == ref && last.data + last.len == p && uint64_t(last.len) + len <= UINT32_MAX) {
            last.len += len;
            return true;
        }
    }
    if (ext_count_ == ext_cap_) return false;
    ext_[(ext_head_ + ext_count_) % ext_cap_] = Extent{p, len, ref};
    ext_count_++;
    return true;
}

size_t SendQueue::append_copy(std::span<const uint8_t> src) {
    size_t n = std::min(src.size(), room_for_copy());
    if (n == 0) return 0;
    size_t done = 0;
    while (done < n) {
        const size_t tail = (arena_head_ + arena_used_) % arena_cap_;
        const size_t k = std::min(n - done, arena_cap_ - tail);
        std::memcpy(arena_.get() + tail, src.data() + done, k);
        if (!push_extent(arena_.get() + tail, static_cast<uint32_t>(k), 0)) break; // (room_for_copy() kept two)
        arena_used_ += k;
        done += k;
    }
    bytes_ += done;
    return done;
}

size_t SendQueue::append_ref(const uint8_t *p, size_t n, BufRef ref) {
    n = std::min(n, room_for_ref());
    if (n == 0) return 0;
    if (ref == 0) return append_copy({p, n});
    n = std::min<size_t>(n, UINT32_MAX);
    const bool merged = ext_count_ && at(ext_count_ - 1).ref == ref &&
                        at(ext_count_ - 1).data + at(ext_count_ - 1).len == p;
    if (!push_extent(p, static_cast<uint32_t>(n), ref)) return 0;
    if (!merged) retain(ops_, ref); // one reference per extent
    bytes_ += n;
    return n;
}

void SendQueue::pop(size_t n) {
    n = std::min(n, bytes_);
    bytes_ -= n;
    while (n > 0 && ext_count_) {
        Extent &e = at(0);
        const size_t k = std::min<size_t>(n, e.len);
        if (e.ref == 0) {
            arena_head_ = (arena_head_ + k) % arena_cap_;
            arena_used_ -= k;
        }
        n -= k;
        // The cursor's offset is counted from the front, which moves.
        if (cursor_idx_ == 0) cursor_off_ = 0;
        else cursor_off_ -= k;
        if (k == e.len) {
            release(ops_, e.ref);
            ext_head_ = (ext_head_ + 1) % ext_cap_;
            ext_count_--;
            if (cursor_idx_ > 0) cursor_idx_--;
        } else {
            e.data += k;
            e.len -= static_cast<uint32_t>(k);
        }
    }
    if (ext_count_ == 0) {
        ext_head_ = 0;
        arena_head_ = arena_used_ = 0;
        cursor_idx_ = cursor_off_ = 0;
    }
}

void SendQueue::clear() {
    while (ext_count_) {
        release(ops_, at(0).ref);
        ext_head_ = (ext_head_ + 1) % ext_cap_;
        ext_count_--;
    }
    ext_head_ = 0;
    bytes_ = 0;
    arena_head_ = arena_used_ = 0;
    cursor_idx_ = cursor_off_ = 0;
}

size_t SendQueue::gather(size_t off, size_t len, Piece *out, size_t max, size_t &covered) const {
    covered = 0;
    if (len == 0 || max == 0 || off >= bytes_) return 0;
    len = std::min(len, bytes_ - off);
    // Find the extent holding `off`, starting at the cached cursor when it
    // lies at or before it.
    size_t i = 0, start = 0;
    if (cursor_idx_ < ext_count_ && cursor_off_ <= off) {
        i = cursor_idx_;
        start = cursor_off_;
    }
    while (i < ext_count_ && start + at(i).len <= off) {
        start += at(i).len;
        i++;
    }
    cursor_idx_ = i;
    cursor_off_ = start;
    size_t n = 0;
    size_t skip = off - start;
    while (covered < len && i < ext_count_ && n < max) {
        const Extent &e = at(i);
        const size_t k = std::min<size_t>(e.len - skip, len - covered);
        out[n++] = Piece{e.data + skip, static_cast<uint32_t>(k), e.ref};
        covered += k;
        skip = 0;
        i++;
    }
    return n;
}

// ------------------------------------------------------------- RecvQueue

RecvQueue::~RecvQueue() { clear(); }

void RecvQueue::allocate(size_t arena_bytes, size_t max_extents, const RefOps *ops) {
    clear();
    arena_cap_ = std::max<size_t>(arena_bytes, 1);
    arena_.reset(new uint8_t[arena_cap_]);
    ext_cap_ = std::max<size_t>(max_extents, 4);
    ext_ = std::make_unique<Extent[]>(ext_cap_);
    head_ = count_ = 0;
    ops_ = ops;
}

bool RecvQueue::place(size_t pos, uint32_t seq, const uint8_t *data, uint32_t len, BufRef ref) {
    // Merge with the extent before when both are contiguous in sequence and
    // in memory and have the same owner (arena runs, mostly).
    if (pos > 0) {
        Extent &p = at(pos - 1);
        if (p.ref == ref && p.seq + p.len == seq && p.data + p.len == data) {
            p.len += len;
            release(ops_, ref); // the caller retained it for a new extent
            return true;
        }
    }
    // Or with the one after (a gap filled in front of arena bytes).
    if (pos < count_) {
        Extent &n = at(pos);
        if (n.ref == ref && seq + len == n.seq && data + len == n.data) {
            n.seq = seq;
            n.data = data;
            n.len += len;
            release(ops_, ref);
            return true;
        }
    }
    if (count_ == ext_cap_) return false;
    // Shift the tail by one (out-of-order inserts only; appends shift nothing).
    for (size_t i = count_; i > pos; i--) at(i) = at(i - 1);
    at(pos) = Extent{seq, len, data, ref};
    count_++;
    return true;
}

bool RecvQueue::insert(uint32_t seq, const Piece *in, size_t npieces) {
    // Without reference counting nothing can be held by reference: every
    // piece is copied (a segment handed over straight from another
    // connection's sink names memory that connection will reuse).
    Piece local[32];
    const Piece *pieces = in;
    if (!(ops_ && ops_->retain) && npieces <= 32) {
        for (size_t i = 0; i < npieces; i++) local[i] = Piece{in[i].data, in[i].len, 0};
        pieces = local;
    } else if (!(ops_ && ops_->retain)) {
        return false;
    }
    // Walks the parts of [seq, seq + total) that no extent covers yet, in
    // order; fn(pos, a, e, piece, piece_start) for each.
    auto walk = [&](auto &&fn) {
        uint32_t s = seq;
        size_t pos = 0;
        for (size_t p = 0; p < npieces; p++) {
            const Piece &pc = pieces[p];
            const uint32_t lo = s, hi = s + pc.len;
            s = hi;
            uint32_t a = lo;
            while (seq_lt(a, hi)) {
                while (pos < count_ && seq_leq(at(pos).seq + at(pos).len, a)) pos++;
                if (pos < count_ && seq_leq(at(pos).seq, a)) { // covered: skip to its end
                    a = at(pos).seq + at(pos).len;
                    continue;
                }
                const uint32_t e = pos < count_ ? seq_min(hi, at(pos).seq) : hi;
                pos = fn(pos, a, e, pc, lo);
                a = e;
            }
        }
    };
    // Dry run: each uncovered part takes one extent, two if arena bytes wrap.
    size_t need = 0;
    walk([&](size_t pos, uint32_t a, uint32_t e, const Piece &pc, uint32_t) {
        need += 1;
        if (pc.ref == 0 && (a - base_seq_) % arena_cap_ + (e - a) > arena_cap_) need += 1;
        return pos;
    });
    if (need > ext_cap_ - count_) return false;
    walk([&](size_t pos, uint32_t a, uint32_t e, const Piece &pc, uint32_t lo) {
        if (pc.ref) {
            retain(ops_, pc.ref);
            const size_t before = count_;
            place(pos, a, pc.data + (a - lo), e - a, pc.ref);
            return count_ > before ? pos + 1 : pos;
        }
        uint32_t x = a;
        while (seq_lt(x, e)) {
            const size_t off = (x - base_seq_) % arena_cap_;
            const uint32_t k = static_cast<uint32_t>(std::min<size_t>(e - x, arena_cap_ - off));
            std::memcpy(arena_.get() + off, pc.data + (x - lo), k);
            const size_t before = count_;
            place(pos, x, arena_.get() + off, k, 0);
            if (count_ > before) pos++;
            x += k;
        }
        return pos;
    });
    return true;
}

size_t RecvQueue::peek_from(size_t skip, uint32_t limit_seq, std::span<const uint8_t> *out, size_t max) const {
    size_t n = 0;
    for (size_t i = 0; i < count_ && n < max; i++) {
        const Extent &e = at(i);
        if (!seq_lt(e.seq, limit_seq)) break;
        uint32_t len = seq_leq(e.seq + e.len, limit_seq) ? e.len : limit_seq - e.seq;
        const bool partial = len < e.len;
        if (skip >= len) {
            skip -= len;
            if (partial) break;
            continue;
        }
        out[n++] = std::span<const uint8_t>(e.data + skip, len - skip);
        skip = 0;
        if (partial) break;
    }
    return n;
}

void RecvQueue::pop(size_t n) {
    while (n > 0 && count_) {
        Extent &e = at(0);
        if (n >= e.len) {
            n -= e.len;
            release(ops_, e.ref);
            head_ = (head_ + 1) % ext_cap_;
            count_--;
        } else {
            e.seq += static_cast<uint32_t>(n);
            e.data += n;
            e.len -= static_cast<uint32_t>(n);
            n = 0;
        }
    }
    if (!count_) head_ = 0;
}

void RecvQueue::drop_from(uint32_t seq) {
    size_t keep = 0;
    while (keep < count_ && seq_lt(at(keep).seq, seq)) {
        Extent &e = at(keep);
        if (seq_gt(e.seq + e.len, seq)) e.len = seq - e.seq; // (its reference stays held for the rest)
        keep++;
    }
    for (size_t i = keep; i < count_; i++) release(ops_, at(i).ref);
    count_ = keep;
}

void RecvQueue::clear() {
    for (size_t i = 0; i < count_; i++) release(ops_, at(i).ref);
    head_ = count_ = 0;
}

} // namespace millipede::tcp

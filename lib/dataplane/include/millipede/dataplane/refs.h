// Who owns the bytes a TCP-lite connection holds without copying them
// (tcp::BufRef): received payload stays in its rte_mbuf segments, sent
// payload stays in the chunk buffers stdin was read into.
//
// A BufRef is a tagged pointer: an rte_mbuf segment (bit 0 clear) or a
// ChunkPool::Desc | 1. kRefOps counts references on either: an mbuf's own
// refcnt, or the chunk's rte_mbuf_ext_shared_info refcnt, the same counter
// every mbuf attached to the chunk (rte_pktmbuf_attach_extbuf) uses, so the
// chunk returns to its pool when the last segment, queue entry or stripe
// slot referring to it is gone, whichever thread that is on.
//
// Contract
// - kRefOps may be called from any lcore (the counters are atomic, as
//   DPDK's own are). A chunk's free callback runs where its last reference
//   drops and only enqueues the chunk on an MP ring (it never fails: the
//   ring holds every chunk); the pool's owner (the session lcore) drains it.
// - ChunkPool: set-up on the main lcore (create(), fails fast with a
//   message); take()/drain_returned() on the owner's lcore only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <rte_mbuf.h>

#include "millipede/tcp/buffers.h"

struct rte_ring;
struct rte_memzone;

namespace millipede::dataplane {

inline tcp::BufRef mbuf_ref(rte_mbuf *seg) { return reinterpret_cast<uintptr_t>(seg); }
inline bool is_chunk_ref(tcp::BufRef r) { return (r & 1u) != 0; }

class ChunkPool {
  public:
    struct alignas(64) Desc {
        rte_mbuf_ext_shared_info shinfo; // refcnt: every holder of the chunk
        ChunkPool *pool;
        uint8_t *data;
        rte_iova_t iova; // of data[0]; RTE_BAD_IOVA: look each piece up
        uint32_t index;
    };

    // `chunks` buffers of `chunk_bytes` in one block of hugepage memory on
    // `socket` (IOVA-contiguous when it can be had).
    static std::unique_ptr<ChunkPool> create(const std::string &name, uint32_t chunks, uint32_t chunk_bytes,
                                             int socket, std::string &err);
    ~ChunkPool();
    // As flow::FlowTable's: its memory is left to rte_eal_cleanup().
    void leave_memory_to_eal_cleanup() {
        mz_ = nullptr;
        descs_ = nullptr;
        returned_ = nullptr;
    }
    ChunkPool(const ChunkPool &) = delete;
    ChunkPool &operator=(const ChunkPool &) = delete;

    uint8_t *memory() const { return mem_; } // chunks x chunk_bytes, for the pipe reader
    uint32_t chunks() const { return chunks_; }
    uint32_t chunk_bytes() const { return chunk_bytes_; }
    Desc &desc(uint32_t i) { return descs_[i]; }

    // The owner hands chunk i out with one reference (its own, which it
    // passes on, e.g. to the stripe sender). Returns that reference.
    tcp::BufRef take(uint32_t i);
    // Chunks whose last reference dropped since the last call (indices).
    unsigned drain_returned(uint32_t *out, unsigned max);
    uint32_t out() const { return out_; } // handed out and not yet returned

    static Desc *desc_of(tcp::BufRef r) { return reinterpret_cast<Desc *>(r & ~uintptr_t(1)); }
    // The IOVA of `p` inside chunk `d`, and in `run` how many bytes from p
    // on are IOVA-contiguous with it (UINT32_MAX: the whole chunk is). A
    // chunk buffer that could not be had IOVA-contiguous (IOVA as PA, the
    // hugepages scattered) is contiguous only within each memseg: a segment
    // crossing one is attached as one piece per memseg, or a DMA-ing NIC
    // would read the wrong page. The lookup walks EAL's memseg lists; no
    // syscall (rte_mem_virt2iova reads /proc/self/pagemap in PA mode, once
    // per frame before this).
    static rte_iova_t iova_of(const Desc &d, const uint8_t *p, uint32_t &run);

  private:
    ChunkPool() = default;
    static void on_free(void *addr, void *opaque);
    const rte_memzone *mz_ = nullptr;
    uint8_t *mem_ = nullptr;
    Desc *descs_ = nullptr;
    rte_ring *returned_ = nullptr;
    uint32_t chunks_ = 0, chunk_bytes_ = 0;
    uint32_t out_ = 0;
};

// Retains/releases an mbuf segment or a chunk (see above).
extern const tcp::RefOps kRefOps;

// Drops one chunk reference (what kRefOps.release does for a chunk).
void chunk_release(tcp::BufRef r);

} // namespace millipede::dataplane

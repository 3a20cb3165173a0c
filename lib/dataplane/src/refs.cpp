// Chunk buffers and the reference counts of zero-copy bytes; see refs.h.
#include "millipede/dataplane/refs.h"

#include <algorithm>

#include <rte_errno.h>

#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_memzone.h>
#include <rte_ring.h>

namespace millipede::dataplane {

namespace {

void retain(void *, tcp::BufRef r) {
    if (is_chunk_ref(r))
        rte_mbuf_ext_refcnt_update(&ChunkPool::desc_of(r)->shinfo, 1);
    else
        rte_mbuf_refcnt_update(reinterpret_cast<rte_mbuf *>(r), 1);
}

void release(void *, tcp::BufRef r) {
    if (is_chunk_ref(r))
        chunk_release(r);
    else
        rte_pktmbuf_free_seg(reinterpret_cast<rte_mbuf *>(r));
}

} // namespace

const tcp::RefOps kRefOps{&retain, &release, nullptr};

void chunk_release(tcp::BufRef r) {
    ChunkPool::Desc *d = ChunkPool::desc_of(r);
    if (rte_mbuf_ext_refcnt_update(&d->shinfo, -1) == 0) d->shinfo.free_cb(d->data, d->shinfo.fcb_opaque);
}

void ChunkPool::on_free(void *, void *opaque) {
    auto *d = static_cast<Desc *>(opaque);
    // The ring holds every chunk: this cannot fail.
    rte_ring_mp_enqueue(d->pool->returned_, d);
}

std::unique_ptr<ChunkPool> ChunkPool::create(const std::string &name, uint32_t chunks, uint32_t chunk_bytes,
                                             int socket, std::string &err) {
    std::unique_ptr<ChunkPool> p(new ChunkPool());
    p->chunks_ = chunks;
    p->chunk_bytes_ = chunk_bytes;
    const size_t bytes = size_t(chunks) * chunk_bytes;
    // IOVA-contiguous, so a device can DMA any piece of a chunk from one
    // base address; otherwise each piece's IOVA is looked up (IOVA as VA,
    // --no-huge: the virtual devices used here do not DMA at all).
    p->mz_ = rte_memzone_reserve_aligned((name + "_mem").c_str(), bytes, socket, RTE_MEMZONE_IOVA_CONTIG, 4096);
    if (!p->mz_) p->mz_ = rte_memzone_reserve_aligned((name + "_mem").c_str(), bytes, socket, 0, 4096);
    if (!p->mz_) {
        err = "cannot reserve " + std::to_string(bytes >> 20) + " MiB for " + std::to_string(chunks) +
              " chunk buffers: " + rte_strerror(rte_errno) + " (more EAL memory with -m, or hugepages)";
        return nullptr;
    }
    p->mem_ = static_cast<uint8_t *>(p->mz_->addr);
    const bool contig = p->mz_->iova != RTE_BAD_IOVA && (p->mz_->flags & RTE_MEMZONE_IOVA_CONTIG);
    p->descs_ = static_cast<Desc *>(rte_zmalloc_socket((name + "_desc").c_str(), sizeof(Desc) * chunks, 64, socket));
    p->returned_ = rte_ring_create((name + "_ret").c_str(), rte_align32pow2(chunks + 1), socket, RING_F_SC_DEQ);
    if (!p->descs_ || !p->returned_) {
        err = "cannot allocate chunk descriptors: " + std::string(rte_strerror(rte_errno));
        return nullptr;
    }
    for (uint32_t i = 0; i < chunks; i++) {
        Desc &d = p->descs_[i];
        d.pool = p.get();
        d.index = i;
        d.data = p->mem_ + size_t(i) * chunk_bytes;
        d.iova = contig ? p->mz_->iova + size_t(i) * chunk_bytes : RTE_BAD_IOVA;
        d.shinfo.free_cb = &ChunkPool::on_free;
        d.shinfo.fcb_opaque = &d;
        rte_mbuf_ext_refcnt_set(&d.shinfo, 0);
    }
    return p;
}

ChunkPool::~ChunkPool() {
    if (returned_) rte_ring_free(returned_);
    if (descs_) rte_free(descs_);
    if (mz_) rte_memzone_free(mz_);
}

tcp::BufRef ChunkPool::take(uint32_t i) {
    Desc &d = descs_[i];
    rte_mbuf_ext_refcnt_set(&d.shinfo, 1);
    out_++;
    return reinterpret_cast<uintptr_t>(&d) | 1u;
}

unsigned ChunkPool::drain_returned(uint32_t *out, unsigned max) {
    void *objs[64];
    unsigned n = 0;
    while (n < max) {
        const unsigned k = rte_ring_sc_dequeue_burst(returned_, objs, std::min(64u, max - n), nullptr);
        if (k == 0) break;
        for (unsigned j = 0; j < k; j++) out[n++] = static_cast<Desc *>(objs[j])->index;
    }
    out_ -= n;
    return n;
}

rte_iova_t ChunkPool::iova_of(const Desc &d, const uint8_t *p, uint32_t &run) {
    run = UINT32_MAX;
    if (d.iova != RTE_BAD_IOVA) return d.iova + static_cast<rte_iova_t>(p - d.data);
    // A memzone lies in EAL's memsegs, so the lookup always finds one.
    const rte_memseg *ms = rte_mem_virt2memseg(p, nullptr);
    const auto off = static_cast<uint64_t>(p - static_cast<const uint8_t *>(ms->addr));
    run = static_cast<uint32_t>(std::min<uint64_t>(ms->len - off, UINT32_MAX));
    return ms->iova + off;
}

} // namespace millipede::dataplane

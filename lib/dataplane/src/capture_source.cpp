// Zero-copy mbufs over a memory-mapped capture; see capture_source.h.
#include "millipede/dataplane/capture_source.h"

#include <algorithm>

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "millipede/dataplane/capture_file.h"

namespace millipede::dataplane {

namespace {
constexpr uint32_t kMaxSegment = UINT16_MAX; // data_len and buf_len are 16 bits
constexpr unsigned kMaxBurst = 64;
} // namespace

std::unique_ptr<CaptureSource> CaptureSource::create(std::unique_ptr<CaptureFile> file, unsigned mbufs, int socket,
                                                     const std::string &pool_name, std::string &err) {
    std::unique_ptr<CaptureSource> s(new CaptureSource());
    s->file_ = std::move(file);
    // No data room: every mbuf's buffer is a record of the mapped file.
    s->pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, 256, 0, 0, socket);
    if (!s->pool_) {
        err = "cannot create the capture reader's pool of " + std::to_string(mbufs) +
              " mbufs: " + rte_strerror(rte_errno) + " (more EAL memory with -m, or lower --mbufs)";
        return nullptr;
    }
    if (rte_mbuf_dyn_rx_timestamp_register(&s->ts_offset_, &s->ts_flag_) != 0) {
        err = std::string("cannot register the mbuf timestamp field: ") + rte_strerror(rte_errno);
        return nullptr;
    }
    return s;
}

CaptureSource::~CaptureSource() {
    if (pool_) rte_mempool_free(pool_);
}

const std::string &CaptureSource::error() const { return file_->error(); }

// One segment over `len` bytes at `data`.
static void point_at(rte_mbuf *m, const uint8_t *data, uint32_t len) {
    m->buf_addr = const_cast<uint8_t *>(data); // read-only: see the contract
    rte_mbuf_iova_set(m, RTE_BAD_IOVA);        // never given to a device
    m->buf_len = static_cast<uint16_t>(len);
    m->data_off = 0;
    m->data_len = static_cast<uint16_t>(len);
}

unsigned CaptureSource::fill(rte_mbuf *m, const uint8_t *data, uint32_t len, uint64_t ts_us) {
    point_at(m, data, std::min(len, kMaxSegment));
    m->pkt_len = len;
    m->ol_flags |= ts_flag_;
    *RTE_MBUF_DYNFIELD(m, ts_offset_, uint64_t *) = ts_us;
    if (len <= kMaxSegment) return 1;
    // Longer than one mbuf can say: the rest as further segments.
    rte_mbuf *tail = m;
    for (uint32_t off = kMaxSegment; off < len; off += kMaxSegment) {
        rte_mbuf *seg = rte_pktmbuf_alloc(pool_);
        if (!seg) return 0; // the caller frees the partial chain and retries later
        point_at(seg, data + off, std::min(len - off, kMaxSegment));
        tail->next = seg;
        tail = seg;
        ++m->nb_segs;
    }
    return 1;
}

unsigned CaptureSource::read_burst(rte_mbuf **pkts, unsigned n) {
    if (done_ || n == 0) return 0;
    n = std::min(n, kMaxBurst);
    // All or nothing per request: ask for less when the pool runs low.
    while (n && rte_pktmbuf_alloc_bulk(pool_, pkts, n) != 0) n /= 2;
    if (n == 0) return 0;
    unsigned got = 0, used = 0;
    CapturedPacket p;
    while (used < n) {
        if (!file_->next(p)) {
            // Looping: over again, unless the walk failed or found nothing
            // (an empty capture would spin here for ever).
            if (loop_ && file_->error().empty() && pass_packets_ > 0) {
                file_->rewind();
                pass_packets_ = 0;
                ++passes_;
                continue;
            }
            done_ = true;
            break;
        }
        if (!fill(pkts[used], p.data, p.caplen, p.ts_us)) {
            // No mbufs for the rest of a long frame: it comes again next time.
            rte_pktmbuf_free(pkts[used++]); // with the segments it got
            file_->unread();
            break;
        }
        got = ++used;
        ++pass_packets_;
    }
    if (used < n) rte_pktmbuf_free_bulk(pkts + used, n - used);
    packets_ += got;
    return got;
}

} // namespace millipede::dataplane

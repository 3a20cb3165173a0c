// Bursts of mbufs from a capture file, without copying a byte: each mbuf's
// buffer is the packet's record in the memory-mapped file (capture_file.h).
// tap's file input (`tap --read FILE`), in place of DPDK's net_pcap, which
// reads a packet at a time through libpcap and copies it into an mbuf.
//
// Contract
// - create() after rte_eal_init(); read_burst() from one lcore at a time.
// - The mbufs come from this source's own pool, whose mbufs have no data
//   room of their own: read_burst() points buf_addr at the file (read-only
//   memory: nothing downstream may write a packet), so only the mbuf header
//   is written per packet. They are freed like any mbuf (rte_pktmbuf_free,
//   on any lcore); the pool and the mapping go when the CaptureSource is
//   destroyed, which must be after every mbuf it gave out came back.
// - A frame longer than an mbuf can describe (65,535 bytes) is a chain of
//   segments over consecutive parts of the record.
// - Every mbuf carries the record's time in the Rx timestamp dynamic field
//   (microseconds, with RTE_MBUF_DYNFLAG_RX_TIMESTAMP set), as net_pcap's do.
// - read_burst() returns 0 without being done() when the pool is empty (all
//   mbufs are downstream): the caller tries again later. It never blocks.
// - loop(true) (a paced replay, tap --replay-pps): at the end of the file the
//   walk starts over from its first record, for ever, unless the file ended
//   in an error or a whole pass held no packet (then done() as usual).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct rte_mbuf;
struct rte_mempool;

namespace millipede::dataplane {

class CaptureFile;

class CaptureSource {
  public:
    // `mbufs`: the pool size (the packets that can be downstream at once).
    static std::unique_ptr<CaptureSource> create(std::unique_ptr<CaptureFile> file, unsigned mbufs, int socket,
                                                 const std::string &pool_name, std::string &err);
    ~CaptureSource();
    // As flow::FlowTable's: its mbuf pool is left to rte_eal_cleanup().
    void leave_memory_to_eal_cleanup() { pool_ = nullptr; }
    CaptureSource(const CaptureSource &) = delete;
    CaptureSource &operator=(const CaptureSource &) = delete;

    unsigned read_burst(rte_mbuf **pkts, unsigned n);
    void loop(bool on) { loop_ = on; }
    bool done() const { return done_; }
    uint64_t passes() const { return passes_; } // walks begun over the file (1 + rewinds)
    // A walk cut short (a truncated or corrupt record): one line; else empty.
    const std::string &error() const;
    uint64_t packets() const { return packets_; }
    const CaptureFile &file() const { return *file_; }

  private:
    CaptureSource() = default;
    unsigned fill(rte_mbuf *m, const uint8_t *data, uint32_t len, uint64_t ts_us);

    std::unique_ptr<CaptureFile> file_;
    rte_mempool *pool_ = nullptr;
    int ts_offset_ = -1;
    uint64_t ts_flag_ = 0;
    bool done_ = false;
    bool loop_ = false;
    uint64_t packets_ = 0;
    uint64_t pass_packets_ = 0; // packets of the current walk
    uint64_t passes_ = 1;
};

} // namespace millipede::dataplane

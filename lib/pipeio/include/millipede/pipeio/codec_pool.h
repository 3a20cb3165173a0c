// CodecPool: a few threads that compress (tx) or decompress (rx) chunks for
// the `compress` word, between the pipe threads and the session lcore, with
// the results handed back in submission order.
//
// Contract
// - Threads: constructor, start(), stop() and the destructor run on a
//   control thread. ONE owner thread (the session lcore, or a test) calls
//   submit(), poll() and outstanding(); they never block, never allocate,
//   and make a system call only to wake a sleeping worker (one futex wake).
//   Workers are plain threads (not lcores): they sleep, in waits of at most
//   wait_slice_us, when there is nothing to do.
// - Order: job k goes to worker k mod threads, and poll() returns job k
//   only after every job before it, so output order is submission order
//   whatever the workers' speeds.
// - Memory: every codec buffer (ISA-L level-1 hash table, inflate state,
//   one compress scratch buffer of max_chunk_bytes per worker) is
//   allocated by the constructor; nothing after.
// - Ownership: a job's buffers belong to the pool from submit() until
//   poll() returns the job.
// - COMPRESS: `in` holds in_len stream bytes whose CRC32C is in_crc32c. If
//   they shrink, the worker writes the compressed payload (docs/wire.md
//   2.20) over them in place (it compresses into its own scratch buffer,
//   then copies the smaller payload back), and sets out_len to its length
//   and out_crc32c to the payload's CRC32C; otherwise out_len = 0 and `in`
//   is untouched (send raw). The copy-back keeps the payload in the
//   chunk's own (hugepage, DMA-visible) memory, so the segments still
//   reference it with no copy of their own.
// - DECOMPRESS: a job with `compressed` set is inflated into out[0..out_cap)
//   and verified (codec::Decompressor: length bound, stream, CRC32C of the
//   original bytes); status says why not. A job without it passes through
//   (out = in, out_len = in_len), so raw and compressed chunks keep their
//   order.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "millipede/codec/chunk_codec.h"
#include "millipede/pipeio/spsc_queue.h"

namespace millipede::pipeio {

namespace detail {
class Event;
}

enum class CodecKind : uint8_t { COMPRESS, DECOMPRESS };

struct CodecJob {
    uint8_t *in = nullptr;
    uint32_t in_len = 0;
    uint32_t in_crc32c = 0;    // COMPRESS: CRC32C of in[0..in_len)
    bool pass = false;         // COMPRESS: leave it as it is (out_len 0), keeping its place in the order
    bool compressed = false;   // DECOMPRESS: in is a compressed payload
    uint8_t *out = nullptr;    // DECOMPRESS: destination
    uint32_t out_cap = 0;
    uint64_t cookie = 0;       // the owner's
    // results
    const uint8_t *result = nullptr; // DECOMPRESS: the stream bytes (out, or in for a raw chunk)
    uint32_t out_len = 0;      // COMPRESS: payload length, 0 = did not shrink; DECOMPRESS: stream bytes
    uint32_t out_crc32c = 0;   // COMPRESS: CRC32C of the payload
    codec::InflateStatus status = codec::InflateStatus::OK;
};

struct CodecPoolConfig {
    CodecKind kind = CodecKind::COMPRESS;
    uint32_t threads = 1;               // 1..16
    uint32_t max_chunk_bytes = 1u << 20; // 1..2 MiB
    uint32_t depth = 4;                 // jobs queued per worker, 1..1024
    uint32_t wait_slice_us = 50'000;
    std::vector<int> cpus;              // CPUs the workers may run on (empty: inherit)
};

struct CodecPoolStats {
    std::atomic<uint64_t> jobs{0};
    std::atomic<uint64_t> bytes_in{0};  // COMPRESS: stream bytes; DECOMPRESS: payload bytes
    std::atomic<uint64_t> bytes_out{0}; // COMPRESS: payload bytes sent (raw or compressed); DECOMPRESS: stream bytes
    std::atomic<uint64_t> copied{0};    // COMPRESS: payload bytes copied back over their chunk
    std::atomic<uint64_t> raw{0};       // chunks sent / received as they are (did not shrink)
};

class CodecPool {
  public:
    explicit CodecPool(const CodecPoolConfig &cfg); // std::invalid_argument, std::bad_alloc
    ~CodecPool();                                   // stop()
    CodecPool(const CodecPool &) = delete;
    CodecPool &operator=(const CodecPool &) = delete;

    void start();
    void stop(); // bounded; jobs not yet done are abandoned (their buffers are free again)

    // ---- owner thread
    bool submit(const CodecJob &job); // false: capacity() jobs outstanding
    bool poll(CodecJob &out);         // the next job in submission order, when done
    uint32_t outstanding() const { return static_cast<uint32_t>(submitted_ - completed_); }
    uint32_t capacity() const { return cfg_.threads * cfg_.depth; }

    const CodecPoolStats &stats() const { return stats_; }
    const CodecPoolConfig &config() const { return cfg_; }

  private:
    struct Worker;
    void run(Worker &w);

    CodecPoolConfig cfg_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::atomic<bool> stop_{false};
    uint64_t submitted_ = 0; // owner only
    uint64_t completed_ = 0; // owner only
    CodecPoolStats stats_;
};

} // namespace millipede::pipeio

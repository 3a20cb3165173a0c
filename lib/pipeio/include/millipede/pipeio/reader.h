// PipeReader: the stdin thread of tx mode. Reads a file descriptor (stdin,
// or a PRBS generator instead) into fixed-size chunk buffers and hands the
// filled chunks to the data plane through a lock-free SPSC queue.
//
// Contract
// - Threads: the constructor, start(), stop() and the destructor run on a
//   control thread (main). The reader thread is created by start(); it is
//   the only place where read(2)/poll(2) on the fd happen. ONE consumer
//   thread (the data-plane lcore, or a test thread) calls poll(),
//   wait_chunk() and release(); they never block except wait_chunk(), never
//   allocate and make no system call except release() waking a sleeping
//   reader (one futex wake, only when the reader waits for a buffer).
//   Status accessors (state(), stats()) are safe from any thread; message()
//   is stable once state() is DONE or FAILED.
// - Memory: `chunks` buffers of `chunk_bytes` are allocated once by the
//   constructor (or supplied by the caller, e.g. hugepage memory on the
//   NIC's NUMA socket); nothing allocates after. Chunk descriptors live as
//   long as the reader.
// - Ownership: a Chunk returned by poll() belongs to the consumer until it
//   passes it back with release(); its bytes are stable meanwhile.
// - Back-pressure: when every buffer is with the consumer the reader stops
//   reading (it sleeps on a futex, in waits of at most wait_slice_us), so
//   the pipe fills and the upstream writer blocks.
// - Fill policy: a chunk is handed over when full, at end of input, on a
//   read error, or when it holds some bytes and no more arrived within
//   flush_idle_us (so a slow or interactive producer is not held back).
// - Order: chunks arrive in stream order; Chunk::offset is the stream
//   offset of data[0].
// - End: the last chunk has CHUNK_END set (its len may be 0). On a read
//   error it has CHUNK_ERROR and `error` = errno; message() says e.g.
//   "read from fd 0 failed: Input/output error". Nothing follows either.
// - stop() is bounded: it wakes the thread (eventfd in its poll set, futex
//   wake) and joins it; every wait inside is at most wait_slice_us.
//   After stop() the consumer may keep and release chunks it holds.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "millipede/pipeio/prbs.h"
#include "millipede/pipeio/spsc_queue.h"

namespace millipede::pipeio {

namespace detail {
class Event;
}

inline constexpr uint32_t CHUNK_END = 1u << 0;   // no more data after this chunk
inline constexpr uint32_t CHUNK_ERROR = 1u << 1; // input failed; see error / message()

struct Chunk {
    uint8_t *data = nullptr; // capacity: ReaderConfig::chunk_bytes
    uint32_t len = 0;        // valid bytes at data
    uint32_t flags = 0;      // CHUNK_END, CHUNK_ERROR
    int error = 0;           // errno when CHUNK_ERROR
    uint32_t index = 0;      // position in the pool, 0..chunks-1
    uint64_t offset = 0;     // stream offset of data[0]
    uint64_t sums[2] = {};   // ReaderConfig::on_piece's results (0 when the chunk is taken for refilling)
};

// Called on the reader thread for each piece read into `c` (at c.data +
// c.len, before c.len counts it), while those bytes are still in the
// core's cache: per-byte work such as CRCs costs a fraction of what it
// costs the consumer later, and leaves the consumer's lcore.
using PieceHook = void (*)(void *ctx, Chunk &c, const uint8_t *p, size_t n);

enum class ReaderSource : uint8_t {
    FD,   // read(2) from ReaderConfig::fd
    PRBS, // generate the PRBS stream (prbs.h) of prbs_bytes bytes
};

struct ReaderConfig {
    ReaderSource source = ReaderSource::FD;
    int fd = 0;                          // not closed by the reader
    uint32_t chunk_bytes = 1u << 20;     // 1 .. 1 GiB
    uint32_t chunks = 16;                // pool size, >= 1
    long pipe_size = 0;                  // fd is a pipe: 0 = pipe-max-size, >0 = this, <0 = leave it
    uint32_t flush_idle_us = 2000;       // hand over a partial chunk after this much silence
    uint32_t wait_slice_us = 50'000;     // longest single wait (stop latency if a wake is missed)
    uint64_t prbs_seed = 0;
    uint64_t prbs_bytes = UINT64_MAX;    // PRBS: stream length (UINT64_MAX: endless)
    uint8_t *memory = nullptr;           // optional: chunks x chunk_bytes supplied by the caller
    // Bytes left free at the end of every chunk buffer (key FILE seals each
    // chunk in place and appends its 16-byte tag): a chunk holds at most
    // chunk_bytes - tail_room bytes of input. < chunk_bytes.
    uint32_t tail_room = 0;
    PieceHook on_piece = nullptr;        // optional, see PieceHook
    void *on_piece_ctx = nullptr;
    // Largest single read(2) when on_piece is set: the piece must still be
    // in L2 when the hook reads it.
    uint32_t piece_bytes = 256u << 10;
    // CPUs the thread may run on (empty: inherit the creator's). A thread
    // created by a pinned lcore would otherwise share that lcore's CPU.
    std::vector<int> cpus;
};

enum class ReaderState : uint8_t { IDLE, RUNNING, DONE, FAILED, STOPPED };

struct ReaderStats {
    std::atomic<uint64_t> bytes{0};         // handed to the consumer
    std::atomic<uint64_t> chunks{0};
    std::atomic<uint64_t> reads{0};         // read(2) calls that returned data
    std::atomic<uint64_t> partial_flushes{0}; // chunks handed over before full (idle)
    std::atomic<uint64_t> pool_waits{0};    // times the reader slept for a free buffer
};

class PipeReader {
  public:
    // Validates the config (std::invalid_argument), allocates the pool,
    // enlarges the pipe. Throws std::system_error if the eventfd fails.
    explicit PipeReader(const ReaderConfig &cfg);
    ~PipeReader(); // stop()
    PipeReader(const PipeReader &) = delete;
    PipeReader &operator=(const PipeReader &) = delete;

    void start(); // spawns the reader thread (once)
    void stop();  // bounded; idempotent

    // ---- consumer thread
    Chunk *poll();                          // next filled chunk, or nullptr
    Chunk *wait_chunk(uint64_t timeout_us); // poll() with a bounded sleep (not for lcores)
    void release(Chunk *c);                 // give the buffer back to the reader

    // ---- status
    ReaderState state() const { return state_.load(std::memory_order_acquire); }
    const char *message() const { return message_; }
    const ReaderStats &stats() const { return stats_; }
    long pipe_size() const { return pipe_size_; } // capacity after enlarge_pipe(); -1: not a pipe
    uint32_t chunk_bytes() const { return cfg_.chunk_bytes; }
    uint32_t fill_bytes() const { return cfg_.chunk_bytes - cfg_.tail_room; } // input bytes per chunk at most
    uint32_t chunk_count() const { return cfg_.chunks; }

  private:
    void run();
    Chunk *take_free();
    void publish(Chunk *c);
    bool read_into(Chunk *c);      // FD source; false: stop reading
    bool generate_into(Chunk *c);  // PRBS source
    void finish(ReaderState s);

    ReaderConfig cfg_;
    std::unique_ptr<uint8_t[], void (*)(void *)> owned_{nullptr, nullptr};
    std::unique_ptr<Chunk[]> descs_;
    SpscQueue<Chunk *> filled_; // reader -> consumer
    SpscQueue<Chunk *> free_;   // consumer -> reader
    std::unique_ptr<detail::Event> free_event_;   // reader sleeps here
    std::unique_ptr<detail::Event> filled_event_; // wait_chunk() sleeps here
    std::atomic<bool> stop_{false};
    std::atomic<ReaderState> state_{ReaderState::IDLE};
    int stop_fd_ = -1;
    long pipe_size_ = -1;
    uint64_t offset_ = 0;
    uint64_t prbs_left_ = 0;
    std::unique_ptr<PrbsGenerator> prbs_;
    std::thread thread_;
    ReaderStats stats_;
    char message_[256] = "idle";
};

} // namespace millipede::pipeio

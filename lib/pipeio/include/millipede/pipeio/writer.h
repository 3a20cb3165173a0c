// PipeWriter: the stdout thread of rx mode. Takes in-order byte spans from
// the data plane through a lock-free SPSC queue, writes them with writev(2)
// (or verifies them against the PRBS stream instead), and returns each span
// to its owner through a second SPSC queue once it is written.
//
// Contract
// - Threads: the constructor, start(), stop() and the destructor run on a
//   control thread (main). The writer thread, created by start(), is the only
//   place where write(2)/writev(2)/poll(2) on the fd happen. ONE owner thread
//   (the data-plane lcore, or a test thread) calls submit(), submit_end(),
//   poll_done(), wait_done() and outstanding(); none of them blocks except
//   wait_done(), none allocates, and the only system call is submit() waking
//   a sleeping writer (one futex wake, only when it sleeps). state() and
//   stats() are safe from any thread; message() is stable once state() is
//   DONE or FAILED.
// - Ownership: the bytes of a submitted span must stay valid and unchanged
//   until poll_done() returns its Completion (same order as submitted). The
//   cookie is the owner's handle (a chunk pointer, a sequence number).
// - Bounded: at most queue_depth spans are outstanding (submitted, not yet
//   returned by poll_done()); submit() returns false beyond that. The
//   completion queue therefore never overflows, whatever the owner does.
// - Writes: partial writes resume where they stopped, EINTR retries, EAGAIN
//   (a non-blocking stdout) waits for POLLOUT. On a pipe the writes are
//   RWF_NOWAIT (no O_NONBLOCK on the shared file description), so the thread
//   never sleeps inside write(2) and stop() stays bounded even when the
//   downstream stops reading; elsewhere (files, ttys) writev(2) blocks.
//   SIGPIPE is blocked in the writer thread and the pending one consumed, so
//   a closed reader gives EPIPE, state FAILED and the message
//   "stdout closed by the reader (EPIPE)" instead of killing the process.
// - Errors: after a failure nothing more is written; every span still
//   queued, and every later one, is returned with written = false.
// - End: submit_end() after the last span; when everything before it is
//   written the state becomes DONE. Spans submitted after it come back
//   unwritten.
// - stop() is bounded (eventfd in the poll set, futex wake, waits of at
//   most wait_slice_us). It abandons whatever is not written yet: every span
//   submitted before stop() still gets its Completion (written = false for
//   the abandoned ones), and after stop() returns the writer touches no
//   submitted buffer. Do not submit after stop().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <sys/uio.h>

#include "millipede/pipeio/prbs.h"
#include "millipede/pipeio/spsc_queue.h"

namespace millipede::pipeio {

namespace detail {
class Event;
}

enum class WriterSink : uint8_t {
    FD,          // writev(2) to WriterConfig::fd
    PRBS_VERIFY, // compare with the PRBS stream of prbs_seed; fail on the first bad byte
};

struct WriterConfig {
    WriterSink sink = WriterSink::FD;
    int fd = 1;                      // not closed by the writer
    const char *name = "stdout";     // in messages
    uint32_t queue_depth = 64;       // outstanding spans, 1..65536
    uint32_t max_iov = 64;           // spans gathered per writev, 1..1024
    long pipe_size = 0;              // fd is a pipe: 0 = pipe-max-size, >0 = this, <0 = leave it
    uint32_t wait_slice_us = 50'000; // longest single wait
    uint64_t prbs_seed = 0;
    // CPUs the thread may run on (empty: inherit the creator's). A thread
    // created by a pinned lcore would otherwise share that lcore's CPU.
    std::vector<int> cpus;
};

struct Completion {
    uint64_t cookie = 0;
    uint32_t len = 0;
    bool written = false; // all len bytes written (or verified)
    bool end = false;     // the submit_end() marker
};

enum class WriterState : uint8_t { IDLE, RUNNING, DONE, FAILED, STOPPED };

struct WriterStats {
    std::atomic<uint64_t> bytes{0};          // written (or verified)
    std::atomic<uint64_t> spans{0};
    std::atomic<uint64_t> writes{0};         // writev calls that wrote something
    std::atomic<uint64_t> partial_writes{0}; // writev calls that wrote less than asked
    std::atomic<uint64_t> full_waits{0};     // waits for the downstream to read (pipe full)
};

class PipeWriter {
  public:
    explicit PipeWriter(const WriterConfig &cfg); // std::invalid_argument, std::system_error
    ~PipeWriter();                                // stop()
    PipeWriter(const PipeWriter &) = delete;
    PipeWriter &operator=(const PipeWriter &) = delete;

    void start();
    void stop();

    // ---- owner thread
    bool submit(const uint8_t *p, uint32_t len, uint64_t cookie); // false: queue_depth outstanding
    bool submit_end(uint64_t cookie = 0);
    bool poll_done(Completion &out);
    bool wait_done(Completion &out, uint64_t timeout_us); // not for lcores
    uint32_t outstanding() const { return static_cast<uint32_t>(submitted_ - completed_); }

    // ---- status
    WriterState state() const { return state_.load(std::memory_order_acquire); }
    const char *message() const { return message_; }
    int error() const { return error_; } // errno of the failure, 0 otherwise
    const WriterStats &stats() const { return stats_; }
    long pipe_size() const { return pipe_size_; }

  private:
    struct Item {
        const uint8_t *data;
        uint32_t len;
        bool end;
        uint64_t cookie;
    };
    bool push_item(const Item &it);
    void run();
    size_t write_fd(const Item *items, size_t n, bool &stopped);
    size_t verify(const Item *items, size_t n);
    void fail(int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    void complete(const Item &it, bool written);
    bool wait_writable();

    WriterConfig cfg_;
    SpscQueue<Item> sub_;        // owner -> writer
    SpscQueue<Completion> done_; // writer -> owner
    std::unique_ptr<detail::Event> sub_event_;  // writer sleeps here
    std::unique_ptr<detail::Event> done_event_; // wait_done() sleeps here
    std::unique_ptr<Item[]> batch_;
    std::unique_ptr<iovec[]> iov_;
    PrbsVerifier verifier_;
    std::atomic<bool> stop_{false};
    std::atomic<WriterState> state_{WriterState::IDLE};
    bool nowait_ = false; // RWF_NOWAIT writes (pipes)
    bool ended_ = false;  // writer thread: END seen or failed
    int error_ = 0;
    int stop_fd_ = -1;
    long pipe_size_ = -1;
    uint64_t submitted_ = 0; // owner thread only
    uint64_t completed_ = 0; // owner thread only
    std::thread thread_;
    WriterStats stats_;
    char message_[256] = "idle";
};

} // namespace millipede::pipeio

// PipeReader: the chunk pool, the reader thread's loop, and its waits.
#include "millipede/pipeio/reader.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event.h"
#include "millipede/pipeio/pipe_fd.h"

namespace millipede::pipeio {

PipeReader::PipeReader(const ReaderConfig &cfg)
    : cfg_(cfg), filled_(cfg.chunks ? cfg.chunks : 1), free_(cfg.chunks ? cfg.chunks : 1),
      free_event_(std::make_unique<detail::Event>()), filled_event_(std::make_unique<detail::Event>()) {
    if (cfg.chunk_bytes == 0 || cfg.chunk_bytes > (1u << 30))
        throw std::invalid_argument("pipe reader: chunk_bytes must be 1..1073741824");
    if (cfg.tail_room >= cfg.chunk_bytes) throw std::invalid_argument("pipe reader: tail_room must be below chunk_bytes");
    if (cfg.chunks == 0 || cfg.chunks > 65536) throw std::invalid_argument("pipe reader: chunks must be 1..65536");
    if (cfg.wait_slice_us == 0) throw std::invalid_argument("pipe reader: wait_slice_us must be > 0");
    if (cfg.on_piece && cfg.piece_bytes == 0) throw std::invalid_argument("pipe reader: piece_bytes must be > 0");
    if (cfg.source == ReaderSource::FD && cfg.fd < 0) throw std::invalid_argument("pipe reader: fd must be >= 0");

    const size_t total = static_cast<size_t>(cfg.chunks) * cfg.chunk_bytes;
    uint8_t *mem = cfg.memory;
    if (!mem) {
        // Page-aligned so a later adapter can register or DMA-map the pool.
        const size_t rounded = (total + 4095) & ~size_t(4095);
        mem = static_cast<uint8_t *>(std::aligned_alloc(4096, rounded));
        if (!mem) throw std::bad_alloc();
        owned_ = {mem, std::free};
    }
    descs_ = std::make_unique<Chunk[]>(cfg.chunks);
    for (uint32_t i = 0; i < cfg.chunks; i++) {
        descs_[i].data = mem + static_cast<size_t>(i) * cfg.chunk_bytes;
        descs_[i].index = i;
        free_.try_push(&descs_[i]); // cannot fail: capacity >= chunks
    }
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "pipe reader: eventfd");
    if (cfg.source == ReaderSource::FD) {
        if (cfg.pipe_size >= 0) pipe_size_ = enlarge_pipe(cfg.fd, cfg.pipe_size);
        else pipe_size_ = fd_is_pipe(cfg.fd) ? enlarge_pipe(cfg.fd, 1) : -1;
    } else {
        prbs_ = std::make_unique<PrbsGenerator>(cfg.prbs_seed);
        prbs_left_ = cfg.prbs_bytes;
    }
}

PipeReader::~PipeReader() {
    stop();
    if (stop_fd_ >= 0) close(stop_fd_);
}

void PipeReader::start() {
    if (thread_.joinable() || state() != ReaderState::IDLE) return;
    std::snprintf(message_, sizeof message_, "running");
    state_.store(ReaderState::RUNNING, std::memory_order_release);
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "mp-stdin"); // for top -H and perf
        detail::set_thread_cpus(cfg_.cpus);
        run();
    });
}

void PipeReader::stop() {
    stop_.store(true, std::memory_order_seq_cst);
    const uint64_t one = 1;
    if (stop_fd_ >= 0) (void)!write(stop_fd_, &one, sizeof one);
    free_event_->notify();
    if (thread_.joinable()) thread_.join();
    ReaderState s = ReaderState::RUNNING;
    if (state_.compare_exchange_strong(s, ReaderState::STOPPED)) std::snprintf(message_, sizeof message_, "stopped");
}

Chunk *PipeReader::poll() {
    Chunk *c = nullptr;
    return filled_.try_pop(c) ? c : nullptr;
}

Chunk *PipeReader::wait_chunk(uint64_t timeout_us) {
    Chunk *c = poll();
    if (c || timeout_us == 0) return c;
    const uint32_t key = filled_event_->prepare();
    c = poll();
    if (c) {
        filled_event_->cancel();
        return c;
    }
    filled_event_->wait(key, timeout_us);
    return poll();
}

void PipeReader::release(Chunk *c) {
    c->len = 0;
    c->flags = 0;
    c->error = 0;
    c->sums[0] = c->sums[1] = 0;
    free_.try_push(c); // cannot fail: at most `chunks` descriptors exist
    free_event_->notify();
}

// Reader thread: a free buffer, waiting (bounded) while the consumer holds all.
Chunk *PipeReader::take_free() {
    Chunk *c = nullptr;
    bool counted = false;
    while (!stop_.load(std::memory_order_acquire)) {
        if (free_.try_pop(c)) return c;
        const uint32_t key = free_event_->prepare();
        if (free_.try_pop(c) || stop_.load(std::memory_order_acquire)) {
            free_event_->cancel();
            return c;
        }
        if (!counted) {
            stats_.pool_waits.fetch_add(1, std::memory_order_relaxed);
            counted = true;
        }
        free_event_->wait(key, cfg_.wait_slice_us);
    }
    return nullptr;
}

void PipeReader::publish(Chunk *c) {
    c->offset = offset_;
    offset_ += c->len;
    stats_.bytes.fetch_add(c->len, std::memory_order_relaxed);
    stats_.chunks.fetch_add(1, std::memory_order_relaxed);
    filled_.try_push(c); // cannot fail: capacity >= chunks
    filled_event_->notify();
}

void PipeReader::finish(ReaderState s) { state_.store(s, std::memory_order_release); }

// FD source: fills `c` from the fd. Returns false when reading is over
// (end, error or stop); `c` has then been published or must be dropped.
bool PipeReader::read_into(Chunk *c) {
    pollfd pfd[2] = {{cfg_.fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    while (true) {
        if (stop_.load(std::memory_order_acquire)) {
            // Bytes already read are handed over; an empty buffer simply
            // stays out of the pool (only the consumer may push to free_).
            if (c->len > 0) publish(c);
            return false;
        }
        // Partially filled: wait at most flush_idle_us for more, then hand it over.
        const uint64_t wait_us = c->len > 0 ? cfg_.flush_idle_us : cfg_.wait_slice_us;
        const int r = ::poll(pfd, 2, static_cast<int>((wait_us + 999) / 1000));
        if (r < 0 && errno != EINTR) {
            const int e = errno;
            std::snprintf(message_, sizeof message_, "poll on fd %d failed: %s", cfg_.fd, std::strerror(e));
            c->flags |= CHUNK_END | CHUNK_ERROR;
            c->error = e;
            finish(ReaderState::FAILED); // state first: whoever sees the last chunk sees it
            publish(c);
            return false;
        }
        if (r <= 0) {
            if (c->len > 0) {
                stats_.partial_flushes.fetch_add(1, std::memory_order_relaxed);
                publish(c);
                return true;
            }
            continue;
        }
        if (pfd[1].revents) continue; // stop: handled at the top
        size_t want = fill_bytes() - c->len;
        if (cfg_.on_piece && want > cfg_.piece_bytes) want = cfg_.piece_bytes;
        const ssize_t n = ::read(cfg_.fd, c->data + c->len, want);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            const int e = errno;
            std::snprintf(message_, sizeof message_, "read from fd %d failed: %s", cfg_.fd, std::strerror(e));
            c->flags |= CHUNK_END | CHUNK_ERROR;
            c->error = e;
            finish(ReaderState::FAILED); // state first: whoever sees the last chunk sees it
            publish(c);
            return false;
        }
        if (n == 0) {
            std::snprintf(message_, sizeof message_, "end of input after %llu bytes",
                          static_cast<unsigned long long>(offset_ + c->len));
            c->flags |= CHUNK_END;
            finish(ReaderState::DONE); // state first: whoever sees the last chunk sees it
            publish(c);
            return false;
        }
        stats_.reads.fetch_add(1, std::memory_order_relaxed);
        if (cfg_.on_piece) cfg_.on_piece(cfg_.on_piece_ctx, *c, c->data + c->len, static_cast<size_t>(n));
        c->len += static_cast<uint32_t>(n);
        if (c->len == fill_bytes()) {
            publish(c);
            return true;
        }
        if (cfg_.flush_idle_us == 0) {
            stats_.partial_flushes.fetch_add(1, std::memory_order_relaxed);
            publish(c);
            return true;
        }
    }
}

bool PipeReader::generate_into(Chunk *c) {
    const uint64_t n = prbs_left_ < fill_bytes() ? prbs_left_ : fill_bytes();
    prbs_->fill(c->data, n);
    if (cfg_.on_piece) cfg_.on_piece(cfg_.on_piece_ctx, *c, c->data, static_cast<size_t>(n));
    c->len = static_cast<uint32_t>(n);
    if (prbs_left_ != UINT64_MAX) prbs_left_ -= n;
    if (prbs_left_ == 0) {
        std::snprintf(message_, sizeof message_, "end of PRBS stream after %llu bytes",
                      static_cast<unsigned long long>(offset_ + n));
        c->flags |= CHUNK_END;
        finish(ReaderState::DONE);
        publish(c);
        return false;
    }
    publish(c);
    return true;
}

void PipeReader::run() {
    while (true) {
        Chunk *c = take_free();
        if (!c) break; // stop
        c->offset = offset_; // (on_piece may want it while the chunk fills)
        const bool more = cfg_.source == ReaderSource::PRBS ? generate_into(c) : read_into(c);
        if (!more) break;
    }
}

} // namespace millipede::pipeio

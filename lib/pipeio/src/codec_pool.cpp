// CodecPool: per-worker SPSC queues in and out, round-robin by job number.
#include "millipede/pipeio/codec_pool.h"

#include <cstring>
#include <stdexcept>

#include <pthread.h>

#include "event.h"
#include "millipede/pipeio/pipe_fd.h"
#include "millipede/stripe/wire.h"

namespace millipede::pipeio {

struct CodecPool::Worker {
    Worker(const CodecPoolConfig &cfg) : in(cfg.depth), out(cfg.depth) {
        if (cfg.kind == CodecKind::COMPRESS) {
            comp = std::make_unique<codec::Compressor>(cfg.max_chunk_bytes);
            scratch.reset(new uint8_t[cfg.max_chunk_bytes]);
        } else {
            decomp = std::make_unique<codec::Decompressor>(cfg.max_chunk_bytes);
        }
    }
    SpscQueue<CodecJob> in;  // owner -> worker
    SpscQueue<CodecJob> out; // worker -> owner
    detail::Event wake;      // the worker sleeps here
    std::unique_ptr<codec::Compressor> comp;
    std::unique_ptr<codec::Decompressor> decomp;
    std::unique_ptr<uint8_t[]> scratch;
    std::thread thread;
};

CodecPool::CodecPool(const CodecPoolConfig &cfg) : cfg_(cfg) {
    if (cfg.threads == 0 || cfg.threads > 16) throw std::invalid_argument("codec pool: threads must be 1..16");
    if (cfg.max_chunk_bytes == 0 || cfg.max_chunk_bytes > stripe::kMaxChunkBytes)
        throw std::invalid_argument("codec pool: max_chunk_bytes must be 1..2097152");
    if (cfg.depth == 0 || cfg.depth > 1024) throw std::invalid_argument("codec pool: depth must be 1..1024");
    if (cfg.wait_slice_us == 0) throw std::invalid_argument("codec pool: wait_slice_us must be > 0");
    for (uint32_t i = 0; i < cfg.threads; i++) workers_.push_back(std::make_unique<Worker>(cfg));
}

CodecPool::~CodecPool() { stop(); }

void CodecPool::start() {
    for (auto &w : workers_) {
        if (w->thread.joinable()) continue;
        Worker *wp = w.get();
        w->thread = std::thread([this, wp] {
            pthread_setname_np(pthread_self(), cfg_.kind == CodecKind::COMPRESS ? "mp-deflate" : "mp-inflate");
            detail::set_thread_cpus(cfg_.cpus);
            run(*wp);
        });
    }
}

void CodecPool::stop() {
    stop_.store(true, std::memory_order_seq_cst);
    for (auto &w : workers_) w->wake.notify();
    for (auto &w : workers_)
        if (w->thread.joinable()) w->thread.join();
}

bool CodecPool::submit(const CodecJob &job) {
    // Round robin and in-order completion: below threads x depth jobs in
    // total, no worker holds more than depth (in + out), so neither of its
    // queues can overflow.
    if (submitted_ - completed_ >= capacity()) return false;
    Worker &w = *workers_[submitted_ % workers_.size()];
    if (!w.in.try_push(job)) return false;
    submitted_++;
    w.wake.notify();
    return true;
}

bool CodecPool::poll(CodecJob &out) {
    if (completed_ == submitted_) return false;
    Worker &w = *workers_[completed_ % workers_.size()];
    if (!w.out.try_pop(out)) return false;
    completed_++;
    return true;
}

void CodecPool::run(Worker &w) {
    CodecJob j;
    while (!stop_.load(std::memory_order_acquire)) {
        if (!w.in.try_pop(j)) {
            const uint32_t key = w.wake.prepare();
            if (!w.in.empty_approx() || stop_.load(std::memory_order_acquire)) {
                w.wake.cancel();
                continue;
            }
            w.wake.wait(key, cfg_.wait_slice_us);
            continue;
        }
        if (cfg_.kind == CodecKind::COMPRESS) {
            j.out_len = j.pass ? 0 : w.comp->compress(j.in, j.in_len, j.in_crc32c, w.scratch.get(), cfg_.max_chunk_bytes);
            if (j.out_len) {
                // CRC of the payload while it is hot, then back into the
                // chunk's own memory (it is shorter than what it replaces).
                j.out_crc32c = stripe::crc32c(w.scratch.get(), j.out_len);
                std::memcpy(j.in, w.scratch.get(), j.out_len);
                stats_.copied.fetch_add(j.out_len, std::memory_order_relaxed);
                stats_.bytes_out.fetch_add(j.out_len, std::memory_order_relaxed);
            } else {
                stats_.raw.fetch_add(1, std::memory_order_relaxed);
                stats_.bytes_out.fetch_add(j.in_len, std::memory_order_relaxed);
            }
        } else if (j.compressed) {
            uint32_t n = 0;
            j.status = w.decomp->decompress(j.in, j.in_len, j.out, j.out_cap, n);
            j.out_len = n;
            j.result = j.out;
            stats_.bytes_out.fetch_add(n, std::memory_order_relaxed);
        } else {
            j.status = codec::InflateStatus::OK; // a raw chunk: its wire CRC32C already verified it
            j.out_len = j.in_len;
            j.result = j.in;
            stats_.raw.fetch_add(1, std::memory_order_relaxed);
            stats_.bytes_out.fetch_add(j.in_len, std::memory_order_relaxed);
        }
        stats_.jobs.fetch_add(1, std::memory_order_relaxed);
        stats_.bytes_in.fetch_add(j.in_len, std::memory_order_relaxed);
        w.out.try_push(j); // cannot fail: submit() keeps at most depth jobs per worker
    }
}

} // namespace millipede::pipeio

// Shared helpers for the pipeio tests: pipes, drains, a reader->writer glue.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "millipede/pipeio/reader.h"
#include "millipede/pipeio/writer.h"

namespace pio_test {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Pipe {
    int rd = -1, wr = -1;
    Pipe() {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) ADD_FAILURE() << "pipe2 failed";
        rd = fds[0];
        wr = fds[1];
    }
    ~Pipe() {
        close_rd();
        close_wr();
    }
    void close_rd() {
        if (rd >= 0) close(rd);
        rd = -1;
    }
    void close_wr() {
        if (wr >= 0) close(wr);
        wr = -1;
    }
};

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937_64 rng(seed);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = rng();
        std::memcpy(&v[i], &w, 8);
    }
    for (; i < n; i++) v[i] = static_cast<uint8_t>(rng());
    return v;
}

// Writes `data` into fd (blocking) in pieces of `piece`, then closes fd.
inline std::thread feed(int fd, const std::vector<uint8_t> &data, size_t piece = 100'000) {
    return std::thread([fd, &data, piece] {
        size_t off = 0;
        while (off < data.size()) {
            ssize_t w = write(fd, data.data() + off, std::min(piece, data.size() - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                break;
            }
            off += static_cast<size_t>(w);
        }
        close(fd);
    });
}

// Reads fd to EOF into `out`.
inline std::thread drain(int fd, std::vector<uint8_t> &out, size_t piece = 1 << 16) {
    return std::thread([fd, &out, piece] {
        std::vector<uint8_t> buf(piece);
        while (true) {
            ssize_t r = read(fd, buf.data(), buf.size());
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            out.insert(out.end(), buf.begin(), buf.begin() + r);
        }
    });
}

// The data-plane stand-in: chunks from the reader go to the writer; each
// chunk returns to the reader when the writer reports it done. Ends when the
// writer returns the end marker. Returns false on timeout.
inline bool glue(millipede::pipeio::PipeReader &r, millipede::pipeio::PipeWriter &w, double timeout_ms = 60'000,
                 void (*tamper)(millipede::pipeio::Chunk *) = nullptr) {
    using namespace millipede::pipeio;
    const auto t0 = Clock::now();
    Chunk *pending = nullptr; // popped, not yet accepted by the writer
    bool need_end = false, end_sent = false, finished = false;
    auto handle = [&](const Completion &c) {
        if (c.end) finished = true;
        else r.release(reinterpret_cast<Chunk *>(c.cookie));
    };
    while (!finished && ms_since(t0) < timeout_ms) {
        Completion c;
        while (w.poll_done(c)) handle(c);
        if (finished) break;
        bool progress = false;
        if (!pending && !need_end && !end_sent) {
            pending = r.wait_chunk(1000);
            if (pending && tamper) tamper(pending);
        }
        if (pending) {
            if (w.submit(pending->data, pending->len, reinterpret_cast<uint64_t>(pending))) {
                need_end = (pending->flags & CHUNK_END) != 0;
                pending = nullptr;
                progress = true;
            }
        }
        if (need_end && w.submit_end(0)) {
            need_end = false;
            end_sent = true;
            progress = true;
        }
        if (!progress && w.wait_done(c, 1000)) handle(c);
    }
    return finished;
}

} // namespace pio_test

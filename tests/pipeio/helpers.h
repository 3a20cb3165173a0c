// Shared helpers for the pipeio tests: pipes, drains, a reader->writer glue.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "millipede/pipeio/reader.h"
#include "millipede/pipeio/writer.h"

namespace pio_test {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Polls `done` until it returns true or `timeout_ms` pass; returns done().
// The deadline is generous on purpose: it bounds a hang, it does not measure
// speed (a loaded 2-core machine may take seconds for what takes micros).
template <class F> bool wait_until(F done, double timeout_ms = 20'000) {
    const auto t0 = Clock::now();
    while (!done()) {
        if (ms_since(t0) > timeout_ms) return done();
        std::this_thread::sleep_for(std::chrono::milliseconds(1)); // poll interval, not a synchronisation
    }
    return true;
}

// What the kernel says about one thread of this process.
struct TaskState {
    pid_t tid = 0;
    char state = '?';               // R running, S sleeping in a wait, D, T, ...
    uint64_t voluntary_switches = 0; // times it went to sleep of its own accord
};

inline std::vector<TaskState> other_threads() {
    std::vector<TaskState> out;
    const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
    DIR *d = opendir("/proc/self/task");
    if (!d) return out;
    while (dirent *e = readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        TaskState t;
        t.tid = static_cast<pid_t>(std::stol(e->d_name));
        if (t.tid == self) continue;
        const std::string dir = std::string("/proc/self/task/") + e->d_name;
        std::ifstream stat(dir + "/stat");
        std::string line;
        if (!std::getline(stat, line)) continue; // the thread ended meanwhile
        const size_t paren = line.rfind(')');    // the name may hold spaces and parentheses
        if (paren == std::string::npos || paren + 2 >= line.size()) continue;
        t.state = line[paren + 2];
        std::ifstream status(dir + "/status");
        while (std::getline(status, line))
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0) t.voluntary_switches = std::stoull(line.substr(24));
        out.push_back(t);
    }
    closedir(d);
    return out;
}

// Waits until every other thread of the process is asleep in a wait of its
// own (state S, and still the same sleep a millisecond later), each having
// gone to sleep at least `wakeups` more times than when this was called.
// This is how a test knows that a worker thread has reached its blocking
// wait (poll, futex), or has woken from a timed wait and gone back to it,
// without guessing a sleep long enough for that.
inline bool wait_others_asleep(unsigned wakeups = 0, double timeout_ms = 20'000) {
    std::vector<TaskState> base = other_threads();
    auto baseline = [&](pid_t tid) {
        for (const auto &b : base)
            if (b.tid == tid) return b.voluntary_switches;
        return uint64_t(0);
    };
    std::vector<TaskState> prev;
    return wait_until(
        [&] {
            std::vector<TaskState> now = other_threads();
            bool settled = !now.empty() && now.size() == prev.size();
            for (size_t i = 0; settled && i < now.size(); i++) {
                settled = now[i].state == 'S' && prev[i].tid == now[i].tid && prev[i].state == 'S' &&
                          prev[i].voluntary_switches == now[i].voluntary_switches &&
                          now[i].voluntary_switches >= baseline(now[i].tid) + wakeups;
            }
            prev = std::move(now);
            return settled;
        },
        timeout_ms);
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

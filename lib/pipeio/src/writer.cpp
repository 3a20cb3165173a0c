// PipeWriter: the writer thread's loop, gathered writes, EPIPE and waits.
#include "millipede/pipeio/writer.h"

#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event.h"
#include "millipede/pipeio/pipe_fd.h"

namespace millipede::pipeio {

PipeWriter::PipeWriter(const WriterConfig &cfg)
    : cfg_(cfg), sub_(cfg.queue_depth ? cfg.queue_depth : 1), done_(cfg.queue_depth ? cfg.queue_depth : 1),
      sub_event_(std::make_unique<detail::Event>()), done_event_(std::make_unique<detail::Event>()),
      verifier_(cfg.prbs_seed) {
    if (cfg.queue_depth == 0 || cfg.queue_depth > 65536)
        throw std::invalid_argument("pipe writer: queue_depth must be 1..65536");
    if (cfg.max_iov == 0 || cfg.max_iov > 1024) throw std::invalid_argument("pipe writer: max_iov must be 1..1024");
    if (cfg.wait_slice_us == 0) throw std::invalid_argument("pipe writer: wait_slice_us must be > 0");
    if (cfg.sink == WriterSink::FD && cfg.fd < 0) throw std::invalid_argument("pipe writer: fd must be >= 0");
    if (!cfg_.name) cfg_.name = "output";
    batch_ = std::make_unique<Item[]>(cfg.max_iov);
    iov_ = std::make_unique<iovec[]>(cfg.max_iov);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "pipe writer: eventfd");
    if (cfg.sink == WriterSink::FD) {
        const bool is_pipe = fd_is_pipe(cfg.fd);
        if (is_pipe) pipe_size_ = enlarge_pipe(cfg.fd, cfg.pipe_size >= 0 ? cfg.pipe_size : 1);
        // RWF_NOWAIT only where poll(POLLOUT) is meaningful: on a regular file
        // it could return EAGAIN while poll says writable, and spin.
        nowait_ = is_pipe;
    }
}

PipeWriter::~PipeWriter() {
    stop();
    if (stop_fd_ >= 0) close(stop_fd_);
}

void PipeWriter::start() {
    if (thread_.joinable() || state() != WriterState::IDLE) return;
    std::snprintf(message_, sizeof message_, "running");
    state_.store(WriterState::RUNNING, std::memory_order_release);
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "mp-stdout"); // for top -H and perf
        detail::set_thread_cpus(cfg_.cpus);
        run();
    });
}

void PipeWriter::stop() {
    stop_.store(true, std::memory_order_seq_cst);
    const uint64_t one = 1;
    if (stop_fd_ >= 0) (void)!write(stop_fd_, &one, sizeof one);
    sub_event_->notify();
    if (thread_.joinable()) thread_.join();
    WriterState s = WriterState::RUNNING;
    if (state_.compare_exchange_strong(s, WriterState::STOPPED)) std::snprintf(message_, sizeof message_, "stopped");
}

bool PipeWriter::push_item(const Item &it) {
    if (submitted_ - completed_ >= cfg_.queue_depth) return false;
    if (!sub_.try_push(it)) return false; // cannot happen: capacity >= queue_depth
    submitted_++;
    sub_event_->notify();
    return true;
}

bool PipeWriter::submit(const uint8_t *p, uint32_t len, uint64_t cookie) {
    return push_item(Item{p, len, false, cookie});
}

bool PipeWriter::submit_end(uint64_t cookie) { return push_item(Item{nullptr, 0, true, cookie}); }

bool PipeWriter::poll_done(Completion &out) {
    if (!done_.try_pop(out)) return false;
    completed_++;
    return true;
}

bool PipeWriter::wait_done(Completion &out, uint64_t timeout_us) {
    if (poll_done(out)) return true;
    if (timeout_us == 0) return false;
    const uint32_t key = done_event_->prepare();
    if (poll_done(out)) {
        done_event_->cancel();
        return true;
    }
    done_event_->wait(key, timeout_us);
    return poll_done(out);
}

void PipeWriter::fail(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(message_, sizeof message_, fmt, ap);
    va_end(ap);
    error_ = err;
    ended_ = true;
    state_.store(WriterState::FAILED, std::memory_order_release);
}

void PipeWriter::complete(const Item &it, bool written) {
    done_.try_push(Completion{it.cookie, it.len, written, it.end}); // cannot fail: bounded by queue_depth
    done_event_->notify();
}

// Waits (bounded) until the fd accepts bytes. False when stop was requested.
bool PipeWriter::wait_writable() {
    pollfd pfd[2] = {{cfg_.fd, POLLOUT, 0}, {stop_fd_, POLLIN, 0}};
    stats_.full_waits.fetch_add(1, std::memory_order_relaxed);
    while (!stop_.load(std::memory_order_acquire)) {
        const int r = ::poll(pfd, 2, static_cast<int>((cfg_.wait_slice_us + 999) / 1000));
        if (r > 0 && pfd[1].revents == 0) return true; // writable, or an error the write reports
    }
    return false;
}

// Writes the spans of items[0..n); returns how many were written whole.
size_t PipeWriter::write_fd(const Item *items, size_t n, bool &stopped) {
    size_t iovcnt = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].len == 0) continue;
        iov_[iovcnt].iov_base = const_cast<uint8_t *>(items[i].data);
        iov_[iovcnt].iov_len = items[i].len;
        iovcnt++;
        total += items[i].len;
    }
    size_t done = 0;
    iovec *iov = iov_.get();
    while (done < total) {
        if (stop_.load(std::memory_order_acquire)) {
            stopped = true;
            break;
        }
        ssize_t w = nowait_ ? pwritev2(cfg_.fd, iov, static_cast<int>(iovcnt), -1, RWF_NOWAIT)
                            : writev(cfg_.fd, iov, static_cast<int>(iovcnt));
        if (w < 0) {
            const int e = errno;
            if (e == EINTR) continue;
            if (e == EAGAIN) {
                if (!wait_writable()) {
                    stopped = true;
                    break;
                }
                continue;
            }
            if (nowait_ && (e == EOPNOTSUPP || e == EINVAL)) {
                nowait_ = false; // kernel without RWF_NOWAIT on pipes: plain blocking writes
                continue;
            }
            if (e == EPIPE) {
                // SIGPIPE is blocked in this thread: take the pending one so it
                // is not delivered to the process later.
                sigset_t set;
                sigemptyset(&set);
                sigaddset(&set, SIGPIPE);
                const timespec zero{0, 0};
                while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
                }
                fail(e, "%s closed by the reader (EPIPE) after %llu bytes", cfg_.name,
                     static_cast<unsigned long long>(stats_.bytes.load(std::memory_order_relaxed) + done));
            } else {
                fail(e, "write to %s (fd %d) failed: %s", cfg_.name, cfg_.fd, std::strerror(e));
            }
            break;
        }
        stats_.writes.fetch_add(1, std::memory_order_relaxed);
        size_t left = static_cast<size_t>(w);
        done += left;
        if (done < total) stats_.partial_writes.fetch_add(1, std::memory_order_relaxed);
        // Partial write: skip whole iovecs, then trim the first remaining one.
        while (left > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (left > 0) {
            iov->iov_base = static_cast<uint8_t *>(iov->iov_base) + left;
            iov->iov_len -= left;
        }
    }
    stats_.bytes.fetch_add(done, std::memory_order_relaxed);
    size_t whole = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].len > done) break;
        done -= items[i].len;
        whole++;
    }
    return whole;
}

size_t PipeWriter::verify(const Item *items, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!verifier_.check(items[i].data, items[i].len)) {
            fail(EILSEQ, "PRBS mismatch at stream offset %llu: expected 0x%02x, got 0x%02x",
                 static_cast<unsigned long long>(verifier_.mismatch_offset()), verifier_.expected(),
                 verifier_.actual());
            return i;
        }
        stats_.bytes.fetch_add(items[i].len, std::memory_order_relaxed);
    }
    return n;
}

void PipeWriter::run() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);

    Item *batch = batch_.get();
    while (true) {
        size_t n = 0;
        bool end = false;
        while (n < cfg_.max_iov && sub_.try_pop(batch[n])) {
            if (batch[n++].end) {
                end = true;
                break;
            }
        }
        if (n == 0) {
            if (stop_.load(std::memory_order_acquire)) break;
            const uint32_t key = sub_event_->prepare();
            if (!sub_.empty_approx() || stop_.load(std::memory_order_acquire)) {
                sub_event_->cancel();
                continue;
            }
            sub_event_->wait(key, cfg_.wait_slice_us);
            continue;
        }
        if (ended_) { // after END or a failure: hand everything back unwritten
            for (size_t i = 0; i < n; i++) complete(batch[i], false);
            continue;
        }
        bool stopped = false;
        const size_t whole = cfg_.sink == WriterSink::FD ? write_fd(batch, n, stopped) : verify(batch, n);
        if (end && whole == n && !ended_) {
            // State first: whoever sees the end completion sees DONE.
            ended_ = true;
            std::snprintf(message_, sizeof message_, "end of output after %llu bytes",
                          static_cast<unsigned long long>(stats_.bytes.load(std::memory_order_relaxed)));
            state_.store(WriterState::DONE, std::memory_order_release);
        }
        for (size_t i = 0; i < n; i++) complete(batch[i], i < whole);
        stats_.spans.fetch_add(whole, std::memory_order_relaxed);
        if (stopped) break;
    }
    // Stopped: every span still queued goes back unwritten, so the owner gets
    // a completion for each span it submitted before stop().
    Item it;
    while (sub_.try_pop(it)) complete(it, false);
}

} // namespace millipede::pipeio

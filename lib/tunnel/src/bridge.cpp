// TunnelBridge: one poll(2) loop over the listener, the tunnelled sockets
// and the two pipes to the data plane (bridge.h has the contract).
#include "millipede/tunnel/bridge.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace millipede::tunnel {

struct TunnelBridge::Conn {
    uint32_t id = 0;
    int fd = -1;
    bool connecting = false;   // initiate: connect() in progress
    uint64_t deadline_ms = 0;  // ... until then
    bool local_eof = false;    // our socket said EOF; FIN record sent
    bool far_fin = false;      // FIN record received: shut our write side once `out` drained
    bool shut_wr = false;
    bool adopted = false;      // the plane's socketpair end (accept_from_plane)
    std::vector<uint8_t> out;  // bytes toward the socket (at most conn_buffer)
    size_t out_head = 0;
    size_t pending() const { return out.size() - out_head; }
};

namespace {

uint64_t now_ms() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

bool set_nonblock(int fd) {
    const int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

// Closing with SO_LINGER 0 sends a TCP RST: the kernel peer sees the abort
// the far end reported, not a clean end it could mistake for the data's end.
void close_abort(int fd) {
    linger l{1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

void close_fd(int &fd) {
    if (fd >= 0) close(fd);
    fd = -1;
}

} // namespace

TunnelBridge::TunnelBridge(const BridgeConfig &cfg) : cfg_(cfg), parser_(4 * kMaxRecord) {}

std::unique_ptr<TunnelBridge> TunnelBridge::create(const BridgeConfig &cfg, std::string &err) {
    std::unique_ptr<TunnelBridge> b(new TunnelBridge(cfg));
    if (cfg.conn_buffer < kMaxPayload || cfg.pipe_buffer < kMaxRecord) {
        err = "tunnel: buffers must hold at least one record";
        return nullptr;
    }
    if (cfg.role == Role::TERMINATE && cfg.accept_from_plane) {
        b->bound_port_ = cfg.listen_port;
    } else if (cfg.role == Role::TERMINATE) {
        // Both families on one socket where the host has IPv6, else IPv4.
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        bool v6 = fd >= 0;
        if (v6) {
            int off = 0;
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        } else {
            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        }
        if (fd < 0) {
            err = std::string("terminate: socket: ") + std::strerror(errno);
            return nullptr;
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_storage ss{};
        socklen_t len;
        if (v6) {
            auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_addr = in6addr_any;
            a->sin6_port = htons(cfg.listen_port);
            len = sizeof *a;
        } else {
            auto *a = reinterpret_cast<sockaddr_in *>(&ss);
            a->sin_family = AF_INET;
            a->sin_addr.s_addr = htonl(INADDR_ANY);
            a->sin_port = htons(cfg.listen_port);
            len = sizeof *a;
        }
        if (bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0 || listen(fd, 64) != 0) {
            err = "terminate " + std::to_string(cfg.listen_port) + ": cannot listen on the host's TCP port: " +
                  std::strerror(errno);
            close(fd);
            return nullptr;
        }
        len = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
        b->bound_port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port
                                  : reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
        b->listen_fd_ = fd;
    } else {
        addrinfo hints{}, *res = nullptr;
        hints.ai_socktype = SOCK_STREAM;
        const std::string port = std::to_string(cfg.port);
        const int rc = getaddrinfo(cfg.host.c_str(), port.c_str(), &hints, &res);
        if (rc != 0 || !res) {
            err = "initiate " + cfg.host + " " + port + ": cannot resolve the host: " + gai_strerror(rc);
            return nullptr;
        }
        std::memcpy(&b->far_, res->ai_addr, res->ai_addrlen);
        b->far_len_ = res->ai_addrlen;
        freeaddrinfo(res);
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        err = std::string("tunnel: pipe: ") + std::strerror(errno);
        return nullptr;
    }
    b->to_plane_rd_ = p[0];
    b->to_plane_wr_ = p[1];
    if (pipe2(p, O_CLOEXEC) != 0) {
        err = std::string("tunnel: pipe: ") + std::strerror(errno);
        return nullptr;
    }
    b->from_plane_rd_ = p[0];
    b->from_plane_wr_ = p[1];
    // Only the bridge's own ends are non-blocking: the plane's threads poll theirs.
    set_nonblock(b->to_plane_wr_);
    set_nonblock(b->from_plane_rd_);
    b->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->wake_fd_ < 0) {
        err = std::string("tunnel: eventfd: ") + std::strerror(errno);
        return nullptr;
    }
    b->to_plane_.reserve(cfg.pipe_buffer + kMaxRecord);
    return b;
}

TunnelBridge::~TunnelBridge() {
    stop();
    close_fd(listen_fd_);
    close_fd(wake_fd_);
    close_fd(to_plane_rd_);
    close_fd(to_plane_wr_);
    close_fd(from_plane_rd_);
    close_fd(from_plane_wr_);
}

void TunnelBridge::start() {
    if (thread_.joinable()) return;
    message_ = "running";
    state_.store(BridgeState::RUNNING, std::memory_order_release);
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "mp-tunnel");
        if (!cfg_.cpus.empty()) {
            cpu_set_t set;
            CPU_ZERO(&set);
            for (int c : cfg_.cpus) CPU_SET(c, &set);
            pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
        // A kernel peer that closed gives EPIPE on write, not a signal.
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &s, nullptr);
        run();
    });
}

void TunnelBridge::request_end() {
    // The flag, not the eventfd's value, says "end": wakes add up in an
    // eventfd (three adopt() calls read as 3).
    end_requested_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
}

void TunnelBridge::stop() {
    stop_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    // Whatever the thread left (it resets all on the way out) is gone now.
    for (auto &c : conns_) close_abort(c->fd);
    conns_.clear();
    std::lock_guard<std::mutex> g(adopt_mu_);
    for (int fd : adopt_fds_) close(fd);
    adopt_fds_.clear();
}

void TunnelBridge::adopt(int fd) {
    {
        std::lock_guard<std::mutex> g(adopt_mu_);
        adopt_fds_.push_back(fd);
    }
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
}

void TunnelBridge::adopt_new() {
    std::vector<int> fds;
    {
        std::lock_guard<std::mutex> g(adopt_mu_);
        fds.swap(adopt_fds_);
    }
    for (int fd : fds) {
        if (ending_ || state() != BridgeState::RUNNING || conns_.size() >= cfg_.max_connections || next_id_ == 0) {
            stats_.refused.fetch_add(1, std::memory_order_relaxed);
            close(fd); // the plane resets its connection
            continue;
        }
        add_accepted(fd, true);
    }
}

// A connection that arrived at this (terminate) end: OPEN goes to the far end.
void TunnelBridge::add_accepted(int fd, bool adopted) {
    auto c = std::make_unique<Conn>();
    c->id = next_id_++;
    c->fd = fd;
    c->adopted = adopted;
    queue_control(RecordType::OPEN, c->id);
    stats_.accepted.fetch_add(1, std::memory_order_relaxed);
    log(adopted ? "connection %u accepted on the data plane's port" : "connection %u accepted", c->id);
    conns_.push_back(std::move(c));
    stats_.active.store(conns_.size(), std::memory_order_relaxed);
}

void TunnelBridge::log(const char *fmt, ...) {
    if (!cfg_.verbose) return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "dpdk-millipede tunnel: %s\n", line);
}

TunnelBridge::Conn *TunnelBridge::find(uint32_t id) {
    for (auto &c : conns_)
        if (c->id == id) return c.get();
    return nullptr;
}

void TunnelBridge::forget(uint32_t id) {
    for (size_t i = 0; i < conns_.size(); i++)
        if (conns_[i]->id == id) {
            conns_[i] = std::move(conns_.back());
            conns_.pop_back();
            break;
        }
    if (blocked_on_ == id) blocked_on_ = 0;
    stats_.active.store(conns_.size(), std::memory_order_relaxed);
}

// A control record is 8 bytes; the buffer keeps one record of room beyond
// pipe_buffer for them, so they are never refused while sockets are read
// only below pipe_buffer.
bool TunnelBridge::queue_control(RecordType t, uint32_t id) {
    if (input_closed_) return false;
    uint8_t rec[kHeaderBytes];
    encode_control(rec, sizeof rec, t, id);
    to_plane_.insert(to_plane_.end(), rec, rec + sizeof rec);
    if (t == RecordType::RST) stats_.resets_sent.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void TunnelBridge::reset(Conn &c, bool tell_far) {
    if (tell_far) queue_control(RecordType::RST, c.id);
    log("connection %u reset%s", c.id, tell_far ? "" : " by the far end");
    close_abort(c.fd);
    forget(c.id);
}

void TunnelBridge::reset_all(bool tell_far) {
    while (!conns_.empty()) reset(*conns_.back(), tell_far);
}

void TunnelBridge::fail(const std::string &why) {
    if (state() == BridgeState::FAILED) return;
    reset_all(false);
    message_ = why;
    state_.store(BridgeState::FAILED, std::memory_order_release);
    // What is queued (our HELLO at least) still goes, best effort: the far
    // end then fails with its own reason instead of waiting for a HELLO.
    (void)flush_to_plane();
    if (!input_closed_) {
        close_fd(to_plane_wr_);
        input_closed_ = true;
    }
    if (cfg_.on_fail) cfg_.on_fail(cfg_.on_fail_ctx);
}

// The tunnel ends: no more connections, every open one reset, BYE, then
// EOF on the plane's input once the records before it are written.
void TunnelBridge::begin_end(const char *why) {
    if (ending_) return;
    ending_ = true;
    log("ending: %s", why);
    close_fd(listen_fd_);
    reset_all(true);
    queue_control(RecordType::BYE, 0);
}

void TunnelBridge::accept_new() {
    while (true) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; // EAGAIN, or a transient error (retried on the next readiness)
        if (conns_.size() >= cfg_.max_connections || next_id_ == 0) {
            stats_.refused.fetch_add(1, std::memory_order_relaxed);
            close_abort(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        add_accepted(fd, false);
        if (to_plane_.size() - to_plane_head_ >= cfg_.pipe_buffer) return;
    }
}

void TunnelBridge::open_far(uint32_t id) {
    if (conns_.size() >= cfg_.max_connections) {
        stats_.refused.fetch_add(1, std::memory_order_relaxed);
        queue_control(RecordType::RST, id);
        return;
    }
    const int fd = socket(far_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        stats_.refused.fetch_add(1, std::memory_order_relaxed);
        queue_control(RecordType::RST, id);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Conn>();
    c->id = id;
    c->fd = fd;
    if (connect(fd, reinterpret_cast<const sockaddr *>(&far_), far_len_) != 0) {
        if (errno != EINPROGRESS) {
            log("connection %u: connect: %s", id, std::strerror(errno));
            stats_.refused.fetch_add(1, std::memory_order_relaxed);
            close(fd);
            queue_control(RecordType::RST, id);
            return;
        }
        c->connecting = true;
        c->deadline_ms = now_ms() + cfg_.connect_timeout_ms;
    } else {
        stats_.opened.fetch_add(1, std::memory_order_relaxed);
    }
    conns_.push_back(std::move(c));
    stats_.active.store(conns_.size(), std::memory_order_relaxed);
}

// One read from the socket into a DATA record (or FIN / RST).
void TunnelBridge::read_socket(Conn &c) {
    const size_t at = to_plane_.size();
    to_plane_.resize(at + kMaxRecord);
    const ssize_t n = read(c.fd, to_plane_.data() + at + kHeaderBytes, kMaxPayload);
    if (n > 0) {
        encode_header(to_plane_.data() + at, kHeaderBytes, RecordType::DATA, c.id, static_cast<uint16_t>(n));
        to_plane_.resize(at + kHeaderBytes + size_t(n));
        stats_.bytes_in.fetch_add(uint64_t(n), std::memory_order_relaxed);
        return;
    }
    to_plane_.resize(at);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n == 0) { // half-close: the far end shuts its write side
        c.local_eof = true;
        queue_control(RecordType::FIN, c.id);
        log("connection %u: EOF from the local side (FIN)", c.id);
        return;
    }
    log("connection %u: read: %s", c.id, std::strerror(errno));
    reset(c, true);
}

void TunnelBridge::write_socket(Conn &c) {
    while (c.pending()) {
        const ssize_t n = write(c.fd, c.out.data() + c.out_head, c.pending());
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            log("connection %u: write: %s", c.id, std::strerror(errno));
            reset(c, true);
            return;
        }
        c.out_head += size_t(n);
        stats_.bytes_out.fetch_add(uint64_t(n), std::memory_order_relaxed);
    }
    if (!c.pending()) {
        c.out.clear();
        c.out_head = 0;
        if (blocked_on_ == c.id) blocked_on_ = 0;
    } else if (c.out_head > cfg_.conn_buffer / 2) {
        c.out.erase(c.out.begin(), c.out.begin() + ptrdiff_t(c.out_head));
        c.out_head = 0;
        if (blocked_on_ == c.id) blocked_on_ = 0; // try the held record again
    }
    if (!c.pending() && c.far_fin && !c.shut_wr) {
        shutdown(c.fd, SHUT_WR);
        c.shut_wr = true;
    }
    if (c.shut_wr && c.local_eof) {
        log("connection %u closed both ways", c.id);
        stats_.closed.fetch_add(1, std::memory_order_relaxed);
        close(c.fd);
        forget(c.id);
    }
}

// Records from the far end, in order, until one cannot be taken now.
void TunnelBridge::pump_from_plane() {
    while (!blocked_on_) {
        Record r;
        Next nx = parser_.next(r);
        if (nx == Next::FAILED) {
            fail(std::string("tunnel: malformed record from the far end (") + malformed_name(parser_.failure()) +
                 (parser_.failure() == Malformed::NO_HELLO
                      ? "): the far end does not speak the tunnel; give it initiate HOST PORT or terminate PORT"
                      : ")"));
            return;
        }
        if (nx == Next::NEED_MORE) {
            const size_t room = parser_.free_space();
            if (!room || output_eof_) return;
            const ssize_t n = read(from_plane_rd_, parser_.write_ptr(), room);
            if (n > 0) {
                parser_.commit(size_t(n));
                continue;
            }
            if (n == 0) output_eof_ = true;
            return;
        }
        if (state() == BridgeState::FAILED) {
            parser_.pop();
            continue;
        }
        Conn *c = r.stream ? find(r.stream) : nullptr;
        switch (r.type) {
        case RecordType::HELLO:
            if (r.payload[5] == static_cast<uint8_t>(cfg_.role)) {
                parser_.pop();
                fail(cfg_.role == Role::TERMINATE
                         ? "tunnel: both ends were given terminate; give the far end initiate HOST PORT"
                         : "tunnel: both ends were given initiate; give the far end terminate PORT");
                return;
            }
            break;
        case RecordType::OPEN:
            if (cfg_.role != Role::INITIATE) {
                parser_.pop();
                fail("tunnel: the far end opened a connection toward a terminate end");
                return;
            }
            if (c) {
                parser_.pop();
                fail("tunnel: the far end opened connection " + std::to_string(r.stream) + " twice");
                return;
            }
            if (ending_) queue_control(RecordType::RST, r.stream);
            else open_far(r.stream);
            break;
        case RecordType::DATA:
            if (!c || c->far_fin) {
                stats_.stale_records.fetch_add(1, std::memory_order_relaxed);
                break;
            }
            if (c->pending() + r.length > cfg_.conn_buffer) {
                blocked_on_ = c->id; // head-of-line: wait until this socket drains
                stats_.head_blocked.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            c->out.insert(c->out.end(), r.payload, r.payload + r.length);
            if (!c->connecting) write_socket(*c);
            break;
        case RecordType::FIN:
            if (!c) {
                stats_.stale_records.fetch_add(1, std::memory_order_relaxed);
                break;
            }
            c->far_fin = true;
            if (!c->connecting) write_socket(*c);
            break;
        case RecordType::RST:
            stats_.resets_received.fetch_add(1, std::memory_order_relaxed);
            if (c) reset(*c, false);
            break;
        case RecordType::BYE:
            parser_.pop();
            begin_end("the far end ended the tunnel");
            continue;
        }
        parser_.pop();
    }
}

// Writes queued records to the plane's input. False: the pipe is gone.
bool TunnelBridge::flush_to_plane() {
    if (input_closed_) return true;
    while (to_plane_head_ < to_plane_.size()) {
        const ssize_t n = write(to_plane_wr_, to_plane_.data() + to_plane_head_, to_plane_.size() - to_plane_head_);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            return false;
        }
        to_plane_head_ += size_t(n);
    }
    if (to_plane_head_ == to_plane_.size()) {
        to_plane_.clear();
        to_plane_head_ = 0;
        if (ending_) { // BYE is out: end the plane's input stream
            close_fd(to_plane_wr_);
            input_closed_ = true;
        }
    } else if (to_plane_head_ >= cfg_.pipe_buffer / 2) {
        to_plane_.erase(to_plane_.begin(), to_plane_.begin() + ptrdiff_t(to_plane_head_));
        to_plane_head_ = 0;
    }
    return true;
}

bool TunnelBridge::step(int timeout_ms) {
    std::vector<pollfd> &p = poll_set_;
    p.clear();
    poll_ids_.clear();
    p.push_back({wake_fd_, POLLIN, 0});
    const bool room = !input_closed_ && to_plane_.size() - to_plane_head_ < cfg_.pipe_buffer;
    p.push_back({listen_fd_ >= 0 && room && !ending_ ? listen_fd_ : -1, POLLIN, 0});
    p.push_back({!input_closed_ && to_plane_.size() > to_plane_head_ ? to_plane_wr_ : -1, POLLOUT, 0});
    p.push_back({!output_eof_ && !blocked_on_ ? from_plane_rd_ : -1, POLLIN, 0});
    constexpr size_t kFixed = 4;
    for (auto &c : conns_) {
        short ev = 0;
        if (c->connecting || c->pending()) ev |= POLLOUT;
        if (!c->connecting && !c->local_eof && room) ev |= POLLIN;
        p.push_back({c->fd, ev, 0});
        poll_ids_.push_back(c->id);
    }
    const int r = ::poll(p.data(), p.size(), timeout_ms);
    if (r < 0 && errno != EINTR) {
        fail(std::string("tunnel: poll: ") + std::strerror(errno));
        return false;
    }
    if (r > 0 && p[0].revents) {
        uint64_t v = 0;
        (void)!read(wake_fd_, &v, sizeof v);
    }
    if (end_requested_.load(std::memory_order_acquire) && !ending_ && state() != BridgeState::FAILED)
        begin_end("asked to end");
    if (stop_.load(std::memory_order_acquire)) return false;
    // Connections by id: forget() reorders the vector.
    for (size_t i = kFixed; r > 0 && i < p.size(); i++) {
        const short rev = p[i].revents;
        if (!rev) continue;
        const uint32_t id = poll_ids_[i - kFixed];
        Conn *c = find(id);
        if (!c) continue;
        if (c->connecting) {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err || (rev & (POLLERR | POLLHUP))) {
                log("connection %u: connect to %s %u: %s", id, cfg_.host.c_str(), cfg_.port,
                    std::strerror(err ? err : ECONNREFUSED));
                stats_.refused.fetch_add(1, std::memory_order_relaxed);
                reset(*c, true);
                continue;
            }
            if (!(rev & POLLOUT)) continue;
            c->connecting = false;
            stats_.opened.fetch_add(1, std::memory_order_relaxed);
            log("connection %u opened to %s %u", id, cfg_.host.c_str(), cfg_.port);
        }
        if (c->adopted && (rev & POLLHUP) && !c->shut_wr) {
            // The plane closed its end before we finished ours: its TCP
            // connection was reset (or timed out).
            log("connection %u reset by the local side", id);
            reset(*c, true);
            continue;
        }
        if (rev & POLLERR) {
            int err = 0;
            socklen_t l = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            log("connection %u: %s", id, std::strerror(err ? err : ECONNRESET));
            reset(*c, true);
            continue;
        }
        if ((rev & (POLLIN | POLLHUP)) && !c->local_eof && room) {
            read_socket(*c);
            if (!(c = find(id))) continue;
        }
        write_socket(*c); // what is pending, the half-close, the close once both halves are done
    }
    const uint64_t now = now_ms();
    for (size_t i = 0; i < conns_.size();) {
        Conn &c = *conns_[i];
        if (c.connecting && now > c.deadline_ms) {
            log("connection %u: connect to %s %u timed out", c.id, cfg_.host.c_str(), cfg_.port);
            stats_.refused.fetch_add(1, std::memory_order_relaxed);
            reset(c, true); // moves another connection to i
            continue;
        }
        i++;
    }
    if (r > 0 && p[1].revents && listen_fd_ >= 0) accept_new();
    if (cfg_.accept_from_plane) adopt_new();
    pump_from_plane();
    if (!flush_to_plane()) fail("tunnel: the data plane's input pipe closed");
    if (ending_ && input_closed_ && state() == BridgeState::RUNNING) {
        message_ = "ended";
        state_.store(BridgeState::ENDED, std::memory_order_release);
    }
    return true;
}

void TunnelBridge::run() {
    uint8_t hello[kHeaderBytes + kHelloPayload];
    const size_t n = encode_hello(hello, sizeof hello, cfg_.role);
    to_plane_.insert(to_plane_.end(), hello, hello + n);
    while (step(100)) {
    }
    // The plane is over: nobody carries records any more.
    reset_all(false);
    if (state() == BridgeState::RUNNING) {
        message_ = "stopped";
        state_.store(BridgeState::ENDED, std::memory_order_release);
    }
}

} // namespace millipede::tunnel

// TunnelBridge: a terminate bridge and an initiate bridge back to back, a
// relay thread standing in for the data plane (it copies each bridge's
// input stream to the other's output), the kernel's TCP on loopback for the
// tunnelled connections and an echo server behind the initiate end.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "millipede/tunnel/bridge.h"

using namespace millipede::tunnel;
using namespace std::chrono_literals;

namespace {

bool wait_for(const std::function<bool()> &f, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (f()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return f();
}

// Echoes every byte; on EOF shuts its own write side (the client then
// sees EOF after the echo of everything it sent).
class EchoServer {
  public:
    EchoServer() {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
        socklen_t l = sizeof a;
        getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &l);
        port_ = ntohs(a.sin_port);
        listen(fd_, 16);
        thread_ = std::thread([this] {
            while (!stop_) {
                pollfd p{fd_, POLLIN, 0};
                if (poll(&p, 1, 50) <= 0) continue;
                const int c = accept(fd_, nullptr, nullptr);
                if (c < 0) continue;
                accepted_++;
                workers_.emplace_back([c] {
                    std::vector<char> b(65536);
                    while (true) {
                        const ssize_t n = read(c, b.data(), b.size());
                        if (n <= 0) break;
                        for (ssize_t o = 0; o < n;) {
                            const ssize_t w = write(c, b.data() + o, size_t(n - o));
                            if (w <= 0) {
                                close(c);
                                return;
                            }
                            o += w;
                        }
                    }
                    shutdown(c, SHUT_WR);
                    char x;
                    while (read(c, &x, 1) > 0) {
                    }
                    close(c);
                });
            }
        });
    }
    ~EchoServer() {
        stop_ = true;
        thread_.join();
        for (auto &w : workers_) w.join();
        close(fd_);
    }
    uint16_t port() const { return port_; }
    std::atomic<int> accepted_{0};

  private:
    int fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::vector<std::thread> workers_;
};

// The "data plane": copies a -> b until EOF on a, then closes nothing (the
// real plane does not close its output either).
class Relay {
  public:
    Relay(int from1, int to1, int from2, int to2) {
        t1_ = std::thread([=, this] { copy(from1, to1, eof1_); });
        t2_ = std::thread([=, this] { copy(from2, to2, eof2_); });
    }
    ~Relay() {
        stop_ = true;
        t1_.join();
        t2_.join();
    }
    std::atomic<bool> eof1_{false}, eof2_{false};

  private:
    void copy(int from, int to, std::atomic<bool> &eof) {
        std::vector<char> b(65536);
        while (!stop_) {
            pollfd p{from, POLLIN, 0};
            if (poll(&p, 1, 20) <= 0) continue;
            const ssize_t n = read(from, b.data(), b.size());
            if (n <= 0) {
                eof = true;
                return;
            }
            for (ssize_t o = 0; o < n && !stop_;) {
                pollfd q{to, POLLOUT, 0};
                if (poll(&q, 1, 20) <= 0) continue;
                const ssize_t w = write(to, b.data() + o, size_t(n - o));
                if (w <= 0) return;
                o += w;
            }
        }
    }
    std::atomic<bool> stop_{false};
    std::thread t1_, t2_;
};

int connect_to(uint16_t port, int rcvbuf = 0) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    timeval tv{20, 0}; // every wait bounded
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct Pair {
    std::unique_ptr<TunnelBridge> term, init;
    std::unique_ptr<Relay> relay;
    std::atomic<int> failed{0};
    Pair(uint16_t far_port, size_t conn_buffer = 256u << 10, bool accept_from_plane = false) {
        std::string err;
        BridgeConfig t;
        t.role = Role::TERMINATE;
        t.listen_port = 0;
        t.accept_from_plane = accept_from_plane;
        t.verbose = getenv("BRIDGE_VERBOSE") ? 1 : 0; // BRIDGE_VERBOSE=1: a line per connection event
        t.conn_buffer = conn_buffer;
        t.on_fail = [](void *p) { static_cast<Pair *>(p)->failed++; };
        t.on_fail_ctx = this;
        term = TunnelBridge::create(t, err);
        EXPECT_TRUE(term) << err;
        BridgeConfig i = t;
        i.accept_from_plane = false;
        i.role = Role::INITIATE;
        i.host = "127.0.0.1";
        i.port = far_port;
        i.connect_timeout_ms = 2000;
        init = TunnelBridge::create(i, err);
        EXPECT_TRUE(init) << err;
        relay = std::make_unique<Relay>(term->plane_input_fd(), init->plane_output_fd(), init->plane_input_fd(),
                                        term->plane_output_fd());
        term->start();
        init->start();
    }
    ~Pair() {
        term->stop();
        init->stop();
        relay.reset();
    }
};

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    std::mt19937 r(seed);
    for (auto &b : v) b = uint8_t(r());
    return v;
}

// Sends `data`, shuts its write side, and (on another thread, from the
// start or after `delay`) reads until EOF. Returns what came back.
std::vector<uint8_t> echo_through_fd(int fd, const std::vector<uint8_t> &data, std::chrono::milliseconds delay = 0ms,
                                     bool *eof = nullptr);

std::vector<uint8_t> echo_through(uint16_t port, const std::vector<uint8_t> &data, std::chrono::milliseconds delay = 0ms,
                                  int rcvbuf = 0, bool *eof = nullptr) {
    const int fd = connect_to(port, rcvbuf);
    EXPECT_GE(fd, 0);
    if (fd < 0) return {};
    return echo_through_fd(fd, data, delay, eof);
}

// The same over a connected socket (closed on return).
std::vector<uint8_t> echo_through_fd(int fd, const std::vector<uint8_t> &data, std::chrono::milliseconds delay,
                                     bool *eof) {
    std::vector<uint8_t> got;
    bool saw_eof = false;
    std::thread reader([&] {
        std::this_thread::sleep_for(delay);
        std::vector<uint8_t> b(65536);
        while (true) {
            const ssize_t n = read(fd, b.data(), b.size());
            if (n == 0) saw_eof = true;
            if (n <= 0) break;
            got.insert(got.end(), b.begin(), b.begin() + n);
        }
    });
    for (size_t o = 0; o < data.size();) {
        const ssize_t w = write(fd, data.data() + o, std::min<size_t>(data.size() - o, 100000));
        if (w <= 0) break;
        o += size_t(w);
    }
    shutdown(fd, SHUT_WR); // half-close: the echo must still come back
    reader.join();
    close(fd);
    if (eof) *eof = saw_eof;
    return got;
}

// After n connections that each ended with FIN both ways: every one is
// gone at both ends, closed, and nothing was reset or failed.
void expect_closed_cleanly(Pair &p, unsigned n) {
    EXPECT_EQ(p.term->stats().accepted.load(), n);
    EXPECT_TRUE(wait_for([&] { return p.term->stats().active == 0 && p.init->stats().active == 0; }, 5000ms));
    EXPECT_EQ(p.term->stats().closed.load(), n);
    EXPECT_EQ(p.term->stats().resets_sent.load() + p.init->stats().resets_sent.load(), 0u);
    EXPECT_EQ(p.failed.load(), 0);
}

} // namespace

TEST(TunnelBridge, ConcurrentConnectionsByteExactWithHalfClose) {
    EchoServer echo;
    Pair p(echo.port());
    const uint16_t port = p.term->listen_port();
    ASSERT_NE(port, 0);
    std::vector<std::vector<uint8_t>> sent, got(3);
    bool eof[3] = {};
    for (int i = 0; i < 3; i++) sent.push_back(random_bytes((3u << 20) + 1000 * i + 7, 100 + i));
    std::vector<std::thread> clients;
    for (int i = 0; i < 3; i++)
        clients.emplace_back([&, i] { got[i] = echo_through(port, sent[i], 0ms, 0, &eof[i]); });
    for (auto &c : clients) c.join();
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(got[i].size(), sent[i].size()) << "connection " << i;
        EXPECT_TRUE(got[i] == sent[i]) << "connection " << i;
        EXPECT_TRUE(eof[i]) << "connection " << i << " saw no EOF after the echo";
    }
    EXPECT_EQ(echo.accepted_.load(), 3);
    EXPECT_EQ(p.init->stats().opened.load(), 3u);
    expect_closed_cleanly(p, 3);
}

// A client that does not read: its connection's buffer fills, the bridge
// stops taking the pipe (head-of-line), and nothing is lost once it reads.
TEST(TunnelBridge, SlowReaderBackpressureIsBoundedAndLossless) {
    EchoServer echo;
    Pair p(echo.port(), 64u << 10);
    const auto data = random_bytes(8u << 20, 7);
    const auto got = echo_through(p.term->listen_port(), data, 1500ms, 32 << 10);
    EXPECT_TRUE(got == data) << got.size() << " of " << data.size();
    EXPECT_GT(p.term->stats().head_blocked.load(), 0u);
}

TEST(TunnelBridge, UnreachableDestinationResetsTheConnection) {
    // A port nobody listens on: connect is refused at the initiate end.
    const int probe = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(probe, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t l = sizeof a;
    getsockname(probe, reinterpret_cast<sockaddr *>(&a), &l);
    const uint16_t dead = ntohs(a.sin_port);
    close(probe);
    Pair p(dead);
    const int fd = connect_to(p.term->listen_port());
    ASSERT_GE(fd, 0);
    char b;
    errno = 0;
    const ssize_t n = read(fd, &b, 1); // bounded by SO_RCVTIMEO
    EXPECT_EQ(n, -1);
    EXPECT_EQ(errno, ECONNRESET);
    close(fd);
    EXPECT_EQ(p.init->stats().refused.load(), 1u);
    EXPECT_EQ(p.term->stats().resets_received.load(), 1u);
}

TEST(TunnelBridge, EndResetsConnectionsAndEndsBothStreams) {
    EchoServer echo;
    Pair p(echo.port());
    const int fd = connect_to(p.term->listen_port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "hi", 2), 2);
    char b[2];
    ASSERT_EQ(read(fd, b, 2), 2);
    p.term->request_end();
    errno = 0;
    EXPECT_EQ(read(fd, b, 1), -1);
    EXPECT_EQ(errno, ECONNRESET);
    close(fd);
    // Both plane inputs end (EOF), and both bridges say so.
    EXPECT_TRUE(wait_for([&] { return p.relay->eof1_ && p.relay->eof2_; }, 5000ms));
    EXPECT_EQ(p.term->state(), BridgeState::ENDED);
    EXPECT_EQ(p.init->state(), BridgeState::ENDED);
    EXPECT_EQ(p.failed.load(), 0);
}

TEST(TunnelBridge, MalformedStreamFailsWithOneLine) {
    std::string err;
    BridgeConfig c;
    c.role = Role::INITIATE;
    c.host = "127.0.0.1";
    c.port = 9;
    std::atomic<int> failed{0};
    c.on_fail = [](void *p) { (*static_cast<std::atomic<int> *>(p))++; };
    c.on_fail_ctx = &failed;
    auto b = TunnelBridge::create(c, err);
    ASSERT_TRUE(b) << err;
    b->start();
    const char plain[] = "hello, plain stream\n"; // a far end that is not a tunnel
    ASSERT_EQ(write(b->plane_output_fd(), plain, sizeof plain - 1), ssize_t(sizeof plain - 1));
    EXPECT_TRUE(wait_for([&] { return b->state() == BridgeState::FAILED; }, 5000ms));
    EXPECT_EQ(failed.load(), 1);
    EXPECT_NE(b->message().find("malformed record"), std::string::npos) << b->message();
    b->stop();
}

TEST(TunnelBridge, BothEndsTerminateIsRefused) {
    std::string err;
    BridgeConfig c;
    c.role = Role::TERMINATE;
    auto a = TunnelBridge::create(c, err), b = TunnelBridge::create(c, err);
    ASSERT_TRUE(a && b) << err;
    Relay r(a->plane_input_fd(), b->plane_output_fd(), b->plane_input_fd(), a->plane_output_fd());
    a->start();
    b->start();
    EXPECT_TRUE(wait_for([&] { return a->state() == BridgeState::FAILED && b->state() == BridgeState::FAILED; }, 5000ms));
    EXPECT_NE(a->message().find("both ends were given terminate"), std::string::npos) << a->message();
    a->stop();
    b->stop();
}

TEST(TunnelBridge, BusyPortIsReported) {
    std::string err;
    BridgeConfig c;
    c.role = Role::TERMINATE;
    auto a = TunnelBridge::create(c, err);
    ASSERT_TRUE(a) << err;
    c.listen_port = a->listen_port();
    auto b = TunnelBridge::create(c, err);
    EXPECT_FALSE(b);
    EXPECT_NE(err.find("cannot listen"), std::string::npos) << err;
}

// `--terminate-on ports`: the data plane accepts the connections and hands
// the bridge one end of a socketpair each (adopt). Its other end here plays
// the plane's TCP connection: shutdown(SHUT_WR) is the peer's FIN, a close
// before it the peer's reset.
namespace {
// A socketpair with bounded waits on our end; the other end goes to the bridge.
int adopted_pair(TunnelBridge &b) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    timeval tv{20, 0};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    b.adopt(sv[1]);
    return sv[0];
}
} // namespace

TEST(TunnelBridge, AdoptedConnectionsByteExactWithHalfClose) {
    EchoServer echo;
    Pair p(echo.port(), 256u << 10, /*accept_from_plane=*/true);
    std::vector<std::vector<uint8_t>> sent, got(3);
    bool eof[3] = {};
    for (int i = 0; i < 3; i++) sent.push_back(random_bytes((2u << 20) + 333 * i + 1, 200 + i));
    std::vector<std::thread> clients;
    for (int i = 0; i < 3; i++)
        clients.emplace_back([&, i] {
            const int fd = adopted_pair(*p.term);
            ASSERT_GE(fd, 0);
            got[i] = echo_through_fd(fd, sent[i], 0ms, &eof[i]);
        });
    for (auto &c : clients) c.join();
    for (int i = 0; i < 3; i++) {
        EXPECT_TRUE(got[i] == sent[i]) << "connection " << i << ": " << got[i].size() << " of " << sent[i].size();
        EXPECT_TRUE(eof[i]) << "connection " << i << " saw no EOF after the echo";
    }
    expect_closed_cleanly(p, 3);
}

TEST(TunnelBridge, AdoptedSocketClosedEarlyResetsTheFarConnection) {
    EchoServer echo;
    Pair p(echo.port(), 256u << 10, true);
    const int fd = adopted_pair(*p.term);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "hi", 2), 2);
    char b[2];
    ASSERT_EQ(read(fd, b, 2), 2);
    close(fd); // no shutdown first: the plane's connection was reset
    EXPECT_TRUE(wait_for([&] { return p.term->stats().resets_sent.load() == 1; }, 5000ms));
    EXPECT_TRUE(wait_for([&] { return p.init->stats().resets_received.load() == 1; }, 5000ms));
    EXPECT_EQ(p.term->stats().closed.load(), 0u);
}

TEST(TunnelBridge, EndClosesAdoptedSocketsBeforeTheirFin) {
    EchoServer echo;
    Pair p(echo.port(), 256u << 10, true);
    const int fd = adopted_pair(*p.term);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "hi", 2), 2);
    char b[2];
    ASSERT_EQ(read(fd, b, 2), 2);
    p.term->request_end();
    // The bridge's end is closed, not shut down: POLLHUP (both ways), which
    // the plane reads as a reset of its connection.
    pollfd q{fd, POLLIN, 0};
    ASSERT_EQ(poll(&q, 1, 5000), 1);
    EXPECT_TRUE(q.revents & POLLHUP);
    close(fd);
    // Adopted after the end: refused (closed at once).
    const int late = adopted_pair(*p.term);
    ASSERT_GE(late, 0);
    pollfd r{late, POLLIN, 0};
    ASSERT_EQ(poll(&r, 1, 5000), 1);
    EXPECT_TRUE(r.revents & POLLHUP);
    close(late);
    EXPECT_TRUE(wait_for([&] { return p.term->stats().refused.load() == 1; }, 5000ms));
}

// lib/dataplane TunnelEnds (`--terminate-on ports`): the tunnel's TCP-lite
// connections pumped to and from the sockets the bridge adopts. Driven with
// scripted reports and a recording command queue; the bridge's end of each
// socketpair is played here. No EAL: TunnelEnds uses none.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tunnel_ends.h"

using namespace millipede;
using namespace millipede::session;
using millipede::dataplane::TunnelEnds;

namespace {

struct Commands final : CommandOut {
    std::vector<LegCommand> got;
    std::string written; // bytes of WRITE_REF commands, copied as a worker would
    bool refuse = false;
    bool send(uint32_t, const LegCommand &c) override {
        if (refuse) return false;
        got.push_back(c);
        if (c.type == CommandType::WRITE_REF) written.append(reinterpret_cast<const char *>(c.ref.p), c.ref.n);
        return true;
    }
    uint32_t hosts() const override { return 2; }
    uint32_t pick_host(const tcp::Endpoints &) override { return 0; }
    size_t count(CommandType t) const {
        size_t n = 0;
        for (const auto &c : got) n += c.type == t;
        return n;
    }
    uint64_t consumed() const {
        uint64_t n = 0;
        for (const auto &c : got)
            if (c.type == CommandType::CONSUME) n += c.n;
        return n;
    }
};

struct Bridge {
    std::vector<int> fds; // the bridge's ends, in adoption order
    static void adopt(void *ctx, int fd) { static_cast<Bridge *>(ctx)->fds.push_back(fd); }
    ~Bridge() {
        for (int fd : fds)
            if (fd >= 0) close(fd);
    }
};

constexpr uint16_t kPort = 2222;
const ConnHandle kConn = make_handle(1, 7) | kAcceptedBit;

LegReport accepted(ConnHandle h, uint16_t port = kPort) {
    LegReport r;
    r.type = ReportType::ACCEPTED;
    r.handle = h;
    r.ep = tcp::Endpoints{tcp::IpAddr::v4(0x0a000002), tcp::IpAddr::v4(0x0a000001), port, 50000};
    return r;
}

LegReport input(ConnHandle h, const char *p) {
    LegReport r;
    r.type = ReportType::INPUT;
    r.handle = h;
    r.input.p = reinterpret_cast<const uint8_t *>(p);
    r.input.n = static_cast<uint32_t>(std::strlen(p));
    return r;
}

LegReport plain(ReportType t, ConnHandle h, uint64_t acked = 0, uint64_t window_end = 0) {
    LegReport r;
    r.type = t;
    r.handle = h;
    r.credit.acked = acked;
    r.credit.window_end = window_end;
    return r;
}

std::string read_some(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return "<timeout>";
    char b[4096];
    const ssize_t n = read(fd, b, sizeof b);
    return n < 0 ? "<error>" : std::string(b, size_t(n));
}

// Polls past the rate limit until `done` or 2 s of simulated time.
template <class F> void pump(TunnelEnds &t, uint64_t &now, F done) {
    for (int i = 0; i < 200 && !done(); i++) {
        now += TunnelEnds::kPollIntervalUs;
        t.poll(now);
        usleep(1000);
    }
}

// One TunnelEnds with a recording command queue and a stand-in bridge.
struct TunnelEndsTest : ::testing::Test {
    Commands out;
    Bridge b;
    uint64_t now = 0;
    std::unique_ptr<TunnelEnds> t;
    void make(uint64_t initial_window = 1 << 20) {
        t = std::make_unique<TunnelEnds>(kPort, initial_window, out, Bridge::adopt, &b, 0);
    }
    void SetUp() override { make(); }
    // The connection accepted; returns the bridge's end of its socket.
    int accept() {
        t->on_report(accepted(kConn), now);
        return b.fds.empty() ? -1 : b.fds.back();
    }
};

} // namespace

TEST_F(TunnelEndsTest, OnlyTheTunnelPortsConnectionsAreTaken) {
    EXPECT_TRUE(t->takes(accepted(kConn)));
    EXPECT_FALSE(t->takes(accepted(kConn, 8834))) << "a leg on rx's port is the stripe core's";
    EXPECT_FALSE(t->takes(plain(ReportType::CREDIT, kConn))) << "nothing before ACCEPTED";
    t->on_report(accepted(kConn), 0);
    ASSERT_EQ(b.fds.size(), 1u) << "the bridge got its end";
    EXPECT_TRUE(t->takes(plain(ReportType::CREDIT, kConn)));
    EXPECT_FALSE(t->takes(plain(ReportType::CREDIT, kConn + 1)));
    EXPECT_EQ(t->connections(), 1u);
}

TEST_F(TunnelEndsTest, BytesBothWaysThenFinBothWaysCloseInOrder) {
    const int fd = accept();
    ASSERT_GE(fd, 0);
    // connection -> bridge, consumed once written
    t->on_report(input(kConn, "hello "), now);
    t->on_report(input(kConn, "world"), now);
    EXPECT_EQ(read_some(fd), "hello world");
    EXPECT_EQ(out.consumed(), 11u);
    // bridge -> connection: WRITE_REF then FLUSH
    ASSERT_EQ(write(fd, "echo", 4), 4);
    pump(*t, now, [&] { return out.written.size() == 4; });
    EXPECT_EQ(out.written, "echo");
    EXPECT_GE(out.count(CommandType::FLUSH), 1u);
    // The peer's FIN: EOF on the bridge's end once everything is out.
    t->on_report(plain(ReportType::PEER_FIN, kConn), now);
    char c;
    EXPECT_EQ(read(fd, &c, 1), 0) << "the peer's FIN is the socket's EOF";
    // The bridge's EOF: our FIN.
    shutdown(fd, SHUT_WR);
    pump(*t, now, [&] { return out.count(CommandType::SHUTDOWN) == 1; });
    EXPECT_EQ(out.count(CommandType::SHUTDOWN), 1u);
    EXPECT_EQ(out.count(CommandType::ABORT), 0u);
    // Closed both ways (a normal close the host reports as ENDED, cause CLOSED).
    LegReport end = plain(ReportType::ENDED, kConn, 4);
    end.cause = EndCause::CLOSED;
    t->on_report(end, now);
    EXPECT_EQ(out.count(CommandType::RELEASE), 1u);
    EXPECT_EQ(t->connections(), 0u);
    EXPECT_EQ(t->stats().closed, 1u);
    EXPECT_EQ(t->stats().resets, 0u);
}

TEST_F(TunnelEndsTest, BridgeClosingBeforeOurFinIsAReset) {
    accept();
    close(b.fds[0]);
    b.fds[0] = -1;
    pump(*t, now, [&] { return t->connections() == 0; });
    EXPECT_EQ(out.count(CommandType::ABORT), 1u);
    EXPECT_EQ(out.count(CommandType::SHUTDOWN), 0u) << "a reset is not a FIN";
    EXPECT_EQ(t->stats().resets, 1u);
}

TEST_F(TunnelEndsTest, ConnectionResetClosesTheSocketWithoutFin) {
    accept();
    LegReport end = plain(ReportType::ENDED, kConn);
    end.cause = EndCause::RESET;
    t->on_report(end, 0);
    EXPECT_EQ(out.count(CommandType::RELEASE), 1u);
    EXPECT_EQ(t->connections(), 0u);
    pollfd p{b.fds[0], POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    EXPECT_TRUE(p.revents & POLLHUP) << "closed, not shut down: the bridge sends RST";
}

TEST_F(TunnelEndsTest, WritesStayWithinTheWindowAndTheStagingRing) {
    make(/*initial_window=*/1000);
    accept();
    const std::string big(600000, 'x');
    size_t fed = 0; // the bridge's end is non-blocking: feed what the socket takes, poll, again
    auto feed_and_poll = [&](int rounds) {
        for (int i = 0; i < rounds; i++) {
            const ssize_t n = write(b.fds[0], big.data() + fed, big.size() - fed);
            if (n > 0) fed += size_t(n);
            t->poll(now += TunnelEnds::kPollIntervalUs);
            usleep(200);
        }
    };
    feed_and_poll(20);
    EXPECT_EQ(out.written.size(), 1000u) << "no byte beyond the connection's window";
    // The window opens wide, but unacknowledged bytes fill the staging ring.
    t->on_report(plain(ReportType::CREDIT, kConn, 0, 1u << 30), now);
    feed_and_poll(200);
    EXPECT_EQ(out.written.size(), size_t(TunnelEnds::kStageBytes)) << "bounded by what TCP has not acknowledged";
    // Acknowledged: the rest goes, in order.
    for (int i = 0; i < 400 && out.written.size() < big.size(); i++) {
        t->on_report(plain(ReportType::CREDIT, kConn, out.written.size(), 1u << 30), now);
        feed_and_poll(1);
    }
    EXPECT_EQ(out.written.size(), big.size());
    EXPECT_TRUE(out.written == big);
}

TEST_F(TunnelEndsTest, RefusedCommandsWaitAndKeepTheirOrder) {
    accept();
    out.refuse = true;
    t->on_report(input(kConn, "abc"), now);
    ASSERT_EQ(write(b.fds[0], "xyz", 3), 3);
    for (int i = 0; i < 5; i++) t->poll(now += TunnelEnds::kPollIntervalUs);
    EXPECT_TRUE(out.got.empty());
    EXPECT_GT(t->stats().commands_deferred, 0u);
    out.refuse = false;
    pump(*t, now, [&] { return out.written == "xyz"; });
    ASSERT_GE(out.got.size(), 3u);
    EXPECT_EQ(out.got[0].type, CommandType::CONSUME);
    EXPECT_EQ(out.got[1].type, CommandType::WRITE_REF);
    EXPECT_EQ(out.written, "xyz");
}

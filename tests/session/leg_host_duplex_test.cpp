// lib/session LegHost serving both kinds of connection at once (full
// duplex: a TxCore's legs and an RxCore's on one worker). Two hosts, each
// listening and each opening a connection to the other, joined by queues of
// serialized segments: every handle is unique on its host, an accepted one
// carries kAcceptedBit and an opened one never does (the session steers
// reports by that bit), and accepted_watchdog applies only to accepted
// connections.
#include <gtest/gtest.h>

#include <deque>
#include <initializer_list>
#include <set>
#include <vector>

#include "millipede/session/leg_host.h"
#include "millipede/tcp/segment.h"

using namespace millipede;
using namespace millipede::session;

namespace {

struct Packet {
    std::vector<uint8_t> bytes;
    tcp::IpAddr src, dst;
};

struct Reports final : ReportOut {
    std::vector<LegReport> got;
    bool send(const LegReport &r) override {
        got.push_back(r);
        return true;
    }
};

struct Side {
    Reports reports;
    std::deque<Packet> outbox;
    std::unique_ptr<LegHost> host;
};

HostConfig config(uint32_t id, tcp::IpAddr self, bool with_accepted_watchdog) {
    HostConfig hc;
    hc.host_id = id;
    hc.listen_ips = {self};
    hc.listen_port = 8834;
    if (with_accepted_watchdog) hc.accepted_watchdog = Watchdog{0, 500, 0, 3'000'000};
    return hc;
}

void make(Side &s, const HostConfig &hc, uint64_t seed) {
    s.host = std::make_unique<LegHost>(
        hc,
        [&s](const tcp::Segment &seg) {
            Packet p;
            p.bytes.resize(tcp::serialized_length(seg));
            tcp::serialize(seg, p.bytes);
            p.src = seg.src_ip;
            p.dst = seg.dst_ip;
            s.outbox.push_back(std::move(p));
        },
        [seed]() mutable { return static_cast<uint32_t>(seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 1; },
        s.reports);
}

void make(Side &s, uint32_t id, tcp::IpAddr self, uint64_t seed, bool with_accepted_watchdog = false) {
    make(s, config(id, self, with_accepted_watchdog), seed);
}

// 1000 bytes written and flushed on each connection.
void write_on(Side &s, std::initializer_list<ConnHandle> handles, uint64_t now) {
    static const uint8_t payload[1000] = {};
    for (ConnHandle h : handles) {
        LegCommand w;
        w.type = CommandType::WRITE_REF;
        w.handle = h;
        w.ref.p = payload;
        w.ref.n = sizeof payload;
        w.ref.ref = 0;
        s.host->on_command(w, now);
        LegCommand f;
        f.type = CommandType::FLUSH;
        f.handle = h;
        s.host->on_command(f, now);
    }
}

// The peer never answers again: 10 s of timers, every segment dropped.
void silence(Side &s, uint64_t from) {
    for (uint64_t t = from; t < 10'000'000; t += 10'000) {
        s.host->poll(t);
        s.outbox.clear();
    }
}

// Delivers every queued segment both ways until none is left (bounded).
void exchange(Side &a, Side &b, uint64_t now) {
    for (int rounds = 0; rounds < 100 && (!a.outbox.empty() || !b.outbox.empty()); rounds++) {
        for (auto [from, to] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
            while (!from->outbox.empty()) {
                Packet p = std::move(from->outbox.front());
                from->outbox.pop_front();
                to->host->on_bytes(p.bytes, p.src, p.dst, now);
            }
            to->host->poll(now);
        }
    }
}

LegCommand connect(ConnHandle h, tcp::IpAddr local, uint16_t lport, tcp::IpAddr remote) {
    LegCommand c;
    c.type = CommandType::CONNECT;
    c.handle = h;
    c.leg = 0;
    c.ep = tcp::Endpoints{local, remote, lport, 8834};
    return c;
}

} // namespace

TEST(LegHostDuplex, OpenedAndAcceptedConnectionsKeepApartOnOneHost) {
    const tcp::IpAddr ip_a = tcp::IpAddr::v4(0x0a000001), ip_b = tcp::IpAddr::v4(0x0a000002);
    Side a, b;
    make(a, 0, ip_a, 1);
    make(b, 0, ip_b, 2);
    // Each side's core opens with the first id a core gives (host 0, id 1):
    // the same number an accepted connection's rolling id starts from.
    const ConnHandle first = make_handle(0, 0);
    ASSERT_FALSE(handle_accepted(first));
    a.host->on_command(connect(first, ip_a, 40000, ip_b), 0);
    b.host->on_command(connect(first, ip_b, 40000, ip_a), 0);
    exchange(a, b, 1000);
    for (Side *s : {&a, &b}) {
        ConnHandle connected = 0, accepted = 0;
        for (const LegReport &r : s->reports.got) {
            if (r.type == ReportType::CONNECTED) connected = r.handle;
            if (r.type == ReportType::ACCEPTED) accepted = r.handle;
        }
        ASSERT_EQ(connected, first) << "the opened connection keeps the core's handle";
        ASSERT_NE(accepted, 0u) << "the peer's connection was accepted";
        EXPECT_TRUE(handle_accepted(accepted));
        EXPECT_FALSE(handle_accepted(connected));
        EXPECT_NE(accepted, connected);
        EXPECT_EQ(handle_host(accepted), 0u);
        EXPECT_EQ(s->host->connections(), 2u);
        ASSERT_NE(s->host->connection(accepted), nullptr);
        ASSERT_NE(s->host->connection(connected), nullptr);
        EXPECT_EQ(s->host->connection(accepted)->endpoints().local_port, 8834);
        EXPECT_EQ(s->host->connection(connected)->endpoints().local_port, 40000);
        // Every report names one of the two handles: none is lost between kinds.
        std::set<ConnHandle> named;
        for (const LegReport &r : s->reports.got) named.insert(r.handle);
        EXPECT_EQ(named, (std::set<ConnHandle>{accepted, connected}));
    }
}

TEST(LegHostDuplex, AcceptedWatchdogAppliesToAcceptedConnectionsOnly) {
    // A goes silent after the handshakes (its segments are dropped). B has
    // data outstanding on both connections; with a receiver's watchdog on
    // its accepted connection (no suspicion after RTOs) only its opened
    // leg is declared dead early.
    const tcp::IpAddr ip_a = tcp::IpAddr::v4(0x0a000001), ip_b = tcp::IpAddr::v4(0x0a000002);
    Side a, b;
    make(a, 0, ip_a, 3);
    make(b, 0, ip_b, 4, /*with_accepted_watchdog=*/true);
    const ConnHandle first = make_handle(0, 0);
    a.host->on_command(connect(first, ip_a, 40000, ip_b), 0);
    b.host->on_command(connect(first, ip_b, 40000, ip_a), 0);
    exchange(a, b, 1000);
    ConnHandle b_accepted = 0;
    for (const LegReport &r : b.reports.got)
        if (r.type == ReportType::ACCEPTED) b_accepted = r.handle;
    ASSERT_NE(b_accepted, 0u);
    write_on(b, {first, b_accepted}, 2000);
    b.reports.got.clear();
    silence(b, 2000); // A never answers again: B's retransmissions go nowhere
    bool opened_ended = false, accepted_ended = false;
    for (const LegReport &r : b.reports.got)
        if (r.type == ReportType::ENDED && r.cause == EndCause::WATCHDOG) {
            opened_ended |= r.handle == first;
            accepted_ended |= r.handle == b_accepted;
        }
    EXPECT_TRUE(opened_ended) << "the opened leg is watched as a sender's";
    EXPECT_FALSE(accepted_ended) << "the accepted connection is watched as a receiver's";
}

TEST(LegHostDuplex, TunnelPortConnectionsAreAcceptedButNeverJudgedByTheWatchdog) {
    // `--terminate-on ports`: B listens on the legs' port and on the
    // tunnel's. A opens one connection to each; both are accepted (the
    // ACCEPTED report's port tells the session which is which). A then goes
    // silent while B has data outstanding on both: the Watchdog declares the
    // leg dead early, never the tunnelled connection (a user's program,
    // whose peer's silence is not a dead link).
    const tcp::IpAddr ip_a = tcp::IpAddr::v4(0x0a000001), ip_b = tcp::IpAddr::v4(0x0a000002);
    Side a, b;
    make(a, 0, ip_a, 5);
    HostConfig hc = config(0, ip_b, false);
    hc.tunnel_port = 2222;
    make(b, hc, 6);
    const ConnHandle to_leg = make_handle(0, 0), to_tunnel = make_handle(0, 1);
    a.host->on_command(connect(to_leg, ip_a, 40000, ip_b), 0);
    LegCommand c = connect(to_tunnel, ip_a, 40001, ip_b);
    c.ep.remote_port = 2222;
    a.host->on_command(c, 0);
    exchange(a, b, 1000);
    ConnHandle leg = 0, tunnelled = 0;
    for (const LegReport &r : b.reports.got)
        if (r.type == ReportType::ACCEPTED) (r.ep.local_port == 2222 ? tunnelled : leg) = r.handle;
    ASSERT_NE(leg, 0u) << "the leg was accepted";
    ASSERT_NE(tunnelled, 0u) << "the connection to the tunnel's port was accepted";
    EXPECT_TRUE(handle_accepted(tunnelled));
    EXPECT_EQ(b.host->connection(tunnelled)->endpoints().local_port, 2222);
    write_on(b, {leg, tunnelled}, 2000);
    b.reports.got.clear();
    silence(b, 2000);
    bool leg_ended = false, tunnelled_ended = false;
    for (const LegReport &r : b.reports.got)
        if (r.type == ReportType::ENDED && r.cause == EndCause::WATCHDOG) {
            leg_ended |= r.handle == leg;
            tunnelled_ended |= r.handle == tunnelled;
        }
    EXPECT_TRUE(leg_ended) << "the accepted leg is watched";
    EXPECT_FALSE(tunnelled_ended) << "the tunnelled connection is left to TCP's own timeouts";
}

TEST(LegHostDuplex, TheTunnelPortMayNotBeTheLegsPort) {
    HostConfig hc = config(0, tcp::IpAddr::v4(0x0a000002), false);
    hc.tunnel_port = hc.listen_port;
    Reports r;
    EXPECT_THROW(LegHost(hc, [](const tcp::Segment &) {}, [] { return 1u; }, r), std::invalid_argument);
}

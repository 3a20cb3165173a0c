// Connection state machine: handshake variants, acceptability and trimming,
// flow control, timers, loss recovery, close, reset and keep-alive.
#include "harness.h"

namespace tcptest {
namespace {

Config quick() {
    Config c;
    c.delayed_ack_us = 0;
    c.time_wait_us = 50'000;
    return c;
}

// A segment as the client would send it, for injection into the server.
Segment from_client(const Pair &p, uint8_t flags, uint32_t seq, uint32_t ack, std::span<const uint8_t> data = {}) {
    Segment s;
    s.src_ip = kClientIp, s.dst_ip = kServerIp;
    s.src_port = kClientPort, s.dst_port = kServerPort;
    s.flags = flags, s.seq = seq, s.ack = ack, s.window = 65535;
    s.payload = data;
    (void)p;
    return s;
}

// ---------------------------------------------------------------- handshake

TEST(Handshake, AllOptionsNegotiated) {
    Pair p(quick(), quick());
    ASSERT_TRUE(p.client->connect(p.now));
    ASSERT_EQ(p.cout.out.size(), 1u);
    const Segment syn = p.cout.last();
    EXPECT_TRUE(syn.has(flag::SYN));
    EXPECT_FALSE(syn.has(flag::ACK));
    EXPECT_EQ(syn.opt.mss, 1460);
    EXPECT_TRUE(syn.opt.has_wscale);
    EXPECT_EQ(syn.opt.wscale, 3); // 256 KiB buffer: 262144 >> 2 > 65535 -> shift 3
    EXPECT_TRUE(syn.opt.sack_permitted);
    EXPECT_TRUE(syn.opt.has_ts);
    EXPECT_EQ(syn.opt.ts_ecr, 0u);
    EXPECT_EQ(syn.window, 65535); // SYN windows are never scaled (RFC 7323 2.2)
    p.c2s();
    ASSERT_EQ(p.sout.out.size(), 1u);
    const Segment synack = p.sout.last();
    EXPECT_EQ(synack.flags, flag::SYN | flag::ACK);
    EXPECT_EQ(synack.ack, syn.seq + 1);
    EXPECT_TRUE(synack.opt.has_wscale && synack.opt.sack_permitted && synack.opt.has_ts);
    EXPECT_EQ(synack.opt.ts_ecr, syn.opt.ts_val);
    p.pump();
    ASSERT_TRUE(p.server);
    for (Connection *c : {p.client.get(), p.server.get()}) {
        EXPECT_EQ(c->state(), State::Established);
        EXPECT_TRUE(c->sack_enabled());
        EXPECT_TRUE(c->timestamps_enabled());
        EXPECT_EQ(c->snd_wscale(), 3);
        EXPECT_EQ(c->rcv_wscale(), 3);
        EXPECT_EQ(c->send_mss(), 1460 - 12);
    }
    EXPECT_EQ(events(*p.client), std::vector<EventType>{EventType::Established});
    EXPECT_EQ(events(*p.server), std::vector<EventType>{EventType::Established});
    EXPECT_EQ(p.server->irs(), p.client->iss());
    EXPECT_EQ(p.client->irs(), p.server->iss());
}

TEST(Handshake, PeerOffersNoneFallsBack) {
    Config none = quick();
    none.window_scale = none.sack = none.timestamps = false;
    none.recv_buffer = 1 << 20;
    Pair p(quick(), none);
    p.handshake();
    for (Connection *c : {p.client.get(), p.server.get()}) {
        EXPECT_FALSE(c->sack_enabled());
        EXPECT_FALSE(c->timestamps_enabled());
        EXPECT_EQ(c->snd_wscale(), 0);
        EXPECT_EQ(c->rcv_wscale(), 0);
        EXPECT_EQ(c->send_mss(), 1460);
    }
    // Unscaled: the server's 1 MiB buffer is advertised as 65535.
    std::vector<uint8_t> d(10);
    p.client->send(d, p.now);
    p.c2s();
    ASSERT_FALSE(p.sout.out.empty());
    EXPECT_EQ(p.sout.last().window, 65535);
    EXPECT_FALSE(p.sout.last().opt.has_ts);
}

struct Missing {
    const char *name;
    bool Config::*field;
    bool on_server; // disable on server (SYN-ACK lacks it) or client (SYN lacks it)
};

class HandshakeMissing : public ::testing::TestWithParam<Missing> {};

TEST_P(HandshakeMissing, OnlyThatOptionIsOff) {
    const Missing m = GetParam();
    Config c = quick(), s = quick();
    Config &target = m.on_server ? s : c;
    target.*m.field = false;
    Pair p(c, s);
    p.client->connect(p.now);
    p.c2s();
    const Segment synack = p.sout.last();
    const bool ws = m.field != &Config::window_scale, sack = m.field != &Config::sack, ts = m.field != &Config::timestamps;
    // RFC 7323 2.2 / 3.2, RFC 2018 2: the SYN-ACK never carries what the SYN
    // lacked, and the server itself may decline.
    EXPECT_EQ(synack.opt.has_wscale, ws);
    EXPECT_EQ(synack.opt.sack_permitted, sack);
    EXPECT_EQ(synack.opt.has_ts, ts);
    p.pump();
    ASSERT_TRUE(p.server);
    for (Connection *x : {p.client.get(), p.server.get()}) {
        EXPECT_EQ(x->state(), State::Established);
        EXPECT_EQ(x->snd_wscale() != 0, ws);
        EXPECT_EQ(x->sack_enabled(), sack);
        EXPECT_EQ(x->timestamps_enabled(), ts);
        EXPECT_EQ(x->send_mss(), ts ? 1448 : 1460);
    }
    // Data still flows both ways.
    auto d = pattern(100000);
    size_t sent = 0;
    std::vector<uint8_t> got;
    for (int i = 0; i < 200 && got.size() < d.size(); ++i) {
        sent += p.client->send(std::span(d).subspan(sent), p.now);
        p.pump(2);
        auto g = p.drain_server();
        got.insert(got.end(), g.begin(), g.end());
    }
    EXPECT_TRUE(got == d);
}

INSTANTIATE_TEST_SUITE_P(Each, HandshakeMissing,
                         ::testing::Values(Missing{"ws_server", &Config::window_scale, true},
                                           Missing{"ws_client", &Config::window_scale, false},
                                           Missing{"sack_server", &Config::sack, true},
                                           Missing{"sack_client", &Config::sack, false},
                                           Missing{"ts_server", &Config::timestamps, true},
                                           Missing{"ts_client", &Config::timestamps, false}),
                         [](const auto &i) { return std::string(i.param.name); });

TEST(Handshake, NoMssOptionUsesDefault536) {
    Capture out;
    Connection c(quick(), client_ep(), out.sink(), SeededRandom(1));
    c.connect(0);
    const Segment syn = out.last();
    Segment sa;
    sa.src_ip = kServerIp, sa.dst_ip = kClientIp, sa.src_port = kServerPort, sa.dst_port = kClientPort;
    sa.flags = flag::SYN | flag::ACK, sa.seq = 5000, sa.ack = syn.seq + 1, sa.window = 8000;
    c.on_segment(sa, 100);
    EXPECT_EQ(c.state(), State::Established);
    EXPECT_EQ(c.send_mss(), 536); // RFC 9293 3.7.1
    EXPECT_EQ(c.stats().peer_rwnd, 8000u);
    EXPECT_EQ(out.last().ack, 5001u);
}

TEST(Handshake, IsnComesFromInjectedGenerator) {
    Capture o1, o2, o3;
    Connection a(quick(), client_ep(), o1.sink(), SeededRandom(7));
    Connection b(quick(), client_ep(), o2.sink(), SeededRandom(7));
    Connection c(quick(), client_ep(), o3.sink(), SeededRandom(8));
    a.connect(0), b.connect(0), c.connect(0);
    EXPECT_EQ(a.iss(), b.iss());
    EXPECT_NE(a.iss(), c.iss());
    EXPECT_EQ(o1.last().seq, a.iss());
    int calls = 0;
    Capture o4;
    Connection d(quick(), client_ep(), o4.sink(), [&calls] { return 0xfffffff0u + calls++; });
    d.connect(0);
    EXPECT_EQ(d.iss(), 0xfffffff0u);
}

TEST(Handshake, SynRetransmitBackoffAndTimeout) {
    Config c = quick();
    c.syn_retries = 3;
    c.rto_initial_us = 1'000'000;
    Capture out;
    Connection conn(c, client_ep(), out.sink(), SeededRandom(1));
    conn.connect(0);
    std::vector<uint64_t> times;
    uint64_t now = 0;
    while (!conn.is_closed() && now < 100'000'000) {
        now = conn.next_timer_deadline();
        conn.on_timer(now);
        times.push_back(now);
    }
    ASSERT_EQ(out.out.size(), 4u); // SYN + 3 retries
    EXPECT_EQ(times[0], 1'000'000u);
    EXPECT_EQ(times[1], 3'000'000u); // doubled (RFC 6298 5.5)
    EXPECT_EQ(times[2], 7'000'000u);
    Event e;
    ASSERT_TRUE(conn.poll_event(e));
    EXPECT_EQ(e.type, EventType::TimedOut);
    EXPECT_EQ(e.reason, CloseReason::SYN_TIMED_OUT);
}

TEST(Handshake, RstToSynIsRefused) {
    Capture out;
    Connection c(quick(), client_ep(), out.sink(), SeededRandom(1));
    c.connect(0);
    Segment r;
    r.src_ip = kServerIp, r.dst_ip = kClientIp, r.src_port = kServerPort, r.dst_port = kClientPort;
    r.flags = flag::RST;
    r.ack = c.iss() + 1;
    c.on_segment(r, 1); // no ACK bit: ignored (RFC 9293 3.10.7.3)
    EXPECT_EQ(c.state(), State::SynSent);
    r.flags = flag::RST | flag::ACK;
    c.on_segment(r, 2);
    Event e;
    ASSERT_TRUE(c.poll_event(e));
    EXPECT_EQ(e.type, EventType::Reset);
    EXPECT_EQ(e.reason, CloseReason::REFUSED);
}

TEST(Handshake, BadAckInSynSentDrawsRst) {
    Capture out;
    Connection c(quick(), client_ep(), out.sink(), SeededRandom(1));
    c.connect(0);
    Segment sa;
    sa.src_ip = kServerIp, sa.dst_ip = kClientIp, sa.src_port = kServerPort, sa.dst_port = kClientPort;
    sa.flags = flag::SYN | flag::ACK, sa.seq = 9, sa.ack = c.iss() + 77;
    c.on_segment(sa, 1);
    EXPECT_EQ(c.state(), State::SynSent);
    EXPECT_EQ(out.last().flags, flag::RST);
    EXPECT_EQ(out.last().seq, c.iss() + 77);
}

// ---------------------------------------------------------------- listener

TEST(Listener, HalfOpenTableIsBounded) {
    Capture out;
    Config c = quick();
    c.syn_retries = 2;
    Listener l(c, kServerIp, kServerPort, 2, out.sink(), SeededRandom(3));
    for (uint16_t port = 1; port <= 5; ++port) {
        Segment syn;
        syn.src_ip = kClientIp, syn.dst_ip = kServerIp, syn.src_port = port, syn.dst_port = kServerPort;
        syn.flags = flag::SYN, syn.seq = 100 * port;
        EXPECT_EQ(l.on_segment(syn, 0), nullptr);
    }
    // Beyond the table: a SYN cookie each (RFC 4987), nothing remembered.
    EXPECT_EQ(l.half_open(), 2u);
    EXPECT_EQ(out.out.size(), 5u);
    EXPECT_EQ(l.stats().syn_cookies_sent, 3u);
    // SYN-ACKs are retransmitted, then the entries expire and free the table.
    uint64_t now = 0;
    while (l.half_open() && now < 100'000'000) {
        now = l.next_timer_deadline();
        l.on_timer(now);
    }
    EXPECT_EQ(l.stats().syn_ack_retransmits, 4u);
    EXPECT_EQ(l.stats().half_open_expired, 2u);
    EXPECT_EQ(l.half_open(), 0u);
}

TEST(Listener, StrayAckGetsRstAndRstClearsEntry) {
    Capture out;
    Listener l(quick(), kServerIp, kServerPort, 4, out.sink(), SeededRandom(3));
    Segment a;
    a.src_ip = kClientIp, a.dst_ip = kServerIp, a.src_port = 9, a.dst_port = kServerPort;
    a.flags = flag::ACK, a.seq = 1, a.ack = 777;
    EXPECT_EQ(l.on_segment(a, 0), nullptr);
    EXPECT_EQ(out.last().flags, flag::RST);
    EXPECT_EQ(out.last().seq, 777u);
    Segment syn = a;
    syn.flags = flag::SYN, syn.seq = 50;
    l.on_segment(syn, 0);
    EXPECT_EQ(l.half_open(), 1u);
    Segment rst = a;
    rst.flags = flag::RST, rst.seq = 60; // not exact: ignored
    l.on_segment(rst, 0);
    EXPECT_EQ(l.half_open(), 1u);
    rst.seq = 51;
    l.on_segment(rst, 0);
    EXPECT_EQ(l.half_open(), 0u);
}

TEST(Listener, DataInThirdSegmentIsDelivered) {
    Pair p(quick(), quick());
    p.client->connect(p.now);
    p.c2s();
    p.client->send(std::vector<uint8_t>{}, p.now);
    p.s2c(); // client established, its ACK queued
    std::vector<uint8_t> d = {1, 2, 3};
    p.client->send(d, p.now);
    auto segs = p.cout.take();
    ASSERT_EQ(segs.size(), 2u);
    // Lose the pure ACK: the data segment completes the handshake.
    p.server = p.listener->on_bytes(segs[1].bytes, segs[1].src, segs[1].dst, p.now);
    ASSERT_TRUE(p.server);
    EXPECT_EQ(p.server->state(), State::Established);
    EXPECT_EQ(p.drain_server(), d);
}

// ---------------------------------------------------------------- acceptability / trimming

TEST(Receive, AcceptabilityAndTrimming) {
    Pair p(quick(), quick());
    p.handshake();
    const uint32_t base = p.server->rcv_nxt();
    const uint32_t ack = p.server->snd_nxt();
    auto d = pattern(300);
    // In order.
    p.server->on_segment(from_client(p, flag::ACK, base, ack, std::span(d).first(100)), p.now);
    EXPECT_EQ(p.server->rcv_nxt(), base + 100);
    // Exact duplicate: not acceptable (RFC 9293 3.10.7.4), ACKed, counted.
    p.sout.take();
    p.server->on_segment(from_client(p, flag::ACK, base, ack, std::span(d).first(100)), p.now);
    EXPECT_EQ(p.server->stats().duplicate_segments, 1u);
    EXPECT_EQ(p.server->stats().drops[size_t(Drop::NOT_ACCEPTABLE)], 1u);
    ASSERT_EQ(p.sout.out.size(), 1u);
    EXPECT_EQ(p.sout.last().ack, base + 100);
    // Overlapping old + new: the old part is trimmed.
    p.server->on_segment(from_client(p, flag::ACK, base + 50, ack, std::span(d).subspan(50, 100)), p.now);
    EXPECT_EQ(p.server->rcv_nxt(), base + 150);
    // Far beyond the window: dropped with an ACK.
    p.server->on_segment(from_client(p, flag::ACK, base + 10'000'000, ack, std::span(d).first(10)), p.now);
    EXPECT_EQ(p.server->rcv_nxt(), base + 150);
    EXPECT_EQ(p.server->stats().drops[size_t(Drop::NOT_ACCEPTABLE)], 2u);
    auto got = p.drain_server();
    EXPECT_TRUE(std::equal(got.begin(), got.end(), d.begin()));
    EXPECT_EQ(got.size(), 150u);
}

TEST(Receive, TrimsAtRightEdge) {
    Config s = quick();
    s.recv_buffer = 4096;
    s.window_scale = false;
    Pair p(quick(), s);
    p.handshake();
    const uint32_t base = p.server->rcv_nxt(), ack = p.server->snd_nxt();
    auto d = pattern(6000);
    p.server->on_segment(from_client(p, flag::ACK, base, ack, d), p.now);
    EXPECT_EQ(p.server->readable_bytes(), 4096u);
    EXPECT_EQ(p.server->rcv_nxt(), base + 4096);
    EXPECT_EQ(p.sout.last().window, 0); // buffer full: zero window
}

TEST(Receive, OutOfOrderHeldInRingAndSacked) {
    Pair p(quick(), quick());
    p.handshake();
    const uint32_t base = p.server->rcv_nxt(), ack = p.server->snd_nxt();
    auto d = pattern(4000);
    p.sout.take();
    p.server->on_segment(from_client(p, flag::ACK, base + 2000, ack, std::span(d).subspan(2000, 1000)), p.now);
    p.server->on_segment(from_client(p, flag::ACK, base + 1000, ack, std::span(d).subspan(1000, 500)), p.now);
    EXPECT_EQ(p.server->readable_bytes(), 0u);
    EXPECT_EQ(p.server->stats().out_of_order_segments, 2u);
    // Immediate ACKs carry SACK blocks, most recent first (RFC 2018 4).
    const Segment a = p.sout.last();
    EXPECT_EQ(a.ack, base);
    ASSERT_EQ(a.opt.sack_count, 2);
    EXPECT_EQ(a.opt.sack[0].left, base + 1000);
    EXPECT_EQ(a.opt.sack[0].right, base + 1500);
    EXPECT_EQ(a.opt.sack[1].left, base + 2000);
    p.server->on_segment(from_client(p, flag::ACK, base + 1500, ack, std::span(d).subspan(1500, 500)), p.now);
    p.server->on_segment(from_client(p, flag::ACK, base, ack, std::span(d).first(1000)), p.now);
    EXPECT_EQ(p.server->rcv_nxt(), base + 3000);
    EXPECT_EQ(p.sout.last().opt.sack_count, 0);
    auto got = p.drain_server();
    EXPECT_TRUE(std::equal(got.begin(), got.end(), d.begin()) && got.size() == 3000);
}

TEST(Receive, BadChecksumNeverDelivered) {
    Pair p(quick(), quick());
    p.handshake();
    std::vector<uint8_t> d = {9, 9, 9};
    p.client->send(d, p.now);
    auto segs = p.cout.take();
    ASSERT_EQ(segs.size(), 1u);
    segs[0].bytes.back() ^= 1;
    p.server->on_bytes(segs[0].bytes, segs[0].src, segs[0].dst, p.now);
    EXPECT_EQ(p.server->readable_bytes(), 0u);
    EXPECT_EQ(p.server->stats().bad_checksums, 1u);
    EXPECT_EQ(p.server->stats().drops[size_t(Drop::BAD_CHECKSUM)], 1u);
}

// ---------------------------------------------------------------- flow control

TEST(FlowControl, WindowScalingAdvertisesBuffer) {
    Config s = quick();
    s.recv_buffer = 1 << 20; // needs shift 5
    Pair p(quick(), s);
    p.handshake();
    EXPECT_EQ(p.server->rcv_wscale(), 5);
    EXPECT_EQ(p.client->snd_wscale(), 5);
    std::vector<uint8_t> d(1000);
    p.client->send(d, p.now);
    p.c2s();
    const Segment a = p.sout.last();
    // Advertised window << 5 covers the free space (1 MiB - 1000 unread).
    EXPECT_GE(uint32_t(a.window) << 5, (1u << 20) - 1000);
    EXPECT_LT(uint32_t(a.window) << 5, (1u << 20));
    p.s2c();
    EXPECT_EQ(p.client->stats().peer_rwnd, uint32_t(a.window) << 5);
}

TEST(FlowControl, ZeroWindowPersistAndWindowUpdate) {
    Config s = quick();
    s.recv_buffer = 8192;
    s.window_scale = false;
    Pair p(quick(), s);
    p.handshake();
    auto d = pattern(40000);
    size_t sent = p.client->send(d, p.now);
    p.pump();
    EXPECT_EQ(p.server->readable_bytes(), 8192u);
    EXPECT_EQ(p.client->stats().peer_rwnd, 0u);
    // Persist timer probes the zero window; the receiver answers with ACKs.
    uint64_t probes_before = p.client->stats().zero_window_probes;
    for (int i = 0; i < 3; ++i) {
        p.now = p.client->next_timer_deadline();
        p.client->on_timer(p.now);
        p.pump();
    }
    EXPECT_GT(p.client->stats().zero_window_probes, probes_before);
    EXPECT_EQ(p.client->state(), State::Established);
    // The application drains: a window update reopens the flow.
    std::vector<uint8_t> got;
    for (int i = 0; i < 400 && got.size() < d.size(); ++i) {
        auto g = p.drain_server();
        got.insert(got.end(), g.begin(), g.end());
        if (sent < d.size()) sent += p.client->send(std::span(d).subspan(sent), p.now);
        p.pump();
        if (p.client->next_timer_deadline() <= p.now + 10'000'000 && got.size() < d.size() && p.server->readable_bytes() == 0 &&
            p.cout.out.empty()) {
            p.now = std::max(p.now, p.client->next_timer_deadline());
            p.client->on_timer(p.now);
        }
    }
    ASSERT_EQ(got.size(), d.size());
    EXPECT_TRUE(got == d);
}

// Without window scaling the advertised window is capped at 65535: freeing
// receive buffer beyond that cannot move the right edge, so consume() must
// not send a "window update" that repeats the last ACK. The peer counts such
// a segment as a duplicate ACK (RFC 5681 2: same ACK, same window, no data),
// and three in a row trigger a spurious fast retransmit. Found against the
// Linux kernel with net.ipv4.tcp_window_scaling=0 (tests/interop).
TEST(FlowControl, NoWindowUpdateWhenTheCappedEdgeCannotMove) {
    Config c = quick();
    c.window_scale = false;
    Config s = quick();
    s.recv_buffer = 256 * 1024; // far above what 16 unscaled bits can offer
    Pair p(c, s);
    p.handshake();
    const auto d = pattern(3000);
    ASSERT_EQ(p.client->send(d, p.now), d.size());
    p.pump();
    ASSERT_EQ(p.server->readable_bytes(), d.size());
    ASSERT_TRUE(p.sout.out.empty());
    EXPECT_EQ(p.server->consume(d.size(), p.now), d.size());
    EXPECT_TRUE(p.sout.out.empty()) << p.sout.out.size() << " segment(s) repeating ACK " << p.sout.last().ack
                                    << " window " << p.sout.last().window;
    // A window that really moves is still announced: fill past the cap, drain.
    const auto big = pattern(200 * 1024, 3);
    size_t sent = 0;
    std::vector<uint8_t> got;
    for (int i = 0; i < 400 && got.size() < big.size(); ++i) {
        sent += p.client->send(std::span(big).subspan(sent), p.now);
        p.pump();
        auto g = p.drain_server();
        got.insert(got.end(), g.begin(), g.end());
        p.pump();
    }
    EXPECT_TRUE(got == big);
}

// A receiver whose application reads every segment as it arrives must not
// answer each one: RFC 1122 4.2.3.2 asks for an ACK per two full segments,
// and reading frees space the peer still believes it has (no update due).
TEST(FlowControl, PromptReaderAcksEverySecondSegmentNotEveryOne) {
    Config c = quick();
    Config s = quick();
    s.delayed_ack_us = 40'000; // the default: ACK every second full segment
    Pair p(c, s);
    p.handshake();
    const auto big = pattern(400 * 1024, 5);
    size_t sent = 0, data_segments = 0, acks = 0;
    std::vector<uint8_t> got;
    for (int round = 0; round < 2000 && got.size() < big.size(); ++round) {
        sent += p.client->send(std::span(big).subspan(sent), p.now);
        for (auto &w : p.cout.take()) {
            if (w.bytes.size() > 20) ++data_segments;
            p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
            auto g = p.drain_server(); // the application reads at once
            got.insert(got.end(), g.begin(), g.end());
        }
        for (auto &w : p.sout.take()) {
            ++acks;
            p.client->on_bytes(w.bytes, w.src, w.dst, p.now);
        }
        p.advance(100);
    }
    ASSERT_TRUE(got == big);
    ASSERT_GT(data_segments, 250u);
    // Delayed-ACK timers may add a few; one per segment would be ~data_segments.
    EXPECT_LE(acks, data_segments * 6 / 10) << acks << " ACKs for " << data_segments << " data segments";
}

// A segment that leaves the sender no room for a full one is acknowledged
// at once: the sender is window-limited and would otherwise wait out our
// delayed-ACK timer (a Linux sender probes for tail loss meanwhile).
TEST(FlowControl, SegmentThatFillsTheWindowIsAckedAtOnce) {
    Config c = quick();
    Config s = quick();
    s.delayed_ack_us = 40'000;
    s.recv_buffer = 8192;
    s.window_scale = false;
    Pair p(c, s);
    p.handshake();
    const auto d = pattern(7000); // 4 x 1460 + 1160: 1192 bytes of window left
    ASSERT_EQ(p.client->send(d, p.now), d.size());
    const uint32_t want_ack = p.client->snd_nxt();
    p.c2s(); // no time passes: a delayed ACK could not have fired
    bool acked = false;
    for (auto &w : p.sout.take()) {
        Segment seg;
        ASSERT_EQ(parse_segment(w.bytes, w.src, w.dst, seg), ParseResult::Ok);
        acked |= seg.ack == want_ack;
    }
    EXPECT_TRUE(acked) << "the last segment waited for the delayed-ACK timer";
}

// ---------------------------------------------------------------- RTO

TEST(Rto, SampleBackoffAndRetryBound) {
    Config c = quick();
    c.timestamps = false;
    c.max_retransmits = 3;
    // The floor bounds the variance term (SRTT + max(4 RTTVAR, rto_min),
    // as Linux): below 4 RTTVAR here, so RFC 6298 2.2's formula shows.
    c.rto_min_us = 50'000;
    Pair p(c, c);
    p.client->connect(p.now);
    p.c2s();
    p.now += 40'000; // 40 ms handshake RTT
    p.s2c();
    p.pump();
    // RFC 6298 2.2: SRTT = R, RTTVAR = R / 2, RTO = SRTT + 4 RTTVAR.
    Stats st = p.client->stats();
    EXPECT_EQ(st.srtt_us, 40'000u);
    EXPECT_EQ(st.rttvar_us, 20'000u);
    EXPECT_EQ(st.rto_us, 120'000u);
    std::vector<uint8_t> d(100);
    p.client->send(d, p.now);
    p.cout.take(); // lost
    const uint64_t first = p.client->next_timer_deadline();
    EXPECT_EQ(first, p.now + 120'000);
    std::vector<uint64_t> rtos;
    while (!p.client->is_closed()) {
        p.now = p.client->next_timer_deadline();
        p.client->on_timer(p.now);
        rtos.push_back(p.client->stats().rto_us);
        p.cout.take();
    }
    ASSERT_EQ(rtos.size(), 4u);
    EXPECT_EQ(rtos[0], 240'000u); // RFC 6298 5.5 back-off
    EXPECT_EQ(rtos[1], 480'000u);
    EXPECT_EQ(rtos[2], 960'000u);
    EXPECT_EQ(p.client->stats().retransmits_timeout, 3u);
    EXPECT_EQ(p.client->close_reason(), CloseReason::TIMED_OUT);
    Event e;
    std::vector<EventType> ev;
    while (p.client->poll_event(e)) ev.push_back(e.type);
    EXPECT_EQ(ev.back(), EventType::TimedOut);
}

TEST(Rto, KarnIgnoresRetransmittedSegment) {
    Config c = quick();
    c.timestamps = false;
    Pair p(c, c);
    p.client->connect(p.now);
    p.c2s();
    p.now += 10'000;
    p.pump();
    const uint64_t srtt0 = p.client->stats().srtt_us;
    std::vector<uint8_t> d(100);
    p.client->send(d, p.now);
    p.cout.take(); // original lost
    p.now = p.client->next_timer_deadline();
    p.client->on_timer(p.now);
    EXPECT_EQ(p.client->stats().retransmits_timeout, 1u);
    p.c2s();
    p.now += 900'000; // a huge "RTT" if it were sampled
    p.s2c();
    EXPECT_EQ(p.client->snd_una(), p.client->snd_nxt());
    EXPECT_EQ(p.client->stats().srtt_us, srtt0); // Karn: no sample
}

TEST(Rto, TimestampsGiveSamplesAcrossRetransmission) {
    Pair p(quick(), quick());
    p.handshake();
    std::vector<uint8_t> d(100);
    p.client->send(d, p.now);
    p.cout.take();
    p.now = p.client->next_timer_deadline();
    p.client->on_timer(p.now);
    p.c2s();
    p.now += 30'000;
    p.s2c();
    // RFC 7323 4: TSecr echoes the retransmission, so R = 30 ms is valid.
    EXPECT_GE(p.client->stats().srtt_us, 1000u);
}

// ---------------------------------------------------------------- fast recovery

struct LossRun {
    std::vector<uint32_t> retransmitted_seqs;
    Stats client;
    bool ended_in_recovery;
};

// Client sends `n` full segments; segments whose index is in `drop` are lost
// once. Returns which sequence numbers were retransmitted.
LossRun run_with_losses(bool sack, size_t n, std::vector<size_t> drop) {
    Config c = quick();
    c.sack = sack;
    c.initial_cwnd_segments = static_cast<uint32_t>(n);
    c.send_buffer = 1 << 20;
    Pair p(c, c);
    p.handshake();
    const uint16_t mss = p.client->send_mss();
    auto d = pattern(n * mss);
    EXPECT_EQ(p.client->send(d, p.now), d.size());
    auto first = p.cout.take();
    EXPECT_EQ(first.size(), n);
    LossRun r;
    std::vector<uint32_t> sent_seqs;
    for (size_t i = 0; i < first.size(); ++i) {
        if (std::find(drop.begin(), drop.end(), i) != drop.end()) continue;
        p.server->on_bytes(first[i].bytes, first[i].src, first[i].dst, p.now);
    }
    for (int round = 0; round < 50; ++round) {
        p.now += 1000;
        for (auto &w : p.sout.take()) p.client->on_bytes(w.bytes, w.src, w.dst, p.now);
        auto again = p.cout.take();
        if (again.empty()) break;
        for (auto &w : again) {
            r.retransmitted_seqs.push_back(w.parse().seq);
            p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
        }
    }
    auto got = p.drain_server();
    EXPECT_TRUE(got == d);
    r.client = p.client->stats();
    r.ended_in_recovery = p.client->in_recovery();
    EXPECT_EQ(p.client->snd_una(), p.client->snd_nxt());
    return r;
}

TEST(FastRecovery, NewRenoPartialAcksRetransmitEachHole) {
    auto r = run_with_losses(false, 20, {2, 7, 12});
    EXPECT_EQ(r.client.fast_recoveries, 1u);
    EXPECT_EQ(r.client.retransmits_fast, 3u); // one per hole, via partial ACKs (RFC 6582)
    EXPECT_EQ(r.client.retransmits_timeout, 0u);
    EXPECT_EQ(r.client.rto_events, 0u);
    EXPECT_FALSE(r.ended_in_recovery);
    // After recovery cwnd = ssthresh = FlightSize / 2.
    EXPECT_EQ(r.client.cwnd, r.client.ssthresh);
}

TEST(FastRecovery, SackRecoversAllHolesInOneRtt) {
    auto r = run_with_losses(true, 20, {2, 7, 12});
    EXPECT_EQ(r.client.fast_recoveries, 1u);
    EXPECT_EQ(r.client.retransmits_fast, 3u); // exactly the lost segments (RFC 6675)
    EXPECT_EQ(r.client.retransmits_timeout, 0u);
    EXPECT_FALSE(r.ended_in_recovery);
}

TEST(FastRecovery, SackRetransmitsOnlyHoles) {
    Config c = quick();
    c.initial_cwnd_segments = 30;
    Pair p(c, c);
    p.handshake();
    const uint16_t mss = p.client->send_mss();
    auto d = pattern(30 * mss);
    p.client->send(d, p.now);
    auto first = p.cout.take();
    ASSERT_EQ(first.size(), 30u);
    const uint32_t s0 = first[0].parse().seq;
    for (size_t i = 0; i < first.size(); ++i)
        if (i != 3 && i != 4 && i != 20) p.server->on_bytes(first[i].bytes, first[i].src, first[i].dst, p.now);
    // Every dup ACK after the first hole carries SACK blocks.
    ASSERT_EQ(p.sout.out.size(), 27u);
    for (size_t i = 3; i < p.sout.out.size(); ++i) EXPECT_GT(p.sout.out[i].parse().opt.sack_count, 0) << i;
    p.s2c();
    auto rx = p.cout.take();
    std::vector<uint32_t> seqs;
    for (auto &w : rx) seqs.push_back(w.parse().seq - s0);
    // Holes: segments 3, 4 and 20 only; nothing SACKed is resent.
    EXPECT_EQ(seqs, (std::vector<uint32_t>{3u * mss, 4u * mss, 20u * mss}));
    for (auto &w : rx) p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
    p.pump();
    EXPECT_TRUE(p.drain_server() == d);
    EXPECT_FALSE(p.client->in_recovery());
}

TEST(FastRecovery, CongestionControlSelectable) {
    Config c = quick();
    c.cc = CongestionAlgo::Cubic;
    Pair p(c, quick());
    p.handshake();
    EXPECT_STREQ(p.client->congestion().name(), "cubic");
    EXPECT_STREQ(p.server->congestion().name(), "newreno");
}

// ---------------------------------------------------------------- close

TEST(Close, ClientFinFirst) {
    Pair p(quick(), quick());
    p.handshake();
    events(*p.client), events(*p.server);
    std::vector<uint8_t> d = {1, 2, 3};
    p.client->send(d, p.now);
    p.client->shutdown_write(p.now);
    EXPECT_EQ(p.client->state(), State::FinWait1);
    EXPECT_EQ(p.client->send(d, p.now), 0u);
    p.pump();
    EXPECT_EQ(p.client->state(), State::FinWait2);
    EXPECT_EQ(p.server->state(), State::CloseWait);
    EXPECT_TRUE(p.server->peer_closed());
    EXPECT_EQ(events(*p.server), std::vector<EventType>{EventType::PeerFin});
    EXPECT_EQ(p.drain_server(), d);
    // Half-close: the server can still send.
    std::vector<uint8_t> back = {7, 8};
    EXPECT_EQ(p.server->send(back, p.now), 2u);
    p.pump();
    std::vector<uint8_t> buf(10);
    EXPECT_EQ(p.client->recv(buf, p.now), 2u);
    p.server->shutdown_write(p.now);
    EXPECT_EQ(p.server->state(), State::LastAck);
    p.pump();
    EXPECT_EQ(p.client->state(), State::TimeWait);
    EXPECT_EQ(p.server->state(), State::Closed);
    EXPECT_EQ(p.server->close_reason(), CloseReason::NORMAL);
    EXPECT_EQ(events(*p.server), std::vector<EventType>{EventType::Closed});
    p.advance(50'000);
    EXPECT_EQ(p.client->state(), State::Closed);
    EXPECT_EQ(events(*p.client), (std::vector<EventType>{EventType::PeerFin, EventType::Closed}));
}

TEST(Close, ServerFinFirst) {
    Pair p(quick(), quick());
    p.handshake();
    p.server->shutdown_write(p.now);
    p.pump();
    EXPECT_EQ(p.server->state(), State::FinWait2);
    EXPECT_EQ(p.client->state(), State::CloseWait);
    p.client->shutdown_write(p.now);
    p.pump();
    EXPECT_EQ(p.client->state(), State::Closed);
    EXPECT_EQ(p.server->state(), State::TimeWait);
    p.advance(60'000);
    EXPECT_EQ(p.server->state(), State::Closed);
    EXPECT_EQ(p.server->close_reason(), CloseReason::NORMAL);
}

TEST(Close, SimultaneousCloseGoesThroughClosing) {
    Pair p(quick(), quick());
    p.handshake();
    p.client->shutdown_write(p.now);
    p.server->shutdown_write(p.now);
    auto cf = p.cout.take();
    auto sf = p.sout.take();
    for (auto &w : sf) p.client->on_bytes(w.bytes, w.src, w.dst, p.now);
    for (auto &w : cf) p.server->on_bytes(w.bytes, w.src, w.dst, p.now);
    EXPECT_EQ(p.client->state(), State::Closing);
    EXPECT_EQ(p.server->state(), State::Closing);
    p.pump();
    EXPECT_EQ(p.client->state(), State::TimeWait);
    EXPECT_EQ(p.server->state(), State::TimeWait);
    p.advance(60'000);
    EXPECT_TRUE(p.client->is_closed() && p.server->is_closed());
}

TEST(Close, LostFinIsRetransmitted) {
    Pair p(quick(), quick());
    p.handshake();
    p.client->shutdown_write(p.now);
    p.cout.take(); // FIN lost
    p.now = p.client->next_timer_deadline();
    p.client->on_timer(p.now);
    ASSERT_EQ(p.cout.out.size(), 1u);
    EXPECT_TRUE(p.cout.last().has(flag::FIN));
    p.pump();
    EXPECT_EQ(p.server->state(), State::CloseWait);
    EXPECT_EQ(p.client->state(), State::FinWait2);
}

// ---------------------------------------------------------------- reset / RFC 5961

TEST(Reset, ExactRstResets) {
    Pair p(quick(), quick());
    p.handshake();
    events(*p.server);
    p.server->on_segment(from_client(p, flag::RST, p.server->rcv_nxt(), 0), p.now);
    EXPECT_EQ(p.server->close_reason(), CloseReason::RESET_BY_PEER);
    Event e;
    ASSERT_TRUE(p.server->poll_event(e));
    EXPECT_EQ(e.type, EventType::Reset);
}

TEST(Reset, InWindowRstDrawsChallengeAck) {
    Pair p(quick(), quick());
    p.handshake();
    p.sout.take();
    p.server->on_segment(from_client(p, flag::RST, p.server->rcv_nxt() + 100, 0), p.now);
    EXPECT_EQ(p.server->state(), State::Established);
    EXPECT_EQ(p.server->stats().challenge_acks, 1u);
    ASSERT_EQ(p.sout.out.size(), 1u);
    const Segment ca = p.sout.last();
    EXPECT_EQ(ca.flags, flag::ACK);
    EXPECT_EQ(ca.ack, p.server->rcv_nxt());
    // Out of window: silently ignored.
    p.server->on_segment(from_client(p, flag::RST, p.server->rcv_nxt() + 100'000'000, 0), p.now);
    EXPECT_EQ(p.sout.out.size(), 1u);
    EXPECT_EQ(p.server->stats().drops[size_t(Drop::RST_OUT_OF_WINDOW)], 1u);
    EXPECT_EQ(p.server->state(), State::Established);
}

TEST(Reset, SynInSynchronizedStateDrawsChallengeAck) {
    Pair p(quick(), quick());
    p.handshake();
    p.sout.take();
    for (uint32_t seq : {p.server->rcv_nxt(), p.server->rcv_nxt() + 5000, 12345u}) {
        p.server->on_segment(from_client(p, flag::SYN, seq, 0), p.now);
        EXPECT_EQ(p.server->state(), State::Established);
    }
    EXPECT_EQ(p.server->stats().challenge_acks, 3u);
    EXPECT_EQ(p.sout.out.size(), 3u);
}

TEST(Reset, ChallengeAcksAreRateLimited) {
    Config s = quick();
    s.challenge_ack_limit = 2;
    Pair p(quick(), s);
    p.handshake();
    for (int i = 0; i < 5; ++i) p.server->on_segment(from_client(p, flag::SYN, 1, 0), p.now);
    EXPECT_EQ(p.server->stats().challenge_acks, 2u);
    p.now += 1'000'001;
    p.server->on_segment(from_client(p, flag::SYN, 1, 0), p.now);
    EXPECT_EQ(p.server->stats().challenge_acks, 3u);
}

TEST(Reset, AbortSendsRstPeerResets) {
    Pair p(quick(), quick());
    p.handshake();
    p.client->abort(p.now);
    EXPECT_EQ(p.client->close_reason(), CloseReason::ABORTED);
    ASSERT_TRUE(p.cout.last().has(flag::RST));
    p.c2s();
    EXPECT_EQ(p.server->close_reason(), CloseReason::RESET_BY_PEER);
    // A closed connection answers further segments with RST.
    p.server->on_segment(from_client(p, flag::ACK, 1, 2), p.now);
    EXPECT_TRUE(p.sout.last().has(flag::RST));
}

// RFC 9293 3.10.5: ABORT in CLOSING, LAST-ACK or TIME-WAIT deletes the TCB
// without a RST: the peer has closed its side and has everything; a RST
// would only reach a peer in TIME-WAIT (or one that already left).
TEST(Reset, AbortInLastAckOrTimeWaitSendsNoRst) {
    Pair p(quick(), quick());
    p.handshake();
    p.client->shutdown_write(p.now);
    p.pump();
    p.server->shutdown_write(p.now);
    ASSERT_EQ(p.server->state(), State::LastAck);
    p.c2s();
    p.s2c(); // the server's FIN reaches the client; its final ACK is not delivered
    ASSERT_EQ(p.client->state(), State::TimeWait);
    p.sout.take();
    p.cout.take();
    p.server->abort(p.now);
    EXPECT_EQ(p.server->state(), State::Closed);
    EXPECT_EQ(p.server->close_reason(), CloseReason::ABORTED);
    EXPECT_TRUE(p.sout.out.empty()) << "a RST from LAST-ACK";
    p.client->abort(p.now);
    EXPECT_EQ(p.client->state(), State::Closed);
    EXPECT_TRUE(p.cout.out.empty()) << "a RST from TIME-WAIT";
}

// After an RTO the sender goes back to SND.UNA, but the peer may hold
// everything (only its ACKs were lost). The abort's RST must carry the
// highest sequence sent: one at the rewound SND.NXT is below the peer's
// RCV.NXT, outside its window, and silently dropped (RFC 9293 3.10.7.1), so
// the peer kept the connection half-open (seen against Linux at 4 % loss).
TEST(Reset, AbortAfterAnRtoCarriesTheHighestSequenceSent) {
    Pair p(quick(), quick());
    p.handshake();
    std::vector<uint8_t> d(8000, 7);
    p.client->send(d, p.now);
    p.c2s();         // everything arrives
    p.sout.take();   // every ACK is lost
    // The tail loss probe (RFC 8985 7) comes first; then the RTO.
    for (int i = 0; i < 4 && p.client->stats().rto_events == 0; i++) {
        p.now = p.client->next_timer_deadline();
        p.client->on_timer(p.now); // at the RTO, go-back: SND.NXT rewound
    }
    ASSERT_EQ(p.client->stats().retransmits_timeout, 1u);
    p.cout.take();
    p.client->abort(p.now);
    ASSERT_TRUE(p.cout.last().has(flag::RST));
    EXPECT_EQ(p.cout.last().seq, p.server->rcv_nxt());
    p.c2s();
    EXPECT_EQ(p.server->close_reason(), CloseReason::RESET_BY_PEER);
}

TEST(Reset, AckOfUnsentDataIsAckedAndDropped) {
    Pair p(quick(), quick());
    p.handshake();
    p.sout.take();
    std::vector<uint8_t> d = {1};
    p.server->on_segment(from_client(p, flag::ACK, p.server->rcv_nxt(), p.server->snd_nxt() + 1000, d), p.now);
    EXPECT_EQ(p.server->readable_bytes(), 0u);
    EXPECT_EQ(p.server->stats().drops[size_t(Drop::ACK_UNSENT)], 1u);
    ASSERT_EQ(p.sout.out.size(), 1u);
}

// ---------------------------------------------------------------- keep-alive

TEST(KeepAlive, ProbesAnsweredKeepConnection) {
    Config c = quick();
    c.keepalive = true;
    c.keepalive_idle_us = 10'000'000;
    c.keepalive_interval_us = 1'000'000;
    c.keepalive_probes = 3;
    Pair p(c, quick());
    p.handshake();
    const uint64_t t0 = p.now;
    EXPECT_EQ(p.client->next_timer_deadline(), t0 + 10'000'000);
    p.now = p.client->next_timer_deadline();
    p.client->on_timer(p.now);
    ASSERT_EQ(p.cout.out.size(), 1u);
    const Segment probe = p.cout.last();
    EXPECT_EQ(probe.seq, p.client->snd_una() - 1); // RFC 1122 4.2.3.6
    EXPECT_EQ(probe.payload_len(), 0u);
    p.pump(); // server answers with an ACK
    EXPECT_EQ(p.client->stats().keepalive_probes, 1u);
    EXPECT_EQ(p.client->next_timer_deadline(), p.now + 10'000'000);
    EXPECT_EQ(p.client->state(), State::Established);
}

TEST(KeepAlive, UnansweredProbesEndConnection) {
    Config c = quick();
    c.keepalive = true;
    c.keepalive_idle_us = 10'000'000;
    c.keepalive_interval_us = 1'000'000;
    c.keepalive_probes = 3;
    Pair p(c, quick());
    p.handshake();
    while (!p.client->is_closed()) {
        p.now = p.client->next_timer_deadline();
        p.client->on_timer(p.now);
        p.cout.take();
    }
    EXPECT_EQ(p.client->stats().keepalive_probes, 3u);
    EXPECT_EQ(p.client->close_reason(), CloseReason::KEEPALIVE_TIMEOUT);
    Event e;
    std::vector<Event> ev;
    while (p.client->poll_event(e)) ev.push_back(e);
    EXPECT_EQ(ev.back().type, EventType::TimedOut);
}

// ---------------------------------------------------------------- misc

TEST(Api, RingsAreFixedAndSendReturnsZeroWhenFull) {
    Config c = quick();
    c.send_buffer = 1000;
    Pair p(c, quick());
    p.handshake();
    auto d = pattern(5000);
    EXPECT_EQ(p.client->writable_bytes(), 1000u);
    EXPECT_EQ(p.client->send(d, p.now), 1000u);
    EXPECT_EQ(p.client->send(d, p.now), 0u);
    p.pump();
    EXPECT_EQ(p.client->writable_bytes(), 1000u);
    EXPECT_THROW(Connection(Config{.send_buffer = 0}, client_ep(), p.cout.sink(), SeededRandom(1)), std::invalid_argument);
    EXPECT_STREQ(drop_name(Drop::BAD_CHECKSUM), "bad_checksum");
    EXPECT_STREQ(close_reason_name(CloseReason::TIMED_OUT), "timed_out");
}

TEST(Api, DelayedAckEverySecondSegment) {
    Config s = quick();
    s.delayed_ack_us = 40'000;
    Pair p(quick(), s);
    p.handshake();
    const uint16_t mss = p.client->send_mss();
    auto d = pattern(4 * mss);
    p.client->send(d, p.now);
    p.sout.take();
    p.c2s();
    EXPECT_EQ(p.sout.out.size(), 2u); // 4 segments -> 2 ACKs
    std::vector<uint8_t> one = {1};
    p.sout.take();
    p.client->send(one, p.now);
    p.c2s();
    EXPECT_EQ(p.sout.out.size(), 0u);
    EXPECT_EQ(p.server->next_timer_deadline(), p.now + 40'000);
    p.advance(40'000);
    EXPECT_EQ(p.sout.out.size(), 1u);
}

} // namespace
} // namespace tcptest

namespace tcptest {
namespace {

TEST(ConnectionLiveness, ConsecutiveRtosCountUntilNewDataIsAcked) {
    Pair p;
    p.handshake();
    EXPECT_EQ(p.client->consecutive_rtos(), 0u);
    const auto data = pattern(1000);
    p.client->send(data, p.now);
    p.cout.take(); // lost
    const uint64_t rto = p.client->rto_us();
    p.advance(rto);
    EXPECT_EQ(p.client->consecutive_rtos(), 1u);
    EXPECT_EQ(p.client->rto_us(), 2 * rto); // RFC 6298 5.5
    p.cout.take(); // the retransmission is lost too
    p.advance(2 * rto);
    EXPECT_EQ(p.client->consecutive_rtos(), 2u);
    p.pump(); // the next retransmission arrives and is acknowledged
    p.advance(p.ccfg.delayed_ack_us);
    p.pump();
    EXPECT_EQ(p.client->consecutive_rtos(), 0u);
    EXPECT_EQ(p.client->unanswered_probes(), 0u);
}

TEST(ConnectionZeroCopy, PeekConsumeMatchRecvAndReopenTheWindow) {
    Config small;
    small.recv_buffer = 4096;
    Pair p(Config{}, small);
    p.handshake();
    const auto data = pattern(4096 + 3000, 5);
    size_t sent = p.client->send(data, p.now);
    p.pump();
    ASSERT_EQ(p.server->readable_bytes(), 4096u);
    EXPECT_EQ(p.server->stats().our_rwnd, 0u);
    std::span<const uint8_t> a, b;
    p.server->peek(a, b);
    ASSERT_EQ(a.size() + b.size(), 4096u);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), data.begin()));
    // Consuming frees space: a window update goes out, more data comes.
    EXPECT_EQ(p.server->consume(1000, p.now), 1000u);
    p.pump();
    sent += p.client->send(std::span(data).subspan(sent), p.now);
    p.pump();
    std::vector<uint8_t> got(data.begin(), data.begin() + 1000);
    for (int i = 0; i < 20 && got.size() < data.size(); i++) {
        p.server->peek(a, b); // the ring wraps: two spans
        got.insert(got.end(), a.begin(), a.end());
        got.insert(got.end(), b.begin(), b.end());
        p.server->consume(a.size() + b.size(), p.now);
        p.pump();
        sent += p.client->send(std::span(data).subspan(sent), p.now);
        p.pump();
    }
    EXPECT_EQ(got, data);
}

TEST(ConnectionCork, SendCorkedTransmitsNothingUntilFlush) {
    Pair p;
    p.handshake();
    p.cout.take();
    const auto hdr = pattern(32, 1), body = pattern(1000, 2);
    EXPECT_EQ(p.client->send_corked(hdr), 32u);
    EXPECT_EQ(p.client->send_corked(body), 1000u);
    EXPECT_TRUE(p.cout.out.empty());
    p.client->flush(p.now);
    ASSERT_EQ(p.cout.out.size(), 1u); // one segment with header and body
    EXPECT_EQ(p.cout.last().payload_len(), 1032u);
    p.pump();
    EXPECT_EQ(p.drain_server().size(), 1032u);
}

} // namespace
} // namespace tcptest

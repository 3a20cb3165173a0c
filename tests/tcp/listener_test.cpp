// Listener under a SYN flood: SYN cookies (RFC 4987 3.6) once the half-open
// table is full, and the SipHash-2-4 they are made with.
#include "harness.h"

namespace tcptest {
namespace {

Config quick() {
    Config c;
    c.delayed_ack_us = 0;
    c.time_wait_us = 50'000;
    return c;
}

// `n` SYNs from distinct sources that never answer: a half-open flood.
void flood(Listener &l, uint32_t n, uint64_t now) {
    for (uint32_t i = 0; i < n; i++) {
        Segment syn;
        syn.src_ip = IpAddr::v4(0xc6120000u + i); // 198.18.0.0/15, benchmarking space
        syn.dst_ip = kServerIp;
        syn.src_port = static_cast<uint16_t>(1024 + i % 60000);
        syn.dst_port = kServerPort;
        syn.flags = flag::SYN;
        syn.seq = i * 7919u;
        syn.window = 65535;
        syn.opt.has_mss = true;
        syn.opt.mss = 1460;
        EXPECT_EQ(l.on_segment(syn, now), nullptr);
    }
}

std::vector<uint8_t> key_bytes(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(i);
    return v;
}

// The reference vectors of SipHash-2-4 (the paper's appendix A; vectors.h of
// the reference implementation): key 00..0f, message 00..(n-1).
TEST(SipHash, ReferenceVectors) {
    const std::array<uint64_t, 2> key = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    EXPECT_EQ(siphash24(key, {}), 0x726fdb47dd0e0e31ull);
    const auto m1 = key_bytes(1);
    EXPECT_EQ(siphash24(key, m1), 0x74f839c593dc67fdull);
    const auto m15 = key_bytes(15);
    EXPECT_EQ(siphash24(key, m15), 0xa129ca6149be45e5ull);
}

// A flood fills the table; the real client still gets in, with every option
// it offered, and the table never grew.
TEST(SynCookies, FloodCannotKeepARealSenderOut) {
    Pair p(quick(), quick(), 4);
    flood(*p.listener, 5000, p.now);
    EXPECT_EQ(p.listener->half_open(), 4u);
    EXPECT_EQ(p.listener->stats().syn_cookies_sent, 4996u);
    EXPECT_EQ(p.sout.take().size(), 5000u); // every SYN answered, none remembered beyond 4
    p.handshake();
    EXPECT_EQ(p.listener->stats().syn_cookies_accepted, 1u);
    EXPECT_EQ(p.listener->half_open(), 4u);
    for (Connection *c : {p.client.get(), p.server.get()}) {
        EXPECT_TRUE(c->sack_enabled());
        EXPECT_TRUE(c->timestamps_enabled());
        EXPECT_EQ(c->snd_wscale(), 3);
        EXPECT_EQ(c->rcv_wscale(), 3);
        EXPECT_EQ(c->send_mss(), 1460 - 12);
    }
    EXPECT_EQ(p.server->irs(), p.client->iss());
    EXPECT_EQ(p.client->irs(), p.server->iss());
    // Data both ways, more than one unscaled window.
    const auto up = pattern(300'000, 1), down = pattern(100'000, 2);
    size_t sent = 0, got_down = 0;
    std::vector<uint8_t> got;
    std::vector<uint8_t> buf(1 << 16);
    for (int i = 0; i < 2000 && (got.size() < up.size() || got_down < down.size()); i++) {
        sent += p.client->send(std::span(up).subspan(sent), p.now);
        if (i == 0) p.server->send(down, p.now);
        p.pump();
        auto d = p.drain_server();
        got.insert(got.end(), d.begin(), d.end());
        got_down += p.client->recv(buf, p.now);
        p.advance(1000);
    }
    EXPECT_EQ(got, up);
    EXPECT_EQ(got_down, down.size());
}

TEST(SynCookies, WithoutTimestampsNeitherScaleNorSack) {
    Config c = quick();
    c.timestamps = false;
    Pair p(c, quick(), 1);
    flood(*p.listener, 10, p.now);
    p.sout.take();
    ASSERT_TRUE(p.client->connect(p.now));
    p.c2s();
    const Segment synack = p.sout.out.back().parse();
    EXPECT_FALSE(synack.opt.has_wscale);
    EXPECT_FALSE(synack.opt.sack_permitted);
    EXPECT_FALSE(synack.opt.has_ts);
    p.pump();
    ASSERT_TRUE(p.server);
    EXPECT_EQ(p.listener->stats().syn_cookies_accepted, 1u);
    for (Connection *x : {p.client.get(), p.server.get()}) {
        EXPECT_EQ(x->state(), State::Established);
        EXPECT_FALSE(x->sack_enabled());
        EXPECT_EQ(x->snd_wscale(), 0);
        EXPECT_EQ(x->rcv_wscale(), 0);
    }
    EXPECT_EQ(p.server->send_mss(), 1460);
}

// The peer's MSS is rounded down to one the cookie can carry.
TEST(SynCookies, MssRoundedDownToTheTable) {
    Config c = quick();
    c.mss = 1300;
    Pair p(c, quick(), 1);
    flood(*p.listener, 1, p.now);
    p.handshake();
    EXPECT_EQ(p.listener->stats().syn_cookies_accepted, 1u);
    EXPECT_EQ(p.server->send_mss(), 1220 - 12);
}

// TSval of the cookie SYN-ACK is never ahead of the connection's later
// TSvals (RFC 7323 5.4: the peer's PAWS would drop them).
TEST(SynCookies, TimestampClockContinues) {
    Pair p(quick(), quick(), 1);
    flood(*p.listener, 1, p.now);
    ASSERT_TRUE(p.client->connect(p.now));
    p.c2s();
    const uint32_t synack_ts = p.sout.out.back().parse().opt.ts_val;
    p.pump();
    ASSERT_TRUE(p.server);
    const auto d = pattern(100);
    p.server->send(d, p.now);
    const Segment data = p.sout.out.back().parse();
    EXPECT_TRUE(seq_geq(data.opt.ts_val, synack_ts));
    EXPECT_LT(data.opt.ts_val - synack_ts, 64u); // the same clock, not a new offset
    EXPECT_EQ(p.client->stats().drops[size_t(Drop::PAWS)], 0u);
}

// What an off-path attacker can send: an ACK with a guessed number, a real
// cookie replayed from another port or after it expired. Each gets a RST and
// makes no connection.
TEST(SynCookies, ForgedReplayedAndExpiredAcksAreRefused) {
    Pair p(quick(), quick(), 1);
    flood(*p.listener, 1, p.now);
    ASSERT_TRUE(p.client->connect(p.now));
    p.c2s();
    const Segment synack = p.sout.take().back().parse();
    Segment ack;
    ack.src_ip = kClientIp, ack.dst_ip = kServerIp, ack.src_port = kClientPort, ack.dst_port = kServerPort;
    ack.flags = flag::ACK, ack.seq = synack.ack, ack.ack = synack.seq + 1, ack.window = 1000;
    uint32_t refused = 0;
    for (uint32_t guess : {synack.seq + 2, synack.seq ^ 0x100u, synack.seq + (1u << 20)}) {
        Segment f = ack;
        f.ack = guess;
        EXPECT_EQ(p.listener->on_segment(f, p.now), nullptr);
        EXPECT_EQ(p.sout.take().back().parse().flags, flag::RST);
        refused++;
    }
    Segment other = ack;
    other.src_port = kClientPort + 1;
    EXPECT_EQ(p.listener->on_segment(other, p.now), nullptr);
    refused++;
    Segment other_seq = ack;
    other_seq.seq += 1000;
    EXPECT_EQ(p.listener->on_segment(other_seq, p.now), nullptr);
    refused++;
    EXPECT_EQ(p.listener->on_segment(ack, p.now + 2 * Listener::kCookiePeriodUs + 1), nullptr);
    refused++;
    EXPECT_EQ(p.listener->stats().drops[size_t(Drop::NO_HALF_OPEN)], refused);
    EXPECT_EQ(p.listener->stats().syn_cookies_accepted, 0u);
    // The genuine ACK, within the next period, is accepted.
    auto c = p.listener->on_segment(ack, p.now + Listener::kCookiePeriodUs);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->state(), State::Established);
}

// Cookies differ per listener (the key comes from the injected Random) and
// per connection.
TEST(SynCookies, KeyedPerListener) {
    Capture a, b;
    Listener la(quick(), kServerIp, kServerPort, 1, a.sink(), SeededRandom(1));
    Listener lb(quick(), kServerIp, kServerPort, 1, b.sink(), SeededRandom(2));
    flood(la, 3, 0);
    flood(lb, 3, 0);
    ASSERT_EQ(a.out.size(), 3u);
    ASSERT_EQ(b.out.size(), 3u);
    for (size_t i = 1; i < 3; i++) EXPECT_NE(a.out[i].parse().seq, b.out[i].parse().seq);
    EXPECT_NE(a.out[1].parse().seq, a.out[2].parse().seq);
}

} // namespace
// Options::checksum_trust (Config::checksum_trust_*): checksums are left
// partial only on a connection whose two SYNs both carried the option, by
// an end configured to use it.
Config trust(bool offer, bool use) {
    Config c = quick();
    c.checksum_trust_offer = offer;
    c.checksum_trust_use = use;
    return c;
}

// The handshake over a link whose receivers do not verify checksums (what
// the data plane does on memif: RTE_MBUF_F_RX_L4_CKSUM_GOOD), so that
// segments with partial checksums are taken.
void trusted_handshake(Pair &pr) {
    ASSERT_TRUE(pr.client->connect(pr.now));
    for (int round = 0; round < 20; ++round) {
        size_t moved = 0;
        for (auto &w : pr.cout.take()) {
            ++moved;
            Segment s;
            ASSERT_EQ(parse_segment(w.bytes, w.src, w.dst, s, false), ParseResult::Ok);
            if (pr.server) pr.server->on_segment(s, pr.now);
            else if (auto c = pr.listener->on_segment(s, pr.now)) pr.server = std::move(c);
        }
        for (auto &w : pr.sout.take()) {
            ++moved;
            Segment s;
            ASSERT_EQ(parse_segment(w.bytes, w.src, w.dst, s, false), ParseResult::Ok);
            pr.client->on_segment(s, pr.now);
        }
        if (moved == 0) break;
    }
    ASSERT_TRUE(pr.server);
    ASSERT_EQ(pr.client->state(), State::Established);
    ASSERT_EQ(pr.server->state(), State::Established);
}

bool data_checksum_left_partial(Pair &pr) {
    const std::vector<uint8_t> data(1000, 7);
    EXPECT_EQ(pr.client->send(data, pr.now), data.size());
    auto out = pr.cout.take();
    for (auto &w : out) {
        Segment s;
        if (parse_segment(w.bytes, w.src, w.dst, s, false) != ParseResult::Ok || s.payload_len() == 0) continue;
        Segment v;
        return parse_segment(w.bytes, w.src, w.dst, v, true) == ParseResult::BadChecksum;
    }
    ADD_FAILURE() << "no data segment";
    return false;
}

TEST(ChecksumTrust, OmittedOnlyWhenBothSynsCarryItAndThisEndUsesIt) {
    {
        Pair pr(trust(true, true), trust(true, true));
        trusted_handshake(pr);
        EXPECT_TRUE(pr.client->omits_checksums());
        EXPECT_TRUE(pr.server->omits_checksums());
        EXPECT_TRUE(data_checksum_left_partial(pr));
    }
    {
        // The server verifies: what it receives carries full checksums;
        // what it sends need not, the client having said it trusts them.
        Pair pr(trust(true, true), trust(false, true));
        trusted_handshake(pr);
        EXPECT_FALSE(pr.client->omits_checksums());
        EXPECT_TRUE(pr.server->omits_checksums());
        EXPECT_FALSE(data_checksum_left_partial(pr));
    }
    {
        Pair pr(trust(false, true), trust(true, true)); // no option in the SYN: none in the SYN-ACK
        trusted_handshake(pr);
        EXPECT_FALSE(pr.client->omits_checksums());
        EXPECT_FALSE(pr.server->omits_checksums());
        EXPECT_FALSE(data_checksum_left_partial(pr));
    }
    {
        Pair pr(trust(true, false), trust(true, true)); // this end's link is not shared memory
        trusted_handshake(pr);
        EXPECT_FALSE(pr.client->omits_checksums());
        EXPECT_TRUE(pr.server->omits_checksums());
        EXPECT_FALSE(data_checksum_left_partial(pr));
    }
}

} // namespace tcptest

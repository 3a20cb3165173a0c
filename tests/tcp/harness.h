// Test helpers for TCP-lite: segment capture, a manual two-endpoint pair and
// a loopback network with a virtual clock and seeded loss / reordering /
// duplication.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <queue>
#include <vector>

#include "millipede/tcp/connection.h"
#include "millipede/tcp/listener.h"
#include "millipede/tcp/seq.h"

namespace tcptest {

// Loss-recovery tests: ACK every segment, a short TIME-WAIT, `iw` initial
// segments and 1 MiB buffers, so the window, not the buffer, limits sending.
inline millipede::tcp::Config recovery_config(uint32_t iw) {
    millipede::tcp::Config c;
    c.delayed_ack_us = 0;
    c.time_wait_us = 50'000;
    c.initial_cwnd_segments = iw;
    c.send_buffer = 1 << 20;
    c.recv_buffer = 1 << 20;
    return c;
}

using namespace millipede::tcp;

inline const IpAddr kClientIp = IpAddr::v4(0x0a000001);
inline const IpAddr kServerIp = IpAddr::v4(0x0a000002);
constexpr uint16_t kClientPort = 40000;
constexpr uint16_t kServerPort = 5001;

inline Endpoints client_ep() { return Endpoints{kClientIp, kServerIp, kClientPort, kServerPort}; }

// A serialized copy of a segment; parse() gives a Segment viewing `bytes`.
struct Wire {
    std::vector<uint8_t> bytes;
    IpAddr src, dst;
    Segment parse() const {
        Segment s;
        EXPECT_EQ(parse_segment(bytes, src, dst, s), ParseResult::Ok);
        return s;
    }
};

inline Wire to_wire(const Segment &s) {
    Wire w;
    w.bytes.resize(serialized_length(s));
    EXPECT_EQ(serialize(s, w.bytes), w.bytes.size());
    w.src = s.src_ip;
    w.dst = s.dst_ip;
    return w;
}

struct Capture {
    std::vector<Wire> out;
    SegmentSink sink() {
        return [this](const Segment &s) { out.push_back(to_wire(s)); };
    }
    Segment last() const { return out.back().parse(); }
    std::vector<Wire> take() {
        std::vector<Wire> v;
        v.swap(out);
        return v;
    }
};

inline std::vector<uint8_t> pattern(size_t n, uint32_t seed = 1) {
    std::vector<uint8_t> v(n);
    uint32_t x = seed * 2654435761u + 12345;
    for (size_t i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        v[i] = static_cast<uint8_t>(x >> 16);
    }
    return v;
}

// Client (active) and server (from a Listener) with captured output; the test
// moves segments by hand.
struct Pair {
    Config ccfg, scfg;
    Capture cout, sout;
    std::unique_ptr<Connection> client;
    std::unique_ptr<Listener> listener;
    std::unique_ptr<Connection> server;
    uint64_t now = 1'000'000;

    explicit Pair(Config c = Config{}, Config s = Config{}, size_t half_open = 8) : ccfg(c), scfg(s) {
        client = std::make_unique<Connection>(ccfg, client_ep(), cout.sink(), SeededRandom(11));
        listener = std::make_unique<Listener>(scfg, kServerIp, kServerPort, half_open, sout.sink(), SeededRandom(22));
    }
    // Delivers everything the client sent to the server side (listener or
    // connection) and vice versa, once.
    size_t c2s() {
        size_t n = 0;
        for (auto &w : cout.take()) {
            ++n;
            if (server) server->on_bytes(w.bytes, w.src, w.dst, now);
            else if (auto c = listener->on_bytes(w.bytes, w.src, w.dst, now)) server = std::move(c);
        }
        return n;
    }
    size_t s2c() {
        size_t n = 0;
        for (auto &w : sout.take()) {
            ++n;
            client->on_bytes(w.bytes, w.src, w.dst, now);
        }
        return n;
    }
    void pump(int rounds = 50) {
        for (int i = 0; i < rounds; ++i)
            if (c2s() + s2c() == 0) break;
    }
    void handshake() {
        ASSERT_TRUE(client->connect(now));
        pump();
        ASSERT_TRUE(server);
        ASSERT_EQ(client->state(), State::Established);
        ASSERT_EQ(server->state(), State::Established);
    }
    void advance(uint64_t us) {
        now += us;
        if (client && client->next_timer_deadline() <= now) client->on_timer(now);
        if (server && server->next_timer_deadline() <= now) server->on_timer(now);
        if (listener->next_timer_deadline() <= now) listener->on_timer(now);
    }
    std::vector<uint8_t> drain_server() {
        std::vector<uint8_t> got(server->readable_bytes());
        got.resize(server->recv(got, now));
        return got;
    }
};

inline std::vector<EventType> events(Connection &c) {
    std::vector<EventType> v;
    Event e;
    while (c.poll_event(e)) v.push_back(e.type);
    return v;
}

// ---------------------------------------------------------------- loopback

struct NetParams {
    uint64_t seed = 1;
    double loss = 0;    // per-segment drop probability
    double dup = 0;     // duplication probability
    double reorder = 0; // probability of extra delay
    uint64_t delay_us = 2000;
    uint64_t rate_bps = 100'000'000; // bottleneck rate each direction
    uint64_t queue_us = 10'000;      // drop-tail queue in time units
    double corrupt = 0;              // flip a byte (checksum must catch it)
};

class Loopback {
public:
    Loopback(const NetParams &p, const Config &ccfg, const Config &scfg) : p_(p), rng_(p.seed) {
        client_ = std::make_unique<Connection>(ccfg, client_ep(), sink(0), SeededRandom(p.seed * 7 + 1));
        listener_ = std::make_unique<Listener>(scfg, kServerIp, kServerPort, 4, sink(1), SeededRandom(p.seed * 13 + 5));
    }

    // Moves `data` from client to server; returns the received bytes.
    // Server reads at most `read_rate` bytes per millisecond (0: unlimited).
    std::vector<uint8_t> transfer(const std::vector<uint8_t> &data, uint64_t limit_us, size_t read_rate = 0) {
        std::vector<uint8_t> got;
        got.reserve(data.size());
        size_t sent = 0;
        bool client_fin = false, server_fin = false;
        client_->connect(now_);
        std::vector<uint8_t> buf(64 * 1024);
        uint64_t last_read = now_;
        while (now_ < limit_us) {
            if (client_->state() == State::Established && sent < data.size())
                sent += client_->send(std::span(data).subspan(sent), now_);
            if (sent == data.size() && !client_fin && client_->state() == State::Established) {
                client_->shutdown_write(now_);
                client_fin = true;
            }
            if (server_) {
                size_t allowance = buf.size();
                if (read_rate) {
                    allowance = std::min<size_t>(buf.size(), (now_ - last_read) / 1000 * read_rate);
                    if (allowance) last_read = now_;
                }
                size_t n = server_->recv(std::span(buf).first(allowance), now_);
                got.insert(got.end(), buf.begin(), buf.begin() + n);
                if (server_->peer_closed() && server_->readable_bytes() == 0 && !server_fin) {
                    server_->shutdown_write(now_);
                    server_fin = true;
                }
            }
            if (client_->is_closed() && server_ && server_->is_closed()) break;
            if (client_->is_closed() && client_->close_reason() != CloseReason::NORMAL) break;
            if (server_ && server_->is_closed() && server_->close_reason() != CloseReason::NORMAL) break;
            step(read_rate ? 1000 : UINT64_MAX);
        }
        return got;
    }

    // Advances the clock to the next event (or by at most max_step) and runs it.
    void step(uint64_t max_step) {
        uint64_t next = std::min(client_->next_timer_deadline(), listener_->next_timer_deadline());
        if (server_) next = std::min(next, server_->next_timer_deadline());
        if (!q_.empty()) next = std::min(next, q_.top().at);
        if (max_step != UINT64_MAX) next = std::min(next, now_ + max_step);
        if (next == UINT64_MAX) next = now_ + 1000;
        now_ = std::max(now_, next);
        while (!q_.empty() && q_.top().at <= now_) {
            Pkt pk = q_.top();
            q_.pop();
            delivered_++;
            if (pk.to == 1) {
                if (server_) server_->on_bytes(pk.bytes, pk.src, pk.dst, now_);
                else if (auto c = listener_->on_bytes(pk.bytes, pk.src, pk.dst, now_)) server_ = std::move(c);
            } else {
                client_->on_bytes(pk.bytes, pk.src, pk.dst, now_);
            }
        }
        if (client_->next_timer_deadline() <= now_) client_->on_timer(now_);
        if (server_ && server_->next_timer_deadline() <= now_) server_->on_timer(now_);
        if (listener_->next_timer_deadline() <= now_) listener_->on_timer(now_);
    }

    Connection &client() { return *client_; }
    Connection *server() { return server_.get(); }
    Listener &listener() { return *listener_; }
    uint64_t now() const { return now_; }
    uint64_t dropped() const { return dropped_; }

private:
    struct Pkt {
        uint64_t at, order;
        int to;
        IpAddr src, dst;
        std::vector<uint8_t> bytes;
        bool operator<(const Pkt &o) const { return at != o.at ? at > o.at : order > o.order; }
    };
    double uniform() { return (rng_() & 0xffffff) / double(0x1000000); }
    SegmentSink sink(int from) {
        return [this, from](const Segment &s) {
            Wire w = to_wire(s);
            const int to = 1 - from;
            // Bottleneck: serialization at rate_bps behind a drop-tail queue.
            uint64_t &free_at = link_free_[from];
            const uint64_t tx_us = (w.bytes.size() + 40) * 8 * 1'000'000 / p_.rate_bps;
            const uint64_t start = std::max(now_, free_at);
            if (start - now_ > p_.queue_us) {
                dropped_++;
                return;
            }
            free_at = start + tx_us;
            if (uniform() < p_.loss) {
                dropped_++;
                return;
            }
            uint64_t at = free_at + p_.delay_us;
            if (uniform() < p_.reorder) at += 1 + (rng_() % 3000);
            if (p_.corrupt > 0 && uniform() < p_.corrupt) w.bytes[rng_() % w.bytes.size()] ^= 0x5a;
            q_.push(Pkt{at, order_++, to, w.src, w.dst, w.bytes});
            if (uniform() < p_.dup) q_.push(Pkt{at + 1 + rng_() % 500, order_++, to, w.src, w.dst, w.bytes});
        };
    }

    NetParams p_;
    SeededRandom rng_;
    uint64_t now_ = 1'000'000;
    uint64_t order_ = 0, delivered_ = 0, dropped_ = 0;
    uint64_t link_free_[2] = {0, 0};
    std::priority_queue<Pkt> q_;
    std::unique_ptr<Connection> client_;
    std::unique_ptr<Listener> listener_;
    std::unique_ptr<Connection> server_;
};

} // namespace tcptest

// The simulated network for lib/session (TCP-lite + striping): links with
// rate, delay, drop-tail queue, random loss, reordering, duplication, bit
// corruption and death/revival; a virtual clock; a discrete-event loop; a
// sender host (TxSession) and a receiver host (RxSession) connected by
// several links (one IP pair per link, as several NIC ports).
//
// Everything is deterministic: one seeded generator drives the faults and
// the sessions' Random, and no wall clock is read, so a run is reproducible
// from its seed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "millipede/session/rx_session.h"
#include "millipede/session/tx_session.h"
#include "millipede/stripe/wire.h"
#include "millipede/tcp/listener.h"
#include "millipede/tcp/segment.h"

namespace sim {

using namespace millipede;

// SplitMix64.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); } // inclusive
    bool chance(double p) { return p > 0 && uniform() < p; }
};

struct LinkParams {
    uint64_t rate_bps = 100'000'000; // each direction; charged on IP length (TCP + 20)
    uint64_t delay_us = 1000;        // one-way propagation
    uint64_t queue_bytes = 256 * 1024; // drop-tail buffer in front of the wire
    double loss = 0;                 // per packet, each direction
    double dup = 0;                  // a second copy arrives a little later
    double corrupt = 0;              // one byte flipped (the TCP checksum must catch it)
    double reorder = 0;              // extra random delay up to reorder_us
    uint64_t reorder_us = 3000;
    // Death and revival: the link goes down at down_at_us (virtual time), or
    // once it carried down_after_bytes toward the receiver (so it dies in the
    // middle of a chunk); it comes back up revive_after_us later
    // (UINT64_MAX: never). Packets on the wire when it dies are lost.
    uint64_t down_at_us = UINT64_MAX;
    uint64_t down_after_bytes = UINT64_MAX;
    uint64_t revive_after_us = UINT64_MAX;
};

struct LinkStats {
    uint64_t packets = 0, bytes = 0, lost = 0, queue_drops = 0, dups = 0, corrupted = 0, reordered = 0,
             dead_drops = 0;
    uint64_t payload_to_rx = 0; // TCP payload bytes accepted toward the receiver
    uint64_t died_at = UINT64_MAX, revived_at = UINT64_MAX;
};

// Two hosts (0: sender, 1: receiver) and the links between them.
class Network {
  public:
    struct Link {
        LinkParams p;
        tcp::IpAddr ip[2]; // host 0's and host 1's address on this link
        bool up = true;
        uint32_t epoch = 0;
        uint64_t free_at[2] = {0, 0};
        LinkStats st;
    };
    struct Pkt {
        uint64_t at, order;
        int to;
        uint32_t link, epoch;
        tcp::IpAddr src, dst;
        std::vector<uint8_t> bytes;
    };

    explicit Network(uint64_t seed) : rng_(seed) {}
    uint32_t add_link(const LinkParams &p) {
        Link l;
        l.p = p;
        const uint32_t i = static_cast<uint32_t>(links_.size());
        l.ip[0] = tcp::IpAddr::v4(0x0a000001 + (i << 8)); // 10.0.i.1
        l.ip[1] = tcp::IpAddr::v4(0x0a000002 + (i << 8)); // 10.0.i.2
        links_.push_back(l);
        return i;
    }
    Link &link(uint32_t i) { return links_[i]; }
    size_t links() const { return links_.size(); }
    uint64_t now() const { return now_; }

    // The hosts' segment sinks call this.
    void send(int from, const tcp::Segment &s) {
        int32_t li = -1;
        for (size_t i = 0; i < links_.size(); i++)
            if (links_[i].ip[from] == s.src_ip && links_[i].ip[1 - from] == s.dst_ip) li = static_cast<int32_t>(i);
        if (li < 0) return; // no route
        Link &l = links_[li];
        std::vector<uint8_t> bytes(tcp::serialized_length(s));
        tcp::serialize(s, bytes);
        l.st.packets++;
        if (!l.up) {
            l.st.dead_drops++;
            return;
        }
        const uint64_t ip_len = bytes.size() + 20;
        uint64_t &free_at = l.free_at[from];
        const uint64_t start = std::max(now_, free_at);
        const uint64_t backlog = (start - now_) * l.p.rate_bps / 8'000'000;
        if (backlog + ip_len > l.p.queue_bytes) {
            l.st.queue_drops++;
            return;
        }
        free_at = start + (ip_len * 8'000'000 + l.p.rate_bps - 1) / l.p.rate_bps;
        l.st.bytes += ip_len;
        if (rng_.chance(l.p.loss)) {
            l.st.lost++;
            return;
        }
        if (from == 0) {
            l.st.payload_to_rx += s.payload_len();
            if (l.st.payload_to_rx >= l.p.down_after_bytes && l.st.died_at == UINT64_MAX) {
                set_up(static_cast<uint32_t>(li), false);
                return;
            }
        }
        uint64_t at = free_at + l.p.delay_us;
        if (rng_.chance(l.p.reorder)) {
            at += 1 + rng_.below(l.p.reorder_us);
            l.st.reordered++;
        }
        if (rng_.chance(l.p.corrupt)) {
            bytes[rng_.below(bytes.size())] ^= static_cast<uint8_t>(1 + rng_.below(255));
            l.st.corrupted++;
        }
        const bool dup = rng_.chance(l.p.dup);
        if (dup) {
            l.st.dups++;
            q_.push(Pkt{at + 1 + rng_.below(1000), order_++, 1 - from, static_cast<uint32_t>(li), l.epoch, s.src_ip,
                        s.dst_ip, bytes});
        }
        q_.push(Pkt{at, order_++, 1 - from, static_cast<uint32_t>(li), l.epoch, s.src_ip, s.dst_ip,
                    std::move(bytes)});
    }

    void set_up(uint32_t li, bool up) {
        Link &l = links_[li];
        if (l.up == up) return;
        l.up = up;
        if (!up) {
            l.epoch++; // everything on the wire is lost
            l.st.died_at = now_;
            l.free_at[0] = l.free_at[1] = now_;
        } else {
            l.st.revived_at = now_;
        }
    }

    // Earliest pending network event (arrival or link schedule).
    uint64_t next_event() const {
        uint64_t t = q_.empty() ? UINT64_MAX : q_.top().at;
        for (const Link &l : links_) {
            if (l.up && l.st.died_at == UINT64_MAX) t = std::min(t, l.p.down_at_us);
            if (!l.up && l.p.revive_after_us != UINT64_MAX) t = std::min(t, l.st.died_at + l.p.revive_after_us);
        }
        return t;
    }

    void advance(uint64_t t) { now_ = std::max(now_, t); }

    // Applies the link schedule at now(), then pops every packet due.
    template <class Deliver> void deliver_due(Deliver &&deliver) {
        for (uint32_t i = 0; i < links_.size(); i++) {
            Link &l = links_[i];
            if (l.up && l.st.died_at == UINT64_MAX && now_ >= l.p.down_at_us) set_up(i, false);
            if (!l.up && l.p.revive_after_us != UINT64_MAX && now_ >= l.st.died_at + l.p.revive_after_us)
                set_up(i, true);
        }
        while (!q_.empty() && q_.top().at <= now_) {
            Pkt pk = std::move(const_cast<Pkt &>(q_.top()));
            q_.pop();
            const Link &l = links_[pk.link];
            if (!l.up || l.epoch != pk.epoch) {
                links_[pk.link].st.dead_drops++;
                continue;
            }
            deliver(pk);
        }
    }

  private:
    struct Later {
        bool operator()(const Pkt &a, const Pkt &b) const { return a.at != b.at ? a.at > b.at : a.order > b.order; }
    };
    Rng rng_;
    std::vector<Link> links_;
    std::priority_queue<Pkt, std::vector<Pkt>, Later> q_;
    uint64_t now_ = 0;
    uint64_t order_ = 0;
};

// Deterministic test input.
inline std::vector<uint8_t> make_input(size_t n, uint64_t seed) {
    std::vector<uint8_t> v(n);
    Rng r(seed ^ 0x5eed);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = r.next();
        for (size_t k = 0; k < 8 && i + k < n; k++) v[i + k] = static_cast<uint8_t>(x >> (8 * k));
    }
    return v;
}

// A bulk TCP flow beside the session (competing traffic): a plain
// TCP-lite connection from host 0 to a listener on host 1 over one link,
// always with data to send, its receiver reading everything at once.
struct CrossFlowSpec {
    uint32_t link = 0;
    tcp::Config tcp; // both ends; the sender's cc is the flow's controller
    uint16_t port = 9000;
    uint64_t start_us = 0;
};

struct WorldConfig {
    uint64_t seed = 1;
    std::vector<LinkParams> links{LinkParams{}};
    uint32_t legs = 1;           // spread round-robin over the links (several legs may share one)
    uint16_t port = 8834;
    session::TxConfig tx;        // legs are filled in by World
    session::RxConfig rx;        // local_ips/port filled in by World
    uint64_t reader_bytes_per_ms = 0; // receiver's stdout rate (0: as fast as it comes)
    // Drive the receiver as lib/dataplane's session loop does: poll only
    // after segments arrived or once next_deadline() is due, and hand stdout
    // its bytes after the poll (the contract of rx_core.h), not before it.
    bool rx_poll_when_due = false;
    uint64_t time_limit_us = 600'000'000;
    std::vector<CrossFlowSpec> cross; // competing bulk flows
};

struct Outcome {
    bool ok = false; // byte-exact, tx DONE + confirmed (native), rx DONE, digests equal
    std::string why;
    uint64_t end_us = 0;   // virtual time of tx DONE
    uint64_t start_us = 0; // first SYN
};

// Sender host + receiver host over a Network, driven by a discrete-event
// loop on a virtual clock.
class World {
  public:
    explicit World(const WorldConfig &wc, const std::vector<uint8_t> &input)
        : wc_(wc), net_(wc.seed * 0x100000001b3ull + 7), in_(input), rng_(wc.seed ^ 0xabcdef) {
        for (const auto &lp : wc.links) net_.add_link(lp);
        session::TxConfig tc = wc.tx;
        tc.legs.clear();
        for (uint32_t i = 0; i < wc.legs; i++) {
            const auto &l = net_.link(i % net_.links());
            tc.legs.push_back(session::LegSpec{l.ip[0], 0, l.ip[1], wc.port});
        }
        session::RxConfig rc = wc.rx;
        rc.local_ips.clear();
        for (size_t i = 0; i < net_.links(); i++) rc.local_ips.push_back(net_.link(static_cast<uint32_t>(i)).ip[1]);
        rc.port = wc.port;
        tx_ = std::make_unique<session::TxSession>(
            tc, [this](const tcp::Segment &s) { net_.send(0, s); }, [this] { return uint32_t(rng_.next()); });
        rx_ = std::make_unique<session::RxSession>(
            rc, [this](const tcp::Segment &s) { net_.send(1, s); }, [this] { return uint32_t(rng_.next()); });
        out_.reserve(input.size());
        for (const CrossFlowSpec &cs : wc.cross) {
            auto cf = std::make_unique<Cross>();
            cf->spec = cs;
            const auto &l = net_.link(cs.link);
            const tcp::Endpoints ep{l.ip[0], l.ip[1], uint16_t(cs.port + 1), cs.port};
            cf->client = std::make_unique<tcp::Connection>(
                cs.tcp, ep, [this](const tcp::Segment &s) { net_.send(0, s); }, [this] { return uint32_t(rng_.next()); });
            cf->listener = std::make_unique<tcp::Listener>(
                cs.tcp, l.ip[1], cs.port, 4, [this](const tcp::Segment &s) { net_.send(1, s); },
                [this] { return uint32_t(rng_.next()); });
            cross_.push_back(std::move(cf));
        }
    }

    // Runs until both sides finished (or failed), or the time limit.
    // `observe` (optional) runs after every step.
    Outcome run(const std::function<void(World &)> &observe = nullptr) {
        Outcome o;
        uint64_t now = 0;
        uint64_t last_read = 0;
        bool tx_done_seen = false;
        while (now < wc_.time_limit_us) {
            net_.advance(now);
            bool rx_input = false;
            net_.deliver_due([&](Network::Pkt &pk) {
                if (Cross *cf = cross_for(pk)) {
                    cross_deliver(*cf, pk, now);
                    return;
                }
                if (pk.to == 1) {
                    rx_->on_bytes(pk.bytes, pk.src, pk.dst, now);
                    rx_input = true;
                } else {
                    tx_->on_bytes(pk.bytes, pk.src, pk.dst, now);
                }
            });
            // Pipe in: stdin is always ready.
            if (fed_ < in_.size()) fed_ += tx_->push_input(in_.data() + fed_, in_.size() - fed_, now);
            if (fed_ == in_.size() && !eof_) {
                tx_->finish_input(now);
                eof_ = true;
            }
            // Pipe out.
            const auto pipe_out = [&] {
                size_t allowance = SIZE_MAX;
                if (wc_.reader_bytes_per_ms) {
                    allowance = (now - last_read) / 1000 * wc_.reader_bytes_per_ms;
                    if (allowance) last_read = now - (now - last_read) % 1000;
                }
                for (;;) {
                    auto s = rx_->output();
                    if (s.empty() || allowance == 0) break;
                    const size_t k = std::min(s.size(), allowance);
                    out_.insert(out_.end(), s.begin(), s.begin() + k);
                    rx_->output_consumed(k);
                    allowance -= k;
                }
            };
            if (!wc_.rx_poll_when_due) pipe_out();
            drive_cross(now);
            tx_->poll(now);
            if (!wc_.rx_poll_when_due || rx_input || now >= rx_->next_deadline()) rx_->poll(now);
            if (wc_.rx_poll_when_due) pipe_out();
            if (observe) observe(*this);
            if (!tx_done_seen && tx_->state() != session::State::RUNNING) {
                tx_done_seen = true;
                o.end_us = now;
            }
            if (tx_->state() == session::State::FAILED || rx_->state() == session::State::FAILED) break;
            if (tx_->finished() && rx_->finished()) break;
            uint64_t next = std::min({tx_->next_deadline(), rx_->next_deadline(), net_.next_event()});
            next = std::min(next, cross_deadline(now));
            // stdout takes what the receiver has on the next step (at once,
            // or at the reader's rate), as the app's writer thread does.
            if (!rx_->output().empty()) next = std::min(next, now + (wc_.reader_bytes_per_ms ? 1000 : 1));
            // stdin is always ready: a sender that freed buffers in poll()
            // (viamillipede frees on TCP acknowledgement there) takes more
            // input on the next step, as the app's loop would.
            if (fed_ < in_.size() && tx_->input_space() > 0) next = std::min(next, now + 1);
            if (next == UINT64_MAX) break; // nothing can ever happen again
            now = std::max(next, now + (next <= now ? 1 : 0));
            steps_++;
        }
        now_ = now;
        o.start_us = 0;
        const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
        char buf[1024];
        // viamillipede's format has no end acknowledgement: DONE is all a
        // compat sender can say (its chunks acknowledged by TCP).
        const bool compat = wc_.tx.stripe.codec == stripe::Codec::VIAMILLIPEDE;
        if (tx_->state() != session::State::DONE || (!compat && !tx_->confirmed())) {
            snprintf(buf, sizeof buf, "sender %s: %s (last leg event: %s) at t=%llu us", session::state_name(tx_->state()),
                     tx_->message(), tx_->last_leg_message(), u(now));
            o.why = buf;
        } else if (rx_->state() != session::State::DONE) {
            snprintf(buf, sizeof buf, "receiver %s: %s (last leg event: %s) at t=%llu us",
                     session::state_name(rx_->state()), rx_->message(), rx_->last_leg_message(), u(now));
            o.why = buf;
        } else if (out_ != in_) {
            size_t d = 0;
            while (d < out_.size() && d < in_.size() && out_[d] == in_[d]) d++;
            snprintf(buf, sizeof buf, "output differs: %zu bytes out, %zu in, first difference at %zu", out_.size(),
                     in_.size(), d);
            o.why = buf;
        } else if (tx_->stripe().stream_digest() != millipede::stripe::crc64(out_.data(), out_.size())) {
            o.why = "digest of the output differs from the sender's";
        } else {
            o.ok = true;
        }
        return o;
    }

    session::TxSession &tx() { return *tx_; }
    session::RxSession &rx() { return *rx_; }
    Network &net() { return net_; }
    const std::vector<uint8_t> &output() const { return out_; }
    uint64_t now() const { return net_.now(); }
    uint64_t steps() const { return steps_; }
    // The competing flow `i`'s sender (nullptr before it exists).
    const tcp::Connection *cross_sender(size_t i) const { return i < cross_.size() ? cross_[i]->client.get() : nullptr; }

  private:
    struct Cross {
        CrossFlowSpec spec;
        std::unique_ptr<tcp::Connection> client, server;
        std::unique_ptr<tcp::Listener> listener;
        bool connected = false;
    };
    Cross *cross_for(const Network::Pkt &pk) {
        if (cross_.empty() || pk.bytes.size() < 4) return nullptr;
        // The TCP header's port toward the receiving host.
        const uint16_t dport = uint16_t(pk.bytes[2] << 8 | pk.bytes[3]);
        const uint16_t sport = uint16_t(pk.bytes[0] << 8 | pk.bytes[1]);
        for (auto &c : cross_)
            if ((pk.to == 1 && dport == c->spec.port) || (pk.to == 0 && sport == c->spec.port)) return c.get();
        return nullptr;
    }
    void cross_deliver(Cross &c, Network::Pkt &pk, uint64_t now) {
        if (pk.to == 0) {
            c.client->on_bytes(pk.bytes, pk.src, pk.dst, now);
        } else if (c.server) {
            c.server->on_bytes(pk.bytes, pk.src, pk.dst, now);
        } else if (auto conn = c.listener->on_bytes(pk.bytes, pk.src, pk.dst, now)) {
            c.server = std::move(conn);
            c.server->set_sink([this](const tcp::Segment &s) { net_.send(1, s); });
        }
    }
    void drive_cross(uint64_t now) {
        static const std::vector<uint8_t> zeros(64 * 1024);
        for (auto &c : cross_) {
            if (!c->connected && now >= c->spec.start_us) {
                c->client->connect(now);
                c->connected = true;
            }
            for (tcp::Connection *k : {c->client.get(), c->server.get()})
                if (k && k->next_timer_deadline() <= now) k->on_timer(now);
            if (c->listener->next_timer_deadline() <= now) c->listener->on_timer(now);
            if (c->client->state() == tcp::State::Established)
                while (c->client->writable_bytes() > 0 && c->client->send(zeros, now) > 0) {
                }
            if (c->server) c->server->consume(c->server->readable_bytes(), now);
        }
    }
    uint64_t cross_deadline(uint64_t now) const {
        uint64_t t = UINT64_MAX;
        for (const auto &c : cross_) {
            if (!c->connected) t = std::min(t, std::max(now + 1, c->spec.start_us));
            t = std::min({t, c->client->next_timer_deadline(), c->listener->next_timer_deadline()});
            if (c->server) t = std::min(t, c->server->next_timer_deadline());
        }
        return t;
    }
    std::vector<std::unique_ptr<Cross>> cross_;
    WorldConfig wc_;
    Network net_;
    const std::vector<uint8_t> &in_;
    Rng rng_;
    std::unique_ptr<session::TxSession> tx_;
    std::unique_ptr<session::RxSession> rx_;
    std::vector<uint8_t> out_;
    size_t fed_ = 0;
    bool eof_ = false;
    uint64_t now_ = 0;
    uint64_t steps_ = 0;
};

} // namespace sim

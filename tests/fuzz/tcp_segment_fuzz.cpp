// libFuzzer target for TCP-lite: arbitrary bytes go through parse_segment()
// (with and without checksum verification) and, as segments, into a
// connection in ESTABLISHED state and into a Listener. Invariants: no
// over-read (ASan), no UB (UBSan), the receive side never delivers more than
// it accepted, and re-serializing a parsed segment parses back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "millipede/tcp/connection.h"
#include "millipede/tcp/listener.h"

using namespace millipede::tcp;

namespace {

const IpAddr kC = IpAddr::v4(0x0a000001), kS = IpAddr::v4(0x0a000002);

struct World {
    std::vector<Segment> to_client, to_server; // payload-free copies are enough for the handshake
    std::unique_ptr<Connection> client, server;
    std::unique_ptr<Listener> listener;
    uint64_t now = 1'000'000;

    World(bool sack, bool ts) {
        Config c;
        c.send_buffer = c.recv_buffer = 16 * 1024;
        c.sack = sack;
        c.timestamps = ts;
        c.delayed_ack_us = 0;
        auto cs = [this](const Segment &s) { to_server.push_back(s); };
        auto ss = [this](const Segment &s) { to_client.push_back(s); };
        client = std::make_unique<Connection>(c, Endpoints{kC, kS, 1111, 80}, cs, SeededRandom(1));
        listener = std::make_unique<Listener>(c, kS, 80, 4, ss, SeededRandom(2));
        client->connect(now);
        for (int i = 0; i < 4; ++i) {
            auto a = std::move(to_server);
            to_server.clear();
            for (auto &s : a) {
                if (server) server->on_segment(s, now);
                else if (auto n = listener->on_segment(s, now)) server = std::move(n);
            }
            auto b = std::move(to_client);
            to_client.clear();
            for (auto &s : b) client->on_segment(s, now);
        }
        if (!server || client->state() != State::Established) abort();
        to_client.clear();
        to_server.clear();
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // Parser alone, both modes.
    Segment seg;
    (void)parse_segment({data, size}, kC, kS, seg, true);
    if (parse_segment({data, size}, kC, kS, seg, false) == ParseResult::Ok) {
        std::vector<uint8_t> out(serialized_length(seg));
        if (serialize(seg, out) != out.size()) abort();
        Segment back;
        if (parse_segment(out, kC, kS, back, true) != ParseResult::Ok) abort();
        if (back.seq != seg.seq || back.payload.size() != seg.payload.size()) abort();
    }
    if (size < 2) return 0;
    // First byte picks options; the rest is a stream of length-prefixed
    // segments fed to the established server (checksum not verified so that
    // the state machine, not the checksum, is exercised).
    World w(data[0] & 1, data[0] & 2);
    size_t i = 1;
    std::vector<uint8_t> rbuf(4096);
    while (i + 2 <= size) {
        const size_t len = ((size_t(data[i]) << 8) | data[i + 1]) % 2048;
        i += 2;
        const size_t n = len < size - i ? len : size - i;
        if (parse_segment({data + i, n}, kC, kS, seg, false) == ParseResult::Ok) {
            // Aim most segments at the connection: fix ports, and sometimes
            // put seq/ack near the live values.
            seg.src_port = 1111;
            seg.dst_port = 80;
            if (n && (data[i] & 0x80)) seg.seq = w.server->rcv_nxt() + (seg.seq & 0x3fff);
            if (n && (data[i] & 0x40)) seg.ack = w.server->snd_una() + (seg.ack & 0x3fff);
            w.server->on_segment(seg, w.now);
            (void)w.listener->on_segment(seg, w.now);
            if (w.server->readable_bytes() > 16 * 1024 + (2u << 14)) abort();
            (void)w.server->recv(rbuf, w.now);
            if ((data[i - 1] & 7) == 0) (void)w.server->send({data + i, n}, w.now);
        }
        i += n;
        w.now += 1000 * (data[i - 1 < size ? i - 1 : 0] & 0x3f);
        if (w.server->next_timer_deadline() <= w.now) w.server->on_timer(w.now);
        if (w.listener->next_timer_deadline() <= w.now) w.listener->on_timer(w.now);
    }
    return 0;
}

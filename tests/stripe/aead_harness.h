// key FILE through the stripe cores: a sender and a receiver joined by
// in-memory legs, with a hook that may rewrite the sender's bytes on their
// way (tampering, replay). Used with a test double (unit suite) and with
// the real cryptodev AES-256-GCM (tests/eal/seal_test.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fake_legs.h"
#include "millipede/stripe/aead.h"
#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"

namespace stripe_test {

struct AeadRun {
    std::vector<uint8_t> out;          // what the receiver let through to "stdout"
    std::vector<uint8_t> wire;         // every byte the receiver read, in order (leg 0)
    SessionState tx = SessionState::RUNNING, rx = SessionState::RUNNING;
    std::string tx_msg, rx_msg, rx_leg_msg;
    Error tx_error = Error::NONE, rx_error = Error::NONE;
    uint64_t legs_refused = 0, duplicates = 0;
};

// Rewrites the bytes one side wrote on leg 0 before the other reads them
// (hook: the sender's, with everything not yet taken by the receiver;
// back_hook: the receiver's replies).
using WireHook = std::function<void(std::vector<uint8_t> &)>;

inline AeadRun run_aead(const std::vector<uint8_t> &in, Aead *tx_aead, Aead *rx_aead, uint32_t chunk_bytes,
                        const WireHook &hook = nullptr, const WireHook &back_hook = nullptr) {
    SenderConfig sc;
    sc.legs = 1;
    sc.chunk_bytes = chunk_bytes;
    sc.max_chunks_in_flight = 4;
    sc.session_id = 0x5e55105e55105ull;
    sc.backoff_initial_us = 1000;
    sc.backoff_max_us = 8000;
    sc.aead = tx_aead;
    ReceiverConfig rc;
    rc.max_legs = 1;
    rc.window_chunks = 4;
    rc.max_chunk_bytes = chunk_bytes;
    rc.aead = rx_aead;
    StripeSender tx(sc);
    StripeReceiver rx(rc);
    FakeIo s2r(1), r2s(1);
    AeadRun r;
    size_t fed = 0;
    uint64_t now = 0;
    for (int it = 0; it < 200000; it++) {
        now += 100;
        if (fed < in.size()) fed += tx.push_input(in.data() + fed, in.size() - fed, now);
        else if (tx.state() == SessionState::RUNNING) tx.finish_input(now);
        tx.poll(now, s2r);
        StripeEvent ev;
        while (tx.next_event(ev))
            if (ev.type == EventType::CONNECT_LEG) {
                s2r.q[0].clear();
                r2s.q[0].clear();
                rx.leg_up(0, now);
                tx.leg_up(0, now);
            }
        std::vector<uint8_t> bytes = s2r.take(0);
        if (hook) hook(bytes);
        size_t used = 0;
        while (used < bytes.size()) {
            const size_t k = rx.leg_input(0, bytes.data() + used, bytes.size() - used, now);
            used += k;
            if (k == 0) break;
        }
        r.wire.insert(r.wire.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(used));
        // What the receiver did not take yet (back-pressure) is offered again.
        if (used < bytes.size()) s2r.q[0].insert(s2r.q[0].begin(), bytes.begin() + used, bytes.end());
        auto o = rx.output();
        r.out.insert(r.out.end(), o.begin(), o.end());
        rx.output_consumed(o.size());
        rx.poll(now, r2s);
        while (rx.next_event(ev)) {
        }
        std::vector<uint8_t> back = r2s.take(0);
        if (back_hook) back_hook(back);
        tx.leg_input(0, back.data(), back.size(), now);
        if (tx.state() != SessionState::RUNNING && (rx.state() != SessionState::RUNNING || tx.state() == SessionState::FAILED))
            break;
    }
    r.tx = tx.state();
    r.rx = rx.state();
    r.tx_msg = tx.message();
    r.rx_msg = rx.message();
    r.rx_leg_msg = rx.last_leg_message();
    // The first error of each kind (KEY_MISMATCH, AUTH_FAILED, ... in the
    // order errors.def lists them).
    for (unsigned e = 1; e < kErrorCount; e++) {
        if (tx.stats().errors[e] && r.tx_error == Error::NONE) r.tx_error = static_cast<Error>(e);
        if (rx.stats().errors[e] && r.rx_error == Error::NONE) r.rx_error = static_cast<Error>(e);
    }
    r.legs_refused = rx.stats().legs_refused;
    r.duplicates = rx.stats().duplicates;
    return r;
}

// The chunk records in a run's wire bytes: offset of each header.
inline std::vector<size_t> chunk_records(const std::vector<uint8_t> &wire) {
    Decoder dec(Codec::NATIVE, Direction::FROM_SENDER);
    std::vector<size_t> at;
    size_t used = 0;
    Decoded d;
    if (wire.size() < 5 || wire[4] != kTypeHello) { // a later batch: the decoder must have seen a hello
        const std::vector<uint8_t> h = hello_bytes(Hello{});
        dec.feed(h.data(), h.size(), d);
    }
    while (used < wire.size()) {
        const size_t before = used;
        used += dec.feed(wire.data() + used, wire.size() - used, d);
        if (d.kind == EventKind::CHUNK_HEADER) at.push_back(used - kChunkHeaderSize);
        if (d.kind == EventKind::ERROR || (d.kind == EventKind::NEED_MORE && used == before)) break;
    }
    return at;
}

} // namespace stripe_test

// TxCore against a recording command queue and reports written by hand:
// what happens to a leg still connecting when the transfer ends.
//
// The CI failure this pins (interop_heavy_loss_tx): a leg's replacement
// connection sent its SYN, the SYN-ACK was lost, the transfer finished on
// the other legs, and TxCore kept the connecting leg for its linger. Its SYN
// went out again after the 1 s SYN timeout, to a receiver that had exited:
// the kernel answered with RST. Now the leg is dropped without a sound half
// a SYN timeout after its SYN.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "millipede/session/tx_core.h"
#include "millipede/tcp/connection.h"

using namespace millipede;
using session::CommandType;

namespace {

struct RecordingOut final : session::CommandOut {
    std::vector<session::LegCommand> sent;
    bool send(uint32_t, const session::LegCommand &c) override {
        sent.push_back(c);
        return true;
    }
    uint32_t hosts() const override { return 1; }
    uint32_t pick_host(const tcp::Endpoints &) override { return 0; }
    size_t count(CommandType t, session::ConnHandle h) const {
        size_t k = 0;
        for (const auto &c : sent) k += c.type == t && c.handle == h;
        return k;
    }
    uint64_t written(session::ConnHandle h) const {
        uint64_t n = 0;
        for (const auto &c : sent)
            if (c.handle == h) n += c.type == CommandType::WRITE_INLINE ? c.len : c.type == CommandType::WRITE_REF ? c.ref.n : 0;
        return n;
    }
};

// `leg`: reports echo the CONNECT's leg index.
session::LegReport report(session::ReportType t, session::ConnHandle h, uint64_t acked = 0, uint64_t window_end = 0,
                          uint16_t leg = 0) {
    session::LegReport r;
    r.type = t;
    r.handle = h;
    r.leg = leg;
    r.credit.acked = acked;
    r.credit.window_end = window_end;
    return r;
}

// Two compat legs (a stock receiver: no end acknowledgement): leg 0
// connects at 1000 us, takes 10,000 bytes and has them all acknowledged by
// TCP, so the transfer is DONE; leg 1's SYN-ACK never came.
struct EndedWithALegConnecting {
    session::TxConfig cfg;
    RecordingOut out;
    std::unique_ptr<session::TxCore> core;
    session::ConnHandle live = 0, connecting = 0;
    uint64_t now = 1000;

    explicit EndedWithALegConnecting(uint64_t seed) {
        const tcp::IpAddr tx_ip = tcp::IpAddr::v4(0x0a000001), rx_ip = tcp::IpAddr::v4(0x0a000002);
        cfg.legs = {session::LegSpec{tx_ip, 0, rx_ip, 8834}, session::LegSpec{tx_ip, 0, rx_ip, 8834}};
        cfg.stripe.codec = stripe::Codec::VIAMILLIPEDE;
        cfg.stripe.chunk_bytes = 4096;
        core = std::make_unique<session::TxCore>(cfg, out, tcp::SeededRandom(seed));
        core->poll(now);
        std::vector<session::ConnHandle> handles;
        for (const auto &c : out.sent)
            if (c.type == CommandType::CONNECT) handles.push_back(c.handle);
        if (handles.size() != 2) return;
        live = handles[0];
        connecting = handles[1];
        core->on_report(report(session::ReportType::CONNECTED, live, 0, 1 << 20), now);
        core->poll(now);
        static const uint8_t ok[] = {'o', 'k'}; // the receiver answers the checkphrase
        session::LegReport in = report(session::ReportType::INPUT, live);
        in.input.p = ok;
        in.input.n = 2;
        core->on_report(in, now);
        std::vector<uint8_t> data(10'000, static_cast<uint8_t>(seed));
        if (core->push_input(data.data(), data.size(), now) != data.size()) return;
        core->finish_input(now);
        for (int round = 0; round < 20 && core->state() == session::State::RUNNING; round++) {
            now += 1000;
            core->poll(now);
            core->on_report(report(session::ReportType::CREDIT, live, out.written(live), 1 << 20), now);
        }
        now += 1000;
        core->poll(now);
    }
};

} // namespace

TEST(TxCore, ALegStillConnectingWhenTheTransferEndsIsDroppedBeforeItsSynGoesAgain) {
    EndedWithALegConnecting e(5);
    ASSERT_EQ(e.cfg.tcp.rto_initial_us, 1'000'000u);
    ASSERT_NE(e.connecting, 0u);
    session::TxCore &core = *e.core;
    ASSERT_EQ(core.state(), session::State::DONE) << core.message();
    EXPECT_EQ(core.leg_state(1), session::TxLegState::CONNECTING);
    // Leg 0 closes in order; only the connecting leg is left.
    const uint64_t w = e.out.written(e.live);
    core.on_report(report(session::ReportType::PEER_FIN, e.live, w, 1 << 20), e.now);
    core.on_report(report(session::ReportType::CLOSED, e.live, w, 1 << 20), e.now);
    core.poll(e.now);
    EXPECT_FALSE(core.finished()) << "a SYN-ACK may still be on its way";
    EXPECT_EQ(e.out.count(CommandType::ABORT, e.connecting), 0u);
    // Its deadline is half the SYN timeout after its CONNECT (at 1000 us).
    const uint64_t deadline = 1000 + e.cfg.tcp.rto_initial_us / 2;
    EXPECT_EQ(core.next_deadline(), deadline);
    core.poll(deadline - 1);
    EXPECT_EQ(e.out.count(CommandType::ABORT, e.connecting), 0u);
    core.poll(deadline);
    EXPECT_EQ(e.out.count(CommandType::ABORT, e.connecting), 1u) << "dropped (no RST from SYN-SENT: the host's abort)";
    EXPECT_TRUE(core.finished()) << "before the SYN would go again at " << 1000 + e.cfg.tcp.rto_initial_us << " us";
    EXPECT_EQ(core.stats().connects_abandoned, 1u);
    EXPECT_EQ(core.stats().connects, 2u);
}

// The common case stays as it was: a SYN-ACK that comes soon after the end
// completes the handshake, and the leg is closed with FIN, not dropped.
TEST(TxCore, ALegWhoseHandshakeCompletesAfterTheEndIsClosedWithFin) {
    EndedWithALegConnecting e(6);
    ASSERT_NE(e.connecting, 0u);
    session::TxCore &core = *e.core;
    ASSERT_EQ(core.state(), session::State::DONE) << core.message();
    core.on_report(report(session::ReportType::CONNECTED, e.connecting, 0, 1 << 20, 1), e.now + 100);
    core.poll(e.now + 100);
    EXPECT_EQ(e.out.count(CommandType::SHUTDOWN, e.connecting), 1u);
    EXPECT_EQ(e.out.count(CommandType::ABORT, e.connecting), 0u);
    core.poll(1000 + e.cfg.tcp.rto_initial_us);
    EXPECT_EQ(e.out.count(CommandType::ABORT, e.connecting), 0u)
        << "an established leg is not dropped by the handshake deadline";
    EXPECT_EQ(core.stats().connects_abandoned, 0u);
}

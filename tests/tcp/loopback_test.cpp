// Two endpoints over a simulated link: byte-exact transfers under loss,
// reordering, duplication and corruption, for several seeds.
#include "harness.h"

namespace tcptest {
namespace {

struct LoopCase {
    uint64_t seed;
    double loss;
    bool sack;
    CongestionAlgo cc;
};

class LoopbackTransfer : public ::testing::TestWithParam<LoopCase> {};

TEST_P(LoopbackTransfer, TenMegabytesByteExact) {
    const LoopCase c = GetParam();
    NetParams p;
    p.seed = c.seed;
    p.loss = c.loss;
    p.reorder = c.loss > 0 ? 0.01 : 0;
    p.dup = c.loss > 0 ? 0.005 : 0;
    Config cfg;
    cfg.sack = c.sack;
    cfg.cc = c.cc;
    cfg.time_wait_us = 100'000;
    Loopback net(p, cfg, cfg);
    const auto data = pattern(10 * 1024 * 1024, static_cast<uint32_t>(c.seed));
    const auto got = net.transfer(data, 600'000'000);
    ASSERT_EQ(got.size(), data.size()) << "client " << state_name(net.client().state()) << " "
                                       << close_reason_name(net.client().close_reason());
    EXPECT_TRUE(got == data);
    ASSERT_NE(net.server(), nullptr);
    EXPECT_EQ(net.client().close_reason(), CloseReason::NORMAL);
    EXPECT_EQ(net.server()->close_reason(), CloseReason::NORMAL);
    const Stats cs = net.client().stats();
    EXPECT_EQ(cs.bytes_acked, data.size());
    EXPECT_EQ(net.server()->stats().bytes_received, data.size());
    if (c.loss > 0) {
        EXPECT_GT(cs.retransmits_fast + cs.retransmits_timeout, 0u);
    }
    EXPECT_EQ(net.client().sack_enabled(), c.sack);
}

std::vector<LoopCase> cases() {
    std::vector<LoopCase> v;
    for (uint64_t seed : {1, 2, 3})
        for (double loss : {0.0, 0.01, 0.05})
            for (bool sack : {true, false}) v.push_back({seed, loss, sack, seed == 2 ? CongestionAlgo::Cubic : CongestionAlgo::NewReno});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Seeds, LoopbackTransfer, ::testing::ValuesIn(cases()), [](const auto &info) {
    const LoopCase &c = info.param;
    return "seed" + std::to_string(c.seed) + "_loss" + std::to_string(int(c.loss * 100)) + (c.sack ? "_sack" : "_nosack") +
           (c.cc == CongestionAlgo::Cubic ? "_cubic" : "_newreno");
});

TEST(Loopback, CorruptionIsCaughtByChecksum) {
    NetParams p;
    p.seed = 9;
    p.corrupt = 0.02;
    Config cfg;
    cfg.time_wait_us = 100'000;
    Loopback net(p, cfg, cfg);
    const auto data = pattern(1024 * 1024, 9);
    const auto got = net.transfer(data, 300'000'000);
    ASSERT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data);
    const uint64_t bad = net.client().stats().bad_checksums + net.server()->stats().bad_checksums +
                         net.listener().stats().bad_checksums;
    EXPECT_GT(bad, 0u);
}

TEST(Loopback, SlowReaderBackPressure) {
    NetParams p;
    p.seed = 4;
    Config cfg;
    cfg.recv_buffer = 32 * 1024;
    cfg.time_wait_us = 100'000;
    Loopback net(p, cfg, cfg);
    const auto data = pattern(512 * 1024, 4);
    // 64 KB/s reader: the window must close and reopen many times.
    const auto got = net.transfer(data, 60'000'000, 64);
    ASSERT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data);
    // No data was lost to an over-full receiver.
    EXPECT_EQ(net.server()->stats().drops[size_t(Drop::OOO_NO_SPACE)], 0u);
}

TEST(Loopback, Ipv6Transfer) {
    // Same harness, but the pseudo-header is IPv6: exercised via a pair.
    Config cfg;
    Capture a, b;
    uint8_t s6[16] = {0x20, 0x01, 0x0d, 0xb8}, d6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    Endpoints ep{IpAddr::v6(s6), IpAddr::v6(d6), 1234, 80};
    Connection c(cfg, ep, a.sink(), SeededRandom(1));
    Listener l(cfg, IpAddr::v6(d6), 80, 4, b.sink(), SeededRandom(2));
    c.connect(0);
    std::unique_ptr<Connection> s;
    for (int i = 0; i < 10; ++i) {
        for (auto &w : a.take()) {
            if (s) s->on_bytes(w.bytes, w.src, w.dst, 10);
            else s = l.on_bytes(w.bytes, w.src, w.dst, 10);
        }
        for (auto &w : b.take()) c.on_bytes(w.bytes, w.src, w.dst, 10);
    }
    ASSERT_TRUE(s);
    EXPECT_EQ(c.state(), State::Established);
    EXPECT_EQ(c.send_mss(), 1460 - 12);
}

} // namespace
} // namespace tcptest

// RxCore against a recording command queue: what it tells a worker about
// the input it took. Each command is a cache line to another lcore, so the
// input of one poll is consumed with one CONSUME per leg, not one per
// INPUT report, and that CONSUME still reaches the worker ahead of every
// other command to the leg (the order the worker relies on).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "millipede/session/rx_core.h"
#include "millipede/stripe/wire.h"

using namespace millipede;

namespace {

struct Recorded {
    session::CommandType type;
    session::ConnHandle handle;
    uint64_t n;
};

struct RecordingOut final : session::CommandOut {
    std::vector<Recorded> sent;
    bool send(uint32_t, const session::LegCommand &c) override {
        sent.push_back({c.type, c.handle, c.type == session::CommandType::CONSUME ? c.n : 0});
        return true;
    }
    uint32_t hosts() const override { return 1; }
    uint32_t pick_host(const tcp::Endpoints &) override { return 0; }
    size_t count(session::CommandType t) const {
        size_t k = 0;
        for (const auto &r : sent) k += r.type == t;
        return k;
    }
};

session::RxConfig config() {
    session::RxConfig c;
    c.local_ips = {tcp::IpAddr::v4(0x0a000002)};
    c.port = 8834;
    c.stripe.max_legs = 4;
    return c;
}

// A hello and one chunk of `payload` bytes, as a sender writes them.
std::vector<uint8_t> hello_and_chunk(size_t payload) {
    std::vector<uint8_t> w(stripe::kHelloSize + stripe::kChunkHeaderSize + payload);
    stripe::Hello h;
    h.session_id = 42;
    stripe::encode_hello(w.data(), h);
    uint8_t *data = w.data() + stripe::kHelloSize + stripe::kChunkHeaderSize;
    for (size_t i = 0; i < payload; i++) data[i] = static_cast<uint8_t>(i * 7 + 3);
    stripe::ChunkHeader ch;
    ch.seq = 0;
    ch.offset = 0;
    ch.length = static_cast<uint32_t>(payload);
    ch.crc32c = stripe::crc32c(data, payload);
    stripe::encode_chunk_header(w.data() + stripe::kHelloSize, ch);
    return w;
}

session::LegReport accepted(session::ConnHandle h) {
    session::LegReport r;
    r.type = session::ReportType::ACCEPTED;
    r.handle = h;
    r.ep.local_ip = tcp::IpAddr::v4(0x0a000002);
    r.ep.remote_ip = tcp::IpAddr::v4(0x0a000001);
    r.ep.local_port = 8834;
    r.ep.remote_port = 40000;
    return r;
}

session::LegReport input(session::ConnHandle h, const uint8_t *p, uint32_t n) {
    session::LegReport r;
    r.type = session::ReportType::INPUT;
    r.handle = h;
    r.input.p = p;
    r.input.n = n;
    return r;
}

} // namespace

TEST(RxCore, OneConsumePerLegPerPollAheadOfTheLegsOtherCommands) {
    RecordingOut out;
    session::RxCore core(config(), out);
    const session::ConnHandle h = session::make_handle(0, 0) | session::kAcceptedBit;
    core.on_report(accepted(h), 1000);
    const std::vector<uint8_t> wire = hello_and_chunk(20'000);
    // Five INPUT reports in one round, as a worker's segments arrive; the
    // split falls inside the hello and inside the chunk header too.
    const size_t cuts[] = {0, 20, 50, 4'000, 11'111, wire.size()};
    for (int i = 0; i < 5; i++)
        core.on_report(input(h, wire.data() + cuts[i], static_cast<uint32_t>(cuts[i + 1] - cuts[i])), 1000);
    EXPECT_EQ(out.count(session::CommandType::CONSUME), 0u) << "consumed before the poll: one per report";
    EXPECT_EQ(core.next_deadline(), 0u) << "input taken makes the poll due at once";
    core.poll(1000);
    ASSERT_EQ(out.count(session::CommandType::CONSUME), 1u);
    size_t consume_at = SIZE_MAX, first_other = SIZE_MAX;
    for (size_t i = 0; i < out.sent.size(); i++) {
        if (out.sent[i].type == session::CommandType::CONSUME) consume_at = i;
        else if (first_other == SIZE_MAX) first_other = i;
    }
    EXPECT_EQ(out.sent[consume_at].handle, h);
    EXPECT_EQ(out.sent[consume_at].n, wire.size()) << "every byte of the five reports, taken by the stripe receiver";
    ASSERT_NE(first_other, SIZE_MAX) << "the hello is answered";
    EXPECT_LT(consume_at, first_other) << "the CONSUME goes ahead of the hello reply written to the leg";
    EXPECT_EQ(core.state(), session::State::RUNNING) << core.message();
    // Nothing new: the next poll sends no CONSUME.
    core.poll(2000);
    EXPECT_EQ(out.count(session::CommandType::CONSUME), 1u);
}

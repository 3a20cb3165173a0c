// StripeReceiver: hello handling, reordering, duplicates, bounded window,
// back-pressure, CRC resend, end verification.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "fake_legs.h"
#include "millipede/stripe/receiver.h"
#include "millipede/stripe/sender.h"

using namespace stripe_test;

namespace {

ReceiverConfig rcfg(uint32_t window = 8, uint32_t max_chunk = 1000) {
    ReceiverConfig c;
    c.max_legs = 4;
    c.window_chunks = window;
    c.max_chunk_bytes = max_chunk;
    return c;
}

std::vector<uint8_t> payload(uint64_t seq, size_t n = 100) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = uint8_t(seq * 31 + i);
    return v;
}

struct Rig {
    explicit Rig(ReceiverConfig c = rcfg()) : rx(c), io(c.max_legs) {
        for (uint32_t i = 0; i < c.max_legs; i++) decs.emplace_back(Codec::NATIVE, Direction::FROM_RECEIVER);
    }
    void open(uint32_t leg, uint64_t session = 5, const char *phrase = "yoes") {
        rx.leg_up(leg, 0);
        decs[leg].reset();
        Hello h;
        h.session_id = session;
        h.stream_index = leg;
        h.chunk_bytes = 100;
        std::memcpy(h.checkphrase, phrase, 4);
        auto b = hello_bytes(h);
        EXPECT_EQ(rx.leg_input(leg, b.data(), b.size(), 0), b.size());
    }
    size_t send(uint32_t leg, const std::vector<uint8_t> &b) { return rx.leg_input(leg, b.data(), b.size(), 0); }
    size_t chunk(uint32_t leg, uint64_t seq, bool corrupt = false) {
        return send(leg, chunk_bytes(seq, seq * 100, payload(seq), corrupt));
    }
    std::vector<uint8_t> drain() {
        std::vector<uint8_t> out;
        for (auto o = rx.output(); !o.empty(); o = rx.output()) {
            out.insert(out.end(), o.begin(), o.end());
            rx.output_consumed(o.size());
        }
        return out;
    }
    std::vector<Rec> replies(uint32_t leg) {
        rx.poll(0, io);
        return decode_all(decs[leg], io.take(leg));
    }
    StripeReceiver rx;
    std::vector<Decoder> decs;
    FakeIo io;
};

std::vector<uint8_t> expected(uint64_t chunks) {
    std::vector<uint8_t> v;
    for (uint64_t s = 0; s < chunks; s++) append(v, payload(s));
    return v;
}

} // namespace

TEST(StripeReceiver, AcceptsHelloAndAdvertisesWindow) {
    Rig r;
    r.open(0);
    auto rep = r.replies(0);
    ASSERT_EQ(rep.size(), 1u);
    EXPECT_EQ(rep[0].d.reply.status, HelloStatus::ACCEPT);
    EXPECT_EQ(rep[0].d.reply.window_chunks, 8u);
    EXPECT_EQ(r.rx.leg_state(0), ReceiverLegState::OPEN);
}

TEST(StripeReceiver, CheckphraseMismatchRefused) {
    Rig r;
    r.open(0, 5, "nope");
    auto rep = r.replies(0);
    ASSERT_EQ(rep.size(), 1u);
    EXPECT_EQ(rep[0].d.reply.status, HelloStatus::CHECKPHRASE_MISMATCH);
    StripeEvent ev;
    ASSERT_TRUE(r.rx.next_event(ev));
    EXPECT_EQ(ev.type, EventType::CLOSE_LEG);
    EXPECT_NE(std::string(r.rx.last_leg_message()).find("checkphrase mismatch"), std::string::npos);
    EXPECT_NE(std::string(r.rx.last_leg_message()).find("\"nope\""), std::string::npos);
    EXPECT_EQ(r.rx.state(), SessionState::RUNNING); // a stray connection does not end the session
}

TEST(StripeReceiver, RefusalReasonOutlivesALaterLegClose) {
    // The refused sender gives up and its other legs close with garbage or
    // resets; the user still needs the first reason (here the checkphrase).
    Rig r;
    r.open(0, 5, "nope");
    r.rx.leg_up(1, 0);
    std::vector<uint8_t> junk = {'X', 'X', 'X', 'X', 'X', 'X', 'X', 'X'};
    r.send(1, junk);
    EXPECT_EQ(std::string(r.rx.last_leg_message()).find("checkphrase"), std::string::npos)
        << "the later close was expected to overwrite the last leg message: " << r.rx.last_leg_message();
    EXPECT_NE(std::string(r.rx.last_refusal_message()).find("checkphrase mismatch"), std::string::npos)
        << r.rx.last_refusal_message();
}

TEST(StripeReceiver, VersionMismatchRefusedWithBothVersions) {
    Rig r;
    r.rx.leg_up(0, 0);
    std::vector<uint8_t> b = {'M', 'L', 'P', 'D', 'H', 4, 0, 0}; // a v4 hello's common prefix
    r.send(0, b);
    auto rep = r.replies(0);
    ASSERT_EQ(rep.size(), 1u);
    EXPECT_EQ(rep[0].d.reply.status, HelloStatus::VERSION_MISMATCH);
    EXPECT_EQ(rep[0].d.reply.version, kVersion);
    EXPECT_EQ(rep[0].d.reply.hello_version, 4);
    std::string m = r.rx.last_leg_message();
    EXPECT_NE(m.find("v4"), std::string::npos) << m;
    EXPECT_NE(m.find("v1"), std::string::npos) << m;
}

TEST(StripeReceiver, SessionMismatchRefused) {
    Rig r;
    r.open(0, 5);
    r.open(1, 6);
    auto rep = r.replies(1);
    ASSERT_EQ(rep.size(), 1u);
    EXPECT_EQ(rep[0].d.reply.status, HelloStatus::SESSION_MISMATCH);
    EXPECT_EQ(r.rx.leg_state(0), ReceiverLegState::OPEN);
}

TEST(StripeReceiver, OutOfOrderAcrossLegsDeliveredInOrder) {
    Rig r;
    r.open(0);
    r.open(1);
    r.open(2);
    r.chunk(2, 2);
    r.chunk(0, 3);
    EXPECT_TRUE(r.rx.output().empty());
    r.chunk(1, 0);
    EXPECT_EQ(r.drain(), expected(1));
    r.chunk(1, 1);
    auto out = r.drain();
    auto want = expected(4);
    EXPECT_EQ(out, std::vector<uint8_t>(want.begin() + 100, want.end()));
    EXPECT_EQ(r.rx.next_seq(), 4u);
}

TEST(StripeReceiver, DuplicatesDroppedAndAcked) {
    Rig r;
    r.open(0);
    r.open(1);
    r.replies(0);
    r.replies(1);
    r.chunk(0, 0);
    r.chunk(0, 2);
    r.chunk(1, 0); // delivered already
    r.chunk(1, 2); // held already
    EXPECT_EQ(r.rx.stats().duplicates, 2u);
    EXPECT_EQ(r.drain(), expected(1));
    auto rep = r.replies(1);
    ASSERT_EQ(rep.size(), 1u);
    EXPECT_EQ(rep[0].kind, EventKind::ACK);
    EXPECT_EQ(rep[0].d.ack.cumulative, 1u);
    EXPECT_EQ(rep[0].d.ack.bitmap, 0b1u); // bit i = chunk cumulative + 1 + i: chunk 2
}

TEST(StripeReceiver, BoundedWindowStallsTheLegInsteadOfGrowing) {
    Rig r(rcfg(/*window=*/2));
    r.open(0);
    r.open(1);
    auto c3 = chunk_bytes(3, 300, payload(3));
    EXPECT_EQ(r.send(0, c3), kChunkHeaderSize); // header read, payload left in "TCP"
    EXPECT_TRUE(r.rx.leg_blocked(0));
    EXPECT_EQ(r.rx.buffered_bytes(), 0u);
    r.chunk(1, 0);
    r.chunk(1, 1);
    // window [0, 2) is full of undelivered output: chunk 2 must wait too
    auto c2 = chunk_bytes(2, 200, payload(2));
    EXPECT_EQ(r.send(1, c2), kChunkHeaderSize);
    EXPECT_LE(r.rx.buffered_bytes(), 2u * 100);
    EXPECT_EQ(r.rx.window_bytes(), 2u * 1000);
    // stdout drains: chunk 2 and 3 fit now
    EXPECT_EQ(r.drain(), expected(2));
    std::vector<uint8_t> rest2(c2.begin() + kChunkHeaderSize, c2.end());
    std::vector<uint8_t> rest3(c3.begin() + kChunkHeaderSize, c3.end());
    EXPECT_EQ(r.send(1, rest2), rest2.size());
    EXPECT_EQ(r.send(0, rest3), rest3.size());
    auto want = expected(4);
    EXPECT_EQ(r.drain(), std::vector<uint8_t>(want.begin() + 200, want.end()));
    EXPECT_GT(r.rx.stats().stalls, 0u);
}

TEST(StripeReceiver, SlowOutputIsBackPressure) {
    Rig r(rcfg(/*window=*/3));
    r.open(0);
    std::vector<uint8_t> all;
    for (uint64_t s = 0; s < 10; s++) append(all, chunk_bytes(s, s * 100, payload(s)));
    size_t used = r.send(0, all);
    EXPECT_EQ(used, 3 * (kChunkHeaderSize + 100) + kChunkHeaderSize);
    EXPECT_EQ(r.rx.buffered_bytes(), 300u);
    std::vector<uint8_t> out;
    while (used < all.size()) {
        auto o = r.rx.output();
        ASSERT_FALSE(o.empty());
        out.insert(out.end(), o.begin(), o.begin() + 1); // stdout takes one byte at a time
        r.rx.output_consumed(1);
        used += r.send(0, std::vector<uint8_t>(all.begin() + used, all.end()));
        EXPECT_LE(r.rx.buffered_bytes(), 300u);
    }
    append(out, r.drain());
    EXPECT_EQ(out, expected(10));
}

TEST(StripeReceiver, CrcFailureNeverDeliveredAndRequestedAgain) {
    Rig r;
    r.open(0);
    r.replies(0);
    r.chunk(0, 0, /*corrupt=*/true);
    EXPECT_TRUE(r.rx.output().empty());
    EXPECT_EQ(r.rx.stats().crc_failures, 1u);
    EXPECT_NE(std::string(r.rx.last_leg_message()).find("chunk 0"), std::string::npos);
    auto rep = r.replies(0);
    ASSERT_GE(rep.size(), 1u);
    EXPECT_EQ(rep[0].kind, EventKind::RESEND);
    EXPECT_EQ(rep[0].d.resend.seq, 0u);
    r.chunk(0, 0);
    EXPECT_EQ(r.drain(), expected(1));
}

TEST(StripeReceiver, OversizeChunkClosesLegBeforePayload) {
    Rig r(rcfg(8, 100));
    r.open(0);
    auto b = chunk_bytes(0, 0, payload(0, 101));
    EXPECT_EQ(r.send(0, b), b.size());
    StripeEvent ev;
    ASSERT_TRUE(r.rx.next_event(ev));
    EXPECT_EQ(ev.type, EventType::CLOSE_LEG);
    EXPECT_EQ(ev.error, Error::OVERSIZE_CHUNK);
    EXPECT_EQ(r.rx.buffered_bytes(), 0u);
}

namespace {
void end_case(uint64_t chunks, uint64_t bytes, uint64_t digest, EndStatus want_status, const char *want_msg) {
    Rig r;
    r.open(0);
    r.replies(0);
    r.chunk(0, 0);
    r.chunk(0, 1);
    std::vector<uint8_t> e(kEndSize);
    encode_end(e.data(), End{chunks, bytes, digest});
    r.send(0, e);
    r.drain();
    auto rep = r.replies(0);
    const Rec *ea = nullptr;
    for (auto &x : rep)
        if (x.kind == EventKind::END_ACK) ea = &x;
    ASSERT_NE(ea, nullptr);
    EXPECT_EQ(ea->d.end_ack.status, want_status);
    if (want_status == EndStatus::OK) {
        EXPECT_EQ(r.rx.state(), SessionState::DONE) << r.rx.message();
    } else {
        EXPECT_EQ(r.rx.state(), SessionState::FAILED);
        EXPECT_NE(std::string(r.rx.message()).find(want_msg), std::string::npos) << r.rx.message();
    }
}
} // namespace

TEST(StripeReceiver, EndVerified) {
    auto all = expected(2);
    end_case(2, 200, crc64(all.data(), all.size()), EndStatus::OK, "");
}

TEST(StripeReceiver, EndDigestMismatchDetected) {
    auto all = expected(2);
    end_case(2, 200, crc64(all.data(), all.size()) ^ 1, EndStatus::DIGEST_MISMATCH, "CRC64 digest mismatch");
}

TEST(StripeReceiver, EndLengthMismatchDetected) {
    auto all = expected(2);
    end_case(2, 201, crc64(all.data(), all.size()), EndStatus::LENGTH_MISMATCH, "length mismatch");
}

TEST(StripeReceiver, DoneWaitsForOutputToDrain) {
    Rig r;
    r.open(0);
    r.chunk(0, 0);
    auto all = expected(1);
    std::vector<uint8_t> e(kEndSize);
    encode_end(e.data(), End{1, 100, crc64(all.data(), all.size())});
    r.send(0, e);
    r.rx.poll(0, r.io);
    EXPECT_EQ(r.rx.state(), SessionState::RUNNING);
    r.drain();
    r.rx.poll(0, r.io);
    EXPECT_EQ(r.rx.state(), SessionState::DONE);
}

// The sender may only report success (and tx exit 0) once the bytes were
// written: a successful end acknowledgement waits for the output to drain.
TEST(StripeReceiver, SuccessfulEndAckWaitsUntilTheOutputTookEveryByte) {
    Rig r;
    r.open(0);
    r.replies(0);
    r.chunk(0, 0);
    r.chunk(0, 1);
    auto all = expected(2);
    std::vector<uint8_t> e(kEndSize);
    encode_end(e.data(), End{2, 200, crc64(all.data(), all.size())});
    r.send(0, e);
    auto has_end_ack = [](const std::vector<Rec> &rep) {
        return std::any_of(rep.begin(), rep.end(), [](const Rec &x) { return x.kind == EventKind::END_ACK; });
    };
    EXPECT_FALSE(has_end_ack(r.replies(0))) << "nothing was written yet";
    auto o = r.rx.output();
    r.rx.output_consumed(o.size() / 2);
    EXPECT_FALSE(has_end_ack(r.replies(0))) << "half of the output is still unwritten";
    r.drain();
    EXPECT_TRUE(has_end_ack(r.replies(0)));
    EXPECT_EQ(r.rx.state(), SessionState::DONE);
}

// A mismatch is reported at once, whatever the output does.
TEST(StripeReceiver, FailedEndAckIsNotDeferred) {
    Rig r;
    r.open(0);
    r.replies(0);
    r.chunk(0, 0);
    std::vector<uint8_t> e(kEndSize);
    encode_end(e.data(), End{1, 100, 12345});
    r.send(0, e);
    auto rep = r.replies(0);
    auto ea = std::find_if(rep.begin(), rep.end(), [](const Rec &x) { return x.kind == EventKind::END_ACK; });
    ASSERT_NE(ea, rep.end());
    EXPECT_EQ(ea->d.end_ack.status, EndStatus::DIGEST_MISMATCH);
}

TEST(StripeReceiver, CompatChecksumFailureStopsBeforeDelivery) {
    auto c = rcfg();
    c.codec = Codec::VIAMILLIPEDE;
    StripeReceiver rx(c);
    FakeIo io(4);
    rx.leg_up(0, 0);
    std::vector<uint8_t> b = {'y', 'o', 'e', 's'};
    b.reserve(512);
    auto p0 = payload(0), p1 = payload(1);
    CompatChecksumChain chain;
    uint8_t h[40];
    encode_compat_header(h, CompatHeader{0, 100, chain.next(0, p0.data(), 100), kCompatOpMore});
    b.insert(b.end(), h, h + 40);
    append(b, p0);
    encode_compat_header(h, CompatHeader{1, 100, chain.next(1, p1.data(), 100) + 1, kCompatOpMore});
    b.insert(b.end(), h, h + 40);
    append(b, p1);
    rx.leg_input(0, b.data(), b.size(), 0);
    rx.poll(0, io);
    EXPECT_EQ(io.take(0), (std::vector<uint8_t>{'o', 'k'}));
    EXPECT_EQ(rx.state(), SessionState::FAILED);
    EXPECT_NE(std::string(rx.message()).find("chunk 1"), std::string::npos) << rx.message();
    auto o = rx.output();
    EXPECT_EQ(o.size(), 100u); // chunk 0 only
}

TEST(StripeReceiver, ResendTakesOverAChunkADeadLegWasStillFilling) {
    // Leg 0 delivers half of chunk 0 and goes silent (its link died; the
    // receiver has not noticed). The sender re-sends chunk 0 on leg 1: it
    // must not wait for leg 0, whose rest may never come.
    Rig r;
    r.open(0);
    r.open(1);
    auto c0 = chunk_bytes(0, 0, payload(0));
    std::vector<uint8_t> half(c0.begin(), c0.begin() + 60);
    EXPECT_EQ(r.send(0, half), half.size());
    EXPECT_EQ(r.chunk(1, 0), c0.size());
    EXPECT_EQ(r.rx.stats().takeovers, 1u);
    EXPECT_EQ(r.drain(), expected(1));
    // If leg 0 was alive after all, the rest of its copy is read and dropped.
    std::vector<uint8_t> rest(c0.begin() + 60, c0.end());
    EXPECT_EQ(r.send(0, rest), rest.size());
    r.chunk(0, 1);
    EXPECT_EQ(r.drain(), payload(1));
    EXPECT_EQ(r.rx.next_seq(), 2u);
    EXPECT_EQ(r.rx.stats().crc_failures, 0u);
}

TEST(StripeReceiver, TheOriginalCopyStillCompletesAChunkWhenTheResendLegDies) {
    // viamillipede closes a leg it gave up with FIN, so its copy may still
    // arrive in full, after the re-send started on a fresh leg. If the fresh
    // leg then dies mid-chunk, the original copy must still deliver it (the
    // sender already counts it delivered; found by the compat sim seeds).
    Rig r;
    r.open(0);
    r.open(1);
    auto c0 = chunk_bytes(0, 0, payload(0));
    std::vector<uint8_t> half(c0.begin(), c0.begin() + 60), part(c0.begin(), c0.begin() + 80);
    EXPECT_EQ(r.send(0, half), half.size());
    EXPECT_EQ(r.send(1, part), part.size()); // the re-send, further along
    r.rx.leg_down(1, 0);                      // ... and its leg dies
    std::vector<uint8_t> rest(c0.begin() + 60, c0.end());
    EXPECT_EQ(r.send(0, rest), rest.size());
    EXPECT_EQ(r.drain(), expected(1));
    EXPECT_EQ(r.rx.stats().crc_failures, 0u);
    EXPECT_EQ(r.rx.stats().takeovers, 1u);
}

TEST(StripeReceiver, AfterDoneARepeatedEndOnANewLegIsAnsweredAgain) {
    // The end ack went out on leg 0, which died before delivering it: the
    // sender sends the same end record on a new leg and must be answered.
    Rig r;
    r.open(0);
    r.chunk(0, 0);
    auto all = expected(1);
    std::vector<uint8_t> e(kEndSize);
    encode_end(e.data(), End{1, 100, crc64(all.data(), all.size())});
    r.send(0, e);
    r.drain();
    r.rx.poll(0, r.io);
    ASSERT_EQ(r.rx.state(), SessionState::DONE);
    r.rx.leg_down(0, 0);
    r.open(1);
    r.chunk(1, 0); // a re-send: a duplicate, acknowledged again
    r.send(1, e);
    auto rep = r.replies(1);
    ASSERT_GE(rep.size(), 2u);
    EXPECT_EQ(rep.front().kind, EventKind::HELLO_REPLY);
    auto ea = std::find_if(rep.begin(), rep.end(), [](const Rec &x) { return x.kind == EventKind::END_ACK; });
    ASSERT_NE(ea, rep.end());
    EXPECT_EQ(ea->d.end_ack.status, EndStatus::OK);
    EXPECT_EQ(ea->d.end_ack.chunks, 1u);
    EXPECT_EQ(r.rx.state(), SessionState::DONE);
    EXPECT_TRUE(r.drain().empty());
}

// Hello feature bit 5 (docs/wire.md 2.23): a tunnel end's stream carries
// the tunnel's records. Both ends must agree: a plain receiver would write
// the records to its stdout, and a tunnel end would read a plain stream as
// malformed records. Each mismatch is refused at the hello, with a line
// that names the other tunnel word.
TEST(StripeTunnelFeature, HelloRefusedUnlessBothEndsAreTunnelEnds) {
    EXPECT_EQ(kFeatureTunnel, 1u << 5);
    for (const bool tx_tunnel : {false, true})
        for (const bool rx_tunnel : {false, true}) {
            SCOPED_TRACE(std::string("tx tunnel ") + (tx_tunnel ? "yes" : "no") + ", rx tunnel " +
                         (rx_tunnel ? "yes" : "no"));
            SenderConfig sc;
            sc.legs = 1;
            sc.chunk_bytes = 4096;
            sc.session_id = 0x7e;
            if (tx_tunnel) sc.features |= kFeatureTunnel;
            ReceiverConfig rc;
            rc.max_legs = 1;
            rc.window_chunks = 4;
            rc.max_chunk_bytes = 4096;
            if (rx_tunnel) rc.features |= kFeatureTunnel;
            StripeSender tx(sc);
            StripeReceiver rx(rc);
            FakeIo s2r(1), r2s(1);
            const uint8_t data[100] = {1, 2, 3};
            tx.push_input(data, sizeof data, 0);
            tx.finish_input(0);
            rx.leg_up(0, 0);
            for (uint64_t now = 1; now < 50; now++) {
                tx.poll(now, s2r);
                StripeEvent ev;
                while (tx.next_event(ev))
                    if (ev.type == EventType::CONNECT_LEG) tx.leg_up(ev.leg, now);
                auto v = s2r.take(0);
                if (!v.empty()) rx.leg_input(0, v.data(), v.size(), now);
                rx.poll(now, r2s);
                auto back = r2s.take(0);
                if (!back.empty()) tx.leg_input(0, back.data(), back.size(), now);
                rx.output_consumed(rx.output().size());
            }
            if (tx_tunnel == rx_tunnel) {
                EXPECT_EQ(tx.state(), SessionState::DONE) << tx.message();
                EXPECT_EQ(rx.state(), SessionState::DONE) << rx.message();
                continue;
            }
            EXPECT_EQ(rx.stats().legs_refused, 1u);
            EXPECT_NE(std::string(rx.last_leg_message()).find("give "), std::string::npos) << rx.last_leg_message();
            EXPECT_NE(std::string(rx.last_leg_message()).find(rx_tunnel ? "sends a plain stream" : "is a tunnel end"),
                      std::string::npos)
                << rx.last_leg_message();
            EXPECT_EQ(tx.state(), SessionState::FAILED);
            EXPECT_TRUE(rx.output().empty());
        }
}

// Zero-copy byte storage (buffers.h) and the connection paths that use it:
// referenced send memory, received payload held by reference, the gather
// checksum, and that every reference taken is given back.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <numeric>
#include <vector>

#include "harness.h"
#include "millipede/net/checksum.h"
#include "millipede/tcp/buffers.h"

using namespace tcptest;

namespace {

// A stand-in for the application's reference counts (chunk buffers on tx,
// mbufs on rx): every retain and release is recorded, and a release that
// was never retained fails the test.
struct RefTable {
    std::map<BufRef, long> count;
    long retains = 0, releases = 0;
    RefOps ops{&RefTable::on_retain, &RefTable::on_release, this};
    static void on_retain(void *c, BufRef r) {
        auto *t = static_cast<RefTable *>(c);
        t->count[r]++;
        t->retains++;
    }
    static void on_release(void *c, BufRef r) {
        auto *t = static_cast<RefTable *>(c);
        auto it = t->count.find(r);
        ASSERT_TRUE(it != t->count.end() && it->second > 0) << "release of ref " << r << " that is not held";
        if (--it->second == 0) t->count.erase(it);
        t->releases++;
    }
    long held() const {
        long n = 0;
        for (auto &[r, c] : count) n += c;
        return n;
    }
};

std::vector<uint8_t> gathered(const SendQueue &q, size_t off, size_t len, size_t max_pieces = 64) {
    std::vector<Piece> p(max_pieces);
    size_t covered = 0;
    const size_t n = q.gather(off, len, p.data(), p.size(), covered);
    std::vector<uint8_t> out;
    for (size_t i = 0; i < n; i++) out.insert(out.end(), p[i].data, p[i].data + p[i].len);
    EXPECT_EQ(out.size(), covered);
    return out;
}

} // namespace

TEST(SendQueue, CopiesAndReferencesInterleaveAndEveryReferenceIsReleased) {
    RefTable refs;
    SendQueue q;
    q.allocate(1000, 1000, 16, &refs.ops);
    const auto chunk = pattern(600, 3);
    const std::vector<uint8_t> hdr = {1, 2, 3, 4, 5};
    ASSERT_EQ(q.append_copy(hdr), 5u);
    ASSERT_EQ(q.append_ref(chunk.data(), 300, 77), 300u);
    ASSERT_EQ(q.append_ref(chunk.data() + 300, 300, 77), 300u); // contiguous, same owner: one extent
    EXPECT_EQ(refs.count[77], 1);
    ASSERT_EQ(q.append_copy(hdr), 5u);
    EXPECT_EQ(q.buffered(), 610u);

    std::vector<uint8_t> want(hdr);
    want.insert(want.end(), chunk.begin(), chunk.end());
    want.insert(want.end(), hdr.begin(), hdr.end());
    EXPECT_EQ(gathered(q, 0, 610), want);
    EXPECT_EQ(gathered(q, 3, 100), std::vector<uint8_t>(want.begin() + 3, want.begin() + 103));
    // The referenced bytes are handed out in place, not copied.
    Piece p[4];
    size_t covered = 0;
    ASSERT_EQ(q.gather(5, 600, p, 4, covered), 1u);
    EXPECT_EQ(p[0].data, chunk.data());
    EXPECT_EQ(p[0].ref, 77u);
    // A piece limit ends the gather early, and says so.
    ASSERT_EQ(q.gather(0, 610, p, 2, covered), 2u);
    EXPECT_EQ(covered, 605u);

    q.pop(5);
    EXPECT_EQ(refs.count[77], 1);
    q.pop(599); // one byte of the chunk is still unacknowledged
    EXPECT_EQ(refs.count[77], 1);
    EXPECT_EQ(gathered(q, 0, 6), std::vector<uint8_t>({chunk[599], 1, 2, 3, 4, 5}));
    q.pop(1);
    EXPECT_EQ(refs.held(), 0);
    q.append_ref(chunk.data(), 10, 78);
    q.clear();
    EXPECT_EQ(refs.held(), 0);
    EXPECT_EQ(refs.retains, refs.releases);
}

TEST(SendQueue, BoundedByBytesArenaAndExtents) {
    RefTable refs;
    SendQueue q;
    q.allocate(100, 40, 4, &refs.ops);
    const auto d = pattern(200);
    EXPECT_EQ(q.append_copy(d), 40u); // the arena is smaller than the byte budget
    EXPECT_EQ(q.room_for_copy(), 0u);
    EXPECT_EQ(q.append_ref(d.data() + 40, 200, 5), 60u); // the rest of the byte budget
    EXPECT_EQ(q.room_for_ref(), 0u);
    q.pop(100);
    EXPECT_EQ(refs.held(), 0);
    // Four extents at most: distinct owners each take one.
    for (BufRef r = 1; r <= 4; r++) EXPECT_EQ(q.append_ref(d.data() + r * 10, 5, r), 5u);
    EXPECT_EQ(q.append_ref(d.data() + 100, 5, 9), 0u);
    q.clear();
    EXPECT_EQ(refs.held(), 0);
}

TEST(SendQueue, ArenaWrapsAcrossPops) {
    SendQueue q;
    q.allocate(64, 64, 8, nullptr);
    std::vector<uint8_t> all;
    size_t acked = 0;
    for (int round = 0; round < 40; round++) {
        const auto d = pattern(23, round + 1);
        ASSERT_EQ(q.append_copy(d), 23u) << round;
        all.insert(all.end(), d.begin(), d.end());
        EXPECT_EQ(gathered(q, 0, q.buffered()), std::vector<uint8_t>(all.begin() + acked, all.end())) << round;
        q.pop(q.buffered() > 30 ? 23 : 5);
        acked = all.size() - q.buffered();
    }
}

TEST(RecvQueue, OutOfOrderOverlapsAndDuplicatesAreStoredOnceByReference) {
    RefTable refs;
    RecvQueue q;
    q.allocate(4096, 32, &refs.ops);
    const uint32_t base = 0xfffffff0u; // across sequence wrap
    q.set_base(base);
    const auto data = pattern(300, 9);
    auto piece = [&](uint32_t off, uint32_t len, BufRef r) { return Piece{data.data() + off, len, r}; };
    Piece a = piece(100, 100, 1); // out of order
    ASSERT_TRUE(q.insert(base + 100, &a, 1));
    Piece b = piece(150, 100, 2); // overlaps a: only 200..250 is new
    ASSERT_TRUE(q.insert(base + 150, &b, 1));
    Piece c = piece(0, 120, 3); // fills the front, overlaps a
    ASSERT_TRUE(q.insert(base, &c, 1));
    Piece dup = piece(0, 300, 4); // a retransmission of all: only 250..300 is new
    ASSERT_TRUE(q.insert(base, &dup, 1));
    EXPECT_EQ(refs.count[1], 1);
    EXPECT_EQ(refs.count[2], 1);
    EXPECT_EQ(refs.count[3], 1);
    EXPECT_EQ(refs.count[4], 1);
    std::span<const uint8_t> v[8];
    const size_t n = q.peek(base + 300, v, 8);
    std::vector<uint8_t> got;
    for (size_t i = 0; i < n; i++) got.insert(got.end(), v[i].begin(), v[i].end());
    EXPECT_EQ(got, data);
    EXPECT_EQ(q.peek(base + 50, v, 8), 1u); // only below the limit
    EXPECT_EQ(v[0].size(), 50u);
    q.pop(90);
    EXPECT_EQ(refs.count.count(3), 1u); // c holds 0..100 (a had 100..120): 90..100 still unread
    q.pop(10);
    EXPECT_EQ(refs.count.count(3), 0u);
    q.clear();
    EXPECT_EQ(refs.held(), 0);
}

TEST(RecvQueue, CopiedBytesWrapTheArenaAndAFullTableStoresNothing) {
    RecvQueue q;
    q.allocate(100, 4, nullptr);
    q.set_base(0);
    const auto data = pattern(400, 2);
    uint32_t seq = 0;
    std::vector<uint8_t> out;
    for (int i = 0; i < 10; i++) {
        Piece p{data.data() + seq, 40, 0};
        ASSERT_TRUE(q.insert(seq, &p, 1));
        seq += 40;
        std::span<const uint8_t> v[4];
        const size_t n = q.peek(seq, v, 4);
        size_t k = 0;
        for (size_t j = 0; j < n; j++) {
            out.insert(out.end(), v[j].begin(), v[j].end());
            k += v[j].size();
        }
        q.pop(k);
    }
    EXPECT_EQ(out, std::vector<uint8_t>(data.begin(), data.end()));
    // Four separate out-of-order extents fill the table; a fifth is refused
    // whole and leaves the table as it was.
    RefTable refs;
    RecvQueue r;
    r.allocate(1000, 4, &refs.ops);
    r.set_base(0);
    for (uint32_t k = 0; k < 4; k++) {
        Piece p{data.data(), 10, k + 1};
        ASSERT_TRUE(r.insert(100 + 20 * k, &p, 1));
    }
    Piece p5{data.data(), 10, 9};
    EXPECT_FALSE(r.insert(10, &p5, 1));
    EXPECT_EQ(refs.count.count(9), 0u);
    r.drop_from(130);
    EXPECT_EQ(refs.held(), 2);
    r.clear();
    EXPECT_EQ(refs.held(), 0);
}

TEST(SegmentWire, GatherChecksumEqualsTheCopiedOne) {
    const auto data = pattern(1001, 4);
    // Odd-length pieces put later ones in swapped byte lanes.
    std::vector<Piece> pieces = {{data.data(), 3, 1}, {data.data() + 3, 500, 2}, {data.data() + 503, 1, 3},
                                 {data.data() + 504, 497, 4}};
    Segment s;
    s.src_ip = kClientIp;
    s.dst_ip = kServerIp;
    s.src_port = 1;
    s.dst_port = 2;
    s.seq = 7;
    s.ack = 9;
    s.flags = flag::ACK | flag::PSH;
    s.window = 100;
    s.opt.has_ts = true;
    s.opt.ts_val = 5;
    s.pieces = pieces.data();
    s.npieces = static_cast<uint8_t>(pieces.size());
    s.pieces_len = 1001;
    std::vector<uint8_t> full(serialized_length(s));
    ASSERT_EQ(serialize(s, full), full.size());
    std::vector<uint8_t> hdr(60);
    const size_t hl = serialize_header(s, hdr);
    ASSERT_EQ(hl, full.size() - 1001);
    EXPECT_TRUE(std::equal(hdr.begin(), hdr.begin() + hl, full.begin())); // checksum included
    Segment back;
    EXPECT_EQ(parse_segment(full, kClientIp, kServerIp, back), ParseResult::Ok);
    EXPECT_TRUE(std::equal(back.payload.begin(), back.payload.end(), data.begin()));
}

namespace {

// Client with referenced send memory; server receiving every payload as a
// piece of a buffer of its own (as mbufs would be), dropping its own
// reference after each delivery, as the application does.
struct ZeroCopyPair {
    RefTable tx_refs, rx_refs;
    Config ccfg, scfg;
    Capture cout, sout;
    std::unique_ptr<Connection> client, server;
    std::unique_ptr<Listener> listener;
    std::map<BufRef, std::unique_ptr<std::vector<uint8_t>>> rx_buffers; // "mbufs"
    BufRef next_rx = 1000;
    uint64_t now = 1'000'000;
    uint64_t drop_every = 0, seen = 0;

    ZeroCopyPair() {
        ccfg.ref_ops = &tx_refs.ops;
        scfg.ref_ops = &rx_refs.ops;
        scfg.recv_buffer = 64 * 1024;
        client = std::make_unique<Connection>(ccfg, client_ep(), cout.sink(), SeededRandom(1));
        listener = std::make_unique<Listener>(scfg, kServerIp, kServerPort, 4, sout.sink(), SeededRandom(2));
    }
    void deliver_to_server(const Wire &w) {
        Segment s = w.parse();
        if (!server) {
            server = listener->on_segment(s, now);
            return;
        }
        if (s.payload.empty()) {
            server->on_segment(s, now);
            return;
        }
        // The payload lives in an "mbuf" of ours: hand it over by reference.
        const BufRef r = next_rx++;
        auto buf = std::make_unique<std::vector<uint8_t>>(s.payload.begin(), s.payload.end());
        rx_refs.count[r] = 1; // the application's own reference
        Piece p{buf->data(), static_cast<uint32_t>(buf->size()), r};
        rx_buffers[r] = std::move(buf);
        s.payload = {};
        s.pieces = &p;
        s.npieces = 1;
        s.pieces_len = p.len;
        server->on_segment(s, now);
        RefTable::on_release(&rx_refs, r); // the application lets go
    }
    void pump(int rounds = 200) {
        for (int i = 0; i < rounds; i++) {
            auto c = cout.take();
            auto s = sout.take();
            if (c.empty() && s.empty()) return;
            for (auto &w : c)
                if (!(drop_every && ++seen % drop_every == 0)) deliver_to_server(w);
            for (auto &w : s) client->on_bytes(w.bytes, w.src, w.dst, now);
        }
    }
};

} // namespace

TEST(ConnectionZeroCopy, ReferencedSendMemoryArrivesHeldByReferenceAndAllIsReleased) {
    for (uint64_t drop_every : {0u, 7u}) {
        ZeroCopyPair p;
        p.drop_every = drop_every;
        ASSERT_TRUE(p.client->connect(p.now));
        p.pump();
        ASSERT_TRUE(p.server);
        ASSERT_EQ(p.client->state(), State::Established);
        const auto chunk = pattern(300'000, 6);
        const std::vector<uint8_t> hdr = {9, 9, 9};
        std::vector<uint8_t> want;
        size_t off = 0;
        std::vector<uint8_t> got;
        bool hdr_done = false;
        for (int guard = 0; guard < 20000 && got.size() < chunk.size() + 3; guard++) {
            if (!hdr_done && p.client->send_corked(hdr) == 3) {
                hdr_done = true;
                want.insert(want.end(), hdr.begin(), hdr.end());
            }
            if (hdr_done && off < chunk.size()) {
                const size_t k = p.client->send_ref(chunk.data() + off, chunk.size() - off, 42);
                want.insert(want.end(), chunk.begin() + off, chunk.begin() + off + k);
                off += k;
            }
            p.client->flush(p.now);
            // Outgoing segments point into `chunk` itself.
            for (const auto &w : p.cout.out) (void)w;
            p.pump();
            std::span<const uint8_t> v[8];
            while (size_t n = p.server->peek(v, 8)) {
                size_t k = 0;
                for (size_t i = 0; i < n; i++) {
                    got.insert(got.end(), v[i].begin(), v[i].end());
                    k += v[i].size();
                }
                p.server->consume(k, p.now);
            }
            p.pump();
            if (p.client->next_timer_deadline() != UINT64_MAX) {
                p.now = std::max(p.now + 1000, std::min(p.client->next_timer_deadline(), p.now + 300'000));
                if (p.client->next_timer_deadline() <= p.now) p.client->on_timer(p.now);
                if (p.server->next_timer_deadline() <= p.now) p.server->on_timer(p.now);
            }
        }
        ASSERT_EQ(got, want) << "drop_every " << drop_every;
        p.pump();
        EXPECT_EQ(p.client->snd_una(), p.client->snd_nxt());
        // Everything acknowledged: the chunk is no longer referenced; every
        // received buffer was consumed and given back.
        EXPECT_EQ(p.tx_refs.held(), 0) << drop_every;
        EXPECT_GT(p.tx_refs.retains, 0);
        EXPECT_EQ(p.rx_refs.held(), 0) << drop_every;
        EXPECT_GT(p.rx_refs.releases, 10);
        if (drop_every) {
            EXPECT_GT(p.client->stats().retransmits_fast + p.client->stats().retransmits_timeout, 0u);
        }
    }
}

TEST(ConnectionZeroCopy, OutgoingPiecesPointIntoTheCallersMemory) {
    ZeroCopyPair p;
    ASSERT_TRUE(p.client->connect(p.now));
    p.pump();
    const auto chunk = pattern(5000, 8);
    std::vector<Segment> seen;
    std::vector<std::vector<Piece>> pieces;
    p.client->set_sink([&](const Segment &s) {
        pieces.emplace_back(s.pieces, s.pieces + s.npieces);
        p.cout.out.push_back(to_wire(s));
    });
    ASSERT_EQ(p.client->send_ref(chunk.data(), chunk.size(), 5), chunk.size());
    p.client->flush(p.now);
    ASSERT_FALSE(pieces.empty());
    size_t off = 0;
    for (const auto &ps : pieces)
        for (const Piece &pc : ps) {
            EXPECT_EQ(pc.ref, 5u);
            EXPECT_EQ(pc.data, chunk.data() + off);
            off += pc.len;
        }
    EXPECT_GT(off, 0u);
    // An aborted connection gives the memory back at once.
    p.client->abort(p.now);
    EXPECT_EQ(p.tx_refs.held(), 0);
}

TEST(ConnectionZeroCopy, AResetConnectionKeepsUnreadDataUntilDestroyed) {
    ZeroCopyPair p;
    ASSERT_TRUE(p.client->connect(p.now));
    p.pump();
    const auto d = pattern(3000, 1);
    p.client->send(d, p.now);
    p.pump();
    ASSERT_GT(p.rx_refs.held(), 0);
    p.client->abort(p.now);
    p.pump();
    EXPECT_EQ(p.server->state(), State::Closed);
    EXPECT_EQ(p.server->readable_bytes(), d.size()); // a refusal before the RST is still readable
    p.server.reset();
    EXPECT_EQ(p.rx_refs.held(), 0);
}

// lib/dataplane on real EAL objects: the flow table that pins connections
// to workers, the misdelivery check (it must be able to fail), and frames
// built and parsed without copying payload (extbuf chunks, mbuf chains).
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "millipede/dataplane/conn_table.h"
#include "millipede/dataplane/frame.h"
#include "millipede/dataplane/lcores.h"
#include "millipede/dataplane/refs.h"
#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"
#include "millipede/session/leg_host.h"
#include "millipede/tcp/listener.h"

using namespace millipede;

namespace {

const tcp::IpAddr kOurIp = tcp::IpAddr::v4(0x0a000001);
const tcp::IpAddr kPeerIp = tcp::IpAddr::v4(0x0a000002);

struct Reports final : session::ReportOut {
    std::deque<session::LegReport> q;
    bool send(const session::LegReport &r) override {
        q.push_back(r);
        return true;
    }
};

struct Host {
    Reports reports;
    std::vector<tcp::Segment> out;
    std::vector<std::vector<uint8_t>> keep;
    std::unique_ptr<dataplane::ConnTableHooks> hooks;
    std::unique_ptr<session::LegHost> host;
    Host(dataplane::ConnTable &t, uint32_t id) {
        hooks = std::make_unique<dataplane::ConnTableHooks>(t, id);
        session::HostConfig hc;
        hc.host_id = id;
        hc.hooks = hooks.get();
        host = std::make_unique<session::LegHost>(
            hc, [this](const tcp::Segment &s) { out.push_back(s); }, tcp::SeededRandom(id + 1), reports);
    }
};

rte_mempool *pool(const char *name, uint16_t room) {
    rte_mempool *p = rte_mempool_lookup(name);
    return p ? p : rte_pktmbuf_pool_create(name, 1023, 0, 0, room, SOCKET_ID_ANY);
}

} // namespace

TEST(ConnTable, ASegmentOnTheWrongWorkerIsCountedAsMisdelivered) {
    std::string err;
    auto t = dataplane::ConnTable::create("dp_test_conns", 64, SOCKET_ID_ANY, err);
    ASSERT_TRUE(t) << err;
    Host w0(*t, 0), w1(*t, 1);
    // Worker 0 opens a connection: it enters the table before its SYN leaves.
    session::LegCommand c;
    c.type = session::CommandType::CONNECT;
    c.handle = session::make_handle(0, 7);
    c.ep = tcp::Endpoints{kOurIp, kPeerIp, 40000, 8834};
    w0.host->on_command(c, 1000);
    ASSERT_EQ(w0.out.size(), 1u); // the SYN
    EXPECT_EQ(t->lookup(dataplane::conn_key(c.ep)), 0);
    // The peer answers.
    std::vector<tcp::Segment> peer_out;
    tcp::Listener peer(tcp::Config{}, kPeerIp, 8834, 4, [&](const tcp::Segment &s) { peer_out.push_back(s); },
                       tcp::SeededRandom(9));
    peer.on_segment(w0.out[0], 1000);
    ASSERT_EQ(peer_out.size(), 1u);
    const tcp::Segment &synack = peer_out[0];
    // On the wrong worker: no connection there takes it, and the table says
    // whose it is. This is what the data plane counts as misdelivered.
    EXPECT_FALSE(w1.host->on_segment(synack, 1100));
    EXPECT_TRUE(dataplane::misdelivered(*t, 1, synack));
    // On its own worker it is simply taken.
    EXPECT_TRUE(w0.host->on_segment(synack, 1100));
    EXPECT_FALSE(dataplane::misdelivered(*t, 0, synack));
    // A segment of a connection nobody has is nobody's misdelivery.
    tcp::Segment stray = synack;
    stray.dst_port = 40001;
    EXPECT_FALSE(dataplane::misdelivered(*t, 1, stray));
    // Gone from its worker, gone from the table.
    w0.host->poll(1200);
    session::LegCommand a;
    a.type = session::CommandType::ABORT;
    a.handle = c.handle;
    w0.host->on_command(a, 1300);
    EXPECT_EQ(t->lookup(dataplane::conn_key(c.ep)), dataplane::ConnTable::kMissing);
    EXPECT_FALSE(dataplane::misdelivered(*t, 1, synack));
}

TEST(ConnTable, TentativeFlowsExpireUnlessTheirWorkerConfirmsThem) {
    std::string err;
    auto t = dataplane::ConnTable::create("dp_test_tent", 64, SOCKET_ID_ANY, err);
    ASSERT_TRUE(t) << err;
    dataplane::ConnKey k[3];
    for (uint32_t i = 0; i < 3; i++) {
        k[i] = dataplane::ConnKey{0x0b000000u + i, 0x0a000001u, static_cast<uint16_t>(1000 + i), 8834};
        EXPECT_TRUE(t->add_tentative(k[i], i, 100));
    }
    t->add(k[1], 1, false); // its handshake completed
    int32_t owners[3];
    t->lookup_bulk(k, 3, owners);
    EXPECT_EQ(owners[0], 0);
    EXPECT_EQ(owners[1], 1);
    EXPECT_EQ(owners[2], 2);
    EXPECT_EQ(t->expire_tentative(100 + 999, 1000), 0u); // not yet
    EXPECT_EQ(t->expire_tentative(100 + 1000, 1000), 2u);
    t->lookup_bulk(k, 3, owners);
    EXPECT_EQ(owners[0], dataplane::ConnTable::kMissing);
    EXPECT_EQ(owners[1], 1);
    EXPECT_EQ(owners[2], dataplane::ConnTable::kMissing);
    // A flood fills the tentative queue (half the table): then no more
    // state is kept for SYNs.
    unsigned added = 0;
    for (uint32_t i = 0; i < 100; i++)
        added += t->add_tentative(dataplane::ConnKey{0x0c000000u + i, 1, 1, 1}, 0, 2000);
    EXPECT_EQ(added, 32u);
}

TEST(Frame, ChunkPayloadIsAttachedNotCopiedAndParsesBackVerified) {
    std::string err;
    auto chunks = dataplane::ChunkPool::create("dp_test_chunks", 2, 64 * 1024, SOCKET_ID_ANY, err);
    ASSERT_TRUE(chunks) << err;
    uint8_t *mem = chunks->memory();
    for (size_t i = 0; i < 64 * 1024; i++) mem[i] = static_cast<uint8_t>(i * 7 + 3);
    const tcp::BufRef ref = chunks->take(0); // the owner's reference
    dataplane::ChunkPool::Desc &d = chunks->desc(0);
    dataplane::TxFrameContext ctx;
    ctx.header_pool = pool("dp_test_hdr", 2048 + RTE_PKTMBUF_HEADROOM);
    ctx.attach_pool = pool("dp_test_att", 0);
    ASSERT_TRUE(ctx.header_pool && ctx.attach_pool);
    const uint8_t hdr[5] = {1, 2, 3, 4, 5};
    tcp::Piece pieces[3] = {{hdr, 5, 0}, {mem + 100, 3001, ref}, {mem + 5000, 1, ref}};
    tcp::Segment s;
    s.src_ip = kOurIp;
    s.dst_ip = kPeerIp;
    s.src_port = 40000;
    s.dst_port = 8834;
    s.seq = 12345;
    s.ack = 777;
    s.flags = tcp::flag::ACK | tcp::flag::PSH;
    s.window = 100;
    s.opt.has_ts = true;
    s.opt.ts_val = 9;
    s.pieces = pieces;
    s.npieces = 3;
    s.pieces_len = 3007;
    const net::MacAddr mac{{2, 0, 0, 0, 0, 1}};
    rte_mbuf *m = dataplane::build_tcp_frame(s, mac, 9014, ctx);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(ctx.bytes_referenced, 3002u);
    EXPECT_EQ(ctx.bytes_copied, 5u);
    EXPECT_EQ(m->nb_segs, 3); // headers + the 5 copied bytes, then two attached pieces
    EXPECT_EQ(rte_mbuf_ext_refcnt_read(&d.shinfo), 3); // ours + one per attached segment
    rte_mbuf *seg2 = m->next;
    EXPECT_TRUE(RTE_MBUF_HAS_EXTBUF(seg2));
    EXPECT_EQ(rte_pktmbuf_mtod(seg2, uint8_t *), mem + 100); // the chunk itself
    // Parsed back across the chain, checksum verified.
    const uint32_t l4_off = 14 + 20, l4_len = m->pkt_len - l4_off;
    tcp::Segment back;
    tcp::Piece rx[dataplane::kMaxRxPieces];
    ASSERT_EQ(dataplane::segment_from_mbuf(m, l4_off, l4_len, kOurIp, kPeerIp, true, back, rx),
              dataplane::RxSegmentError::NONE);
    EXPECT_EQ(back.seq, 12345u);
    EXPECT_EQ(back.pieces_len, 3007u);
    std::vector<uint8_t> got;
    for (size_t i = 0; i < back.npieces; i++) got.insert(got.end(), rx[i].data, rx[i].data + rx[i].len);
    std::vector<uint8_t> want(hdr, hdr + 5);
    want.insert(want.end(), mem + 100, mem + 3101);
    want.push_back(mem[5000]);
    EXPECT_EQ(got, want);
    // One flipped payload byte fails the checksum.
    mem[200] ^= 0x40;
    EXPECT_EQ(dataplane::segment_from_mbuf(m, l4_off, l4_len, kOurIp, kPeerIp, true, back, rx),
              dataplane::RxSegmentError::BAD_CHECKSUM);
    mem[200] ^= 0x40;
    // Freeing the frame drops the segments' references; ours is the last.
    rte_pktmbuf_free(m);
    EXPECT_EQ(rte_mbuf_ext_refcnt_read(&d.shinfo), 1);
    uint32_t back_idx[4];
    EXPECT_EQ(chunks->drain_returned(back_idx, 4), 0u);
    dataplane::chunk_release(ref);
    ASSERT_EQ(chunks->drain_returned(back_idx, 4), 1u); // back to its pool
    EXPECT_EQ(back_idx[0], 0u);
}

// TCP over IPv6: the IPv6 header (RFC 8200 3), the segment checksum over
// the RFC 8200 8.1 pseudo-header (verified here by an independent sum and
// by segment_from_mbuf), payload copied or attached as for IPv4.
TEST(Frame, Ipv6SegmentsCarryTheIpv6HeaderAndPseudoHeaderChecksum) {
    const uint8_t a6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t b6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    const tcp::IpAddr ours = tcp::IpAddr::v6(a6), peer = tcp::IpAddr::v6(b6);
    dataplane::TxFrameContext ctx;
    ctx.header_pool = pool("dp_test_hdr", 2048 + RTE_PKTMBUF_HEADROOM);
    ASSERT_TRUE(ctx.header_pool);
    std::vector<uint8_t> payload(1000);
    for (size_t i = 0; i < payload.size(); i++) payload[i] = static_cast<uint8_t>(i * 13 + 1);
    tcp::Segment s;
    s.src_ip = ours;
    s.dst_ip = peer;
    s.src_port = 40001;
    s.dst_port = 8834;
    s.seq = 1;
    s.ack = 2;
    s.flags = tcp::flag::ACK;
    s.window = 1000;
    s.payload = {payload.data(), payload.size()};
    const net::MacAddr mac{{2, 0, 0, 0, 0, 1}};
    rte_mbuf *m = dataplane::build_tcp_frame(s, mac, 1514, ctx);
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(m->nb_segs, 1);
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    EXPECT_EQ(net::load_be16(f + 12), 0x86dd);
    const uint8_t *ip = f + 14;
    EXPECT_EQ(net::load_be32(ip), 0x60000000u); // version 6, class 0, flow label 0
    EXPECT_EQ(net::load_be16(ip + 4), 20u + 1000u);
    EXPECT_EQ(ip[6], 6);
    EXPECT_EQ(ip[7], 64);
    EXPECT_EQ(std::memcmp(ip + 8, a6, 16), 0);
    EXPECT_EQ(std::memcmp(ip + 24, b6, 16), 0);
    EXPECT_EQ(m->pkt_len, 14u + 40u + 20u + 1000u);
    EXPECT_EQ(m->l3_len, 40u);
    // RFC 8200 8.1 by hand: source, destination, upper-layer length (32
    // bits), three zero bytes, next header; then the segment.
    const uint8_t *t = ip + 40;
    uint64_t sum = 0;
    for (int i = 0; i < 32; i += 2) sum += uint32_t(ip[8 + i]) << 8 | ip[9 + i];
    sum += 1020 + 6;
    for (uint32_t i = 0; i < 1020; i += 2) sum += uint32_t(t[i]) << 8 | t[i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    EXPECT_EQ(sum, 0xffffu) << "TCP checksum over the IPv6 pseudo-header";
    tcp::Segment back;
    tcp::Piece rx[dataplane::kMaxRxPieces];
    ASSERT_EQ(dataplane::segment_from_mbuf(m, 54, 1020, ours, peer, true, back, rx), dataplane::RxSegmentError::NONE);
    EXPECT_EQ(back.pieces_len, 1000u);
    // The same bytes under IPv4 addresses do not verify: the pseudo-header counts.
    EXPECT_EQ(dataplane::segment_from_mbuf(m, 54, 1020, kOurIp, kPeerIp, true, back, rx),
              dataplane::RxSegmentError::BAD_CHECKSUM);
    rte_pktmbuf_free(m);
    // IPv6 is 20 bytes more header: a payload that fits an IPv4 frame of the
    // same size is refused (MSS = MTU - 60 keeps segments within it).
    std::vector<uint8_t> big(1460);
    s.payload = {big.data(), big.size()};
    const uint64_t before = ctx.oversize;
    EXPECT_EQ(dataplane::build_tcp_frame(s, mac, 1514, ctx), nullptr);
    EXPECT_EQ(ctx.oversize, before + 1);
    s.payload = {big.data(), 1440};
    m = dataplane::build_tcp_frame(s, mac, 1514, ctx);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->pkt_len, 1514u);
    rte_pktmbuf_free(m);
}

TEST(Frame, ReceivedChainsAreHeldByReference) {
    rte_mempool *p = pool("dp_test_rx", 512 + RTE_PKTMBUF_HEADROOM);
    ASSERT_NE(p, nullptr);
    // A segment of 1500 payload bytes over 512-byte mbufs, as a scatter RX
    // or memif chain would deliver it.
    std::vector<uint8_t> frame(14 + 20 + 20 + 1500);
    for (size_t i = 0; i < frame.size(); i++) frame[i] = static_cast<uint8_t>(i);
    uint8_t *t = frame.data() + 34;
    std::memset(t, 0, 20);
    net::store_be16(t, 8834);
    net::store_be16(t + 2, 40000);
    net::store_be32(t + 4, 1);
    t[12] = 5 << 4;
    t[13] = tcp::flag::ACK;
    uint32_t sum = net::pseudo_header_v4(kPeerIp.v4_host_order(), kOurIp.v4_host_order(), 6, 1520);
    sum = net::checksum_partial(t, 1520, sum);
    net::store_be16(t + 16, net::checksum_finish(sum));
    rte_mbuf *head = nullptr;
    for (size_t off = 0; off < frame.size(); off += 512) {
        rte_mbuf *m = rte_pktmbuf_alloc(p);
        ASSERT_NE(m, nullptr);
        const size_t k = std::min<size_t>(512, frame.size() - off);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(k)), frame.data() + off, k);
        if (!head) head = m;
        else ASSERT_EQ(rte_pktmbuf_chain(head, m), 0);
    }
    tcp::Segment seg;
    tcp::Piece rx[dataplane::kMaxRxPieces];
    ASSERT_EQ(dataplane::segment_from_mbuf(head, 34, 1520, kPeerIp, kOurIp, true, seg, rx),
              dataplane::RxSegmentError::NONE);
    EXPECT_EQ(seg.npieces, 4); // 458 + 512 + 512 + 18 bytes
    EXPECT_EQ(seg.pieces_len, 1500u);
    // A connection holding a piece keeps its mbuf past the frame's free.
    rte_mbuf *second = head->next;
    dataplane::kRefOps.retain(nullptr, rx[1].ref);
    rte_pktmbuf_free(head);
    EXPECT_EQ(rte_mbuf_refcnt_read(second), 1);
    EXPECT_EQ(rx[1].data[0], frame[512]); // still readable
    dataplane::kRefOps.release(nullptr, rx[1].ref);
    // Headers beyond the first segment are refused, not misread.
    rte_mbuf *tiny = rte_pktmbuf_alloc(p);
    std::memcpy(rte_pktmbuf_append(tiny, 40), frame.data(), 40);
    rte_mbuf *rest = rte_pktmbuf_alloc(pool("dp_test_hdr", 2048 + RTE_PKTMBUF_HEADROOM));
    ASSERT_NE(rest, nullptr);
    std::memcpy(rte_pktmbuf_append(rest, static_cast<uint16_t>(frame.size() - 40)), frame.data() + 40, frame.size() - 40);
    ASSERT_EQ(rte_pktmbuf_chain(tiny, rest), 0);
    EXPECT_EQ(dataplane::segment_from_mbuf(tiny, 34, 1520, kPeerIp, kOurIp, true, seg, rx),
              dataplane::RxSegmentError::BAD_HEADER);
    rte_pktmbuf_free(tiny);
}

// The lcore plan: roles collapse with fewer lcores, and workers are logical.
TEST(LcorePlan, RolesCollapseAndLogicalWorkersShareLcores) {
    using namespace millipede::dataplane;
    // One lcore: everything in one loop, one worker.
    LcorePlan one = plan_lcores({0}, 0);
    ASSERT_EQ(one.lcores.size(), 1u);
    EXPECT_EQ(one.lcores[0].roles, unsigned(kRoleControl | kRoleRx | kRoleSession | kRoleWorker));
    EXPECT_EQ(one.workers, 1u);
    EXPECT_EQ(one.lcores[0].workers, std::vector<unsigned>({0}));
    // One lcore, --workers 3: three logical workers in that loop.
    LcorePlan three = plan_lcores({5}, 3);
    EXPECT_EQ(three.workers, 3u);
    EXPECT_EQ(three.lcores[0].workers, std::vector<unsigned>({0, 1, 2}));
    EXPECT_EQ(three.lcore_of_worker(2), 0u);
    EXPECT_EQ(three.describe(), "lcore 5: control+rx+session+worker 0,1,2");
    // Four lcores, default: control, rx+session, two worker lcores.
    LcorePlan four = plan_lcores({0, 1, 2, 3}, 0);
    EXPECT_EQ(four.workers, 2u);
    EXPECT_EQ(four.lcores[1].roles, unsigned(kRoleRx | kRoleSession));
    EXPECT_EQ(four.lcores[2].workers, std::vector<unsigned>({0}));
    EXPECT_EQ(four.lcores[3].workers, std::vector<unsigned>({1}));
    EXPECT_EQ(four.transmitters(), 3u);
    // Four lcores, --workers 5: round-robin over the two worker lcores.
    LcorePlan five = plan_lcores({0, 1, 2, 3}, 5);
    EXPECT_EQ(five.workers, 5u);
    EXPECT_EQ(five.lcores[2].workers, std::vector<unsigned>({0, 2, 4}));
    EXPECT_EQ(five.lcores[3].workers, std::vector<unsigned>({1, 3}));
    EXPECT_EQ(five.lcore_of_worker(3), 3u);
    // Four lcores, --workers 1: one worker lcore, two lcores left unused.
    LcorePlan capped = plan_lcores({0, 1, 2, 3}, 1);
    EXPECT_EQ(capped.workers, 1u);
    EXPECT_EQ(capped.unused, 2u);
    EXPECT_EQ(capped.lcores[1].roles, unsigned(kRoleRx | kRoleSession | kRoleWorker));
}

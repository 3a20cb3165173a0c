// `tx` / `rx`: stdin -> chunks -> TCP-lite legs over DPDK ports -> stdout.
//
// One data-plane loop (the collapsed role of docs/architecture.md) does, per
// iteration: rx_burst on every port, ARP (answer, learn, resolve through the
// port's NeighbourCache), ICMP echo, TCP to our addresses into the session;
// the pipe side (PipeReader chunks into TxSession::push_input, or
// RxSession::output() to the PipeWriter); session.poll() when something
// happened or a deadline passed; neighbour timers; then one tx_burst per
// port. The session's SegmentSink builds Ethernet + IPv4 + TCP frames
// straight into mbufs. With one lcore the loop runs on it; with more, on the
// first worker lcore while the main lcore waits. Pipe I/O stays on the
// PipeReader/PipeWriter threads (blocking syscalls never on the lcore).
#include "transport_mode.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "millipede/net/arp.h"
#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"
#include "millipede/net/icmp_echo.h"
#include "millipede/net/neighbour.h"
#include "millipede/net/parse.h"
#include "millipede/pipeio/reader.h"
#include "millipede/pipeio/writer.h"
#include "millipede/port/port.h"
#include "millipede/session/rx_session.h"
#include "millipede/session/tx_session.h"
#include "millipede/tcp/segment.h"
#include "backoff.h"
#include "options.h"
#include "transport_stats.h"

namespace millipede::app {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_table{false}; // SIGUSR1: print the stream table
void on_signal(int) { g_stop.store(true); }
void on_usr1(int) { g_table.store(true); }

constexpr unsigned kBurst = 32;
constexpr unsigned kTxCap = 512;
constexpr size_t kEthLen = 14;
constexpr size_t kIpLen = 20;


struct PortCtx {
    uint16_t id = 0;
    net::MacAddr mac;
    uint16_t mtu = 1500;
    std::vector<net::IpAssignment> addrs;
    std::unique_ptr<net::NeighbourCache> neigh;
    rte_mbuf *txq[kTxCap];
    unsigned ntx = 0;
    // counters (this lcore only)
    uint64_t rx_pkts = 0, tx_pkts = 0, tx_drops = 0, rx_drops = 0, arp_replies = 0, arp_requests = 0,
             icmp_replies = 0, tcp_in = 0;

    bool ours(uint32_t ip) const {
        for (const auto &a : addrs)
            if (a.addr == ip) return true;
        return false;
    }
    uint32_t source_for(uint32_t dst) const {
        for (const auto &a : addrs)
            if (a.on_link(dst)) return a.addr;
        return addrs.empty() ? 0 : addrs[0].addr;
    }
};

// Is this frame not for this port, or one of our own coming back (a packet
// socket sees what its interface sends)? Our own frames go to a peer's MAC
// or to broadcast (ARP), so a frame to our MAC is never our echo; a
// broadcast from our MAC is ours only if ARP names one of our addresses as
// its sender. (net_tap gives the kernel's tap interface the port's own MAC,
// so frames from that kernel carry our MAC as their source.)
bool foreign_or_echo(const PortCtx &p, const uint8_t *f, uint32_t len) {
    net::MacAddr dmac, smac;
    std::memcpy(dmac.b, f, 6);
    std::memcpy(smac.b, f + 6, 6);
    if (dmac == p.mac) return false;
    if (!dmac.is_broadcast()) return true;
    if (smac != p.mac) return false;
    net::ArpPacket a;
    return net::parse_arp(f, len, a) != net::ArpError::NONE || p.ours(a.sender_ip);
}

struct Counters {
    uint64_t no_route = 0, oversize = 0, no_mbuf = 0, neigh_drops = 0, bad_ip = 0, bad_tcp = 0, chaos_breaks = 0;
    uint64_t injected_rx_drops = 0, injected_tx_drops = 0;
};

// The RX/classifier lcore's counters (it alone writes them; the data lcore
// reads them only after it stopped). Own cache lines: the data lcore's
// counters sit next to them in Transport.
struct alignas(RTE_CACHE_LINE_SIZE) ClassifierCounters {
    uint64_t rx = 0, to_tcp = 0, not_ours = 0, bad_ip = 0, bad_tcp = 0, malformed = 0, backpressure = 0;
};

struct Chaos {
    bool pending = false;
    tcp::Endpoints ep; // local = ours
};

class Transport {
  public:
    explicit Transport(const TransportOptions &o) : o_(o) {}
    ~Transport() { teardown(); }
    int run();

  private:
    bool setup(std::string &err);
    void wait_links(uint64_t bound_us);
    void teardown();
    int loop();
    uint64_t now_us() const {
        return static_cast<uint64_t>((unsigned __int128)(rte_get_tsc_cycles() - tsc0_) * 1'000'000 / hz_);
    }
    PortCtx *port_for_local(uint32_t ip) {
        for (auto &p : ports_)
            if (p->ours(ip)) return p.get();
        return nullptr;
    }
    void emit(const tcp::Segment &s);
    void enqueue(PortCtx &p, rte_mbuf *m) {
        if (p.ntx == kTxCap) flush(p);
        p.txq[p.ntx++] = m;
    }
    void flush(PortCtx &p);
    void send_arp_request(PortCtx &p, uint32_t target);
    void send_gratuitous(PortCtx &p);
    void take_released(PortCtx &p);
    unsigned rx_port(PortCtx &p, uint64_t now);
    unsigned rx_ring(uint64_t now);
    void handle_frame(PortCtx &p, rte_mbuf *m, uint64_t now);
    bool classify(const PortCtx &p, rte_mbuf *m);
    int classify_loop();
    bool pipe_step_tx(uint64_t now);
    bool pipe_step_rx(uint64_t now);
    void apply_chaos(uint64_t now);
    uint64_t delivered_bytes() const;
    void publish(uint64_t now, bool final);
    void control_tick(uint64_t now);
    int control_loop(unsigned data_lcore);

    TransportOptions o_;
    uint64_t hz_ = 1, tsc0_ = 0;
    rte_mempool *pool_ = nullptr;
    std::vector<std::unique_ptr<PortCtx>> ports_;
    std::vector<uint16_t> started_;
    std::unique_ptr<session::TxSession> tx_;
    std::unique_ptr<session::RxSession> rx_;
    std::unique_ptr<pipeio::PipeReader> reader_;
    std::unique_ptr<pipeio::PipeWriter> writer_;
    tcp::SeededRandom rng_{0};
    tcp::SeededRandom drop_rng_{1};
    bool tx_ip_offload_ = false;  // every port fills IPv4 header checksums
    bool tx_tcp_offload_ = false; // every port fills TCP checksums (segments carry the pseudo-header sum) // fault injection only: its own stream, so runs repeat
    bool inject_drop(uint32_t ppm) { return ppm && drop_rng_() % 1'000'000 < ppm; }
    uint64_t now_ = 0; // the sink's clock (set by the loop before each session call)
    uint16_t ip_id_ = 0;
    Counters c_;
    Chaos chaos_;
    tcp::Endpoints last_data_;    // the connection of the latest data segment (chaos's victim)
    uint64_t next_chaos_ = 0;     // chunks sent at which chaos strikes next

    // tx pipe side
    pipeio::Chunk *cur_ = nullptr;
    uint32_t cur_pos_ = 0;
    bool input_done_ = false;
    uint64_t pushed_ = 0;
    uint64_t limit_bytes_ = UINT64_MAX;
    // rx pipe side
    uint64_t inflight_ = 0; // submitted to the writer, not yet consumed
    bool end_submitted_ = false;
    bool writer_done_ = false;

    std::string fail_; // the one line, when failing outside the session
    std::string last_leg_msg_;

    // What the user sees (transport_stats.h). The data loop publishes;
    // the control loop (the main lcore, or the data loop itself when it is
    // the only lcore) prints the progress line and the SIGUSR1 table.
    // With three or more lcores an RX/classifier lcore polls the ports,
    // drops what is not ours, verifies IP and TCP checksums and hands the
    // rest over this ring to the data lcore (which then never polls a port).
    rte_ring *rx_ring_ = nullptr;
    unsigned classifier_lcore_ = RTE_MAX_LCORE;
    std::atomic<bool> classifier_stop_{false};
    ClassifierCounters cls_;
    uint64_t cls_busy_tsc_ = 0;            // written by the classifier lcore only
    std::atomic<uint32_t> cls_busy_permille_{0};
    PortCtx *port_by_id_[RTE_MAX_ETHPORTS] = {};

    StatsBoard board_;
    TransferSnapshot scratch_;       // filled by publish(), fixed size: no allocation
    uint64_t next_publish_ = 0, last_pub_t_ = 0, last_pub_bytes_ = 0;
    uint64_t leg_prev_bytes_[TransferSnapshot::kMaxStreams] = {};
    double leg_rate_[TransferSnapshot::kMaxStreams] = {};
    uint64_t busy_tsc_ = 0, last_busy_tsc_ = 0, last_pub_tsc_ = 0;
    unsigned data_lcore_ = 0;
    bool control_separate_ = false;  // a main lcore of its own runs control_loop()
    std::atomic<uint32_t> control_busy_permille_{0};
    std::atomic<bool> data_done_{false};
    bool progress_on_ = false;
    uint64_t next_progress_ = 0;
    uint64_t t_start_ = 0;
};

void Transport::flush(PortCtx &p) {
    if (tx_ip_offload_ || tx_tcp_offload_) {
        // Some devices need headers fixed up for offload; a frame they refuse
        // is dropped (TCP retransmits it) rather than sent with a bad checksum.
        unsigned ok = 0;
        while (ok < p.ntx) {
            ok += rte_eth_tx_prepare(p.id, 0, p.txq + ok, static_cast<uint16_t>(p.ntx - ok));
            if (ok < p.ntx) {
                rte_pktmbuf_free(p.txq[ok]);
                p.tx_drops++;
                std::memmove(p.txq + ok, p.txq + ok + 1, (p.ntx - ok - 1) * sizeof(rte_mbuf *));
                p.ntx--;
            }
        }
    }
    unsigned sent = 0, tries = 0;
    while (sent < p.ntx) {
        uint16_t n = rte_eth_tx_burst(p.id, 0, p.txq + sent, static_cast<uint16_t>(p.ntx - sent));
        sent += n;
        if (n == 0 && ++tries > 16) break;
    }
    p.tx_pkts += sent;
    if (sent < p.ntx) {
        // The device is full: TCP retransmits what was lost; never leak.
        rte_pktmbuf_free_bulk(p.txq + sent, p.ntx - sent);
        p.tx_drops += p.ntx - sent;
    }
    p.ntx = 0;
}

void Transport::send_arp_request(PortCtx &p, uint32_t target) {
    rte_mbuf *m = rte_pktmbuf_alloc(pool_);
    if (!m) {
        c_.no_mbuf++;
        return;
    }
    uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
    size_t n = net::build_arp_request(d, rte_pktmbuf_tailroom(m), p.mac, p.source_for(target), target);
    if (!n) {
        rte_pktmbuf_free(m);
        return;
    }
    m->data_len = m->pkt_len = static_cast<uint32_t>(n);
    p.arp_requests++;
    enqueue(p, m);
}

void Transport::send_gratuitous(PortCtx &p) {
    for (const auto &a : p.addrs) {
        rte_mbuf *m = rte_pktmbuf_alloc(pool_);
        if (!m) return;
        size_t n = net::build_gratuitous_arp(rte_pktmbuf_mtod(m, uint8_t *), rte_pktmbuf_tailroom(m), p.mac, a.addr);
        if (!n) {
            rte_pktmbuf_free(m);
            continue;
        }
        m->data_len = m->pkt_len = static_cast<uint32_t>(n);
        enqueue(p, m);
    }
}

void Transport::take_released(PortCtx &p) {
    net::NeighRelease rel[32];
    size_t n;
    while ((n = p.neigh->take_released(rel, 32)) > 0)
        for (size_t i = 0; i < n; i++) {
            auto *m = reinterpret_cast<rte_mbuf *>(rel[i].pkt);
            if (!rel[i].send) {
                c_.neigh_drops++;
                rte_pktmbuf_free(m);
                continue;
            }
            std::memcpy(rte_pktmbuf_mtod(m, uint8_t *), rel[i].mac.b, 6);
            enqueue(p, m);
        }
}

// The session's SegmentSink: Ethernet + IPv4 + TCP into one mbuf.
void Transport::emit(const tcp::Segment &s) {
    const uint32_t src = s.src_ip.v4_host_order(), dst = s.dst_ip.v4_host_order();
    PortCtx *p = port_for_local(src);
    if (!p) {
        c_.no_route++;
        return;
    }
    const size_t l4 = tcp::serialized_length(s);
    const size_t len = kEthLen + kIpLen + l4;
    if (len > kEthLen + p->mtu) {
        c_.oversize++;
        return;
    }
    rte_mbuf *m = rte_pktmbuf_alloc(pool_);
    if (!m) {
        c_.no_mbuf++;
        return;
    }
    auto *d = reinterpret_cast<uint8_t *>(rte_pktmbuf_append(m, static_cast<uint16_t>(len)));
    if (!d) {
        rte_pktmbuf_free(m);
        c_.oversize++;
        return;
    }
    std::memset(d, 0, 6);
    std::memcpy(d + 6, p->mac.b, 6);
    net::store_be16(d + 12, net::kEtherTypeIPv4);
    uint8_t *ip = d + kEthLen;
    ip[0] = 0x45;
    ip[1] = 0;
    net::store_be16(ip + 2, static_cast<uint16_t>(kIpLen + l4));
    net::store_be16(ip + 4, ip_id_++);
    net::store_be16(ip + 6, 0x4000); // DF
    ip[8] = 64;
    ip[9] = net::kProtoTCP;
    net::store_be16(ip + 10, 0);
    net::store_be32(ip + 12, src);
    net::store_be32(ip + 16, dst);
    if (tx_ip_offload_) {
        m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
    } else {
        net::store_be16(ip + 10, net::checksum_finish(net::checksum_partial(ip, kIpLen)));
    }
    if (tcp::serialize(s, {ip + kIpLen, l4}) == 0) {
        rte_pktmbuf_free(m);
        c_.oversize++;
        return;
    }
    // A segment built with checksum_offload carries only the pseudo-header
    // sum; one built here (chaos's RST) carries the full checksum.
    if (s.checksum_offload) m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
    m->l2_len = kEthLen;
    m->l3_len = kIpLen;
    if (o_.chaos && s.payload_len() > 0) last_data_ = tcp::Endpoints{s.src_ip, s.dst_ip, s.src_port, s.dst_port};
    if (inject_drop(o_.drop_tx_ppm)) {
        c_.injected_tx_drops++;
        rte_pktmbuf_free(m);
        return;
    }
    const net::NeighLookup r = p->neigh->resolve(dst, now_, reinterpret_cast<uint64_t>(m));
    if (r.send_request) send_arp_request(*p, dst);
    switch (r.kind) {
    case net::NeighLookup::Kind::RESOLVED:
        std::memcpy(d, r.mac.b, 6);
        enqueue(*p, m);
        break;
    case net::NeighLookup::Kind::PENDING:
        break; // the cache holds it
    case net::NeighLookup::Kind::DROPPED:
        c_.neigh_drops++;
        rte_pktmbuf_free(m);
        break;
    }
}

void Transport::handle_frame(PortCtx &p, rte_mbuf *m, uint64_t now) {
    p.rx_pkts++;
    if (m->nb_segs != 1) {
        p.rx_drops++;
        rte_pktmbuf_free(m);
        return;
    }
    uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
    const uint32_t len = m->data_len;
    if (len < kEthLen) {
        p.rx_drops++;
        rte_pktmbuf_free(m);
        return;
    }
    if (foreign_or_echo(p, f, len)) {
        rte_pktmbuf_free(m);
        return;
    }
    const uint16_t et = net::load_be16(f + 12);
    if (et == net::kEtherTypeARP || et == net::kEtherTypeVLAN || et == net::kEtherTypeQinQ) {
        net::ArpPacket a;
        if (net::parse_arp(f, len, a) == net::ArpError::NONE) {
            const bool for_us = p.ours(a.target_ip);
            p.neigh->on_arp(a, for_us, now);
            take_released(p);
            if (for_us && net::arp_should_reply(a, a.target_ip)) {
                net::arp_reply_in_place(f, len, a, p.mac);
                p.arp_replies++;
                enqueue(p, m);
                return;
            }
            rte_pktmbuf_free(m);
            return;
        }
        if (et == net::kEtherTypeARP) {
            rte_pktmbuf_free(m);
            return;
        }
    }
    net::PacketInfo pi;
    if (net::parse_packet(f, len, pi) != net::Reject::NONE || pi.ip_version != 4 || pi.is_fragment) {
        rte_pktmbuf_free(m);
        return;
    }
    const uint32_t dst = net::load_be32(pi.dst.bytes);
    if (!p.ours(dst)) {
        rte_pktmbuf_free(m);
        return;
    }
    const uint32_t ihl = (f[pi.l3_offset] & 0x0f) * 4u;
    const bool ip_ok = (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    if (!ip_ok && net::checksum_finish(net::checksum_partial(f + pi.l3_offset, ihl)) != 0) {
        c_.bad_ip++;
        rte_pktmbuf_free(m);
        return;
    }
    if (pi.l4_proto == net::kProtoICMP) {
        uint32_t rlen = 0;
        if (net::icmp_echo_reply_in_place(f, len, dst, p.mac, rlen) == net::IcmpEchoError::NONE) {
            m->data_len = m->pkt_len = rlen;
            p.icmp_replies++;
            enqueue(p, m);
            return;
        }
        rte_pktmbuf_free(m);
        return;
    }
    if (pi.l4_proto != net::kProtoTCP || pi.l4_offset == 0) {
        rte_pktmbuf_free(m);
        return;
    }
    const uint32_t ip_end = pi.l3_offset + pi.ip_total_len;
    if (ip_end > len || ip_end <= pi.l4_offset) {
        p.rx_drops++;
        rte_pktmbuf_free(m);
        return;
    }
    tcp::IpAddr src_ip, dst_ip;
    std::memcpy(src_ip.bytes.data(), pi.src.bytes, 4);
    std::memcpy(dst_ip.bytes.data(), pi.dst.bytes, 4);
    std::span<const uint8_t> seg(f + pi.l4_offset, ip_end - pi.l4_offset);
    if (inject_drop(o_.drop_rx_ppm)) {
        c_.injected_rx_drops++;
        rte_pktmbuf_free(m);
        return;
    }
    p.tcp_in++;
    now_ = now;
    if ((m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD) {
        // Verified by the classifier lcore (or the NIC): parse only.
        tcp::Segment s;
        if (tcp::parse_segment(seg, src_ip, dst_ip, s, false) == tcp::ParseResult::Ok) {
            if (tx_)
                tx_->on_segment(s, now);
            else
                rx_->on_segment(s, now);
        } else {
            c_.bad_tcp++;
        }
    } else if (tx_) {
        tx_->on_bytes(seg, src_ip, dst_ip, now);
    } else {
        rx_->on_bytes(seg, src_ip, dst_ip, now);
    }
    rte_pktmbuf_free(m);
}

// Classifier lcore: is this frame for the data lcore? Drops (and counts)
// what is not; marks verified checksums in ol_flags so the data lcore does
// not sum the payload again. Reads only set-up state of `p`.
bool Transport::classify(const PortCtx &p, rte_mbuf *m) {
    cls_.rx++;
    const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
    const uint32_t len = m->data_len;
    if (m->nb_segs != 1 || len < kEthLen) {
        cls_.malformed++;
        return false;
    }
    if (foreign_or_echo(p, f, len)) {
        cls_.not_ours++;
        return false;
    }
    const uint16_t et = net::load_be16(f + 12);
    if (et == net::kEtherTypeARP || et == net::kEtherTypeVLAN || et == net::kEtherTypeQinQ) return true;
    net::PacketInfo pi;
    if (net::parse_packet(f, len, pi) != net::Reject::NONE || pi.ip_version != 4 || pi.is_fragment ||
        !p.ours(net::load_be32(pi.dst.bytes))) {
        cls_.not_ours++;
        return false;
    }
    const uint32_t ihl = (f[pi.l3_offset] & 0x0f) * 4u;
    const uint64_t ip_flag = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
    if (ip_flag == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
        (ip_flag != RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
         net::checksum_finish(net::checksum_partial(f + pi.l3_offset, ihl)) != 0)) {
        cls_.bad_ip++;
        return false;
    }
    m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_IP_CKSUM_MASK) | RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    if (pi.l4_proto == net::kProtoICMP) return true;
    const uint32_t ip_end = pi.l3_offset + pi.ip_total_len;
    if (pi.l4_proto != net::kProtoTCP || pi.l4_offset == 0 || ip_end > len || ip_end <= pi.l4_offset) {
        cls_.not_ours++;
        return false;
    }
    const uint32_t l4_len = ip_end - pi.l4_offset;
    const uint64_t l4_flag = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
    if (l4_flag != RTE_MBUF_F_RX_L4_CKSUM_GOOD) {
        const uint32_t sum = net::pseudo_header_v4(net::load_be32(pi.src.bytes), net::load_be32(pi.dst.bytes),
                                                   net::kProtoTCP, l4_len);
        if (l4_flag == RTE_MBUF_F_RX_L4_CKSUM_BAD ||
            net::checksum_finish(net::checksum_partial(f + pi.l4_offset, l4_len, sum)) != 0) {
            cls_.bad_tcp++;
            return false;
        }
    }
    m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_L4_CKSUM_MASK) | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    cls_.to_tcp++;
    return true;
}

// The RX/classifier lcore's loop. A full ring is back-pressure: the frames
// already taken wait here (ports are not polled meanwhile, so the NIC's own
// queue absorbs the rest and TCP slows down); nothing is dropped for it.
int Transport::classify_loop() {
    Backoff b;
    rte_mbuf *held[kBurst * 4];
    unsigned nheld = 0, off = 0;
    uint64_t last = rte_rdtsc(), busy_since_last = 0;
    while (!classifier_stop_.load(std::memory_order_relaxed)) {
        const uint64_t t0 = rte_rdtsc();
        unsigned moved = 0;
        if (nheld) {
            const unsigned k = rte_ring_sp_enqueue_burst(rx_ring_, reinterpret_cast<void **>(held + off), nheld,
                                                         nullptr);
            off += k;
            nheld -= k;
            moved += k;
            if (nheld) cls_.backpressure++;
        }
        if (!nheld) {
            off = 0;
            for (auto &pp : ports_) {
                rte_mbuf *pkts[kBurst];
                const uint16_t n = rte_eth_rx_burst(pp->id, 0, pkts, kBurst);
                unsigned keep = 0;
                for (uint16_t i = 0; i < n; i++) {
                    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
                    if (classify(*pp, pkts[i]))
                        pkts[keep++] = pkts[i];
                    else
                        rte_pktmbuf_free(pkts[i]);
                }
                moved += n;
                if (!keep) continue;
                const unsigned k = rte_ring_sp_enqueue_burst(rx_ring_, reinterpret_cast<void **>(pkts), keep, nullptr);
                if (k < keep) {
                    std::memcpy(held + nheld, pkts + k, (keep - k) * sizeof(rte_mbuf *));
                    nheld += keep - k;
                    cls_.backpressure++;
                    break;
                }
            }
        }
        const uint64_t t1 = rte_rdtsc();
        if (moved) {
            busy_since_last += t1 - t0;
            b.reset();
        } else {
            b.idle();
        }
        if (t1 - last > hz_ / 10) {
            cls_busy_permille_.store(static_cast<uint32_t>(busy_since_last * 1000 / (t1 - last)),
                                     std::memory_order_relaxed);
            last = t1;
            busy_since_last = 0;
        }
    }
    if (nheld) rte_pktmbuf_free_bulk(held + off, nheld);
    return 0;
}

// Data lcore, behind a classifier lcore: frames from the ring.
unsigned Transport::rx_ring(uint64_t now) {
    rte_mbuf *pkts[kBurst];
    const unsigned n = rte_ring_sc_dequeue_burst(rx_ring_, reinterpret_cast<void **>(pkts), kBurst, nullptr);
    for (unsigned i = 0; i < n; i++) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
        PortCtx *p = pkts[i]->port < RTE_MAX_ETHPORTS ? port_by_id_[pkts[i]->port] : nullptr;
        if (p)
            handle_frame(*p, pkts[i], now);
        else
            rte_pktmbuf_free(pkts[i]);
    }
    return n;
}

unsigned Transport::rx_port(PortCtx &p, uint64_t now) {
    rte_mbuf *pkts[kBurst];
    const uint16_t n = rte_eth_rx_burst(p.id, 0, pkts, kBurst);
    for (uint16_t i = 0; i < n; i++) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
        handle_frame(p, pkts[i], now);
    }
    return n;
}

// stdin chunks into the sender; true when something moved.
bool Transport::pipe_step_tx(uint64_t now) {
    bool moved = false;
    for (int rounds = 0; rounds < 4 && !input_done_; rounds++) {
        if (!cur_) {
            cur_ = reader_->poll();
            cur_pos_ = 0;
            if (!cur_) break;
            if (cur_->flags & pipeio::CHUNK_ERROR) {
                fail_ = std::string("reading stdin: ") + reader_->message();
                return moved;
            }
        }
        uint32_t avail = cur_->len - cur_pos_;
        if (limit_bytes_ != UINT64_MAX && pushed_ + avail > limit_bytes_)
            avail = static_cast<uint32_t>(limit_bytes_ - pushed_);
        if (avail) {
            size_t k = tx_->push_input(cur_->data + cur_pos_, avail, now);
            cur_pos_ += static_cast<uint32_t>(k);
            pushed_ += k;
            moved |= k > 0;
            if (k < avail) break; // back-pressure: keep the chunk, retry later
        }
        const bool limit_hit = pushed_ >= limit_bytes_;
        if (cur_pos_ >= cur_->len || limit_hit) {
            const bool end = (cur_->flags & pipeio::CHUNK_END) != 0;
            reader_->release(cur_);
            cur_ = nullptr;
            if (end || limit_hit) {
                tx_->finish_input(now);
                input_done_ = true;
                moved = true;
            }
        }
    }
    return moved;
}

// Verified output to the writer; true when something moved.
bool Transport::pipe_step_rx(uint64_t) {
    bool moved = false;
    pipeio::Completion c;
    while (writer_->poll_done(c)) {
        moved = true;
        if (c.end) {
            writer_done_ = c.written;
            if (!c.written) fail_ = std::string("writing stdout: ") + writer_->message();
            continue;
        }
        if (!c.written) {
            fail_ = std::string("writing stdout: ") + writer_->message();
            return moved;
        }
        rx_->output_consumed(c.len);
        inflight_ -= c.len;
    }
    auto out = rx_->output();
    if (out.size() > inflight_) {
        const size_t n = std::min<size_t>(out.size() - inflight_, 1u << 30);
        if (writer_->submit(out.data() + inflight_, static_cast<uint32_t>(n), 0)) {
            inflight_ += n;
            moved = true;
        }
    }
    if (!end_submitted_ && rx_->state() == session::State::DONE && inflight_ == 0 && rx_->output().empty()) {
        if (writer_->submit_end()) {
            end_submitted_ = true;
            moved = true;
        }
    }
    return moved;
}

// Abort the connection that carried the chosen segment, as a real failure
// would: a RST to the peer, and our own side reset (its RFC 5961 check
// passes because the RST carries exactly our RCV.NXT). viamillipede mode:
// a stock receiver exits (v0.89) or asserts (2018) on a reset leg, so the
// leg is closed with FIN instead, once what it carried was acknowledged.
void Transport::apply_chaos(uint64_t now) {
    chaos_.pending = false;
    for (uint32_t i = 0; i < tx_->legs(); i++) {
        const tcp::Connection *cn = tx_->leg_connection(i);
        if (!cn) continue;
        const tcp::Endpoints &ep = cn->endpoints();
        if (!(ep.local_ip == chaos_.ep.local_ip && ep.local_port == chaos_.ep.local_port &&
              ep.remote_ip == chaos_.ep.remote_ip && ep.remote_port == chaos_.ep.remote_port))
            continue;
        if (o_.compat) {
            if (tx_->break_leg(i)) {
                c_.chaos_breaks++;
                if (o_.verbose) std::fprintf(stderr, "dpdk-millipede tx: chaos: closing leg %u (FIN)\n", i);
            }
            return;
        }
        tcp::Segment out;
        out.src_ip = ep.local_ip;
        out.dst_ip = ep.remote_ip;
        out.src_port = ep.local_port;
        out.dst_port = ep.remote_port;
        out.seq = cn->snd_nxt();
        out.flags = tcp::flag::RST;
        tcp::Segment in;
        in.src_ip = ep.remote_ip;
        in.dst_ip = ep.local_ip;
        in.src_port = ep.remote_port;
        in.dst_port = ep.local_port;
        in.seq = cn->rcv_nxt();
        in.flags = tcp::flag::RST;
        c_.chaos_breaks++;
        now_ = now;
        emit(out);
        tx_->on_segment(in, now);
        if (o_.verbose) std::fprintf(stderr, "dpdk-millipede tx: chaos: aborted leg %u\n", i);
        return;
    }
}

uint64_t Transport::delivered_bytes() const {
    if (tx_) return tx_->stripe().bytes_in();
    return rx_->stripe().stats().bytes_out;
}

// Fills the snapshot the user-facing side reads (progress line, SIGUSR1
// table, telemetry). Data lcore only; every ~100 ms, at the end, and when a
// table was asked for.
void Transport::publish(uint64_t now, bool final) {
    TransferSnapshot &sn = scratch_;
    const uint64_t tsc = rte_rdtsc();
    // A table asked for between two regular snapshots keeps the rates of
    // the last interval: a few milliseconds would show noise (or zero).
    const bool new_interval = !last_pub_t_ || now - last_pub_t_ >= 50'000 || final;
    const double dt = last_pub_t_ && new_interval ? (now - last_pub_t_) / 1e6 : 0;
    sn.valid = true;
    sn.tx = tx_ != nullptr;
    sn.final = final;
    sn.elapsed_us = now - t_start_;
    sn.bytes = delivered_bytes();
    sn.size = o_.size_given || (o_.tx && o_.prbs) ? o_.size : 0;
    if (dt > 0) sn.rate_mbs = (sn.bytes - last_pub_bytes_) / dt / 1e6;
    if (final && sn.elapsed_us) sn.rate_mbs = sn.bytes / (sn.elapsed_us / 1e6) / 1e6;
    sn.state = session::state_name(tx_ ? tx_->state() : rx_->state());
    sn.injected_drops = c_.injected_rx_drops + c_.injected_tx_drops;
    sn.nstreams = 0;
    sn.legs_up = 0;
    const uint32_t slots = tx_ ? tx_->legs() : TransferSnapshot::kMaxStreams;
    sn.legs = tx_ ? slots : 0;
    for (uint32_t i = 0; i < slots && i < TransferSnapshot::kMaxStreams; i++) {
        const tcp::Connection *cn = tx_ ? tx_->leg_connection(i) : rx_->leg_connection(i);
        if (!cn) {
            leg_prev_bytes_[i] = 0;
            leg_rate_[i] = 0;
            continue;
        }
        const tcp::Stats st = cn->stats();
        const tcp::Endpoints &ep = cn->endpoints();
        StreamRow &r = sn.streams[sn.nstreams++];
        r.leg = i;
        r.local_ip = ep.local_ip.v4_host_order();
        r.remote_ip = ep.remote_ip.v4_host_order();
        r.local_port = ep.local_port;
        r.remote_port = ep.remote_port;
        const PortCtx *p = port_for_local(r.local_ip);
        r.port_id = p ? p->id : 0;
        r.state = tcp::state_name(cn->state());
        r.bytes = tx_ ? st.bytes_acked : st.bytes_received;
        if (new_interval) {
            leg_rate_[i] = dt > 0 && r.bytes >= leg_prev_bytes_[i] ? (r.bytes - leg_prev_bytes_[i]) / dt / 1e6 : 0;
            leg_prev_bytes_[i] = r.bytes;
        }
        r.rate_mbs = leg_rate_[i];
        r.cwnd = st.cwnd;
        r.srtt_us = st.srtt_us;
        r.retransmits = st.retransmits_timeout + st.retransmits_fast;
        if (cn->state() == tcp::State::Established) sn.legs_up++;
    }
    if (tx_) {
        sn.chunks_sent = tx_->stripe().stats().chunks_sent;
        sn.chunks_resent = tx_->stripe().stats().chunks_resent;
        sn.legs_lost = tx_->stats().legs_lost;
        sn.segments_in = tx_->stats().segments_in;
        sn.bad_segments = tx_->stats().bad_segments;
    } else {
        sn.chunks_sent = 0;
        sn.chunks_resent = 0;
        sn.legs_lost = rx_->stats().legs_lost;
        sn.segments_in = rx_->stats().segments_in;
        sn.bad_segments = rx_->stats().bad_segments;
    }
    if (new_interval) {
        const double dtsc = static_cast<double>(tsc - last_pub_tsc_);
        const double busy = last_pub_tsc_ && dtsc > 0 ? (busy_tsc_ - last_busy_tsc_) / dtsc : 0;
        sn.nlcores = 0;
        if (control_separate_)
            sn.lcores[sn.nlcores++] = LcoreRow{rte_get_main_lcore(), "control",
                                               control_busy_permille_.load(std::memory_order_relaxed) / 1000.0};
        if (rx_ring_)
            sn.lcores[sn.nlcores++] = LcoreRow{classifier_lcore_, "rx+classify",
                                               cls_busy_permille_.load(std::memory_order_relaxed) / 1000.0};
        sn.lcores[sn.nlcores++] = LcoreRow{data_lcore_,
                                           rx_ring_ ? "tcp" : control_separate_ ? "rx+tcp" : "control+rx+tcp",
                                           std::min(1.0, busy)};
        last_busy_tsc_ = busy_tsc_;
        last_pub_tsc_ = tsc;
        last_pub_t_ = now;
        last_pub_bytes_ = sn.bytes;
    }
    board_.publish(sn);
}

// Prints what the user asked for from the latest snapshot: the progress
// line once a second, the table on SIGUSR1. Never touches the session.
void Transport::control_tick(uint64_t now) {
    const bool table = g_table.exchange(false, std::memory_order_relaxed);
    const bool line = progress_on_ && now >= next_progress_;
    if (!table && !line) return;
    const TransferSnapshot s = board_.read();
    if (table) print_table(stderr, s);
    if (line && s.valid) {
        next_progress_ = now + 1'000'000;
        std::fprintf(stderr, "%s\n", format_progress(s).c_str());
    }
}

// The main lcore while another lcore moves the data: control only.
int Transport::control_loop(unsigned data_lcore) {
    uint64_t last = now_us(), work_us = 0;
    (void)data_lcore;
    while (!data_done_.load(std::memory_order_acquire)) {
        const uint64_t t0 = now_us();
        control_tick(t0);
        const uint64_t t1 = now_us();
        work_us += t1 - t0;
        if (t1 - last >= 1'000'000) {
            control_busy_permille_.store(static_cast<uint32_t>(work_us * 1000 / (t1 - last)),
                                         std::memory_order_relaxed);
            last = t1;
            work_us = 0;
        }
        rte_delay_us_sleep(20'000);
    }
    return 0;
}

bool Transport::setup(std::string &err) {
    hz_ = rte_get_tsc_hz();
    tsc0_ = rte_get_tsc_cycles();
    rng_ = tcp::SeededRandom(rte_get_tsc_cycles() ^ (uint64_t(getpid()) << 32));
    drop_rng_ = tcp::SeededRandom(o_.drop_seed);

    // Ports from --ip, in order of first mention.
    for (const auto &ip : o_.ips) {
        PortCtx *pc = nullptr;
        for (auto &p : ports_)
            if (p->id == ip.port_id) pc = p.get();
        if (!pc) {
            if (!rte_eth_dev_is_valid_port(ip.port_id)) {
                err = "--ip " + std::to_string(ip.port_id) + "=" + net::format_ipv4(ip.addr) + ": port " +
                      std::to_string(ip.port_id) + " does not exist (" + std::to_string(rte_eth_dev_count_avail()) +
                      " DPDK ports: add one with -a PCI or --vdev)";
                return false;
            }
            ports_.push_back(std::make_unique<PortCtx>());
            pc = ports_.back().get();
            pc->id = ip.port_id;
        }
        pc->addrs.push_back(ip);
    }
    // Jumbo frames stay in one mbuf (the data path handles single segments
    // only); fewer of those larger mbufs keep the pool's memory in bounds.
    const bool jumbo = o_.mtu > 1500;
    const uint32_t mbufs = (jumbo ? 4096 : 8192) * static_cast<uint32_t>(ports_.size()) + (jumbo ? 4095 : 8191);
    const uint16_t room = jumbo ? static_cast<uint16_t>(RTE_PKTMBUF_HEADROOM + o_.mtu + kEthLen + 8) : 0;
    pool_ = port::make_pool("millipede_tr", mbufs, port::port_socket(ports_[0]->id), err, room);
    if (!pool_) return false;
    for (auto &p : ports_) {
        port::PortConfig pc;
        pc.port_id = p->id;
        pc.promiscuous = false;
        pc.checksum_offload = o_.offload;
        pc.mtu = o_.mtu;
        if (!port::start_port(pc, pool_, err)) return false;
        started_.push_back(p->id);
        rte_ether_addr ea;
        if (rte_eth_macaddr_get(p->id, &ea) != 0) {
            err = "port " + std::to_string(p->id) + ": cannot read its MAC address";
            return false;
        }
        std::memcpy(p->mac.b, ea.addr_bytes, 6);
        port_by_id_[p->id] = p.get();
        uint16_t mtu = 0;
        if (rte_eth_dev_get_mtu(p->id, &mtu) == 0 && mtu >= 576) p->mtu = std::min<uint16_t>(mtu, 9000);
        net::NeighbourConfig nc;
        nc.max_queued = 16;
        // A LAN answers ARP in well under a millisecond; a request lost at
        // start (a link still coming up) should not cost the kernel's 1 s.
        nc.retry_interval_us = 200'000;
        nc.max_retries = 10;
        p->neigh = std::make_unique<net::NeighbourCache>(nc);
    }
    for (const auto &n : o_.neighs) {
        bool placed = false;
        for (auto &p : ports_)
            for (const auto &a : p->addrs)
                if (a.on_link(n.addr) && !placed) {
                    if (!p->neigh->add_static(n.addr, n.mac)) {
                        err = "--neigh " + net::format_ipv4(n.addr) + "=" + net::format_mac(n.mac) +
                              ": not a usable unicast neighbour";
                        return false;
                    }
                    placed = true;
                }
        if (!placed) {
            err = "--neigh " + net::format_ipv4(n.addr) + ": no --ip subnet contains it";
            return false;
        }
    }
    uint16_t mss = 1460;
    for (auto &p : ports_) mss = std::min<uint16_t>(mss, static_cast<uint16_t>(p->mtu - 40));
    // TX checksum offload only when every port has it: the session fills
    // its segments one way for all legs. RX offload is per frame (ol_flags).
    tx_ip_offload_ = tx_tcp_offload_ = o_.offload;
    for (auto &p : ports_) {
        const port::ChecksumOffloads co = port::checksum_offloads(p->id);
        tx_ip_offload_ &= co.tx_ipv4;
        tx_tcp_offload_ &= co.tx_tcp;
        if (o_.verbose)
            std::fprintf(stderr, "dpdk-millipede %s: port %u (%s): checksum offload rx ipv4 %s tcp %s, tx ipv4 %s tcp %s\n",
                         o_.tx ? "tx" : "rx", p->id, port::port_name(p->id).c_str(),
                         o_.offload && co.rx_ipv4 ? "on" : "off", o_.offload && co.rx_tcp ? "on" : "off",
                         o_.offload && co.tx_ipv4 ? "on" : "off", o_.offload && co.tx_tcp ? "on" : "off");
    }

    auto sink = [this](const tcp::Segment &s) { emit(s); };
    auto rnd = [this] { return rng_(); };
    try {
        if (o_.tx) {
            session::TxConfig tc;
            const uint32_t nd = static_cast<uint32_t>(o_.dests.size());
            const uint32_t threads = o_.threads ? o_.threads : std::min<uint32_t>(64, 2 * nd);
            for (uint32_t d = 0; d < nd; d++) {
                const TxDestination &dst = o_.dests[d];
                uint32_t local = 0;
                for (auto &p : ports_)
                    for (const auto &a : p->addrs)
                        if (!local && a.on_link(dst.addr)) local = a.addr;
                if (!local) {
                    err = "tx " + net::format_ipv4(dst.addr) + " " + std::to_string(dst.port) +
                          ": no --ip subnet contains this address (no routing: give a port an address on its network)";
                    return false;
                }
                const uint32_t k = threads / nd + (d < threads % nd ? 1 : 0);
                for (uint32_t j = 0; j < k; j++)
                    tc.legs.push_back(session::LegSpec{tcp::IpAddr::v4(local), 0, tcp::IpAddr::v4(dst.addr), dst.port});
            }
            tc.tcp.mss = mss;
            tc.tcp.checksum_offload = tx_tcp_offload_;
            tc.tcp.recv_buffer = 64 * 1024;
            tc.stripe.codec = o_.compat ? stripe::Codec::VIAMILLIPEDE : stripe::Codec::NATIVE;
            tc.stripe.chunk_bytes = o_.chunk_bytes;
            tc.stripe.max_chunks_in_flight = std::max<uint32_t>(16, std::min<uint32_t>(64, (32u << 20) / o_.chunk_bytes));
            std::memcpy(tc.stripe.checkphrase, o_.checkphrase, 4);
            tc.stripe.flush_partial_us = 5'000;
            tc.stripe.no_leg_timeout_us = o_.connect_timeout_us;
            tc.stripe.compat_checksums = o_.checksum;
            tc.watchdog.connect_timeout_us = std::min<uint64_t>(3'000'000, o_.connect_timeout_us);
            tx_ = std::make_unique<session::TxSession>(tc, sink, rnd);
            if (o_.leglimit) limit_bytes_ = o_.leglimit * uint64_t(o_.chunk_bytes);
            pipeio::ReaderConfig rc;
            rc.source = o_.prbs ? pipeio::ReaderSource::PRBS : pipeio::ReaderSource::FD;
            rc.fd = 0;
            rc.chunk_bytes = 256 * 1024;
            rc.chunks = 16;
            rc.prbs_seed = o_.prbs_seed;
            rc.prbs_bytes = o_.size;
            reader_ = std::make_unique<pipeio::PipeReader>(rc);
        } else {
            session::RxConfig rc;
            for (auto &p : ports_)
                for (const auto &a : p->addrs) rc.local_ips.push_back(tcp::IpAddr::v4(a.addr));
            rc.port = o_.listen_port;
            rc.tcp.mss = mss;
            rc.tcp.checksum_offload = tx_tcp_offload_;
            rc.stripe.codec = o_.compat ? stripe::Codec::VIAMILLIPEDE : stripe::Codec::NATIVE;
            rc.stripe.max_legs = 64;
            rc.stripe.max_chunk_bytes = 2u << 20;
            rc.stripe.window_chunks = 32;
            std::memcpy(rc.stripe.checkphrase, o_.checkphrase, 4);
            rc.linger_us = 3'000'000; // serve a sender whose end acknowledgement was lost; then exit
            rx_ = std::make_unique<session::RxSession>(rc, sink, rnd);
            pipeio::WriterConfig wc;
            wc.sink = o_.prbs ? pipeio::WriterSink::PRBS_VERIFY : pipeio::WriterSink::FD;
            wc.fd = 1;
            wc.prbs_seed = o_.prbs_seed;
            writer_ = std::make_unique<pipeio::PipeWriter>(wc);
        }
    } catch (const std::exception &e) {
        err = e.what();
        return false;
    }
    return true;
}

void Transport::teardown() {
    if (reader_) {
        if (cur_) {
            reader_->release(cur_);
            cur_ = nullptr;
        }
        reader_->stop();
    }
    if (writer_) {
        writer_->stop();
        pipeio::Completion c;
        while (writer_->poll_done(c)) {
        }
    }
    for (auto &p : ports_) {
        if (p->ntx) {
            rte_pktmbuf_free_bulk(p->txq, p->ntx);
            p->ntx = 0;
        }
        if (p->neigh) {
            // Release every packet still waiting for ARP: time jumps far
            // ahead so every INCOMPLETE entry runs out of retries.
            net::NeighRelease rel[64];
            uint32_t req[64];
            uint64_t t = now_us() + 3'600'000'000ull;
            for (int k = 0; k < 16; k++, t += 3'600'000'000ull) p->neigh->poll(t, req, 64);
            size_t n;
            while ((n = p->neigh->take_released(rel, 64)) > 0)
                for (size_t i = 0; i < n; i++) rte_pktmbuf_free(reinterpret_cast<rte_mbuf *>(rel[i].pkt));
        }
    }
    if (rx_ring_) {
        rte_mbuf *m;
        while (rte_ring_sc_dequeue(rx_ring_, reinterpret_cast<void **>(&m)) == 0) rte_pktmbuf_free(m);
        rte_ring_free(rx_ring_);
        rx_ring_ = nullptr;
    }
    tx_.reset();
    rx_.reset();
    for (uint16_t id : started_) port::stop_port(id);
    started_.clear();
    ports_.clear();
    if (pool_) {
        rte_mempool_free(pool_);
        pool_ = nullptr;
    }
}

int Transport::loop() {
    Backoff b;
    const char *who = tx_ ? "tx" : "rx";
    uint64_t next_neigh = 0;
    uint64_t last_progress_us = now_us(), last_mark = UINT64_MAX;
    uint64_t refused_seen = 0, refused_at = 0;
    bool saw_sender = false;
    bool repoll = false;
    uint64_t done_at = 0;
    const uint64_t t_start = t_start_;
    if (reader_) reader_->start();
    if (writer_) writer_->start();
    for (auto &p : ports_) {
        send_gratuitous(*p);
        flush(*p);
    }
    for (;;) {
        const uint64_t iter_tsc = rte_rdtsc();
        const uint64_t now = now_us();
        now_ = now;
        unsigned work = 0;
        if (rx_ring_)
            work += rx_ring(now);
        else
            for (auto &p : ports_) work += rx_port(*p, now);
        // Output the writer finished after the last poll must reach the
        // session: with every leg closed (viamillipede's sender closes
        // right after its end header) no timer would call poll() again.
        bool piped = (tx_ ? pipe_step_tx(now) : pipe_step_rx(now)) || repoll;
        repoll = false;
        if (!fail_.empty()) break;
        if (o_.chaos && tx_) {
            const auto &st = tx_->stripe().stats();
            const uint64_t sent = st.chunks_sent + st.chunks_resent;
            if (!next_chaos_) next_chaos_ = o_.chaos;
            if (sent >= next_chaos_ && tx_->state() == session::State::RUNNING) {
                next_chaos_ = sent + o_.chaos;
                chaos_.pending = true;
                chaos_.ep = last_data_;
            }
        }
        if (chaos_.pending) apply_chaos(now);
        const uint64_t dl = tx_ ? tx_->next_deadline() : rx_->next_deadline();
        if (work || piped || now >= dl) {
            now_ = now;
            if (tx_)
                tx_->poll(now);
            else
                rx_->poll(now);
            if (!tx_) piped |= repoll = pipe_step_rx(now); // output verified by this poll
        }
        if (now >= next_neigh) {
            next_neigh = now + 10'000;
            for (auto &p : ports_) {
                uint32_t req[32];
                size_t n = p->neigh->poll(now, req, 32);
                for (size_t i = 0; i < n; i++) send_arp_request(*p, req[i]);
                take_released(*p);
            }
        }
        for (auto &p : ports_)
            if (p->ntx) flush(*p);
        if (now >= next_publish_ || g_table.load(std::memory_order_relaxed)) {
            next_publish_ = now + 100'000;
            publish(now, false);
        }
        if (!control_separate_) control_tick(now);

        const char *lm = tx_ ? tx_->last_leg_message() : rx_->last_leg_message();
        if (o_.verbose && lm && *lm && last_leg_msg_ != lm) {
            last_leg_msg_ = lm;
            std::fprintf(stderr, "dpdk-millipede %s: %s\n", who, lm);
        }

        // Progress marks for the stall bound.
        const uint64_t mark = tx_ ? tx_->stripe().stats().chunks_acked + tx_->stripe().bytes_in() +
                                        tx_->stats().segments_in
                                  : rx_->stats().segments_in + rx_->stripe().stats().bytes_out;
        if (mark != last_mark) {
            last_mark = mark;
            last_progress_us = now;
        }

        if (g_stop.load(std::memory_order_relaxed)) {
            fail_ = "interrupted";
            break;
        }
        if (tx_) {
            if (tx_->state() == session::State::FAILED) {
                if (!done_at) done_at = now;
                if (tx_->finished() || now - done_at > 200'000) { // let the RSTs go out
                    fail_ = tx_->message();
                    const char *l = tx_->last_leg_message();
                    if (l && *l && std::strstr(fail_.c_str(), "no leg") != nullptr)
                        fail_ += std::string(" (is dpdk-millipede rx listening there? last leg event: ") + l + ")";
                    break;
                }
            } else if (tx_->state() == session::State::DONE) {
                if (!done_at) done_at = now;
                if (tx_->finished()) break;
            } else if (o_.stall_timeout_us && now - last_progress_us > o_.stall_timeout_us) {
                fail_ = "no progress for " + std::to_string(o_.stall_timeout_us / 1'000'000) +
                        " s; giving up (last leg event: " + std::string(tx_->last_leg_message()) + ")";
                break;
            }
        } else {
            if (rx_->stats().accepted) saw_sender = true;
            if (rx_->state() == session::State::FAILED) {
                if (!done_at) done_at = now;
                if (rx_->finished() || now - done_at > 2'000'000) {
                    fail_ = rx_->message();
                    break;
                }
            } else if (rx_->state() == session::State::DONE) {
                // finished(): the sender closed its legs after its end
                // acknowledgement. A sender whose FIN arrived while stdout was
                // still draining is counted by RxSession as "closed mid-stream"
                // and finished() then waits for the linger: no connection left
                // after DONE means nobody is left to serve either.
                if (writer_done_ && (rx_->finished() || rx_->connections() == 0)) break;
                if (writer_->state() == pipeio::WriterState::FAILED) {
                    fail_ = std::string("writing stdout: ") + writer_->message();
                    break;
                }
            } else {
                // A refused sender (checkphrase, foreign session) before any
                // session was adopted: report it and give up, like viamillipede.
                const uint64_t refused = rx_->stripe().stats().legs_refused;
                if (refused != refused_seen) {
                    refused_seen = refused;
                    if (rx_->stripe().session_id() == 0 && !refused_at) refused_at = now;
                }
                if (refused_at && rx_->stripe().session_id() == 0 &&
                    (rx_->connections() == 0 || now - refused_at > 2'000'000) && now - refused_at > 200'000) {
                    fail_ = std::string("refused the sender: ") + rx_->last_leg_message();
                    break;
                }
                if (o_.wait_us && !saw_sender && now - t_start > o_.wait_us) {
                    fail_ = "no sender connected within " + std::to_string(o_.wait_us / 1'000'000) + " s";
                    break;
                }
                if (saw_sender && o_.stall_timeout_us && now - last_progress_us > o_.stall_timeout_us) {
                    fail_ = "no progress for " + std::to_string(o_.stall_timeout_us / 1'000'000) +
                            " s; the sender went away (last leg event: " + std::string(rx_->last_leg_message()) + ")";
                    break;
                }
            }
        }
        if (work || piped) {
            busy_tsc_ += rte_rdtsc() - iter_tsc;
            b.reset();
        } else {
            b.idle();
        }
    }
    for (auto &p : ports_)
        if (p->ntx) flush(*p);
    publish(now_us(), true);
    if (progress_on_) std::fprintf(stderr, "%s\n", format_progress(board_.read()).c_str());
    const double secs = (now_us() - t_start) / 1e6;
    if (o_.verbose >= 2) {
        for (auto &p : ports_) {
            rte_eth_stats es{};
            rte_eth_stats_get(p->id, &es);
            std::fprintf(stderr, "dpdk-millipede %s: port %u: ipackets %lu opackets %lu imissed %lu ierrors %lu "
                                 "oerrors %lu rx_nombuf %lu\n",
                         who, p->id, (unsigned long)es.ipackets, (unsigned long)es.opackets,
                         (unsigned long)es.imissed, (unsigned long)es.ierrors, (unsigned long)es.oerrors,
                         (unsigned long)es.rx_nombuf);
        }
        for (auto &p : ports_)
            std::fprintf(stderr,
                         "dpdk-millipede %s: port %u: rx %lu tx %lu tx_drops %lu tcp_in %lu arp_req %lu arp_rep %lu "
                         "icmp %lu\n",
                         who, p->id, (unsigned long)p->rx_pkts, (unsigned long)p->tx_pkts, (unsigned long)p->tx_drops,
                         (unsigned long)p->tcp_in, (unsigned long)p->arp_requests, (unsigned long)p->arp_replies,
                         (unsigned long)p->icmp_replies);
        std::fprintf(stderr,
                     "dpdk-millipede %s: no_route %lu oversize %lu no_mbuf %lu neigh_drops %lu bad_ip %lu bad_tcp %lu "
                     "chaos %lu injected_rx_drops %lu injected_tx_drops %lu\n",
                     who, (unsigned long)c_.no_route, (unsigned long)c_.oversize, (unsigned long)c_.no_mbuf,
                     (unsigned long)c_.neigh_drops, (unsigned long)c_.bad_ip, (unsigned long)c_.bad_tcp,
                     (unsigned long)c_.chaos_breaks,
                     (unsigned long)c_.injected_rx_drops, (unsigned long)c_.injected_tx_drops);
        std::fprintf(stderr, "dpdk-millipede %s: segments_in %lu bad_segments %lu unknown_segments %lu\n", who,
                     (unsigned long)(tx_ ? tx_->stats().segments_in : rx_->stats().segments_in),
                     (unsigned long)(tx_ ? tx_->stats().bad_segments : rx_->stats().bad_segments),
                     (unsigned long)(tx_ ? tx_->stats().unknown_segments : rx_->stats().unknown_segments));
        if (tx_)
            std::fprintf(stderr,
                         "dpdk-millipede tx: connects %lu connect_failures %lu legs_lost %lu resent %lu recycled %lu\n",
                         (unsigned long)tx_->stats().connects, (unsigned long)tx_->stats().connect_failures,
                         (unsigned long)tx_->stats().legs_lost, (unsigned long)tx_->stripe().stats().chunks_resent,
                         (unsigned long)tx_->stripe().stats().legs_recycled);
    }
    if (!fail_.empty()) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who, fail_.c_str());
        return 1;
    }
    if (tx_) {
        if (tx_->state() != session::State::DONE || (!o_.compat && !tx_->confirmed())) {
            std::fprintf(stderr, "dpdk-millipede tx: %s\n", tx_->message());
            return 1;
        }
    } else if (rx_->state() != session::State::DONE || !writer_done_) {
        std::fprintf(stderr, "dpdk-millipede rx: %s\n", rx_->message());
        return 1;
    }
    if (o_.verbose)
        std::fprintf(stderr, "dpdk-millipede %s: %s (%.3f s)\n", who, tx_ ? tx_->message() : rx_->message(), secs);
    return 0;
}

struct LoopArg {
    Transport *t;
    int status;
};

} // namespace

// The first frames (gratuitous ARP, the first ARP request) are lost on a
// link that is still coming up -- a memif client finishes its handshake on
// EAL's interrupt thread after the port started. Bounded: a port whose link
// stays down is reported with verbose and the transfer starts anyway (ARP
// retries and TCP take over when it comes up).
void Transport::wait_links(uint64_t bound_us) {
    const uint64_t until = now_us() + bound_us;
    for (auto &p : ports_) {
        rte_eth_link link{};
        while (rte_eth_link_get_nowait(p->id, &link) == 0 && link.link_status == RTE_ETH_LINK_DOWN &&
               now_us() < until)
            rte_delay_us_sleep(5'000);
        if (link.link_status == RTE_ETH_LINK_DOWN && o_.verbose)
            std::fprintf(stderr, "dpdk-millipede %s: port %u: link still down after %lu ms; starting anyway\n",
                         o_.tx ? "tx" : "rx", p->id, (unsigned long)(bound_us / 1000));
    }
}

int Transport::run() {
    std::string err;
    if (!setup(err)) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", o_.tx ? "tx" : "rx", err.c_str());
        return 1;
    }
    progress_on_ = o_.progress < 0 ? isatty(2) : o_.progress == 1;
    if (o_.tx) wait_links(3'000'000); // rx answers whoever comes; its peer may start much later
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGUSR1, on_usr1);
    t_start_ = now_us();
    const int trc = register_transport_telemetry(&board_);
    if (trc != 0)
        std::fprintf(stderr, "dpdk-millipede %s: warning: telemetry commands not registered (%s)\n",
                     o_.tx ? "tx" : "rx", rte_strerror(-trc));
    // Roles by lcore count (docs/architecture.md): 1 -> one loop does it
    // all; 2 -> the main lcore controls, the other moves data; 3+ -> control,
    // an RX/classifier lcore, and the TCP lcore. One stripe session is one
    // TCP lcore: further lcores would sit idle, so they are not used.
    std::vector<unsigned> workers;
    unsigned l;
    RTE_LCORE_FOREACH_WORKER(l) workers.push_back(l);
    const char *who = o_.tx ? "tx" : "rx";
    if (workers.empty()) {
        data_lcore_ = rte_lcore_id();
        return loop();
    }
    control_separate_ = true;
    data_lcore_ = workers[0];
    if (workers.size() >= 2) {
        classifier_lcore_ = workers[0];
        data_lcore_ = workers[1];
        rx_ring_ = rte_ring_create("mp_rx", 4096, port::port_socket(ports_[0]->id), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!rx_ring_) {
            std::fprintf(stderr, "dpdk-millipede %s: cannot create the classifier ring: %s\n", who,
                         rte_strerror(rte_errno));
            return 1;
        }
        if (workers.size() > 2 && o_.verbose)
            std::fprintf(stderr, "dpdk-millipede %s: %zu lcores unused (one TCP lcore per transfer)\n", who,
                         workers.size() - 2);
        rte_eal_remote_launch([](void *a) -> int { return static_cast<Transport *>(a)->classify_loop(); }, this,
                              classifier_lcore_);
    }
    LoopArg arg{this, 1};
    rte_eal_remote_launch([](void *a) -> int {
        auto *la = static_cast<LoopArg *>(a);
        la->status = la->t->loop();
        la->t->data_done_.store(true, std::memory_order_release);
        return 0;
    }, &arg, data_lcore_);
    control_loop(data_lcore_);
    rte_eal_wait_lcore(data_lcore_);
    if (rx_ring_) {
        classifier_stop_.store(true, std::memory_order_relaxed);
        rte_eal_wait_lcore(classifier_lcore_);
        if (o_.verbose >= 2)
            std::fprintf(stderr,
                         "dpdk-millipede %s: classifier lcore %u: rx %lu to_tcp %lu not_ours %lu bad_ip %lu "
                         "bad_tcp_checksum %lu malformed %lu backpressure %lu\n",
                         who, classifier_lcore_, (unsigned long)cls_.rx, (unsigned long)cls_.to_tcp,
                         (unsigned long)cls_.not_ours, (unsigned long)cls_.bad_ip, (unsigned long)cls_.bad_tcp,
                         (unsigned long)cls_.malformed, (unsigned long)cls_.backpressure);
    }
    return arg.status;
}

// DPDK's log, minus one line: DPDK 22.11's telemetry warns "No legacy
// callbacks, legacy socket not created" on every start, which would be the
// first thing a user sees, about a socket nobody asked for.
FILE *quiet_log_stream() {
    cookie_io_functions_t io{};
    io.write = [](void *, const char *buf, size_t n) -> ssize_t {
        if (std::string_view(buf, n).find("No legacy callbacks") != std::string_view::npos) return static_cast<ssize_t>(n);
        return static_cast<ssize_t>(std::fwrite(buf, 1, n, stderr));
    };
    FILE *f = fopencookie(nullptr, "w", io);
    if (f) setvbuf(f, nullptr, _IOLBF, 1024);
    return f;
}

int run_transport(int argc, char **argv, int eal_argc, char **eal_argv) {
    TransportOptions o;
    std::string e = parse_transport_args(argc, argv, o);
    if (o.help) {
        transport_usage(stdout);
        return 0;
    }
    const char *who = argc > 0 && std::strcmp(argv[0], "rx") == 0 ? "rx" : "tx";
    if (!e.empty()) {
        std::fprintf(stderr, "dpdk-millipede %s: %s\n", who, e.c_str());
        return 2;
    }
    // SIGUSR1's default action ends the process: a `kill -USR1` during
    // start-up (EAL initialisation, waiting for links) must only ask for the
    // table, which the control loop prints once it runs.
    std::signal(SIGUSR1, on_usr1);
    // EAL's informational lines would bury the one line that matters.
    std::vector<char *> args(eal_argv, eal_argv + eal_argc);
    bool has_log = false, has_telemetry = false;
    for (int i = 0; i < eal_argc; i++) {
        if (std::strncmp(eal_argv[i], "--log-level", 11) == 0) has_log = true;
        if (std::strcmp(eal_argv[i], "--telemetry") == 0 || std::strcmp(eal_argv[i], "--no-telemetry") == 0)
            has_telemetry = true;
    }
    static char quiet[] = "--log-level=*:warning";
    if (!has_log) args.insert(args.begin() + 1, quiet);
    (void)has_telemetry; // on unless the user says --no-telemetry: /millipede/* commands need it
    args.push_back(nullptr);
    if (FILE *log = quiet_log_stream()) rte_openlog_stream(log);
    int rc = rte_eal_init(static_cast<int>(args.size() - 1), args.data());
    if (rc < 0) {
        std::fprintf(stderr, "dpdk-millipede %s: EAL initialisation failed: %s\n", who, rte_strerror(rte_errno));
        return 1;
    }
    int status;
    {
        Transport t(o);
        status = t.run();
    }
    rte_eal_cleanup();
    return status;
}

} // namespace millipede::app

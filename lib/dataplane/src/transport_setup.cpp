// The transport plane's set-up and teardown: ports and queues, pools, the
// flow table, rings, workers and the session. Main lcore only.
#include <algorithm>
#include <cstring>
#include <unistd.h>

#include <numa.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_malloc.h>

#include "millipede/port/configured.h"
#include "millipede/port/port.h"
#include "millipede/stripe/wire.h"
#include "transport_internal.h"

#include <sys/random.h>

namespace millipede::dataplane {

namespace {

std::string ring_name(const char *what, unsigned i) {
    return std::string("mp_") + what + std::to_string(i) + "_" + std::to_string(getpid() % 100000);
}

// Lengths in flight per connection: enough for a LAN or memif path at
// several GB/s with the loops' latency (hundreds of microseconds).
constexpr uint32_t kSendBuffer = 1u << 20;
constexpr uint32_t kRecvBuffer = 1u << 20;

// The CPUs of the port's NUMA node (libnuma), for the pipe threads: near
// the chunk memory, and free to run beside the lcores rather than on the
// one CPU of the lcore that created them.
std::vector<int> node_cpus(int socket) {
    std::vector<int> out;
    if (numa_available() >= 0 && socket >= 0) {
        bitmask *bm = numa_allocate_cpumask();
        if (bm && numa_node_to_cpus(socket, bm) == 0)
            for (unsigned i = 0; i < bm->size; i++)
                if (numa_bitmask_isbitset(bm, i)) out.push_back(static_cast<int>(i));
        if (bm) numa_free_cpumask(bm);
    }
    if (out.empty())
        for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN); i++) out.push_back(static_cast<int>(i));
    return out;
}

using port::MemifArgs;
using port::memif_args;

// The largest payload we may send in one segment over this memif end.
// DPDK 22.11's copy-mode transmit never clears the chaining flag of a
// packet's first descriptor, so a one-slot packet written into a slot that
// last held the start of a chained packet runs on into slots the receiver
// should not read yet (seen here as the same old frames arriving again and
// again). So in copy mode every frame stays within one slot; a zero-copy
// client writes every descriptor's flags and may send chains.
uint16_t memif_send_cap(const MemifArgs &a, uint16_t mss) {
    if (a.client && a.zero_copy) return 0;                                // as large as the MSS
    const uint32_t room = a.bsize > 14 + 20 + 60 + 536 ? a.bsize - 14 - 20 - 60 : 536; // headers with every option
    return static_cast<uint16_t>(std::min<uint32_t>(room, mss));
}

} // namespace

const char *rx_drop_name(RxDrop d) {
    static const char *const names[] = {
#define X(sym, name, desc) name,
        MILLIPEDE_RX_DROPS(X)
#undef X
    };
    return d < RxDrop::Count_ ? names[static_cast<unsigned>(d)] : "?";
}

namespace {
tcp::IpAddr tcp_addr(const net::IpAssignment &a) { return a.v6 ? tcp::IpAddr::v6(a.addr6.data()) : tcp::IpAddr::v4(a.addr); }
} // namespace

bool Impl::setup_ports(std::string &err) {
    // Ports from --ip, in order of first mention.
    for (const auto &ip : o.ips) {
        PortState *pc = nullptr;
        for (auto &p : ports)
            if (p->id == ip.port_id) pc = p.get();
        if (!pc) {
            if (!rte_eth_dev_is_valid_port(ip.port_id)) {
                err = "--ip " + std::to_string(ip.port_id) + "=" + ip.text() + ": port " +
                      std::to_string(ip.port_id) + " does not exist (" + std::to_string(rte_eth_dev_count_avail()) +
                      " DPDK ports: add one with -a PCI or --vdev)";
                return false;
            }
            ports.push_back(std::make_unique<PortState>());
            pc = ports.back().get();
            pc->id = ip.port_id;
            pc->index = static_cast<unsigned>(ports.size() - 1);
            pc->v6 = ip.v6; // (one family per run: transport_options.cpp)
        }
        pc->addrs.push_back(ip);
    }
    const unsigned transmitters = plan.transmitters();
    const int socket = port::port_socket(ports[0]->id);
    // Chained receive: frames beyond one mbuf arrive as chains (memif's big
    // segments, jumbo frames with scatter); TCP holds the segments as they are.
    bool any_memif = false;
    for (auto &p : ports) {
        const port::DeviceCaps caps = port::device_caps(p->id);
        p->memif = caps.driver == "net_memif";
        any_memif |= p->memif && o.big_segments;
        p->multi_seg = caps.tx_multi_seg;
        const int ps = port::port_socket(p->id);
        for (const auto &l : plan.lcores)
            if (ps >= 0 && rte_lcore_to_socket_id(l.id) != static_cast<unsigned>(ps))
                std::fprintf(stderr,
                             "dpdk-millipede %s: warning: lcore %u is on NUMA socket %u, port %u on socket %d\n",
                             who(), l.id, rte_lcore_to_socket_id(l.id), p->id, ps);
    }
    const bool jumbo = o.mtu > 1500;
    // memif copies each ring slot into the mbufs we give it: large mbufs
    // keep a big segment in a few pieces (the receive queue holds one
    // extent per piece). A sender alone (tx, not duplex) receives only
    // acknowledgements, ARP and ICMP: default mbufs, chained in the rare
    // big frame, save the 88 MiB of hugepages (cleared by the kernel before
    // the first byte leaves) that 16 KiB ones would take.
    const bool data_arrives = !o.tx || o.duplex;
    const uint16_t room = any_memif && data_arrives ? static_cast<uint16_t>(RTE_PKTMBUF_HEADROOM + 16384)
                          : jumbo                   ? static_cast<uint16_t>(RTE_PKTMBUF_HEADROOM + o.mtu + kEthLen + 8)
                                                    : 0;
    const uint32_t nports = static_cast<uint32_t>(ports.size());
    const uint32_t rx_mbufs =
        room > RTE_MBUF_DEFAULT_BUF_SIZE || any_memif ? 2048 * nports + 2047 : 8192 * nports + 8191;
    // A host file (--config) may size the pool: mbufs per port, mempool_cache.
    std::vector<uint16_t> ids;
    for (auto &p : ports) ids.push_back(p->id);
    port::PoolSize pool_size;
    if (!port::configured_pool(ids, rx_mbufs, pool_size, err)) return false;
    rx_pool = port::make_pool("mp_rx" + std::to_string(getpid() % 100000), pool_size.mbufs, socket, err, room,
                              pool_size.cache);
    if (!rx_pool) return false;
    // Extbuf segments carry no data of their own.
    attach_pool = rte_pktmbuf_pool_create(("mp_att" + std::to_string(getpid() % 100000)).c_str(), 16383, 256, 0, 0,
                                          socket);
    if (!attach_pool) {
        err = "cannot create the extbuf mbuf pool: " + std::string(rte_strerror(rte_errno));
        return false;
    }
    for (auto &p : ports) {
        const port::DeviceCaps caps = port::device_caps(p->id);
        port::PortConfig pc;
        pc.port_id = p->id;
        pc.promiscuous = false;
        pc.checksum_offload = o.offload;
        pc.mtu = o.mtu;
        pc.tx_multi_seg = true;
        pc.rx_scatter = jumbo;
        pc.rx_queues = 1;
        pc.tx_queues = static_cast<uint16_t>(std::min<unsigned>(transmitters, caps.max_tx_queues ? caps.max_tx_queues : 1));
        // memif pairs its rings with the peer's: one queue each way keeps
        // two ends with different lcore layouts compatible.
        // net_tap refuses a configuration whose RX and TX queue counts
        // differ (DPDK 22.11 tap_dev_configure), and we poll one RX queue.
        if (pc.tx_queues < transmitters || caps.driver == "net_memif" || caps.driver == "net_tap")
            pc.tx_queues = 1; // all through the owner
        pc.start = false; // setup() starts the ports after its last allocation (port.h)
        if (!port::start_port(pc, rx_pool, err)) return false;
        started.push_back(p->id);
        p->txq_count = pc.tx_queues;
        if (p->txq_count < transmitters) {
            p->tx_handoff = rte_ring_create(ring_name("txh", p->index).c_str(), 4096, socket, RING_F_SC_DEQ);
            if (!p->tx_handoff) {
                err = "cannot create a transmit hand-off ring: " + std::string(rte_strerror(rte_errno));
                return false;
            }
            if (o.verbose)
                std::fprintf(stderr,
                             "dpdk-millipede %s: port %u (%s) has %u TX queue(s) for %u transmitting lcores: the "
                             "rx lcore transmits for the others\n",
                             who(), p->id, port::port_name(p->id).c_str(), p->txq_count, transmitters);
        }
        rte_ether_addr ea;
        if (rte_eth_macaddr_get(p->id, &ea) != 0) {
            err = "port " + std::to_string(p->id) + ": cannot read its MAC address";
            return false;
        }
        std::memcpy(p->mac.b, ea.addr_bytes, 6);
        port_by_id[p->id] = p.get();
        uint16_t mtu = 0;
        if (rte_eth_dev_get_mtu(p->id, &mtu) == 0 && mtu >= 576) p->mtu = std::min<uint16_t>(mtu, 9000);
        // MSS = MTU - IP header - TCP header: 40 for IPv4, 60 for IPv6 (RFC 8200 8.3).
        p->mss = static_cast<uint16_t>(p->mtu - (p->v6 ? 60 : 40));
        p->max_frame = p->mtu + kEthLen;
        p->trust_l4_checksum = p->memif && !o.verify_memif_checksums;
        if (p->memif && o.big_segments && p->multi_seg) {
            // memif carries frames larger than the MTU as chained ring slots,
            // and our receive path takes chains: offer a big MSS. What we
            // send is capped by how this end transmits (memif_send_cap()).
            const MemifArgs ma = memif_args(p->id);
            p->mss = o.memif_mss ? static_cast<uint16_t>(o.memif_mss) : kMemifMss;
            p->send_cap = memif_send_cap(ma, p->mss);
            p->max_frame = 65535 + kEthLen;
            if (o.verbose)
                std::fprintf(stderr,
                             "dpdk-millipede %s: port %u: memif %s%s, slots of %u bytes: segments up to %u bytes out, "
                             "MSS %u offered\n",
                             who(), p->id, ma.client ? "client" : "server", ma.zero_copy ? " zero-copy" : "",
                             ma.bsize, p->send_cap ? p->send_cap : p->mss, p->mss);
        }
        const port::ChecksumOffloads co = port::checksum_offloads(p->id);
        p->tx_ip_offload = o.offload && co.tx_ipv4;
        p->tx_tcp_offload = o.offload && co.tx_tcp;
        if (o.verbose)
            std::fprintf(stderr,
                         "dpdk-millipede %s: port %u (%s, %s): MSS %u, checksum offload rx ipv4 %s tcp %s, tx ipv4 %s "
                         "tcp %s, chained tx %s, %u TX queue(s)\n",
                         who(), p->id, port::port_name(p->id).c_str(), caps.driver.c_str(), p->mss,
                         o.offload && co.rx_ipv4 ? "on" : "off", o.offload && co.rx_tcp ? "on" : "off",
                         p->tx_ip_offload ? "on" : "off", p->tx_tcp_offload ? "on" : "off", p->multi_seg ? "on" : "off",
                         p->txq_count);
        net::NeighbourConfig nc;
        nc.max_queued = 16;
        // A LAN answers ARP in well under a millisecond; a request lost at
        // start (a link still coming up) should not cost the kernel's 1 s.
        nc.retry_interval_us = 200'000;
        nc.max_retries = 10;
        p->neigh = std::make_unique<net::NeighbourCache>(nc);
        if (p->v6) p->v6_names.reserve(nc.max_entries);
    }
    neighbours = std::make_unique<NeighbourBoard>(nports);
    for (const auto &n : o.neighs) {
        bool placed = false;
        for (auto &p : ports)
            for (const auto &a : p->addrs)
                if (a.on_link(n.addr) && !placed) {
                    if (!p->neigh->add_static(n.addr, n.mac)) {
                        err = "--neigh " + net::format_ipv4(n.addr) + "=" + net::format_mac(n.mac) +
                              ": not a usable unicast neighbour";
                        return false;
                    }
                    neighbours->publish(p->index, n.addr, n.mac);
                    placed = true;
                }
        if (!placed) {
            err = "--neigh " + net::format_ipv4(n.addr) + ": no --ip subnet contains it";
            return false;
        }
    }
    owner_ring = rte_ring_create(ring_name("own", 0).c_str(), 4096, socket, RING_F_SC_DEQ);
    if (!owner_ring) {
        err = "cannot create the neighbour ring: " + std::string(rte_strerror(rte_errno));
        return false;
    }
    owner_tx.resize(ports.size());
    for (auto &b : owner_tx) b.queue = 0; // the owner transmits on queue 0
    return true;
}

bool Impl::setup_workers(std::string &err) {
    const int socket = port::port_socket(ports[0]->id);
    conns = ConnTable::create(ring_name("conns", 0), 4096, socket, err);
    if (!conns) return false;
    for (unsigned i = 0; i < plan.workers; i++) {
        auto w = std::make_unique<Worker>();
        w->plane = this;
        w->index = i;
        const unsigned slot = plan.lcore_of_worker(i);
        w->lcore = plan.lcores[slot].id;
        w->pkts = rte_ring_create(ring_name("pk", i).c_str(), 4096, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        w->cmds = rte_ring_create_elem(ring_name("cm", i).c_str(), sizeof(session::LegCommand), 8192, socket,
                                       RING_F_SP_ENQ | RING_F_SC_DEQ);
        w->reports = rte_ring_create_elem(ring_name("rp", i).c_str(), sizeof(session::LegReport), 16384, socket,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!w->pkts || !w->cmds || !w->reports) {
            err = "cannot create the rings of worker " + std::to_string(i) + ": " + rte_strerror(rte_errno);
            return false;
        }
        w->out.ring = w->reports;
        w->txc.header_pool = rx_pool;
        w->txc.attach_pool = attach_pool;
        w->tx.resize(ports.size());
        const unsigned txi = plan.transmitter_index(slot);
        for (auto &p : ports) w->tx[p->index].queue = static_cast<uint16_t>(p->tx_handoff ? 0 : txi);
        w->drop_rng = tcp::SeededRandom(o.drop_seed * 1000003 + i);
        session::HostConfig hc;
        hc.host_id = i;
        hc.tcp.rto_min_us = session::kLegRtoMinUs;
        hc.tcp.send_buffer = kSendBuffer;
        hc.tcp.recv_buffer = kRecvBuffer;
        hc.tcp.ref_ops = &kRefOps;
        hc.tcp.keepalive = true;
        hc.tcp.cc = o.cc;
        // RACK-TLP goes with BBR, the lossy-WAN case it was added for. On a
        // LAN with reno/cubic a tail loss probe fired while a busy 2-CPU host
        // delays the peer's ACK is a spurious retransmission (the interop
        // oracle caught one with 4 workers), and dead legs are the
        // watchdog's job there.
        hc.tcp.rack = o.cc == tcp::CongestionAlgo::Bbr;
        // Full duplex: one host serves both kinds of connection, its
        // opened legs watched as a sender's, its accepted ones as a
        // receiver's; keep-alive is the sender's (the shorter) for both.
        if (receives()) {
            const session::RxConfig rdef;
            hc.tcp.keepalive_idle_us = rdef.tcp.keepalive_idle_us;
            hc.tcp.keepalive_interval_us = rdef.tcp.keepalive_interval_us;
            hc.tcp.keepalive_probes = rdef.tcp.keepalive_probes;
            hc.watchdog = rdef.watchdog;
            for (auto &p : ports)
                for (const auto &a : p->addrs) hc.listen_ips.push_back(tcp_addr(a));
            hc.listen_port = o.listen_port;
            if (o.terminate_on_ports) hc.tunnel_port = o.terminate_port;
        }
        if (sends()) {
            const session::TxConfig tdef;
            hc.tcp.keepalive_idle_us = tdef.tcp.keepalive_idle_us;
            hc.tcp.keepalive_interval_us = tdef.tcp.keepalive_interval_us;
            hc.tcp.keepalive_probes = tdef.tcp.keepalive_probes;
            if (o.duplex) hc.accepted_watchdog = hc.watchdog;
            hc.watchdog = session::Watchdog{};
            hc.watchdog.connect_timeout_us = std::min<uint64_t>(3'000'000, o.connect_timeout_us);
            // As TxSession does. Where the SRTT is 1 ms or less (memif,
            // a LAN) this paces nothing (tcp::kUnpacedSrttUs); on a long
            // path the worker sends at its polling granularity once the
            // connection's timer deadline (its next send time) passed.
            if (session::legs_paced(o.parity, o.parity_queue_ahead)) hc.tcp.pacing = true;
        }
        bool all_tcp_offload = true;
        for (auto &p : ports) all_tcp_offload &= p->tx_tcp_offload;
        hc.tcp.checksum_offload = all_tcp_offload;
        hc.tcp.mss = 1460;
        for (auto &p : ports)
            for (const auto &a : p->addrs)
                hc.mss_by_local_ip.push_back({tcp_addr(a), p->mss, p->send_cap, p->trust_l4_checksum, p->memif});
        hc.compat = o.compat;
        hc.max_connections = 4 * 64 + 64;
        w->hooks = std::make_unique<ConnTableHooks>(*conns, i, &w->pub.connections);
        hc.hooks = w->hooks.get();
        Worker *wp = w.get();
        tcp::SeededRandom rng(rte_get_tsc_cycles() ^ (uint64_t(getpid()) << 32) ^ (uint64_t(i) << 20));
        try {
            w->host = std::make_unique<session::LegHost>(
                hc, [this, wp](const tcp::Segment &s) { worker_emit(*wp, s); }, rng, w->out);
        } catch (const std::exception &e) {
            err = e.what();
            return false;
        }
        workers.push_back(std::move(w));
    }
    rx_balancer = std::make_unique<flow::Balancer>(flow::Policy::Busy, plan.workers);
    return true;
}

bool Impl::make_aead(std::unique_ptr<seal::CryptodevAead> &out, std::string &err) {
    std::string why;
    out = seal::CryptodevAead::create(o.key, why);
    if (!out) {
        err = "key: " + why;
        return false;
    }
    return true;
}

bool Impl::setup_session(std::string &err) {
    Session &s = session;
    s.out.plane = this;
    s.out.balancer = std::make_unique<flow::Balancer>(flow::Policy::Busy, plan.workers);
    try {
        if (sends() && !setup_tx_session(err)) return false;
        if (receives() && !setup_rx_session(err)) return false;
        if (o.terminate_on_ports) {
            if (!o.tunnel_adopt) { // (the ports were checked with the options, and by LegHost)
                err = "--terminate-on ports: no tunnel bridge to hand the connections to";
                return false;
            }
            s.tunnel = std::make_unique<TunnelEnds>(o.terminate_port, kSendBuffer, s.out, o.tunnel_adopt,
                                                    o.tunnel_adopt_ctx, o.verbose);
        }
    } catch (const std::exception &e) {
        err = e.what();
        return false;
    }
    return true;
}

// stdin -> the TxCore's legs to every `tx HOST PORT`.
bool Impl::setup_tx_session(std::string &err) {
    Session &s = session;
    tcp::SeededRandom seed(rte_get_tsc_cycles() ^ (uint64_t(getpid()) << 32));
    auto rng = [seed]() mutable { return seed(); };
    session::TxConfig tc;
    const uint32_t nd = static_cast<uint32_t>(o.dests.size());
    const uint32_t threads = o.threads ? o.threads : std::min<uint32_t>(64, 2 * nd);
    for (uint32_t d = 0; d < nd; d++) {
        const TxDestination &dst = o.dests[d];
        const net::IpAssignment *local = nullptr;
        for (auto &p : ports)
            for (const auto &a : p->addrs)
                if (!local && (dst.v6 ? a.on_link6(dst.addr6.data()) : a.on_link(dst.addr))) local = &a;
        if (!local) {
            err = "tx " + (dst.v6 ? net::format_ipv6(dst.addr6.data()) : net::format_ipv4(dst.addr)) + " " +
                  std::to_string(dst.port) +
                  ": no --ip subnet contains this address (no routing: give a port an address on its network)";
            return false;
        }
        const uint32_t k = threads / nd + (d < threads % nd ? 1 : 0);
        for (uint32_t j = 0; j < k; j++)
            tc.legs.push_back(session::LegSpec{
                tcp_addr(*local), 0, dst.v6 ? tcp::IpAddr::v6(dst.addr6.data()) : tcp::IpAddr::v4(dst.addr), dst.port});
    }
    // Full duplex: our legs' local ports never take the port we listen on
    // (a SYN to it is a new rx flow; one of ours would be a tx leg).
    // The same for the tunnel's port on our addresses (--terminate-on ports).
    for (uint16_t taken : {receives() ? o.listen_port : uint16_t(0), o.terminate_on_ports ? o.terminate_port : uint16_t(0)})
        if (taken && taken >= tc.ephemeral_first && taken <= tc.ephemeral_last) {
            if (taken - tc.ephemeral_first >= tc.ephemeral_last - taken)
                tc.ephemeral_last = static_cast<uint16_t>(taken - 1);
            else
                tc.ephemeral_first = static_cast<uint16_t>(taken + 1);
        }
    tc.tcp.send_buffer = kSendBuffer;
    tc.stripe.codec = o.compat ? stripe::Codec::VIAMILLIPEDE : stripe::Codec::NATIVE;
    tc.stripe.chunk_bytes = o.chunk_bytes;
    const uint32_t chunks = std::max<uint32_t>(16, std::min<uint32_t>(64, (32u << 20) / o.chunk_bytes));
    tc.stripe.max_chunks_in_flight = chunks;
    std::memcpy(tc.stripe.checkphrase, o.checkphrase, 4);
    tc.stripe.flush_partial_us = 5'000;
    tc.stripe.no_leg_timeout_us = o.connect_timeout_us;
    tc.stripe.compat_checksums = o.checksum;
    tc.stripe.parity_k = o.parity;
    tc.stripe.parity_queue_ahead = o.parity_queue_ahead;
    tc.stripe.parity_queue_ahead_bytes = o.parity_queue_ahead_bytes;
    tc.stripe.external_chunks = true;
    if (o.keyed) {
        // The session id is part of every chunk's nonce and AAD: it
        // comes from the kernel's generator, not the TSC-seeded one.
        if (getrandom(&tc.stripe.session_id, sizeof tc.stripe.session_id, 0) != sizeof tc.stripe.session_id) {
            err = "key: cannot draw a random session id (getrandom failed)";
            return false;
        }
        if (!tc.stripe.session_id) tc.stripe.session_id = 1;
        if (!make_aead(s.aead, err)) return false;
        tc.stripe.aead = s.aead.get();
    }
    tc.stripe.release_chunk = [](void *, uint64_t ref) { chunk_release(ref); };
    tc.watchdog.connect_timeout_us = std::min<uint64_t>(3'000'000, o.connect_timeout_us);
    s.chunks = ChunkPool::create(ring_name("chunks", 0), chunks, o.chunk_bytes,
                                 port::port_socket(ports[0]->id), err);
    if (!s.chunks) return false;
    if (o.compress) tc.stripe.features |= stripe::kFeatureCompress; // asked for in every hello
    if (o.multiplexed_tunnel()) tc.stripe.features |= stripe::kFeatureTunnel;
    s.tx = std::make_unique<session::TxCore>(tc, s.out, rng);
    // With a key each chunk carries its 16-byte tag after the input
    // bytes, sealed in place in the chunk buffer: read less per chunk.
    const uint32_t input_per_chunk = o.keyed ? o.chunk_bytes - uint32_t(stripe::kAeadTagBytes) : o.chunk_bytes;
    if (o.leglimit) s.limit_bytes = o.leglimit * uint64_t(input_per_chunk);
    pipeio::ReaderConfig rc;
    rc.source = o.prbs ? pipeio::ReaderSource::PRBS : pipeio::ReaderSource::FD;
    rc.fd = o.input_fd; // stdin, or the tunnel's pipe
    rc.chunk_bytes = o.chunk_bytes;
    rc.tail_room = o.chunk_bytes - input_per_chunk;
    rc.chunks = chunks;
    rc.memory = s.chunks->memory(); // stdin lands in hugepages the segments point at
    rc.prbs_seed = o.prbs_seed;
    rc.prbs_bytes = o.size;
    rc.cpus = node_cpus(port::port_socket(ports[0]->id));
    if (o.charmode) rc.flush_idle_us = 0; // each read leaves as it is: latency first
    s.rate = session::RateLimiter(o.rate);
    // Who sums the stripe's CRCs. The reader thread is the pipeline's
    // serial stage (the kernel's copy of stdin is most of its time), so
    // without compression the session lcore sums each chunk as it takes
    // it: 0.333-0.349 s against 0.357-0.380 s for 1 GiB over memif with
    // one lcore per side (docs/benchmarks.md, "Who sums tx's CRCs").
    // `compress` keeps them on the reader, over each piece just read:
    // the deflate pool needs the original bytes' CRCs before it runs.
    if (o.compress)
        rc.on_piece = [](void *ctx, pipeio::Chunk &c, const uint8_t *p, size_t n) {
            auto *running = static_cast<uint64_t *>(ctx);
            c.sums[0] = stripe::crc32c(p, n, static_cast<uint32_t>(c.sums[0]));
            *running = stripe::crc64(p, n, *running);
            c.sums[1] = *running;
        };
    rc.on_piece_ctx = &s.reader_digest;
    s.reader_sums = rc.on_piece != nullptr;
    s.reader = std::make_unique<pipeio::PipeReader>(rc);
    s.by_index.assign(chunks, nullptr);
    if (o.compress) {
        pipeio::CodecPoolConfig cc;
        cc.kind = pipeio::CodecKind::COMPRESS;
        cc.threads = o.compress_threads;
        cc.max_chunk_bytes = o.chunk_bytes;
        cc.depth = 2;
        cc.cpus = rc.cpus;
        s.deflate = std::make_unique<pipeio::CodecPool>(cc);
    }
    return true;
}

// Connections accepted on `rx PORT` -> the RxCore -> stdout.
bool Impl::setup_rx_session(std::string &err) {
    Session &s = session;
    session::RxConfig rc;
    for (auto &p : ports)
        for (const auto &a : p->addrs) rc.local_ips.push_back(tcp_addr(a));
    rc.port = o.listen_port;
    rc.tcp.send_buffer = kSendBuffer;
    rc.stripe.codec = o.compat ? stripe::Codec::VIAMILLIPEDE : stripe::Codec::NATIVE;
    rc.stripe.max_legs = 64;
    rc.stripe.max_chunk_bytes = 2u << 20;
    rc.stripe.window_chunks = 32;
    // Compressed chunks are always accepted in the native format:
    // the sender decides (`compress`); the pool idles otherwise.
    if (!o.compat) rc.stripe.features |= stripe::kFeatureCompress;
    if (o.multiplexed_tunnel()) rc.stripe.features |= stripe::kFeatureTunnel;
    std::memcpy(rc.stripe.checkphrase, o.checkphrase, 4);
    if (o.keyed) {
        if (!make_aead(s.aead_rx, err)) return false;
        rc.stripe.aead = s.aead_rx.get();
    }
    rc.linger_us = 3'000'000; // serve a sender whose end acknowledgement was lost; then exit
    s.rx = std::make_unique<session::RxCore>(rc, s.out);
    pipeio::WriterConfig wc;
    wc.sink = o.prbs ? pipeio::WriterSink::PRBS_VERIFY : pipeio::WriterSink::FD;
    wc.fd = o.output_fd; // stdout, or the tunnel's pipe
    if (o.output_fd != 1) wc.name = o.duplex && !o.compat ? "the tunnel" : "the connection";
    wc.prbs_seed = o.prbs_seed;
    wc.cpus = node_cpus(port::port_socket(ports[0]->id));
    s.writer = std::make_unique<pipeio::PipeWriter>(wc);
    if (!o.compat) {
        pipeio::CodecPoolConfig cc;
        cc.kind = pipeio::CodecKind::DECOMPRESS;
        cc.threads = o.compress_threads;
        cc.max_chunk_bytes = rc.stripe.max_chunk_bytes;
        cc.depth = 2;
        cc.cpus = wc.cpus;
        s.inflate = std::make_unique<pipeio::CodecPool>(cc);
        // One buffer per job in the pool and two more for the writer.
        s.inflate_slots = s.inflate->capacity() + 2;
        s.inflate_bytes = rc.stripe.max_chunk_bytes;
        s.inflate_mem.reset(new uint8_t[size_t(s.inflate_slots) * s.inflate_bytes]);
        s.inflate_payload.assign(s.inflate_slots, 0);
    }
    return true;
}

bool Impl::setup(std::string &err) {
    hz = rte_get_tsc_hz();
    tsc0 = rte_get_tsc_cycles();
    rx_drop_rng = tcp::SeededRandom(o.drop_seed);
    std::vector<unsigned> ids{rte_get_main_lcore()};
    unsigned l;
    RTE_LCORE_FOREACH_WORKER(l) ids.push_back(l);
    plan = plan_lcores(ids, o.workers);
    lcore_stats = std::vector<LcoreStats>(plan.lcores.size());
    // Telemetry answers as soon as the ports start (before the session's
    // first snapshot): it must already name the mode then.
    stats::TransferSnapshot first;
    first.tx = o.tx;
    first.duplex = o.duplex;
    board.publish(first);
    if (!(setup_ports(err) && setup_workers(err) && setup_session(err))) return false;
    for (uint16_t id : started)
        if (!port::start_device(id, false, err)) return false;
    return true;
}

void Impl::teardown() {
    Session &s = session;
    // (The pools' jobs point into reader chunks and the reorder window.)
    if (s.deflate) s.deflate->stop();
    if (s.inflate) s.inflate->stop();
    if (s.reader) {
        if (s.pending) {
            s.reader->release(s.pending);
            s.pending = nullptr;
        }
        s.reader->stop();
    }
    if (s.writer) {
        s.writer->stop();
        pipeio::Completion c;
        while (s.writer->poll_done(c)) {
        }
    }
    // The session's chunk references, then the connections' (their queues
    // hold mbufs and chunks), then what waits in rings and buffers.
    s.tx.reset();
    s.rx.reset();
    for (auto &w : workers) {
        w->host.reset();
        for (auto &b : w->tx)
            if (b.n) {
                rte_pktmbuf_free_bulk(b.pkts, b.n);
                b.n = 0;
            }
        rte_mbuf *m;
        if (w->pkts) {
            while (rte_ring_sc_dequeue(w->pkts, reinterpret_cast<void **>(&m)) == 0) rte_pktmbuf_free(m);
            rte_ring_free(w->pkts);
        }
        if (w->cmds) rte_ring_free(w->cmds);
        if (w->reports) rte_ring_free(w->reports);
    }
    for (auto &b : owner_tx)
        if (b.n) {
            rte_pktmbuf_free_bulk(b.pkts, b.n);
            b.n = 0;
        }
    if (owner_ring) {
        rte_mbuf *m;
        while (rte_ring_sc_dequeue(owner_ring, reinterpret_cast<void **>(&m)) == 0) rte_pktmbuf_free(m);
        rte_ring_free(owner_ring);
        owner_ring = nullptr;
    }
    for (auto &p : ports) {
        if (p->tx_handoff) {
            rte_mbuf *m;
            while (rte_ring_sc_dequeue(p->tx_handoff, reinterpret_cast<void **>(&m)) == 0) rte_pktmbuf_free(m);
            rte_ring_free(p->tx_handoff);
            p->tx_handoff = nullptr;
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
    // Stopping a port frees what its queues hold: extbuf segments drop
    // their chunk references (into the chunk pool's ring) then. A memif
    // server first lets its client's disconnect finish (port.h).
    port::stop_ports(started);
    started.clear();
    workers.clear();
    s.reader.reset();
    s.writer.reset();
    if (!free_memory) {
        if (s.chunks) s.chunks->leave_memory_to_eal_cleanup();
        attach_pool = nullptr;
        rx_pool = nullptr;
    }
    s.chunks.reset();
    ports.clear();
    conns.reset();
    if (attach_pool) {
        rte_mempool_free(attach_pool);
        attach_pool = nullptr;
    }
    if (rx_pool) {
        rte_mempool_free(rx_pool);
        rx_pool = nullptr;
    }
}

} // namespace millipede::dataplane

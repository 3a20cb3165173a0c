// dpi::Engine on real nDPI: hand-built DNS and HTTP exchanges, the give-up
// rule, a flow moved between two engines, and the FTP control connection of
// a real capture read with libpcap.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <pcap/pcap.h>

#include "millipede/dpi/engine_builder.h"
#include "millipede/dpi/inspector.h"

extern "C" {
#include <ndpi/ndpi_api.h>
}

namespace {

using millipede::dpi::Engine;
using millipede::dpi::Protocol;
using millipede::dpi::Verdict;

// An IPv4 packet (no L2) with a TCP or UDP header and `payload`.
std::vector<uint8_t> ipv4(uint8_t proto, const char *src, const char *dst, uint16_t sport, uint16_t dport,
                          const std::string &payload, uint8_t tcp_flags = 0x18, uint32_t seq = 1, uint32_t ack = 1) {
    size_t l4 = proto == 6 ? 20 : 8;
    std::vector<uint8_t> p(20 + l4 + payload.size(), 0);
    p[0] = 0x45;
    uint16_t tot = htons(static_cast<uint16_t>(p.size()));
    std::memcpy(&p[2], &tot, 2);
    p[8] = 64;
    p[9] = proto;
    inet_pton(AF_INET, src, &p[12]);
    inet_pton(AF_INET, dst, &p[16]);
    uint16_t sp = htons(sport), dp = htons(dport);
    std::memcpy(&p[20], &sp, 2);
    std::memcpy(&p[22], &dp, 2);
    if (proto == 6) {
        uint32_t s = htonl(seq), a = htonl(ack);
        std::memcpy(&p[24], &s, 4);
        std::memcpy(&p[28], &a, 4);
        p[32] = 5 << 4;
        p[33] = tcp_flags;
        p[34] = 0xff;
        p[35] = 0xff;
    } else {
        uint16_t ul = htons(static_cast<uint16_t>(8 + payload.size()));
        std::memcpy(&p[24], &ul, 2);
    }
    std::memcpy(&p[20 + l4], payload.data(), payload.size());
    return p;
}

std::string dns_query(const char *name, bool response) {
    std::string q = {'\x12', '\x34', response ? '\x81' : '\x01', response ? '\x80' : '\x00', 0, 1, 0,
                     char(response ? 1 : 0), 0, 0, 0, 0};
    std::string n = name;
    size_t start = 0;
    while (start < n.size()) {
        size_t dot = n.find('.', start);
        if (dot == std::string::npos) dot = n.size();
        q.push_back(static_cast<char>(dot - start));
        q += n.substr(start, dot - start);
        start = dot + 1;
    }
    q += std::string("\0\0\x01\0\x01", 5);
    if (response) q += std::string("\xc0\x0c\0\x01\0\x01\0\0\x0e\x10\0\x04\x5d\xb8\xd8\x22", 16);
    return q;
}

struct Flow {
    std::vector<unsigned char> mem;
    void *p;
    Verdict v;
    uint64_t packets = 0;
    Flow() : mem(Engine::flow_size() + millipede::dpi::kFlowAlign) {
        auto a = reinterpret_cast<uintptr_t>(mem.data());
        p = reinterpret_cast<void *>((a + millipede::dpi::kFlowAlign - 1) & ~(millipede::dpi::kFlowAlign - 1));
    }
};

bool feed(Engine &e, Flow &f, const std::vector<uint8_t> &pkt, uint64_t ms) {
    return e.process(f.p, f.v, pkt.data(), static_cast<uint16_t>(pkt.size()), ms, pkt[9], ++f.packets);
}

std::unique_ptr<Engine> engine() {
    std::string err;
    auto e = Engine::create(err);
    EXPECT_TRUE(e) << err;
    return e;
}

TEST(DpiEngine, LabelsAsNdpiProtocol2Name) {
    auto e = engine();
    ASSERT_TRUE(e);
    auto names = e->names();
    ASSERT_GT(names.size(), 200u);
    EXPECT_EQ(names[NDPI_PROTOCOL_HTTP], "HTTP");
    EXPECT_EQ(names[0], "Unknown");
    // The reference is nDPI's own formatter on its own module.
    ndpi_detection_module_struct *m = ndpi_init_detection_module(ndpi_no_prefs);
    ASSERT_NE(m, nullptr);
    ndpi_finalize_initialization(m);
    for (auto [master, app] : std::vector<std::pair<uint16_t, uint16_t>>{
             {0, 0}, {0, NDPI_PROTOCOL_DNS}, {NDPI_PROTOCOL_TLS, NDPI_PROTOCOL_GOOGLE},
             {NDPI_PROTOCOL_DNS, NDPI_PROTOCOL_DNS}, {NDPI_PROTOCOL_HTTP, 0}}) {
        char buf[64];
        ndpi_protocol p{master, app, NDPI_PROTOCOL_CATEGORY_UNSPECIFIED};
        EXPECT_EQ(e->label({master, app}), ndpi_protocol2name(m, p, buf, sizeof buf)) << master << "." << app;
    }
    ndpi_exit_detection_module(m);
}

TEST(DpiEngine, DnsQueryAndResponse) {
    auto e = engine();
    ASSERT_TRUE(e);
    Flow f;
    e->init(f.p, f.v);
    feed(*e, f, ipv4(17, "10.0.0.1", "10.0.0.53", 40000, 53, dns_query("www.example.org", false)), 1000);
    feed(*e, f, ipv4(17, "10.0.0.53", "10.0.0.1", 53, 40000, dns_query("www.example.org", true)), 1001);
    EXPECT_TRUE(f.v.done);
    EXPECT_FALSE(f.v.guessed);
    EXPECT_EQ(e->name(f.v.proto.app), std::string("DNS"));
    e->finish(f.p, f.v);
    EXPECT_EQ(e->name(f.v.proto.app), std::string("DNS"));
}

TEST(DpiEngine, HttpAfterHandshakeAndMovedBetweenEngines) {
    auto a = engine(), b = engine();
    ASSERT_TRUE(a && b);
    Flow f;
    a->init(f.p, f.v);
    const char *c = "192.168.1.2", *s = "93.184.216.34";
    feed(*a, f, ipv4(6, c, s, 50000, 80, "", 0x02, 100, 0), 1);
    feed(*a, f, ipv4(6, s, c, 80, 50000, "", 0x12, 500, 101), 2);
    // The flow migrates: the second engine continues it (see the contract).
    feed(*b, f, ipv4(6, c, s, 50000, 80, "", 0x10, 101, 501), 3);
    std::string get = "GET /index.html HTTP/1.1\r\nHost: www.example.org\r\nUser-Agent: curl/7.88\r\nAccept: */*\r\n\r\n";
    feed(*b, f, ipv4(6, c, s, 50000, 80, get, 0x18, 101, 501), 4);
    std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello";
    feed(*b, f, ipv4(6, s, c, 80, 50000, resp, 0x18, 501, 101 + uint32_t(get.size())), 5);
    b->finish(f.p, f.v);
    EXPECT_FALSE(f.v.guessed);
    EXPECT_TRUE(f.v.proto.app == NDPI_PROTOCOL_HTTP || f.v.proto.master == NDPI_PROTOCOL_HTTP)
        << b->label(f.v.proto);
}

TEST(DpiEngine, UdpGivesUpAfter24PacketsLikeNdpiReader) {
    auto e = engine();
    ASSERT_TRUE(e);
    Flow f;
    e->init(f.p, f.v);
    std::string noise(64, '\0');
    for (unsigned i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>(i * 37 + 11);
    unsigned done_at = 0;
    for (unsigned i = 1; i <= 40 && !done_at; ++i) {
        noise[0] = static_cast<char>(i);
        if (feed(*e, f, ipv4(17, "10.1.1.1", "10.2.2.2", 31337, 31338, noise), i)) done_at = i;
    }
    EXPECT_EQ(done_at, millipede::dpi::kUdpGiveUpPackets + 1);
    EXPECT_EQ(f.v.packets, done_at);
    EXPECT_EQ(f.v.proto.app, 0) << e->label(f.v.proto);
    // Done: later packets are not inspected.
    EXPECT_TRUE(feed(*e, f, ipv4(17, "10.1.1.1", "10.2.2.2", 31337, 31338, noise), 50));
    EXPECT_EQ(f.v.packets, done_at);
    e->finish(f.p, f.v);
}

TEST(DpiEngine, GiveUpGuessesByPort) {
    auto e = engine();
    ASSERT_TRUE(e);
    Flow f;
    e->init(f.p, f.v);
    // One SYN to port 443: nothing to inspect, so the verdict is a guess.
    feed(*e, f, ipv4(6, "10.0.0.1", "10.0.0.2", 40001, 443, "", 0x02, 7, 0), 1);
    EXPECT_FALSE(f.v.done);
    e->finish(f.p, f.v);
    EXPECT_TRUE(f.v.done);
    EXPECT_TRUE(f.v.guessed);
    EXPECT_EQ(e->label(f.v.proto), "TLS");
}

// Packets of a capture (Ethernet, IPv4, no VLAN), grouped by 5-tuple in
// either direction, fed in capture order with the capture's time.
TEST(DpiEngine, RealFtpCaptureControlConnection) {
    std::string path = std::string(MILLIPEDE_PCAPS_DIR) + "/ftp.pcap";
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(path.c_str(), errbuf);
    ASSERT_NE(pc, nullptr) << "cannot read the shared capture " << path << ": " << errbuf
                           << " (tests need ../shared/pcaps)";
    auto e = engine();
    ASSERT_TRUE(e);
    using Key = std::tuple<uint32_t, uint32_t, uint16_t, uint16_t, uint8_t>;
    std::map<Key, Flow> flows;
    pcap_pkthdr *h;
    const u_char *data;
    while (pcap_next_ex(pc, &h, &data) == 1) {
        if (h->caplen < 14 + 20 || data[12] != 0x08 || data[13] != 0x00) continue;
        const uint8_t *ip = data + 14;
        uint32_t a, b;
        std::memcpy(&a, ip + 12, 4);
        std::memcpy(&b, ip + 16, 4);
        unsigned ihl = (ip[0] & 15) * 4;
        uint16_t sp = uint16_t(ip[ihl] << 8 | ip[ihl + 1]), dp = uint16_t(ip[ihl + 2] << 8 | ip[ihl + 3]);
        Key k = a < b || (a == b && sp < dp) ? Key{a, b, sp, dp, ip[9]} : Key{b, a, dp, sp, ip[9]};
        auto [it, fresh] = flows.try_emplace(k);
        if (fresh) e->init(it->second.p, it->second.v);
        uint64_t ms = uint64_t(h->ts.tv_sec) * 1000 + uint64_t(h->ts.tv_usec) / 1000;
        e->process(it->second.p, it->second.v, ip, static_cast<uint16_t>(h->caplen - 14), ms, ip[9],
                   ++it->second.packets);
    }
    pcap_close(pc);
    ASSERT_EQ(flows.size(), 3u);
    unsigned ftp_control = 0;
    for (auto &[k, f] : flows) {
        e->finish(f.p, f.v);
        if (std::get<2>(k) == 21 || std::get<3>(k) == 21) {
            ++ftp_control;
            EXPECT_EQ(e->label(f.v.proto), "FTP_CONTROL");
            EXPECT_FALSE(f.v.guessed);
            EXPECT_EQ(f.packets, 68u);
        }
    }
    EXPECT_EQ(ftp_control, 1u);
}

} // namespace

// EngineBuilder: engines built ahead on its helper thread, plus any still
// missing, minus any surplus; each one detects like an engine built in place.
TEST(DpiEngineBuilder, ReturnsExactlyTheCountAskedWhateverWasBuiltAhead) {
    for (auto [ahead, wanted] : {std::pair{2u, 2u}, {1u, 3u}, {3u, 1u}, {0u, 2u}}) {
        millipede::dpi::EngineBuilder b;
        b.start(ahead);
        std::string err;
        auto engines = b.take(wanted, err);
        EXPECT_EQ(b.built_ahead(), ahead) << ahead << " ahead";
        ASSERT_EQ(engines.size(), wanted) << ahead << " ahead, " << wanted << " wanted: " << err;
        for (auto &e : engines) {
            ASSERT_TRUE(e);
            Flow f;
            e->init(f.p, f.v);
            feed(*e, f, ipv4(17, "10.0.0.1", "10.0.0.53", 40000, 53, dns_query("www.example.org", false)), 1000);
            feed(*e, f, ipv4(17, "10.0.0.53", "10.0.0.1", 53, 40000, dns_query("www.example.org", true)), 1001);
            EXPECT_EQ(e->name(f.v.proto.app), std::string("DNS"));
            e->finish(f.p, f.v);
        }
    }
}

// A builder whose take() never came (set-up failed first) joins its helper.
TEST(DpiEngineBuilder, DestroyedWithoutTakeJoinsItsHelper) {
    millipede::dpi::EngineBuilder b;
    b.start(1);
}

// IpfixExporter over real sockets: a UDP collector socket on loopback gets
// the templates first, then the records, templates again when the interval
// passed; a full socket drops and counts instead of blocking; a port nobody
// listens on is counted as refused; destinations are checked.
#include <arpa/inet.h>
#include <cerrno>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipfix_decoder.h"
#include "millipede/export/ipfix_exporter.h"

namespace fe = millipede::flow_export;
using millipede::testing::IpfixDecoder;

namespace {

struct Collector {
    int fd = -1;
    uint16_t port = 0;
    Collector() {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
        socklen_t len = sizeof a;
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~Collector() { close(); }
    void close() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    // The next datagram, waiting at most 5 s; empty on timeout.
    std::vector<uint8_t> receive() {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) != 1) return {};
        std::vector<uint8_t> b(65536);
        ssize_t n = ::recv(fd, b.data(), b.size(), 0);
        b.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        return b;
    }
    bool idle() { // nothing more queued right now
        pollfd p{fd, POLLIN, 0};
        return ::poll(&p, 1, 0) == 0;
    }
};

fe::FlowView flow(uint16_t sport) {
    fe::FlowView f;
    f.proto = 17;
    inet_pton(AF_INET, "10.1.2.3", f.src);
    inet_pton(AF_INET, "10.3.2.1", f.dst);
    f.sport = sport;
    f.dport = 53;
    f.packets[0] = 1;
    f.community_id = "1:x";
    return f;
}

constexpr uint64_t kSecond = 1'000'000'000ull;

} // namespace

TEST(IpfixExporter, TemplatesFirstThenRecordsThenTemplatesAgain) {
    Collector c;
    std::string err;
    fe::IpfixExporterConfig cfg;
    cfg.destination = "127.0.0.1:" + std::to_string(c.port);
    cfg.ipfix.observation_domain = 9;
    cfg.template_interval_ns = 10 * kSecond;
    auto x = fe::IpfixExporter::open(cfg, err);
    ASSERT_TRUE(x) << err;
    EXPECT_EQ(x->peer(), cfg.destination);
    IpfixDecoder d;
    fe::ExportClock t{1000, 100 * kSecond};
    x->flush(t); // nothing to send but the templates, which are due at start
    auto m = d.decode(c.receive());
    EXPECT_EQ(m.template_records, 4u);
    EXPECT_EQ(m.domain, 9u);
    EXPECT_TRUE(c.idle());
    for (uint16_t i = 0; i < 3; ++i) x->add(flow(1000 + i), t);
    x->flush(t);
    m = d.decode(c.receive());
    ASSERT_EQ(m.records.size(), 3u);
    EXPECT_EQ(m.records[2].num(0, 7), 1002u);
    EXPECT_EQ(m.export_time, 1000u);
    EXPECT_TRUE(c.idle()) << "templates re-sent before their interval";
    // The interval passes: templates again, before the next records.
    t = {1010, 110 * kSecond};
    x->add(flow(2000), t);
    x->flush(t);
    m = d.decode(c.receive());
    EXPECT_EQ(m.template_records, 4u);
    EXPECT_EQ(m.sequence, 3u);
    m = d.decode(c.receive());
    ASSERT_EQ(m.records.size(), 1u);
    EXPECT_EQ(m.sequence, 3u);
    EXPECT_EQ(x->stats().messages.load(), 2u);
    EXPECT_EQ(x->stats().records.load(), 4u);
    EXPECT_EQ(x->stats().template_messages.load(), 2u);
    EXPECT_EQ(x->stats().dropped_messages.load(), 0u);
}

TEST(IpfixExporter, FullMessagesGoOutWithoutAFlush) {
    Collector c;
    std::string err;
    fe::IpfixExporterConfig cfg;
    cfg.destination = "127.0.0.1:" + std::to_string(c.port);
    cfg.ipfix.max_message = 512;
    auto x = fe::IpfixExporter::open(cfg, err);
    ASSERT_TRUE(x) << err;
    fe::ExportClock t{1, 1};
    for (uint16_t i = 0; i < 100; ++i) x->add(flow(i), t);
    IpfixDecoder d;
    unsigned records = 0;
    d.decode(c.receive()); // templates
    while (!c.idle()) {
        auto b = c.receive();
        EXPECT_LE(b.size(), 512u);
        records += static_cast<unsigned>(d.decode(b).records.size());
    }
    EXPECT_GT(records, 0u);
    EXPECT_LT(records, 100u); // the last message waits for its flush
    x->flush(t);
    records += static_cast<unsigned>(d.decode(c.receive()).records.size());
    EXPECT_EQ(records, 100u);
}

TEST(IpfixExporter, AFullSocketDropsAndCountsInsteadOfBlocking) {
    // A datagram socketpair whose reader does not read while the exporter
    // sends: its queue fills after a few messages, and send() then has no
    // room. The reader then drains it, and the exporter sends more.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fe::IpfixExporterConfig cfg;
    cfg.destination = "socketpair";
    cfg.ipfix.max_message = 1400;
    cfg.send_wait_ms = 1;
    auto x = fe::IpfixExporter::adopt(sv[0], cfg);
    fe::ExportClock t{1, 1};
    IpfixDecoder d;
    std::vector<uint8_t> b(65536);
    uint64_t received = 0;
    uint32_t last_seq = 0;
    bool gap = false;
    auto drain = [&] {
        for (;;) {
            ssize_t n = ::recv(sv[1], b.data(), b.size(), MSG_DONTWAIT);
            if (n <= 0) break;
            auto m = d.decode(std::vector<uint8_t>(b.begin(), b.begin() + n));
            if (!m.records.empty()) {
                if (received && m.sequence != last_seq) gap = true;
                received += m.records.size();
                last_seq = m.sequence + static_cast<uint32_t>(m.records.size());
            }
        }
    };
    const unsigned half = 2500;
    for (unsigned i = 0; i < half; ++i) x->add(flow(static_cast<uint16_t>(i)), t);
    x->flush(t);
    const auto &s = x->stats();
    EXPECT_GT(s.dropped_messages.load(), 0u);
    EXPECT_GT(s.dropped_records.load(), 0u);
    EXPECT_TRUE(s.last_errno.load() == EAGAIN || s.last_errno.load() == ENOBUFS) << s.last_errno.load();
    drain();
    for (unsigned i = half; i < 2 * half; ++i) x->add(flow(static_cast<uint16_t>(i)), t);
    x->flush(t);
    drain();
    EXPECT_EQ(s.records.load() + s.dropped_records.load(), 2 * half) << "every record is either sent or counted";
    // What did arrive decodes, and its sequence numbers show the gap.
    EXPECT_EQ(received, s.records.load());
    EXPECT_TRUE(gap) << "a dropped message leaves a gap in the sequence numbers";
    ::close(sv[1]);
}

TEST(IpfixExporter, NobodyListeningIsCountedAsRefused) {
    Collector c;
    uint16_t port = c.port;
    c.close(); // the port is free again: the kernel answers port unreachable
    std::string err;
    fe::IpfixExporterConfig cfg;
    cfg.destination = "127.0.0.1:" + std::to_string(port);
    auto x = fe::IpfixExporter::open(cfg, err);
    ASSERT_TRUE(x) << err;
    fe::ExportClock t{1, 1};
    for (int i = 0; i < 20 && x->stats().refused.load() == 0; ++i) {
        x->add(flow(static_cast<uint16_t>(i)), t);
        x->flush(t);
    }
    EXPECT_GT(x->stats().refused.load(), 0u);
    EXPECT_EQ(x->stats().last_errno.load(), ECONNREFUSED);
}

TEST(IpfixExporter, DestinationsAreChecked) {
    std::string host, port, err;
    EXPECT_TRUE(fe::split_host_port("collector.example:4739", host, port, err));
    EXPECT_EQ(host, "collector.example");
    EXPECT_EQ(port, "4739");
    EXPECT_TRUE(fe::split_host_port("[2001:db8::1]:2055", host, port, err));
    EXPECT_EQ(host, "2001:db8::1");
    for (const char *bad : {"", "host", "host:", ":4739", "host:0", "host:65536", "host:12x", "2001:db8::1:4739",
                            "[2001:db8::1]", "[2001:db8::1]4739"}) {
        err.clear();
        EXPECT_FALSE(fe::split_host_port(bad, host, port, err)) << bad;
        EXPECT_FALSE(err.empty()) << bad;
    }
    fe::IpfixExporterConfig cfg;
    cfg.destination = "no-such-host.invalid:4739";
    err.clear();
    EXPECT_FALSE(fe::IpfixExporter::open(cfg, err));
    EXPECT_NE(err.find("cannot resolve no-such-host.invalid"), std::string::npos) << err;
}

// IpfixEncoder's bytes, read back by the test's own decoder (ipfix_decoder.h):
// templates, every field of the four record kinds in both shapes (a uniflow
// per direction, one RFC 5103 biflow), sets, message size bound, sequence
// numbers (RFC 7011 3.1) and string encoding (RFC 7011 7).
#include <arpa/inet.h>
#include <cstring>
#include <gtest/gtest.h>
#include <string>

#include "ipfix_decoder.h"
#include "millipede/export/ipfix.h"

namespace fe = millipede::flow_export;
using millipede::testing::DecodedMessage;
using millipede::testing::IpfixDecoder;

namespace {

// IANA element ids and the RFC 5103 PEN spelled out here, not taken from
// the encoder's header, so a wrong constant there cannot agree with itself.
constexpr uint32_t kIana = 0, kRev = 29305, kPen = 32473;

std::vector<uint8_t> bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

fe::FlowView tcp_v4() {
    fe::FlowView f;
    f.ip_version = 4;
    f.proto = 6;
    inet_pton(AF_INET, "192.168.1.212", f.src);
    inet_pton(AF_INET, "90.130.70.73", f.dst);
    f.sport = 50694;
    f.dport = 21;
    f.first_ns = 1552590234892296000ull;
    f.last_ns = 1552590243371057000ull;
    f.packets[0] = 41;
    f.packets[1] = 27;
    f.frame_bytes[0] = 2892;
    f.frame_bytes[1] = 2679;
    f.ip_bytes[0] = 2892 - 41 * 14;
    f.ip_bytes[1] = 2679 - 27 * 14;
    f.tcp_flags[0] = 0x1b;
    f.tcp_flags[1] = 0x1a;
    f.end = fe::EndReason::Fin;
    f.dpi = true;
    f.app_label = "FTP_CONTROL";
    f.app_master = "Unknown";
    f.app_app = "FTP_CONTROL";
    f.community_id = "1:PT41VNmCC5KPaXFe6cz2sb32Lw4=";
    return f;
}

fe::FlowView udp_v6() {
    fe::FlowView f;
    f.ip_version = 6;
    f.proto = 17;
    inet_pton(AF_INET6, "2001:db8::1", f.src);
    inet_pton(AF_INET6, "2001:db8:ffff::53", f.dst);
    f.sport = 40000;
    f.dport = 53;
    f.first_ns = 1'700'000'000'123'456'789ull;
    f.last_ns = 1'700'000'001'000'000'000ull;
    f.packets[0] = 1;
    f.packets[1] = 1;
    f.frame_bytes[0] = 90;
    f.frame_bytes[1] = 200;
    f.ip_bytes[0] = 76;
    f.ip_bytes[1] = 186;
    f.end = fe::EndReason::Idle;
    f.dpi = true;
    f.app_label = "DNS.Google";
    f.app_master = "DNS";
    f.app_app = "Google";
    f.community_id = "1:abcdefghijklmnopqrstuvwxyz0=";
    return f;
}

fe::FlowView icmp(int version) {
    fe::FlowView f;
    f.ip_version = static_cast<uint8_t>(version);
    f.proto = version == 6 ? 58 : 1;
    if (version == 6) {
        inet_pton(AF_INET6, "fe80::1", f.src);
        inet_pton(AF_INET6, "fe80::2", f.dst);
    } else {
        inet_pton(AF_INET, "10.0.0.1", f.src);
        inet_pton(AF_INET, "10.0.0.2", f.dst);
    }
    f.icmp = true;
    f.icmp_type = version == 6 ? 128 : 8;
    f.icmp_code = 0;
    f.first_ns = f.last_ns = 1'600'000'000'000'000'000ull;
    f.packets[0] = 3;
    f.frame_bytes[0] = 3 * 98;
    f.ip_bytes[0] = 3 * 84;
    f.end = fe::EndReason::EndOfInput;
    return f;
}

DecodedMessage decode_all(IpfixDecoder &d, fe::IpfixEncoder &e, uint32_t t = 1000) {
    auto tm = e.templates_message(t);
    d.decode(tm);
    return d.decode(bytes(e.take(t)));
}

} // namespace

TEST(Ipfix, TemplateMessageDescribesFourTemplates) {
    fe::IpfixEncoder e({.observation_domain = 7, .enterprise = kPen, .biflow = true});
    IpfixDecoder d;
    auto m = d.decode(e.templates_message(1234));
    EXPECT_EQ(m.version, 10);
    EXPECT_EQ(m.export_time, 1234u);
    EXPECT_EQ(m.domain, 7u);
    EXPECT_EQ(m.sequence, 0u);
    ASSERT_EQ(m.set_ids, std::vector<uint16_t>{2});
    EXPECT_EQ(m.template_records, 4u);
    for (uint16_t tid : {256, 257, 258, 259}) ASSERT_TRUE(d.templates.count(tid)) << tid;
    // Addresses per family, ports or ICMP type/code, our strings variable-length.
    auto has = [&](uint16_t tid, uint32_t pen, uint16_t id, uint16_t len) {
        for (auto &f : d.templates[tid])
            if (f.enterprise == pen && f.id == id) return f.length == len;
        return false;
    };
    EXPECT_TRUE(has(256, kIana, 8, 4) && has(256, kIana, 12, 4) && has(256, kIana, 7, 2) && has(256, kIana, 11, 2));
    EXPECT_TRUE(has(257, kIana, 27, 16) && has(257, kIana, 28, 16));
    EXPECT_TRUE(has(258, kIana, 32, 2) && !has(258, kIana, 7, 2));
    EXPECT_TRUE(has(259, kIana, 139, 2) && has(259, kIana, 27, 16));
    for (uint16_t tid : {256, 257, 258, 259}) {
        EXPECT_TRUE(has(tid, kIana, 4, 1) && has(tid, kIana, 152, 8) && has(tid, kIana, 153, 8)) << tid;
        EXPECT_TRUE(has(tid, kIana, 2, 8) && has(tid, kIana, 1, 8) && has(tid, kIana, 352, 8)) << tid;
        EXPECT_TRUE(has(tid, kRev, 2, 8) && has(tid, kRev, 1, 8) && has(tid, kRev, 352, 8)) << tid;
        EXPECT_TRUE(has(tid, kIana, 136, 1)) << tid;
        EXPECT_TRUE(has(tid, kPen, 1, 65535) && has(tid, kPen, 2, 65535)) << tid;
    }
    EXPECT_TRUE(has(256, kIana, 6, 2) && has(256, kRev, 6, 2));
    EXPECT_FALSE(has(258, kIana, 6, 2));
}

TEST(Ipfix, UniflowTemplatesHaveNoReverseElements) {
    fe::IpfixEncoder e({.enterprise = kPen});
    IpfixDecoder d;
    auto m = d.decode(e.templates_message(1));
    EXPECT_EQ(m.template_records, 4u);
    for (uint16_t tid : {256, 257, 258, 259}) {
        unsigned ours = 0, direction = 0;
        for (auto &f : d.templates[tid]) {
            EXPECT_NE(f.enterprise, kRev) << tid << " has reverse element " << f.id;
            ours += f.enterprise == kPen;
            direction += f.enterprise == kIana && f.id == 239 && f.length == 1;
        }
        EXPECT_EQ(ours, 2u) << tid;
        EXPECT_EQ(direction, 1u) << tid << ": biflowDirection";
    }
}

TEST(Ipfix, UniflowsAreOneRecordPerDirectionThatSent) {
    fe::IpfixEncoder e({.enterprise = kPen});
    IpfixDecoder d;
    EXPECT_EQ(e.add(tcp_v4()), 2u);
    EXPECT_EQ(e.add(icmp(4)), 1u); // the responder sent nothing: no record for it
    auto m = decode_all(d, e);
    ASSERT_EQ(m.records.size(), 3u);
    const auto &a = m.records[0], &b = m.records[1];
    EXPECT_EQ(a.raw(kIana, 8), (std::vector<uint8_t>{192, 168, 1, 212}));
    EXPECT_EQ(b.raw(kIana, 8), (std::vector<uint8_t>{90, 130, 70, 73})); // the responder's: swapped
    EXPECT_EQ(b.raw(kIana, 12), (std::vector<uint8_t>{192, 168, 1, 212}));
    EXPECT_EQ(a.num(kIana, 7), 50694u);
    EXPECT_EQ(b.num(kIana, 7), 21u);
    EXPECT_EQ(b.num(kIana, 11), 50694u);
    EXPECT_EQ(a.num(kIana, 239), 1u); // initiator
    EXPECT_EQ(b.num(kIana, 239), 2u); // reverseInitiator
    EXPECT_EQ(a.num(kIana, 2), 41u);
    EXPECT_EQ(b.num(kIana, 2), 27u);
    EXPECT_EQ(a.num(kIana, 1), 2892u - 41 * 14);
    EXPECT_EQ(b.num(kIana, 1), 2679u - 27 * 14);
    EXPECT_EQ(b.num(kIana, 352), 2679u);
    EXPECT_EQ(a.num(kIana, 6), 0x1bu);
    EXPECT_EQ(b.num(kIana, 6), 0x1au);
    for (const auto *r : {&a, &b}) {
        EXPECT_EQ(r->num(kIana, 152), 1552590234892u);
        EXPECT_EQ(r->num(kIana, 153), 1552590243371u);
        EXPECT_EQ(r->num(kIana, 136), 3u);
        EXPECT_EQ(r->str(kPen, 1), "FTP_CONTROL");
        EXPECT_EQ(r->str(kPen, 2), "1:PT41VNmCC5KPaXFe6cz2sb32Lw4=");
        EXPECT_FALSE(r->has(kRev, 2));
    }
    EXPECT_EQ(m.records[2].template_id, 258);
    EXPECT_EQ(m.records[2].num(kIana, 239), 1u);
    EXPECT_EQ(e.sequence(), 3u) << "both records of a flow count";
}

TEST(Ipfix, TcpV4BiflowRecordRoundTrips) {
    fe::IpfixEncoder e({.observation_domain = 42, .biflow = true});
    IpfixDecoder d;
    fe::FlowView f = tcp_v4();
    ASSERT_TRUE(e.add(f));
    auto m = decode_all(d, e, 1552590300);
    EXPECT_EQ(m.domain, 42u);
    EXPECT_EQ(m.export_time, 1552590300u);
    ASSERT_EQ(m.records.size(), 1u);
    const auto &r = m.records[0];
    EXPECT_EQ(r.template_id, 256);
    EXPECT_EQ(r.raw(kIana, 8), (std::vector<uint8_t>{192, 168, 1, 212}));
    EXPECT_EQ(r.raw(kIana, 12), (std::vector<uint8_t>{90, 130, 70, 73}));
    EXPECT_EQ(r.num(kIana, 7), 50694u);
    EXPECT_EQ(r.num(kIana, 11), 21u);
    EXPECT_EQ(r.num(kIana, 4), 6u);
    EXPECT_EQ(r.num(kIana, 152), 1552590234892u);
    EXPECT_EQ(r.num(kIana, 153), 1552590243371u);
    EXPECT_EQ(r.num(kIana, 2), 41u);
    EXPECT_EQ(r.num(kRev, 2), 27u);
    EXPECT_EQ(r.num(kIana, 1), 2892u - 41 * 14);
    EXPECT_EQ(r.num(kRev, 1), 2679u - 27 * 14);
    EXPECT_EQ(r.num(kIana, 352), 2892u);
    EXPECT_EQ(r.num(kRev, 352), 2679u);
    EXPECT_EQ(r.num(kIana, 6), 0x1bu);
    EXPECT_EQ(r.num(kRev, 6), 0x1au);
    EXPECT_EQ(r.num(kIana, 136), 3u); // end of flow detected
    EXPECT_EQ(r.num(kIana, 239), 1u); // the source is the initiator
    EXPECT_EQ(r.str(kPen, 1), "FTP_CONTROL");
    EXPECT_EQ(r.str(kPen, 2), "1:PT41VNmCC5KPaXFe6cz2sb32Lw4=");
}

TEST(Ipfix, UdpV6AndIcmpRecordsUseTheirTemplates) {
    fe::IpfixEncoder e({.biflow = true});
    IpfixDecoder d;
    ASSERT_TRUE(e.add(udp_v6()));
    ASSERT_TRUE(e.add(icmp(4)));
    ASSERT_TRUE(e.add(icmp(4)));
    ASSERT_TRUE(e.add(icmp(6)));
    auto m = decode_all(d, e);
    // A new set whenever the template changes; consecutive records share one.
    EXPECT_EQ(m.set_ids, (std::vector<uint16_t>{257, 258, 259}));
    ASSERT_EQ(m.records.size(), 4u);
    const auto &v6 = m.records[0];
    uint8_t a[16];
    inet_pton(AF_INET6, "2001:db8::1", a);
    EXPECT_EQ(v6.raw(kIana, 27), std::vector<uint8_t>(a, a + 16));
    inet_pton(AF_INET6, "2001:db8:ffff::53", a);
    EXPECT_EQ(v6.raw(kIana, 28), std::vector<uint8_t>(a, a + 16));
    EXPECT_EQ(v6.num(kIana, 11), 53u);
    EXPECT_EQ(v6.num(kIana, 4), 17u);
    EXPECT_EQ(v6.num(kIana, 152), 1'700'000'000'123u); // milliseconds, truncated
    EXPECT_EQ(v6.num(kIana, 136), 1u);                 // idle timeout
    EXPECT_EQ(v6.str(kPen, 1), "DNS.Google");
    const auto &i4 = m.records[1];
    EXPECT_EQ(i4.num(kIana, 32), 8u << 8); // echo request: type 8, code 0
    EXPECT_EQ(i4.num(kIana, 4), 1u);
    EXPECT_EQ(i4.num(kIana, 136), 4u); // forced end
    EXPECT_EQ(i4.num(kIana, 1), 3u * 84);
    EXPECT_EQ(i4.num(kRev, 2), 0u);
    EXPECT_EQ(i4.str(kPen, 1), ""); // no inspection: empty string
    EXPECT_EQ(m.records[3].num(kIana, 139), 128u << 8);
}

TEST(Ipfix, SequenceCountsDataRecordsOfEarlierMessages) {
    fe::IpfixEncoder e({.observation_domain = 1, .biflow = true});
    IpfixDecoder d;
    d.decode(e.templates_message(1));
    for (int i = 0; i < 3; ++i) e.add(tcp_v4());
    auto m1 = d.decode(bytes(e.take(10)));
    EXPECT_EQ(m1.sequence, 0u);
    EXPECT_EQ(m1.records.size(), 3u);
    // Templates carry the current sequence number and do not advance it.
    auto t = d.decode(e.templates_message(11));
    EXPECT_EQ(t.sequence, 3u);
    e.add(udp_v6());
    auto m2 = d.decode(bytes(e.take(12)));
    EXPECT_EQ(m2.sequence, 3u);
    e.add(icmp(4));
    auto m3 = d.decode(bytes(e.take(13)));
    EXPECT_EQ(m3.sequence, 4u);
    EXPECT_EQ(e.sequence(), 5u);
    EXPECT_TRUE(e.take(14).empty()); // nothing pending: no message, no sequence change
    EXPECT_EQ(e.sequence(), 5u);
}

TEST(Ipfix, MessagesStayWithinTheSizeLimit) {
    for (bool biflow : {false, true})
    for (std::size_t limit : {512u, 1400u, 9000u}) {
        fe::IpfixEncoder e({.max_message = limit, .biflow = biflow});
        IpfixDecoder d;
        d.decode(e.templates_message(1));
        unsigned added = 0, records = 0, decoded = 0, messages = 0;
        const unsigned total = 500;
        auto drain = [&] {
            auto msg = bytes(e.take(2));
            EXPECT_LE(msg.size(), limit);
            auto m = d.decode(msg);
            decoded += static_cast<unsigned>(m.records.size());
            ++messages;
        };
        while (added < total) {
            fe::FlowView f = added % 3 == 0 ? tcp_v4() : added % 3 == 1 ? udp_v6() : icmp(6);
            f.packets[0] = added; // tells records apart
            if (unsigned n = e.add(f)) {
                ++added;
                records += n;
                continue;
            }
            ASSERT_GT(e.pending_records(), 0u) << "a record did not fit an empty message";
            drain();
        }
        drain();
        EXPECT_EQ(decoded, records) << limit;
        unsigned expected = total; // uniflows: tcp and udp flows have a responder record, icmp not
        for (unsigned i = 0; i < total; ++i) expected += !biflow && i % 3 != 2;
        EXPECT_EQ(records, expected) << limit;
        EXPECT_GT(messages, 1u);
    }
}

TEST(Ipfix, LongStringsAreCutAndStillDecode) {
    // The largest a flow gets: IPv6, both directions, both strings too long;
    // in the smallest message, in both shapes.
    for (bool biflow : {false, true}) {
        fe::IpfixEncoder e({.max_message = 512, .biflow = biflow});
        IpfixDecoder d;
        std::string long_name(1000, 'x'), long_id(1000, 'y');
        fe::FlowView f = udp_v6();
        f.app_label = long_name;
        f.community_id = long_id;
        ASSERT_EQ(e.add(f), biflow ? 1u : 2u) << "a flow's records must fit an empty message";
        auto m = decode_all(d, e);
        ASSERT_EQ(m.records.size(), biflow ? 1u : 2u);
        for (const auto &r : m.records) {
            EXPECT_EQ(r.str(kPen, 1), std::string(64, 'x'));
            EXPECT_EQ(r.str(kPen, 2), std::string(64, 'y'));
        }
    }
}

TEST(Ipfix, ConfiguredEnterpriseNumberIsUsed) {
    fe::IpfixEncoder e({.enterprise = 4242});
    IpfixDecoder d;
    e.add(tcp_v4());
    auto m = decode_all(d, e);
    ASSERT_EQ(m.records.size(), 2u);
    for (const auto &r : m.records) {
        EXPECT_EQ(r.str(4242, 1), "FTP_CONTROL");
        EXPECT_FALSE(r.has(kPen, 1));
    }
}

TEST(Ipfix, EndReasonsMapToIanaValues) {
    EXPECT_EQ(fe::ipfix_end_reason(fe::EndReason::Idle), fe::IpfixEndReason::IdleTimeout);
    EXPECT_EQ(static_cast<int>(fe::ipfix_end_reason(fe::EndReason::Rst)), 3);
    EXPECT_EQ(static_cast<int>(fe::ipfix_end_reason(fe::EndReason::Reused)), 3);
    EXPECT_EQ(static_cast<int>(fe::ipfix_end_reason(fe::EndReason::Evicted)), 5);
    EXPECT_EQ(static_cast<int>(fe::ipfix_end_reason(fe::EndReason::EndOfInput)), 4);
}

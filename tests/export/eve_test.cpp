// eve.json flow events parsed back with jansson (a JSON parser we did not
// write): Suricata's field names and JSON types, values, the ICMP and
// non-TCP variants, app_proto names, escaping.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <memory>
#include <string>

#include "millipede/export/eve.h"

namespace fe = millipede::flow_export;

namespace {

struct JsonDeleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDeleter>;

Json parse_line(const std::string &line) {
    EXPECT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line per event";
    json_error_t e;
    json_t *j = json_loads(line.c_str(), 0, &e);
    EXPECT_NE(j, nullptr) << e.text << " in " << line;
    return Json(j);
}

json_t *at(json_t *o, const char *path) { // "flow.pkts_toserver"
    std::string p(path);
    std::size_t dot = p.find('.');
    json_t *v = json_object_get(o, p.substr(0, dot).c_str());
    if (dot == std::string::npos || !v) return v;
    return json_object_get(v, p.substr(dot + 1).c_str());
}
std::string text(json_t *o, const char *path) {
    json_t *v = at(o, path);
    EXPECT_TRUE(v && json_is_string(v)) << path;
    return v && json_is_string(v) ? json_string_value(v) : "";
}
long long integer(json_t *o, const char *path) {
    json_t *v = at(o, path);
    EXPECT_TRUE(v && json_is_integer(v)) << path;
    return v && json_is_integer(v) ? json_integer_value(v) : -1;
}

fe::FlowView ftp() {
    fe::FlowView f;
    f.proto = 6;
    inet_pton(AF_INET, "192.168.1.212", f.src);
    inet_pton(AF_INET, "90.130.70.73", f.dst);
    f.sport = 50694;
    f.dport = 21;
    f.first_ns = 1552590234892296123ull;
    f.last_ns = 1552590243371057999ull;
    f.packets[0] = 41;
    f.packets[1] = 27;
    f.frame_bytes[0] = 2892;
    f.frame_bytes[1] = 2679;
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

std::string eve(const fe::FlowView &f) {
    std::string s;
    fe::append_eve(s, f);
    return s;
}

} // namespace

TEST(Eve, TcpFlowHasSuricatasFieldsAndTypes) {
    Json j = parse_line(eve(ftp()));
    json_t *o = j.get();
    EXPECT_EQ(text(o, "timestamp"), "2019-03-14T19:04:03.371057+0000");
    EXPECT_EQ(text(o, "event_type"), "flow");
    EXPECT_GT(integer(o, "flow_id"), 0);
    EXPECT_LT(integer(o, "flow_id"), 1ll << 51);
    EXPECT_EQ(text(o, "src_ip"), "192.168.1.212");
    EXPECT_EQ(integer(o, "src_port"), 50694);
    EXPECT_EQ(text(o, "dest_ip"), "90.130.70.73");
    EXPECT_EQ(integer(o, "dest_port"), 21);
    EXPECT_EQ(text(o, "proto"), "TCP");
    EXPECT_EQ(text(o, "app_proto"), "ftp");
    EXPECT_EQ(integer(o, "flow.pkts_toserver"), 41);
    EXPECT_EQ(integer(o, "flow.pkts_toclient"), 27);
    EXPECT_EQ(integer(o, "flow.bytes_toserver"), 2892);
    EXPECT_EQ(integer(o, "flow.bytes_toclient"), 2679);
    EXPECT_EQ(text(o, "flow.start"), "2019-03-14T19:03:54.892296+0000");
    EXPECT_EQ(text(o, "flow.end"), "2019-03-14T19:04:03.371057+0000");
    EXPECT_EQ(integer(o, "flow.age"), 9);
    EXPECT_EQ(text(o, "flow.state"), "closed");
    EXPECT_EQ(text(o, "flow.reason"), "timeout");
    EXPECT_TRUE(json_is_false(at(o, "flow.alerted")));
    EXPECT_EQ(text(o, "community_id"), "1:PT41VNmCC5KPaXFe6cz2sb32Lw4=");
    EXPECT_EQ(text(o, "tcp.tcp_flags"), "1b");
    EXPECT_EQ(text(o, "tcp.tcp_flags_ts"), "1b");
    EXPECT_EQ(text(o, "tcp.tcp_flags_tc"), "1a");
    for (const char *flag : {"tcp.syn", "tcp.fin", "tcp.psh", "tcp.ack"}) EXPECT_TRUE(json_is_true(at(o, flag))) << flag;
    for (const char *flag : {"tcp.rst", "tcp.urg", "tcp.ecn", "tcp.cwr"}) EXPECT_EQ(at(o, flag), nullptr) << flag;
    EXPECT_EQ(text(o, "ndpi.l7"), "FTP_CONTROL");
    EXPECT_TRUE(json_is_false(at(o, "ndpi.guessed")));
}

TEST(Eve, FlowIdIsStableAndTellsFlowsApart) {
    fe::FlowView a = ftp(), b = ftp();
    EXPECT_EQ(fe::eve_flow_id(a), fe::eve_flow_id(b));
    b.first_ns += 1000; // the same 5-tuple, a later connection
    EXPECT_NE(fe::eve_flow_id(a), fe::eve_flow_id(b));
    b = ftp();
    b.sport = 50695;
    EXPECT_NE(fe::eve_flow_id(a), fe::eve_flow_id(b));
}

TEST(Eve, IcmpAndUdpVariants) {
    fe::FlowView f;
    f.ip_version = 6;
    f.proto = 58;
    inet_pton(AF_INET6, "fe80::1", f.src);
    inet_pton(AF_INET6, "fe80::2", f.dst);
    f.icmp = true;
    f.icmp_type = 128;
    f.packets[0] = 2;
    f.frame_bytes[0] = 236;
    f.end = fe::EndReason::EndOfInput;
    Json j = parse_line(eve(f)); // no inspection: no app_proto, no ndpi
    json_t *o = j.get();
    EXPECT_EQ(text(o, "proto"), "IPv6-ICMP");
    EXPECT_EQ(text(o, "src_ip"), "fe80::1");
    EXPECT_EQ(integer(o, "icmp_type"), 128);
    EXPECT_EQ(integer(o, "icmp_code"), 0);
    EXPECT_EQ(at(o, "src_port"), nullptr);
    EXPECT_EQ(at(o, "dest_port"), nullptr);
    EXPECT_EQ(at(o, "app_proto"), nullptr);
    EXPECT_EQ(at(o, "ndpi"), nullptr);
    EXPECT_EQ(at(o, "tcp"), nullptr);
    EXPECT_EQ(at(o, "community_id"), nullptr);
    EXPECT_EQ(text(o, "flow.state"), "new");
    EXPECT_EQ(text(o, "flow.reason"), "shutdown");

    fe::FlowView u = ftp();
    u.proto = 17;
    u.end = fe::EndReason::Idle;
    u.app_master = "DNS";
    u.app_app = "Google";
    u.app_label = "DNS.Google";
    u.app_guessed = true;
    j = parse_line(eve(u));
    o = j.get();
    EXPECT_EQ(text(o, "proto"), "UDP");
    EXPECT_EQ(text(o, "app_proto"), "dns");
    EXPECT_EQ(text(o, "flow.state"), "established");
    EXPECT_EQ(text(o, "flow.reason"), "timeout");
    EXPECT_EQ(at(o, "tcp"), nullptr);
    EXPECT_TRUE(json_is_true(at(o, "ndpi.guessed")));

    fe::FlowView g = ftp();
    g.proto = 47;
    g.end = fe::EndReason::Evicted;
    j = parse_line(eve(g));
    o = j.get();
    EXPECT_EQ(text(o, "proto"), "GRE");
    EXPECT_EQ(at(o, "src_port"), nullptr);
    EXPECT_EQ(text(o, "flow.reason"), "forced");
}

TEST(Eve, AppProtoNames) {
    EXPECT_EQ(fe::suricata_app_proto("TLS", "Google"), "tls");
    EXPECT_EQ(fe::suricata_app_proto("Unknown", "TLS"), "tls");
    EXPECT_EQ(fe::suricata_app_proto("Unknown", "SMBv23"), "smb");
    EXPECT_EQ(fe::suricata_app_proto("Unknown", "IPsec"), "ike");
    EXPECT_EQ(fe::suricata_app_proto("Unknown", "WhatsApp"), "whatsapp"); // none in Suricata: nDPI's name
    EXPECT_EQ(fe::suricata_app_proto("Unknown", "Unknown"), "failed");
    EXPECT_EQ(fe::suricata_proto_name(6), "TCP");
    EXPECT_EQ(fe::suricata_proto_name(253), "253");
}

TEST(Eve, StringsAreEscaped) {
    fe::FlowView f = ftp();
    f.app_label = "odd\"name\\with\ncontrol";
    Json j = parse_line(eve(f));
    EXPECT_EQ(text(j.get(), "ndpi.l7"), "odd\"name\\with\ncontrol");
}

TEST(Eve, TimesBeforeAndAfter2038) {
    EXPECT_EQ(fe::eve_time(0), "1970-01-01T00:00:00.000000+0000");
    EXPECT_EQ(fe::eve_time(4'102'444'800'000'001'000ull), "2100-01-01T00:00:00.000001+0000");
}

#include "millipede/export/eve.h"

#include <arpa/inet.h>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "json_text.h"

namespace millipede::flow_export {

namespace {

// nDPI 4.2 protocol names that Suricata (7.0) has an app-layer parser for,
// under Suricata's name. TLS-wrapped mail is "tls" to Suricata.
struct AppName {
    std::string_view ndpi, suricata;
};
constexpr AppName kSuricataNames[] = {
    {"HTTP", "http"},          {"HTTP_Proxy", "http"},    {"HTTP_Connect", "http"}, {"FTP_CONTROL", "ftp"},
    {"FTP_DATA", "ftp-data"},  {"SMTP", "smtp"},          {"SMTPS", "tls"},         {"IMAP", "imap"},
    {"IMAPS", "tls"},          {"POPS", "tls"},           {"TLS", "tls"},           {"SSH", "ssh"},
    {"SMBv1", "smb"},          {"SMBv23", "smb"},         {"DNS", "dns"},           {"NTP", "ntp"},
    {"TFTP", "tftp"},          {"IPsec", "ike"},          {"Kerberos", "krb5"},     {"QUIC", "quic"},
    {"DHCP", "dhcp"},          {"SNMP", "snmp"},          {"SIP", "sip"},           {"VNC", "rfb"},
    {"MQTT", "mqtt"},          {"PostgreSQL", "pgsql"},   {"Telnet", "telnet"},     {"RDP", "rdp"},
    {"Modbus", "modbus"},      {"DNP3", "dnp3"},          {"IRC", "irc"},           {"DCE_RPC", "dcerpc"},
    {"NFS", "nfs"},            {"LDAP", "ldap"},
};

std::string_view suricata_name(std::string_view ndpi) {
    for (const AppName &n : kSuricataNames)
        if (n.ndpi == ndpi) return n.suricata;
    return {};
}

bool known(std::string_view name) { return !name.empty() && name != "Unknown"; }

std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string address_text(const FlowView &f, const uint8_t *a) {
    char b[INET6_ADDRSTRLEN];
    inet_ntop(f.ip_version == 6 ? AF_INET6 : AF_INET, a, b, sizeof b);
    return b;
}

bool ported(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132; }

// Suricata's flow.state: "closed" once TCP saw FIN or RST, "established"
// once both sides sent, "new" while only the initiator did.
const char *eve_state(const FlowView &f) {
    if (f.end == EndReason::Fin || f.end == EndReason::Rst || f.end == EndReason::Reused) return "closed";
    return f.packets[1] ? "established" : "new";
}

// Suricata's flow.reason: "timeout" (flows end by timing out, closed ones
// included), "forced" (pushed out early: a full table), "shutdown" (still
// open when the input ended).
const char *eve_reason(EndReason why) {
    switch (why) {
    case EndReason::Evicted: return "forced";
    case EndReason::EndOfInput: return "shutdown";
    default: return "timeout";
    }
}

void append_u64(std::string &out, const char *key, uint64_t v, bool comma = true) {
    char b[64];
    std::snprintf(b, sizeof b, "%s\"%s\":%llu", comma ? "," : "", key, static_cast<unsigned long long>(v));
    out += b;
}

void append_str(std::string &out, const char *key, std::string_view v, bool comma = true) {
    if (comma) out += ',';
    out += '"';
    out += key;
    out += "\":";
    append_json_string(out, v);
}

void append_flags_hex(std::string &out, const char *key, uint8_t flags) {
    char b[40];
    std::snprintf(b, sizeof b, ",\"%s\":\"%02x\"", key, flags);
    out += b;
}

uint64_t mix(uint64_t h, uint64_t v) {
    // splitmix64's finaliser over a running sum: cheap and well spread.
    h += v + 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

} // namespace

std::string suricata_app_proto(std::string_view master, std::string_view app) {
    for (std::string_view n : {master, app})
        if (auto s = suricata_name(n); !s.empty()) return std::string(s);
    if (known(app)) return lower(app);
    if (known(master)) return lower(master);
    return "failed";
}

std::string suricata_proto_name(uint8_t proto) {
    switch (proto) {
    case 1: return "ICMP";
    case 2: return "IGMP";
    case 6: return "TCP";
    case 17: return "UDP";
    case 47: return "GRE";
    case 50: return "ESP";
    case 51: return "AH";
    case 58: return "IPv6-ICMP";
    case 132: return "SCTP";
    default: return std::to_string(proto);
    }
}

uint64_t eve_flow_id(const FlowView &f) {
    uint64_t h = mix(0, f.ip_version | uint64_t(f.proto) << 8 | uint64_t(f.sport) << 16 | uint64_t(f.dport) << 32);
    for (unsigned i = 0; i < 16; i += 8) {
        uint64_t s = 0, d = 0;
        for (unsigned j = 0; j < 8; ++j) {
            s = s << 8 | f.src[i + j];
            d = d << 8 | f.dst[i + j];
        }
        h = mix(h, s);
        h = mix(h, d);
    }
    h = mix(h, f.first_ns);
    return h & ((uint64_t(1) << 51) - 1);
}

std::string eve_time(uint64_t ns) {
    time_t secs = static_cast<time_t>(ns / 1'000'000'000ull);
    unsigned long usec = static_cast<unsigned long>(ns % 1'000'000'000ull / 1000);
    tm t{};
    gmtime_r(&secs, &t);
    char b[64];
    std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%06lu+0000", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                  t.tm_hour, t.tm_min, t.tm_sec, usec);
    return b;
}

void append_eve(std::string &out, const FlowView &f) {
    // Suricata stamps a flow event with the time it logs it: here the flow's
    // last packet, which is when it could first have ended.
    out += "{\"timestamp\":\"";
    out += eve_time(f.last_ns);
    out += '"';
    append_u64(out, "flow_id", eve_flow_id(f));
    append_str(out, "event_type", "flow");
    append_str(out, "src_ip", address_text(f, f.src));
    if (ported(f.proto)) append_u64(out, "src_port", f.sport);
    append_str(out, "dest_ip", address_text(f, f.dst));
    if (ported(f.proto)) append_u64(out, "dest_port", f.dport);
    append_str(out, "proto", suricata_proto_name(f.proto));
    if (f.icmp) {
        append_u64(out, "icmp_type", f.icmp_type);
        append_u64(out, "icmp_code", f.icmp_code);
    }
    if (f.dpi) append_str(out, "app_proto", suricata_app_proto(f.app_master, f.app_app));
    out += ",\"flow\":{";
    append_u64(out, "pkts_toserver", f.packets[0], false);
    append_u64(out, "pkts_toclient", f.packets[1]);
    append_u64(out, "bytes_toserver", f.frame_bytes[0]);
    append_u64(out, "bytes_toclient", f.frame_bytes[1]);
    append_str(out, "start", eve_time(f.first_ns));
    append_str(out, "end", eve_time(f.last_ns));
    append_u64(out, "age", f.last_ns / 1'000'000'000ull - f.first_ns / 1'000'000'000ull);
    append_str(out, "state", eve_state(f));
    append_str(out, "reason", eve_reason(f.end));
    out += ",\"alerted\":false}";
    if (!f.community_id.empty()) append_str(out, "community_id", f.community_id);
    if (f.proto == 6) {
        out += ",\"tcp\":{";
        char b[32];
        std::snprintf(b, sizeof b, "\"tcp_flags\":\"%02x\"", f.tcp_flags[0] | f.tcp_flags[1]);
        out += b;
        append_flags_hex(out, "tcp_flags_ts", f.tcp_flags[0]);
        append_flags_hex(out, "tcp_flags_tc", f.tcp_flags[1]);
        // Suricata's names, one true boolean per flag seen in either direction.
        static constexpr std::pair<uint8_t, const char *> kFlags[] = {
            {0x02, "syn"}, {0x01, "fin"}, {0x04, "rst"}, {0x08, "psh"},
            {0x10, "ack"}, {0x20, "urg"}, {0x40, "ecn"}, {0x80, "cwr"},
        };
        uint8_t all = f.tcp_flags[0] | f.tcp_flags[1];
        for (auto [bit, name] : kFlags)
            if (all & bit) {
                out += ",\"";
                out += name;
                out += "\":true";
            }
        out += '}';
    }
    if (f.dpi) {
        out += ",\"ndpi\":{";
        append_str(out, "l7", f.app_label, false);
        append_str(out, "master", f.app_master);
        append_str(out, "app", f.app_app);
        out += f.app_guessed ? ",\"guessed\":true}" : ",\"guessed\":false}";
    }
    out += "}\n";
}

} // namespace millipede::flow_export

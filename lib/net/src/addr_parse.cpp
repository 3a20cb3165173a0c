#include "millipede/net/addr_parse.h"

#include <cstdio>
#include <cstring>

namespace millipede::net {

namespace {

bool parse_decimal(std::string_view s, uint32_t max, uint32_t &out) {
    if (s.empty() || s.size() > 10) return false;
    if (s.size() > 1 && s[0] == '0') return false; // no leading zeros
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    if (v > max) return false;
    out = static_cast<uint32_t>(v);
    return true;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The user's text as it goes into a message: C escapes for line breaks,
// other control bytes, quotes and backslashes, so that the message stays one
// line and says exactly what was given (a word with a newline in it came
// through a script, and a raw newline would split the message in two).
std::string shown(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    s.reserve(text.size());
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            s += '\\';
            s += ch;
        } else if (c == '\n') {
            s += "\\n";
        } else if (c == '\r') {
            s += "\\r";
        } else if (c == '\t') {
            s += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            s += "\\x";
            s += kHex[c >> 4];
            s += kHex[c & 15];
        } else {
            s += ch; // printable ASCII and UTF-8 bytes as they are
        }
    }
    return s;
}

std::string quoted(std::string_view opt, std::string_view value) {
    std::string s(opt);
    s += " \"";
    s += shown(value);
    s += "\": ";
    return s;
}

// Why `ip` cannot be a host address (nullptr: it can).
const char *bad_host(uint32_t ip) {
    const uint32_t top = ip >> 24;
    if (ip == 0xffffffffu) return "is the limited broadcast address";
    if (top == 0) return "is in 0.0.0.0/8 (this network)";
    if (top == 127) return "is a loopback address";
    if (top >= 224 && top < 240) return "is a multicast address";
    if (top >= 240) return "is in the reserved 240.0.0.0/4";
    return nullptr;
}

// --ip PORTID=IPV6/PREFIX: a global or unique-local unicast address. A
// link-local one (fe80::/10) is refused: the data plane has no scope ids
// and answers for exactly the addresses given.
bool parse_ip6_assignment(const std::string &head, uint32_t port_id, std::string_view addr_s,
                          std::string_view prefix_s, IpAssignment &out, std::string &error) {
    uint8_t a6[16];
    if (!parse_ipv6(addr_s, a6)) {
        error = head + "\"" + shown(addr_s) + "\" is not an IPv6 address (e.g. fd00::1)";
        return false;
    }
    uint32_t prefix;
    if (!parse_decimal(prefix_s, 999, prefix) || prefix < 1 || prefix > 128) {
        error = head + "prefix length \"" + shown(prefix_s) + "\" is not 1..128";
        return false;
    }
    const char *why = ipv6_is_unspecified(a6)   ? "is the unspecified address"
                      : ipv6_is_loopback(a6)    ? "is the loopback address"
                      : ipv6_is_multicast(a6)   ? "is a multicast address"
                      : (a6[0] == 0xfe && (a6[1] & 0xc0) == 0x80) ? "is link-local (fe80::/10 needs a scope; give a global or fd00::/8 address)"
                      : (std::memcmp(a6, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) ? "is IPv4-mapped (give the IPv4 address itself)"
                                                : nullptr;
    if (why) {
        error = head + std::string(addr_s) + " " + why + ", not a host address";
        return false;
    }
    IpAssignment a;
    a.port_id = static_cast<uint16_t>(port_id);
    a.prefix_len = static_cast<uint8_t>(prefix);
    a.v6 = true;
    std::memcpy(a.addr6.data(), a6, 16);
    a.addr = ipv6_key(a6);
    out = a;
    return true;
}

} // namespace

std::string IpAssignment::text() const { return v6 ? format_ipv6(addr6.data()) : format_ipv4(addr); }

bool parse_ipv4(std::string_view s, uint32_t &out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        const size_t dot = s.find('.');
        std::string_view part = i < 3 ? s.substr(0, dot) : s;
        if (i < 3 && dot == std::string_view::npos) return false;
        uint32_t octet;
        if (part.size() > 3 || !parse_decimal(part, 255, octet)) return false;
        v = (v << 8) | octet;
        if (i < 3) s.remove_prefix(dot + 1);
    }
    out = v;
    return true;
}

bool parse_mac(std::string_view s, MacAddr &out) {
    if (s.size() != 17) return false;
    const char sep = s[2];
    if (sep != ':' && sep != '-') return false;
    MacAddr m;
    for (int i = 0; i < 6; i++) {
        const int hi = hex_digit(s[i * 3]), lo = hex_digit(s[i * 3 + 1]);
        if (hi < 0 || lo < 0) return false;
        if (i < 5 && s[i * 3 + 2] != sep) return false;
        m.b[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    out = m;
    return true;
}

bool parse_ip_option(std::string_view value, IpAssignment &out, std::string &error) {
    const std::string head = quoted("--ip", value);
    const size_t eq = value.find('=');
    if (eq == std::string_view::npos) {
        error = head + "expected PORTID=ADDR/PREFIX, e.g. 0=10.0.0.1/24";
        return false;
    }
    const std::string_view port = value.substr(0, eq);
    std::string_view rest = value.substr(eq + 1);
    uint32_t port_id;
    if (!parse_decimal(port, kMaxPortId, port_id)) {
        error = head + "port id \"" + shown(port) + "\" is not a number 0.." + std::to_string(kMaxPortId);
        return false;
    }
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
        error = head + "missing /PREFIX after the address (e.g. " + shown(rest) + "/24)";
        return false;
    }
    const std::string_view addr_s = rest.substr(0, slash), prefix_s = rest.substr(slash + 1);
    if (addr_s.find(':') != std::string_view::npos) return parse_ip6_assignment(head, port_id, addr_s, prefix_s, out, error);
    uint32_t addr;
    if (!parse_ipv4(addr_s, addr)) {
        error = head + "\"" + shown(addr_s) + "\" is not an IPv4 address (a.b.c.d, each 0-255, no leading zeros) "
                       "or an IPv6 address (fd00::1)";
        return false;
    }
    uint32_t prefix;
    if (!parse_decimal(prefix_s, 99, prefix) || prefix < 1 || prefix > 32) {
        error = head + "prefix length \"" + shown(prefix_s) + "\" is not 1..32";
        return false;
    }
    if (const char *why = bad_host(addr)) {
        error = head + std::string(addr_s) + " " + why + ", not a host address";
        return false;
    }
    IpAssignment a{static_cast<uint16_t>(port_id), addr, static_cast<uint8_t>(prefix)};
    if (prefix <= 30) {
        const uint32_t host = addr & ~a.netmask();
        if (host == 0) {
            error = head + std::string(addr_s) + " is the network address of its /" + std::to_string(prefix);
            return false;
        }
        if (host == ~a.netmask()) {
            error = head + std::string(addr_s) + " is the broadcast address of its /" + std::to_string(prefix);
            return false;
        }
    }
    out = a;
    return true;
}

bool parse_neigh_option(std::string_view value, StaticNeighbour &out, std::string &error) {
    const std::string head = quoted("--neigh", value);
    const size_t eq = value.find('=');
    if (eq == std::string_view::npos) {
        error = head + "expected ADDR=MAC, e.g. 10.0.0.2=02:00:00:00:00:02";
        return false;
    }
    const std::string_view addr_s = value.substr(0, eq), mac_s = value.substr(eq + 1);
    uint32_t addr;
    if (!parse_ipv4(addr_s, addr)) {
        error = head + "\"" + shown(addr_s) + "\" is not an IPv4 address (a.b.c.d, each 0-255, no leading zeros)";
        return false;
    }
    if (const char *why = bad_host(addr)) {
        error = head + std::string(addr_s) + " " + why + ", not a neighbour's address";
        return false;
    }
    MacAddr mac;
    if (!parse_mac(mac_s, mac)) {
        error = head + "\"" + shown(mac_s) + "\" is not a MAC address (six hex pairs: 02:00:00:00:00:02)";
        return false;
    }
    if (mac.is_zero()) {
        error = head + "MAC 00:00:00:00:00:00 is not a station address";
        return false;
    }
    if (mac.is_multicast()) {
        error = head + "MAC " + shown(mac_s) + " is a multicast/broadcast address (low bit of the first octet set)";
        return false;
    }
    out = StaticNeighbour{addr, mac};
    return true;
}

std::string format_ipv4(uint32_t ip) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
    return buf;
}

std::string format_mac(const MacAddr &m) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m.b[0], m.b[1], m.b[2], m.b[3], m.b[4], m.b[5]);
    return buf;
}

} // namespace millipede::net

// libFuzzer target for the address parsers (lib/net addr_parse.h):
// parse_ipv4, parse_ipv6, parse_mac, parse_ip_option (--ip PORTID=ADDR/PREFIX,
// IPv4 or IPv6) and
// parse_neigh_option (--neigh ADDR=MAC), each on the whole input as text.
//
// The parsers are strict (one spelling per value), so whatever they accept
// must print back to the input: that catches a parser that accepts too much
// (octal, signs, spaces, trailing bytes) as well as one that mis-reads.
// Whatever they refuse must be explained in one line that names the option
// (the contract: "one line naming the option, the text given and what is
// wrong"), and a refusal must leave the output untouched.
//
//   build-fuzz/tests/fuzz/addr_parse_fuzz -max_total_time=60 NEW_DIR tests/fuzz/corpus/addr_parse
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "millipede/net/addr_parse.h"

using namespace millipede::net;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool one_line(const std::string &s) {
    for (char c : s)
        if (c == '\n' || c == '\r') return false;
    return !s.empty();
}

std::string lower_colons(std::string_view s) {
    std::string r(s);
    for (char &c : r) {
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
        if (c == '-') c = ':';
    }
    return r;
}

// RFC 1122 3.2.1.3 / RFC 5735: addresses no host may have.
bool host_address(uint32_t ip) {
    const uint32_t top = ip >> 24;
    return ip != 0xffffffffu && top != 0 && top != 127 && top < 224;
}

void ipv4(std::string_view s) {
    uint32_t ip = 0x5a5a5a5a;
    if (parse_ipv4(s, ip)) check(format_ipv4(ip) == s);
    else check(ip == 0x5a5a5a5a);
}

void mac(std::string_view s) {
    MacAddr m;
    m.b[0] = 0x5a;
    if (parse_mac(s, m)) {
        check(format_mac(m) == lower_colons(s));
        check(s.find(':') == std::string_view::npos || s.find('-') == std::string_view::npos); // one separator
    } else {
        check(m.b[0] == 0x5a && m.b[1] == 0);
    }
}

// IPv6 has many spellings of one address (RFC 4291 2.2): what is accepted
// must be what its RFC 5952 text parses to, and that text must be accepted.
void ipv6(std::string_view s) {
    uint8_t a[16];
    std::memset(a, 0x5a, 16);
    if (!parse_ipv6(s, a)) return;
    check(s.find('\0') == std::string_view::npos && s.find(':') != std::string_view::npos);
    uint8_t back[16];
    check(parse_ipv6(format_ipv6(a), back) && std::memcmp(a, back, 16) == 0);
}

void ip_option_v6(std::string_view s, const IpAssignment &a) {
    check(a.port_id <= kMaxPortId && a.prefix_len >= 1 && a.prefix_len <= 128);
    const uint8_t *x = a.addr6.data();
    check(!ipv6_is_unspecified(x) && !ipv6_is_loopback(x) && !ipv6_is_multicast(x));
    check(!(x[0] == 0xfe && (x[1] & 0xc0) == 0x80)); // link-local refused
    check(a.addr == ipv6_key(x) && a.on_link6(x) && !a.on_link(a.addr));
    const size_t eq = s.find('='), slash = s.rfind('/');
    check(eq != std::string_view::npos && slash != std::string_view::npos && slash > eq);
    check(s.substr(0, eq) == std::to_string(a.port_id) && s.substr(slash + 1) == std::to_string(a.prefix_len));
    uint8_t given[16];
    check(parse_ipv6(s.substr(eq + 1, slash - eq - 1), given) && std::memcmp(given, x, 16) == 0);
    IpAssignment again;
    std::string err;
    check(parse_ip_option(std::to_string(a.port_id) + "=" + a.text() + "/" + std::to_string(a.prefix_len), again, err));
    check(again.v6 && again.addr6 == a.addr6 && again.prefix_len == a.prefix_len && again.port_id == a.port_id);
}

void ip_option(std::string_view s) {
    IpAssignment a;
    a.port_id = 77;
    std::string err;
    if (parse_ip_option(s, a, err)) {
        check(err.empty());
        if (a.v6) return ip_option_v6(s, a);
        check(a.port_id <= kMaxPortId && a.prefix_len >= 1 && a.prefix_len <= 32 && host_address(a.addr));
        check(std::to_string(a.port_id) + "=" + format_ipv4(a.addr) + "/" + std::to_string(a.prefix_len) == s);
        check(a.on_link(a.addr));
        if (a.prefix_len <= 30) { // neither the network nor the broadcast address of its subnet
            const uint32_t host = a.addr & ~a.netmask();
            check(host != 0 && host != ~a.netmask());
        }
    } else {
        check(a.port_id == 77);
        check(one_line(err) && err.rfind("--ip \"", 0) == 0);
    }
}

void neigh_option(std::string_view s) {
    StaticNeighbour n;
    n.addr = 77;
    std::string err;
    if (parse_neigh_option(s, n, err)) {
        check(err.empty());
        check(host_address(n.addr) && !n.mac.is_zero() && !n.mac.is_multicast());
        const size_t eq = s.find('=');
        check(eq != std::string_view::npos);
        check(format_ipv4(n.addr) == s.substr(0, eq) && format_mac(n.mac) == lower_colons(s.substr(eq + 1)));
    } else {
        check(n.addr == 77);
        check(one_line(err) && err.rfind("--neigh \"", 0) == 0);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 256) return 0; // a command-line word; longer adds nothing
    const std::string_view s(reinterpret_cast<const char *>(data), size);
    ipv4(s);
    ipv6(s);
    mac(s);
    ip_option(s);
    neigh_option(s);
    return 0;
}

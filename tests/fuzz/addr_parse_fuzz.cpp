// libFuzzer target for the address parsers (lib/net addr_parse.h):
// parse_ipv4, parse_mac, parse_ip_option (--ip PORTID=ADDR/PREFIX) and
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

void ip_option(std::string_view s) {
    IpAssignment a;
    a.port_id = 77;
    std::string err;
    if (parse_ip_option(s, a, err)) {
        check(err.empty());
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
    mac(s);
    ip_option(s);
    neigh_option(s);
    return 0;
}

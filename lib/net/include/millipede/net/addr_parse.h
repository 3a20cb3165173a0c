// Parsers for the address options of tx/rx mode:
//   --ip PORTID=ADDR/PREFIX     an IPv4 or IPv6 address of a DPDK port,
//                               e.g. 0=10.0.0.1/24 or 0=fd00::1/64
//   --neigh ADDR=MAC            a static neighbour,            e.g. 10.0.0.2=02:00:00:00:00:02
//
// Contract
// - Pure, any thread, set-up time (they build std::string messages).
// - Strict: dotted quads of exactly four decimal fields 0-255 without
//   leading zeros (inet_aton would read "010" as octal 8); MACs as six
//   two-digit hex groups separated by ':' or '-' (one separator kind).
// - On failure they return false and set `error` to one line naming the
//   option, the text given and what is wrong, e.g.
//   --ip "0=10.0.0.1/33": prefix length 33 is not 1..32
// - IPv4 addresses are returned in host byte order (10.0.0.1 = 0x0a000001);
//   an IPv6 one in `addr6` (network order) with `addr` = ipv6_key(addr6),
//   the 32-bit stand-in the data plane's tables use (ipv6.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "millipede/net/arp.h"
#include "millipede/net/ipv6.h"

namespace millipede::net {

inline constexpr uint32_t kMaxPortId = 1023; // the app checks the port exists

struct IpAssignment {
    uint16_t port_id = 0;
    uint32_t addr = 0; // IPv4 host order; IPv6: ipv6_key(addr6)
    uint8_t prefix_len = 0;
    bool v6 = false;
    std::array<uint8_t, 16> addr6{};
    uint32_t netmask() const { return prefix_len == 0 ? 0 : ~uint32_t(0) << (32 - prefix_len); }
    bool on_link(uint32_t ip) const { return !v6 && ((ip ^ addr) & netmask()) == 0; }
    bool on_link6(const uint8_t ip[16]) const { return v6 && ipv6_prefix_match(ip, addr6.data(), prefix_len); }
    std::string text() const; // "10.0.0.1" or "fd00::1"
};

struct StaticNeighbour {
    uint32_t addr = 0;
    MacAddr mac;
};

bool parse_ipv4(std::string_view s, uint32_t &out);
bool parse_mac(std::string_view s, MacAddr &out);
bool parse_ip_option(std::string_view value, IpAssignment &out, std::string &error);
bool parse_neigh_option(std::string_view value, StaticNeighbour &out, std::string &error);

std::string format_ipv4(uint32_t ip);       // "10.0.0.1"
std::string format_mac(const MacAddr &mac); // "02:00:00:00:00:01"

} // namespace millipede::net

// Helpers for the ARP/ICMP/neighbour tests: frame builders the tests trust
// independently of the code under test, and a tiny pcap writer.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "millipede/net/arp.h"
#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"

namespace l2_test {

using millipede::net::MacAddr;

inline const MacAddr kOurMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
inline const MacAddr kPeerMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
inline constexpr uint32_t kOurIp = 0x0a000001;  // 10.0.0.1
inline constexpr uint32_t kPeerIp = 0x0a000002; // 10.0.0.2

// Ethernet + IPv4 (optional options) + ICMP echo request with valid checksums.
inline std::vector<uint8_t> echo_request(uint32_t src, uint32_t dst, uint16_t id, uint16_t seq,
                                         const std::vector<uint8_t> &payload, size_t ip_opts = 0,
                                         uint16_t vlan = 0) {
    using namespace millipede::net;
    std::vector<uint8_t> f;
    f.insert(f.end(), kOurMac.b, kOurMac.b + 6);
    f.insert(f.end(), kPeerMac.b, kPeerMac.b + 6);
    if (vlan) {
        f.push_back(0x81);
        f.push_back(0x00);
        f.push_back(static_cast<uint8_t>(vlan >> 8));
        f.push_back(static_cast<uint8_t>(vlan));
    }
    f.push_back(0x08);
    f.push_back(0x00);
    const size_t l3 = f.size();
    const size_t ihl = 20 + ip_opts;
    const size_t total = ihl + 8 + payload.size();
    f.resize(l3 + total, 0);
    uint8_t *ip = f.data() + l3;
    ip[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
    store_be16(ip + 2, static_cast<uint16_t>(total));
    store_be16(ip + 4, 0x1234);
    store_be16(ip + 6, 0x4000); // DF
    ip[8] = 17;
    ip[9] = 1;
    store_be32(ip + 12, src);
    store_be32(ip + 16, dst);
    for (size_t i = 0; i < ip_opts; i++) ip[20 + i] = 1; // NOPs
    store_be16(ip + 10, checksum_finish(checksum_partial(ip, ihl)));
    uint8_t *icmp = ip + ihl;
    icmp[0] = 8;
    store_be16(icmp + 4, id);
    store_be16(icmp + 6, seq);
    std::copy(payload.begin(), payload.end(), icmp + 8);
    store_be16(icmp + 2, checksum_finish(checksum_partial(icmp, 8 + payload.size())));
    return f;
}

struct Pcap {
    FILE *f = nullptr;
    explicit Pcap(const std::string &path) {
        f = std::fopen(path.c_str(), "wb");
        if (!f) return;
        // Classic pcap, microsecond stamps, LINKTYPE_ETHERNET.
        const uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
        std::fwrite(hdr, 4, 6, f); // the version halves: 2 then 4, little-endian words
    }
    void add(const uint8_t *p, size_t n, uint32_t sec) {
        const uint32_t rec[4] = {sec, 0, static_cast<uint32_t>(n), static_cast<uint32_t>(n)};
        std::fwrite(rec, 4, 4, f);
        std::fwrite(p, 1, n, f);
    }
    ~Pcap() {
        if (f) std::fclose(f);
    }
};

// Runs `tshark -r PATH ARGS` (ARGS: its -T fields ... options) and returns
// its output lines; PATH is removed afterwards. tshark is the independent
// decoder these tests check our frames against.
inline std::vector<std::string> tshark_fields(const char *path, const std::string &args) {
    const std::string cmd = std::string("tshark -r ") + path + " " + args + " 2>/dev/null";
    std::vector<std::string> lines;
    if (FILE *p = popen(cmd.c_str(), "r")) {
        char line[1024];
        while (std::fgets(line, sizeof line, p)) {
            std::string s(line);
            while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
            lines.push_back(s);
        }
        pclose(p);
    }
    std::remove(path);
    return lines;
}

inline std::string joined_lines(const std::vector<std::string> &lines) {
    std::string o;
    for (const auto &l : lines) o += l + "\n";
    return o;
}

} // namespace l2_test

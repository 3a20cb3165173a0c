#include "millipede/net/arp.h"

#include "millipede/net/bytes.h"
#include "millipede/net/parse.h"

namespace millipede::net {

namespace {
struct ErrorText {
    const char *name;
    const char *desc;
};
constexpr ErrorText kArpErrors[] = {
    {"none", "no error"},
#define MILLIPEDE_X(sym, name, desc) {name, desc},
    MILLIPEDE_ARP_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
};

void put_mac(uint8_t *p, const MacAddr &m) { std::memcpy(p, m.b, 6); }
MacAddr get_mac(const uint8_t *p) {
    MacAddr m;
    std::memcpy(m.b, p, 6);
    return m;
}

// Writes an untagged Ethernet + ARP frame padded to 60 bytes.
size_t write_arp(uint8_t *buf, size_t cap, const MacAddr &eth_dst, const MacAddr &eth_src, uint16_t op,
                 const MacAddr &sha, uint32_t spa, const MacAddr &tha, uint32_t tpa) {
    if (!buf || cap < kEthMinFrame) return 0;
    std::memset(buf, 0, kEthMinFrame);
    put_mac(buf, eth_dst);
    put_mac(buf + 6, eth_src);
    store_be16(buf + 12, kEtherTypeARP);
    uint8_t *a = buf + kEthHeaderLen;
    store_be16(a + 0, kArpHtypeEthernet);
    store_be16(a + 2, kEtherTypeIPv4);
    a[4] = 6;
    a[5] = 4;
    store_be16(a + 6, op);
    put_mac(a + 8, sha);
    store_be32(a + 14, spa);
    put_mac(a + 18, tha);
    store_be32(a + 24, tpa);
    return kEthMinFrame;
}
} // namespace

const char *arp_error_name(ArpError e) {
    const unsigned i = static_cast<unsigned>(e);
    return i < kArpErrorCount ? kArpErrors[i].name : "unknown";
}

const char *arp_error_description(ArpError e) {
    const unsigned i = static_cast<unsigned>(e);
    return i < kArpErrorCount ? kArpErrors[i].desc : "unknown ARP error";
}

ArpError parse_arp(const uint8_t *frame, uint32_t len, ArpPacket &out) {
    if (len < kEthHeaderLen) return ArpError::TRUNCATED;
    uint32_t off = 12;
    uint16_t et = load_be16(frame + off);
    out.vlan_count = 0;
    while (et == kEtherTypeVLAN || et == kEtherTypeQinQ) {
        if (out.vlan_count == 2) return ArpError::VLAN_TOO_DEEP;
        if (len < off + 6) return ArpError::TRUNCATED;
        out.vlan_tci[out.vlan_count++] = load_be16(frame + off + 2);
        off += 4;
        et = load_be16(frame + off);
    }
    if (et != kEtherTypeARP) return ArpError::NOT_ARP;
    off += 2;
    if (len < off + kArpLen) return ArpError::TRUNCATED;
    const uint8_t *a = frame + off;
    if (load_be16(a) != kArpHtypeEthernet) return ArpError::BAD_HTYPE;
    if (load_be16(a + 2) != kEtherTypeIPv4) return ArpError::BAD_PTYPE;
    if (a[4] != 6) return ArpError::BAD_HLEN;
    if (a[5] != 4) return ArpError::BAD_PLEN;
    const uint16_t op = load_be16(a + 6);
    if (op != kArpOpRequest && op != kArpOpReply) return ArpError::BAD_OPCODE;
    const MacAddr sha = get_mac(a + 8);
    // A zero or group sender address would poison a cache entry.
    if (sha.is_zero() || sha.is_multicast()) return ArpError::BAD_SENDER_MAC;
    out.op = op;
    out.eth_dst = get_mac(frame);
    out.eth_src = get_mac(frame + 6);
    out.sender_mac = sha;
    out.sender_ip = load_be32(a + 14);
    out.target_mac = get_mac(a + 18);
    out.target_ip = load_be32(a + 24);
    out.arp_offset = static_cast<uint16_t>(off);
    return ArpError::NONE;
}

uint32_t arp_reply_in_place(uint8_t *frame, uint32_t len, const ArpPacket &req, const MacAddr &our_mac) {
    put_mac(frame, req.sender_mac);
    put_mac(frame + 6, our_mac);
    uint8_t *a = frame + req.arp_offset;
    store_be16(a + 6, kArpOpReply);
    put_mac(a + 8, our_mac);
    store_be32(a + 14, req.target_ip);
    put_mac(a + 18, req.sender_mac);
    store_be32(a + 24, req.sender_ip);
    return len;
}

size_t build_arp_reply(uint8_t *buf, size_t cap, const ArpPacket &req, const MacAddr &our_mac) {
    return write_arp(buf, cap, req.sender_mac, our_mac, kArpOpReply, our_mac, req.target_ip, req.sender_mac,
                     req.sender_ip);
}

size_t build_arp_request(uint8_t *buf, size_t cap, const MacAddr &our_mac, uint32_t our_ip, uint32_t target_ip) {
    return write_arp(buf, cap, kBroadcastMac, our_mac, kArpOpRequest, our_mac, our_ip, MacAddr{}, target_ip);
}

size_t build_gratuitous_arp(uint8_t *buf, size_t cap, const MacAddr &our_mac, uint32_t our_ip, uint16_t op) {
    if (op != kArpOpRequest && op != kArpOpReply) return 0;
    return write_arp(buf, cap, kBroadcastMac, our_mac, op, our_mac, our_ip, MacAddr{}, our_ip);
}

} // namespace millipede::net

#include "millipede/net/icmp_echo.h"

#include <cstring>

#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"
#include "millipede/net/parse.h"

namespace millipede::net {

namespace {
struct Text {
    const char *name;
    const char *desc;
};
constexpr Text kErrors[] = {
    {"none", "no error"},
#define MILLIPEDE_X(sym, name, desc) {name, desc},
    MILLIPEDE_ICMP_ECHO_ERRORS(MILLIPEDE_X)
#undef MILLIPEDE_X
};

struct Located {
    uint32_t l3 = 0, ihl = 0, total = 0;
};

IcmpEchoError check_request(const uint8_t *f, uint32_t len, uint32_t our_ip, Located &loc) {
    if (len < kEthHeaderLen) return IcmpEchoError::ETH_TRUNCATED;
    uint32_t off = 12;
    uint16_t et = load_be16(f + off);
    for (int tags = 0; et == kEtherTypeVLAN || et == kEtherTypeQinQ; tags++) {
        if (tags == 2) return IcmpEchoError::VLAN_TOO_DEEP;
        if (len < off + 6) return IcmpEchoError::ETH_TRUNCATED;
        off += 4;
        et = load_be16(f + off);
    }
    if (et != kEtherTypeIPv4) return IcmpEchoError::NOT_IPV4;
    const uint32_t l3 = off + 2;
    if (len < l3 + 20) return IcmpEchoError::IPV4_TRUNCATED;
    const uint8_t *ip = f + l3;
    if ((ip[0] >> 4) != 4) return IcmpEchoError::IPV4_BAD_VERSION;
    const uint32_t ihl = (ip[0] & 0x0fu) * 4u;
    if (ihl < 20 || l3 + ihl > len) return IcmpEchoError::IPV4_BAD_IHL;
    const uint32_t total = load_be16(ip + 2);
    if (total < ihl || l3 + total > len) return IcmpEchoError::IPV4_BAD_TOTAL_LEN;
    if (checksum_finish(checksum_partial(ip, ihl)) != 0) return IcmpEchoError::IPV4_BAD_CHECKSUM;
    if ((load_be16(ip + 6) & 0x3fffu) != 0) return IcmpEchoError::FRAGMENT;
    if (ip[9] != kProtoICMP) return IcmpEchoError::NOT_ICMP;
    if (load_be32(ip + 16) != our_ip) return IcmpEchoError::NOT_FOR_US;
    const uint32_t src = load_be32(ip + 12);
    const uint32_t top = src >> 24;
    if (top == 0 || top == 127 || top >= 224) return IcmpEchoError::BAD_SOURCE;
    const uint32_t icmp_len = total - ihl;
    if (icmp_len < 8) return IcmpEchoError::ICMP_TRUNCATED;
    const uint8_t *icmp = ip + ihl;
    if (icmp[0] != kIcmpEchoRequest) return IcmpEchoError::NOT_ECHO_REQUEST;
    if (icmp[1] != 0) return IcmpEchoError::BAD_CODE;
    if (checksum_finish(checksum_partial(icmp, icmp_len)) != 0) return IcmpEchoError::BAD_CHECKSUM;
    loc.l3 = l3;
    loc.ihl = ihl;
    loc.total = total;
    return IcmpEchoError::NONE;
}

// True when every byte of the ICMP message except its checksum is zero.
bool all_zero_but_checksum(const uint8_t *icmp, uint32_t icmp_len) {
    for (uint32_t i = 0; i < icmp_len; i++)
        if (icmp[i] != 0 && i != 2 && i != 3) return false;
    return true;
}

// Rewrites a checked request (already in `f`) into the reply.
uint32_t make_reply(uint8_t *f, uint32_t len, const Located &loc, const MacAddr &our_mac) {
    std::memcpy(f, f + 6, 6);
    std::memcpy(f + 6, our_mac.b, 6);
    uint8_t *ip = f + loc.l3;
    uint8_t tmp[4];
    std::memcpy(tmp, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, tmp, 4);
    ip[8] = 64;
    store_be16(ip + 10, 0);
    store_be16(ip + 10, checksum_finish(checksum_partial(ip, loc.ihl)));

    uint8_t *icmp = ip + loc.ihl;
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m = old type/code word.
    const uint16_t old_word = load_be16(icmp);
    icmp[0] = kIcmpEchoReply;
    const uint16_t new_word = load_be16(icmp);
    uint32_t sum = static_cast<uint16_t>(~load_be16(icmp + 2)) + static_cast<uint16_t>(~old_word) + new_word;
    uint16_t cksum = checksum_finish(sum);
    // Eqn. 3 yields 0x0000 when the message's sum is ones-complement zero,
    // and takes it for -0 (0xffff). A message of zeros only (identifier,
    // sequence and data all zero, as `IP()/ICMP()` in scapy sends) sums to
    // +0, and its checksum must be 0xffff (RFC 1071): 0x0000 would fail the
    // peer's check. Scan for that only in the rare case of a 0x0000 result.
    if (cksum == 0 && all_zero_but_checksum(icmp, loc.total - loc.ihl)) cksum = 0xffff;
    store_be16(icmp + 2, cksum);

    uint32_t out_len = loc.l3 + loc.total;
    if (out_len < kEthMinFrame && len >= kEthMinFrame) {
        std::memset(f + out_len, 0, kEthMinFrame - out_len);
        out_len = kEthMinFrame;
    }
    return out_len;
}
} // namespace

const char *icmp_echo_error_name(IcmpEchoError e) {
    const unsigned i = static_cast<unsigned>(e);
    return i < kIcmpEchoErrorCount ? kErrors[i].name : "unknown";
}
const char *icmp_echo_error_description(IcmpEchoError e) {
    const unsigned i = static_cast<unsigned>(e);
    return i < kIcmpEchoErrorCount ? kErrors[i].desc : "unknown";
}

IcmpEchoError icmp_echo_reply_in_place(uint8_t *frame, uint32_t len, uint32_t our_ip, const MacAddr &our_mac,
                                       uint32_t &reply_len) {
    Located loc;
    const IcmpEchoError e = check_request(frame, len, our_ip, loc);
    if (e != IcmpEchoError::NONE) return e;
    reply_len = make_reply(frame, len, loc, our_mac);
    return IcmpEchoError::NONE;
}

IcmpEchoError icmp_echo_reply(const uint8_t *req, uint32_t len, uint8_t *out, size_t cap, uint32_t our_ip,
                              const MacAddr &our_mac, uint32_t &reply_len) {
    Located loc;
    const IcmpEchoError e = check_request(req, len, our_ip, loc);
    if (e != IcmpEchoError::NONE) return e;
    uint32_t need = loc.l3 + loc.total;
    const uint32_t padded = need < kEthMinFrame && len >= kEthMinFrame ? static_cast<uint32_t>(kEthMinFrame) : need;
    if (cap < padded) return IcmpEchoError::NO_ROOM;
    std::memcpy(out, req, need);
    reply_len = make_reply(out, padded, loc, our_mac);
    return IcmpEchoError::NONE;
}

} // namespace millipede::net

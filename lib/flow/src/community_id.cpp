// Community ID v1, following the spec's pseudo code and pycommunityid (the
// reference the spec names), including its ICMP tables (communityid/icmp.py,
// icmp6.py, themselves Zeek's ICMP4_counterpart/ICMP6_counterpart).

#include "millipede/flow/community_id.h"

// See sha1() below for why the deprecated low-level API.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <cstring>
#include <utility>

#include "millipede/net/bytes.h"

namespace millipede::flow {
namespace {

constexpr size_t kSha1Len = 20;
constexpr size_t kBase64Sha1Len = 28; // 4 * ceil(20 / 3)
static_assert(kCommunityIdLen == 2 + kBase64Sha1Len);
static_assert(SHA_DIGEST_LENGTH == kSha1Len);

// One SHA-1 over at most 40 bytes. OpenSSL 3's SHA1() and the EVP API
// allocate a provider context on every call (measured on 3.0: 3 and 1
// allocations), which the data path must not do; the low-level functions
// work on a stack context, allocate nothing and run ~4x faster. They are
// deprecated in 3.0 but remain in every 3.x release.
bool sha1(const uint8_t *data, size_t len, uint8_t out[kSha1Len]) {
    SHA_CTX ctx;
    return SHA1_Init(&ctx) == 1 && SHA1_Update(&ctx, data, len) == 1 && SHA1_Final(out, &ctx) == 1;
}

// Writes exactly 4 * ceil(len / 3) characters, '='-padded (RFC 4648 section 4).
void base64(const uint8_t *in, size_t len, char *out) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        const uint32_t v = uint32_t(in[i]) << 16 | uint32_t(in[i + 1]) << 8 | in[i + 2];
        *out++ = kAlphabet[(v >> 18) & 63];
        *out++ = kAlphabet[(v >> 12) & 63];
        *out++ = kAlphabet[(v >> 6) & 63];
        *out++ = kAlphabet[v & 63];
    }
    if (const size_t rest = len - i; rest != 0) {
        const uint32_t v = uint32_t(in[i]) << 16 | (rest == 2 ? uint32_t(in[i + 1]) << 8 : 0);
        *out++ = kAlphabet[(v >> 18) & 63];
        *out++ = kAlphabet[(v >> 12) & 63];
        *out++ = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
}

// The reply/request counterpart of an ICMP type, or -1 when the type has
// none (errors, redirects, ...), which makes the flow one-way.
int icmp4_counterpart(uint16_t type) {
    switch (type) {
    case 8: return 0; // echo request -> echo reply
    case 0: return 8;
    case 13: return 14; // timestamp
    case 14: return 13;
    case 15: return 16; // information
    case 16: return 15;
    case 10: return 9; // router solicitation -> advertisement
    case 9: return 10;
    case 17: return 18; // address mask
    case 18: return 17;
    default: return -1;
    }
}

int icmp6_counterpart(uint16_t type) {
    switch (type) {
    case 128: return 129; // echo request -> echo reply
    case 129: return 128;
    case 130: return 131; // MLD query -> report
    case 131: return 130;
    case 133: return 134; // router solicitation -> advertisement
    case 134: return 133;
    case 135: return 136; // neighbor solicitation -> advertisement
    case 136: return 135;
    case 139: return 140; // node information query -> reply ("who are you")
    case 140: return 139;
    case 144: return 145; // home agent address discovery request -> reply
    case 145: return 144;
    default: return -1;
    }
}

} // namespace

CommunityIdText community_id_v1(const net::IpAddr &src, const net::IpAddr &dst, uint8_t ip_version, uint8_t proto,
                                uint16_t src_port, uint16_t dst_port, uint16_t seed) {
    CommunityIdText id{};
    const size_t addr_len = ip_version == 6 ? 16 : 4;

    bool has_ports = false;
    bool one_way = false;
    switch (proto) {
    case net::kProtoTCP:
    case net::kProtoUDP:
    case net::kProtoSCTP: has_ports = true; break;
    case net::kProtoICMP:
    case net::kProtoICMPv6: {
        // Zeek's trick: the counterpart type stands in for the other side's
        // "port", so a request and its reply sort into the same tuple.
        // Unpaired types (errors, redirects) have no reply: the code stays
        // as the second "port" and the tuple keeps its direction.
        has_ports = true;
        const int counterpart = proto == net::kProtoICMP ? icmp4_counterpart(src_port) : icmp6_counterpart(src_port);
        if (counterpart >= 0)
            dst_port = uint16_t(counterpart);
        else
            one_way = true;
        break;
    }
    default: break;
    }

    const uint8_t *a = src.bytes;
    const uint8_t *b = dst.bytes;
    uint16_t pa = src_port;
    uint16_t pb = dst_port;
    if (!one_way) {
        // Smaller IP:port first; addresses compare as big-endian bytes.
        const int cmp = std::memcmp(a, b, addr_len);
        if (cmp > 0 || (cmp == 0 && has_ports && pa > pb)) {
            std::swap(a, b);
            std::swap(pa, pb);
        }
    }

    // seed(2) . saddr . daddr . proto(1) . 0(1) [. sport(2) . dport(2)]
    uint8_t input[2 + 16 + 16 + 2 + 4];
    size_t n = 0;
    net::store_be16(input + n, seed);
    n += 2;
    std::memcpy(input + n, a, addr_len);
    n += addr_len;
    std::memcpy(input + n, b, addr_len);
    n += addr_len;
    input[n++] = proto;
    input[n++] = 0;
    if (has_ports) {
        net::store_be16(input + n, pa);
        net::store_be16(input + n + 2, pb);
        n += 4;
    }

    uint8_t digest[kSha1Len];
    if (!sha1(input, n, digest)) return id; // empty text, see the header

    id.text[0] = '1';
    id.text[1] = ':';
    base64(digest, kSha1Len, id.text + 2);
    id.text[kCommunityIdLen] = '\0';
    return id;
}

} // namespace millipede::flow

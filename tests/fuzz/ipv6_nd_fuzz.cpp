// libFuzzer target for IPv6 on the wire (lib/net ipv6.h): parse_nd() and
// the advertisement built from it, and icmpv6_echo_reply_in_place(), on
// arbitrary frames.
//
// Input: byte 0 is a control byte, the rest is the frame.
//   bit 0: before the calls, write a correct ICMPv6 checksum (over the
//          RFC 8200 8.1 pseudo-header) where the frame has room for one
//   bit 1: set the hop limit to 255 (what RFC 4861 7.1 requires of ND)
// Without them the fuzzer would almost never get past the checksum.
//
// Checks: no over-read (the frame sits in a buffer of exactly its size) or
// write outside it (ASan); every verdict is a named one; an accepted
// message is what RFC 4861 7.1 allows (checksum verified here with an
// independent sum, hop limit 255, code 0, target not multicast); the
// advertisement answering an accepted solicitation parses back as a valid
// advertisement for the same target; an echo refused leaves the frame
// untouched, an echo answered is the request with addresses swapped, type
// 129, hop limit 64 and a checksum the independent sum verifies.
//
//   build-fuzz/tests/fuzz/ipv6_nd_fuzz -max_total_time=60 NEW_DIR tests/fuzz/corpus/ipv6_nd
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "millipede/net/bytes.h"
#include "millipede/net/ipv6.h"
#include "millipede/net/parse.h"

using namespace millipede::net;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// fd00::1, what the seed corpus talks to.
constexpr uint8_t kOurIp[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
const MacAddr kOurMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
constexpr size_t kEth = 14, kIp6 = 40;

// RFC 4443 2.3 byte by byte: deliberately not lib/net's checksum code.
uint16_t icmp6_sum(const uint8_t *ip, const uint8_t *msg, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < 32; i++) sum += (i & 1) ? ip[8 + i] : uint32_t(ip[8 + i]) << 8;
    sum += n + 58;
    for (size_t i = 0; i < n; i++) sum += (i & 1) ? msg[i] : uint32_t(msg[i]) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

bool icmp6_frame(const uint8_t *f, size_t len, size_t &mlen) {
    if (len < kEth + kIp6 || load_be16(f + 12) != kEtherTypeIPv6 || (f[kEth] >> 4) != 6) return false;
    mlen = load_be16(f + kEth + 4);
    return f[kEth + 6] == kProtoICMPv6 && kEth + kIp6 + mlen <= len;
}

void prepare(uint8_t *f, size_t len, uint8_t ctl) {
    size_t mlen = 0;
    if (!icmp6_frame(f, len, mlen)) return;
    if (ctl & 2) f[kEth + 7] = 255;
    if ((ctl & 1) && mlen >= 4) {
        uint8_t *m = f + kEth + kIp6;
        store_be16(m + 2, 0);
        store_be16(m + 2, icmp6_sum(f + kEth, m, mlen));
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 9100) return 0;
    const uint8_t ctl = data[0];
    const size_t len = size - 1;
    std::unique_ptr<uint8_t[]> f(new uint8_t[len ? len : 1]);
    std::memcpy(f.get(), data + 1, len);
    prepare(f.get(), len, ctl);
    const std::vector<uint8_t> original(f.get(), f.get() + len);

    NdMessage nd;
    const NdError e = parse_nd(f.get(), static_cast<uint32_t>(len), nd);
    check(static_cast<unsigned>(e) < kNdErrorCount);
    check(std::strcmp(nd_error_name(e), "?") != 0 && std::strcmp(nd_error_description(e), "?") != 0);
    check(len == 0 || std::memcmp(f.get(), original.data(), len) == 0); // parse does not write
    if (e == NdError::NONE) {
        size_t mlen = 0;
        check(icmp6_frame(f.get(), len, mlen));
        const uint8_t *ip = f.get() + kEth, *m = ip + kIp6;
        check(ip[7] == 255 && mlen >= 24 && m[1] == 0 && icmp6_sum(ip, m, mlen) == 0);
        check(m[0] == kIcmp6NeighbourSolicitation || m[0] == kIcmp6NeighbourAdvertisement);
        check(nd.type == m[0] && !ipv6_is_multicast(nd.target) && std::memcmp(nd.target, m + 8, 16) == 0);
        if (nd.type == kIcmp6NeighbourSolicitation) {
            uint8_t na[128];
            check(build_neighbour_advertisement(na, sizeof na, nd, kOurMac, nd.target) == 86);
            NdMessage back;
            check(parse_nd(na, 86, back) == NdError::NONE);
            check(back.type == kIcmp6NeighbourAdvertisement && ipv6_equal(back.target, nd.target));
            check(back.has_lladdr && back.lladdr == kOurMac && back.override_flag);
            check(back.solicited == !ipv6_is_unspecified(nd.src));
        }
    }

    uint32_t rlen = 0xdeadbeef;
    const Icmp6EchoError ee = icmpv6_echo_reply_in_place(f.get(), static_cast<uint32_t>(len), kOurIp, kOurMac, rlen);
    check(static_cast<unsigned>(ee) < kIcmp6EchoErrorCount && std::strcmp(icmp6_echo_error_name(ee), "?") != 0);
    if (ee != Icmp6EchoError::NONE) {
        check(rlen == 0xdeadbeef);
        check(len == 0 || std::memcmp(f.get(), original.data(), len) == 0);
        return 0;
    }
    size_t mlen = 0;
    check(icmp6_frame(original.data(), len, mlen));
    const uint8_t *qi = original.data() + kEth, *ri = f.get() + kEth;
    check(rlen == kEth + kIp6 + mlen && mlen >= 8);
    check(icmp6_sum(qi, qi + kIp6, mlen) == 0 && qi[kIp6] == kIcmp6EchoRequest && qi[kIp6 + 1] == 0);
    check(std::memcmp(qi + 24, kOurIp, 16) == 0);
    check(std::memcmp(f.get(), original.data() + 6, 6) == 0 && std::memcmp(f.get() + 6, kOurMac.b, 6) == 0);
    check(std::memcmp(ri, qi, 7) == 0 && ri[7] == 64);
    check(std::memcmp(ri + 8, qi + 24, 16) == 0 && std::memcmp(ri + 24, qi + 8, 16) == 0);
    check(ri[kIp6] == kIcmp6EchoReply && ri[kIp6 + 1] == 0);
    check(std::memcmp(ri + kIp6 + 4, qi + kIp6 + 4, mlen - 4) == 0);
    check(icmp6_sum(ri, ri + kIp6, mlen) == 0);
    return 0;
}

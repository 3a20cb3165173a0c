// libFuzzer target for ICMP echo (lib/net icmp_echo.h): both entry points,
// icmp_echo_reply_in_place() and icmp_echo_reply(), on arbitrary frames.
//
// Input: byte 0 is a control byte, the rest is the frame.
//   bit 0: before the call, write a correct IPv4 header checksum
//   bit 1: before the call, write a correct ICMP checksum
// Without them the fuzzer would almost never get past the two checksums
// (a 16-bit sum is not something comparison tracing can solve), and the
// reply path would go untested.
//
// Checks: no over-read (the frame sits in a buffer of exactly its size) or
// write outside the frame/out buffer (ASan); both entry points agree on the
// verdict, the length and every byte; a refused frame is left untouched; an
// accepted one is answered as the contract says (RFC 792, RFC 1122 3.2.2.6,
// checksums verified here with an independent RFC 1071 sum); NO_ROOM exactly
// when the output buffer is one byte short.
//
//   build-fuzz/tests/fuzz/icmp_echo_fuzz -max_total_time=60 NEW_DIR tests/fuzz/corpus/icmp_echo
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "millipede/net/bytes.h"
#include "millipede/net/icmp_echo.h"
#include "millipede/net/parse.h"

using namespace millipede::net;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

// memcmp() with n == 0 may still not be given a null pointer.
bool same(const uint8_t *a, const uint8_t *b, size_t n) { return n == 0 || std::memcmp(a, b, n) == 0; }

constexpr uint32_t kOurIp = 0x0a000001; // 10.0.0.1, what the seed corpus pings
const MacAddr kOurMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};

// RFC 1071, byte by byte: deliberately not lib/net's checksum code.
uint16_t rfc1071(const uint8_t *p, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += (i & 1) ? p[i] : uint32_t(p[i]) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

// Where the IPv4 header would be, following up to two VLAN tags (0: none).
size_t l3_offset(const uint8_t *f, size_t len) {
    size_t off = 12;
    for (int tags = 0; tags < 3 && off + 2 <= len; tags++) {
        const uint16_t et = load_be16(f + off);
        if (et == kEtherTypeIPv4) return off + 2;
        if (et != kEtherTypeVLAN && et != kEtherTypeQinQ) return 0;
        off += 4;
    }
    return 0;
}

// Makes the checksums right where the control byte asks and the frame has
// room for them; the parser still has to check everything else.
void fix_checksums(uint8_t *f, size_t len, uint8_t ctl) {
    const size_t l3 = l3_offset(f, len);
    if (l3 == 0 || l3 + 20 > len) return;
    uint8_t *ip = f + l3;
    const size_t ihl = (ip[0] & 0x0fu) * 4u;
    if (ihl < 20 || l3 + ihl > len) return;
    if (ctl & 1) {
        store_be16(ip + 10, 0);
        store_be16(ip + 10, rfc1071(ip, ihl));
    }
    const size_t total = load_be16(ip + 2);
    if ((ctl & 2) && total >= ihl + 8 && l3 + total <= len) {
        uint8_t *icmp = ip + ihl;
        store_be16(icmp + 2, 0);
        store_be16(icmp + 2, rfc1071(icmp, total - ihl));
    }
}

void check_reply(const uint8_t *req, size_t len, const uint8_t *rep, uint32_t reply_len) {
    const size_t l3 = l3_offset(req, len);
    check(l3 != 0);
    const uint8_t *qi = req + l3, *ri = rep + l3;
    const size_t ihl = (qi[0] & 0x0fu) * 4u, total = load_be16(qi + 2);
    check(ihl >= 20 && total >= ihl + 8 && l3 + total <= len);
    // What the contract says was accepted.
    check(rfc1071(qi, ihl) == 0 && rfc1071(qi + ihl, total - ihl) == 0);
    check((load_be16(qi + 6) & 0x3fff) == 0 && qi[9] == kProtoICMP && load_be32(qi + 16) == kOurIp);
    check(qi[ihl] == kIcmpEchoRequest && qi[ihl + 1] == 0);
    const uint32_t top = load_be32(qi + 12) >> 24;
    check(top != 0 && top != 127 && top < 224);
    // Length: the datagram, padded to 60 only when the request had 60.
    const size_t want = l3 + total < kEthMinFrame && len >= kEthMinFrame ? kEthMinFrame : l3 + total;
    check(reply_len == want);
    for (size_t i = l3 + total; i < reply_len; i++) check(rep[i] == 0);
    // Ethernet: back to the sender, from us; VLAN tags and ethertype kept.
    check(std::memcmp(rep, req + 6, 6) == 0 && std::memcmp(rep + 6, kOurMac.b, 6) == 0);
    check(std::memcmp(rep + 12, req + 12, l3 - 12) == 0);
    // IPv4: addresses swapped, TTL 64, valid checksum, the rest as it was.
    check(std::memcmp(ri, qi, 8) == 0 && ri[8] == 64 && ri[9] == qi[9]);
    check(std::memcmp(ri + 12, qi + 16, 4) == 0 && std::memcmp(ri + 16, qi + 12, 4) == 0);
    check(std::memcmp(ri + 20, qi + 20, ihl - 20) == 0);
    check(rfc1071(ri, ihl) == 0);
    // ICMP: type 0, same code, identifier, sequence and data; valid checksum.
    const uint8_t *qm = qi + ihl, *rm = ri + ihl;
    check(rm[0] == kIcmpEchoReply && rm[1] == qm[1]);
    check(std::memcmp(rm + 4, qm + 4, total - ihl - 4) == 0);
    check(rfc1071(rm, total - ihl) == 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 9100) return 0; // jumbo frames at most
    const uint8_t ctl = data[0];
    const size_t len = size - 1;
    // An exactly sized heap copy so that ASan catches a read past the frame.
    std::unique_ptr<uint8_t[]> req(new uint8_t[len ? len : 1]);
    std::memcpy(req.get(), data + 1, len);
    fix_checksums(req.get(), len, ctl);
    const std::vector<uint8_t> original(req.get(), req.get() + len);

    // Into a separate buffer, exactly as large as needed at most.
    std::unique_ptr<uint8_t[]> out(new uint8_t[len + 64]);
    uint32_t out_len = 0xdeadbeef;
    const IcmpEchoError e1 = icmp_echo_reply(req.get(), static_cast<uint32_t>(len), out.get(), len + 64, kOurIp,
                                             kOurMac, out_len);
    check(static_cast<unsigned>(e1) < kIcmpEchoErrorCount && e1 != IcmpEchoError::NO_ROOM);
    check(std::strcmp(icmp_echo_error_name(e1), "unknown") != 0 && icmp_echo_error_description(e1)[0] != '\0');
    check(same(req.get(), original.data(), len)); // the request is not modified

    uint32_t in_len = 0xdeadbeef;
    const IcmpEchoError e2 = icmp_echo_reply_in_place(req.get(), static_cast<uint32_t>(len), kOurIp, kOurMac, in_len);
    check(e1 == e2);
    if (e2 != IcmpEchoError::NONE) {
        check(in_len == 0xdeadbeef && out_len == 0xdeadbeef);
        check(same(req.get(), original.data(), len)); // refused: untouched
        return 0;
    }
    check(in_len == out_len && in_len <= len);
    check(std::memcmp(req.get(), out.get(), in_len) == 0);
    check_reply(original.data(), len, out.get(), out_len);

    // One byte too few: refused, nothing written.
    std::unique_ptr<uint8_t[]> small(new uint8_t[out_len - 1 ? out_len - 1 : 1]);
    uint32_t small_len = 0xdeadbeef;
    check(icmp_echo_reply(original.data(), static_cast<uint32_t>(len), small.get(), out_len - 1, kOurIp, kOurMac,
                          small_len) == IcmpEchoError::NO_ROOM);
    check(small_len == 0xdeadbeef);
    return 0;
}

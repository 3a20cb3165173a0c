// libFuzzer target for net::parse_packet().
//
// The input is one Ethernet frame. libFuzzer hands over a heap buffer of
// exactly the input's size, so ASan reports any read past `len`. Beyond "no
// crash", an accepted frame must describe itself consistently: the
// classifier trusts these offsets without re-checking them.
//
//   meson setup build-fuzz -Dfuzz=true ... && ninja -C build-fuzz tests/fuzz/net_parse_fuzz
//   build-fuzz/tests/fuzz/net_parse_fuzz -max_total_time=60 [corpus_dir]
#include <cstddef>
#include <cstdint>

#include "millipede/net/parse.h"

using millipede::net::PacketInfo;
using millipede::net::Reject;

namespace {

// __builtin_trap rather than assert: must fire in release builds too.
void check(bool ok) {
    if (!ok) __builtin_trap();
}

bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i] != 0) return false;
    return true;
}

void check_accepted(const PacketInfo &pi, size_t len) {
    check(pi.vlan_count <= 2);
    check(pi.l3_offset == 14u + 4u * pi.vlan_count);
    check(pi.ip_version == 4 || pi.ip_version == 6);
    const size_t ip_end = size_t(pi.l3_offset) + pi.ip_total_len;
    check(ip_end <= len);
    check(pi.ip_total_len >= (pi.ip_version == 4 ? 20 : 40));
    if (pi.ip_version == 4) check(all_zero(pi.src.bytes + 4, 12) && all_zero(pi.dst.bytes + 4, 12));
    if (pi.l4_offset != 0) {
        check(pi.is_first_fragment);
        check(pi.l4_offset >= pi.l3_offset + (pi.ip_version == 4 ? 20 : 40));
        check(pi.payload_offset >= pi.l4_offset + 8);
        check(size_t(pi.payload_offset) + pi.payload_len <= ip_end);
    } else {
        check(pi.payload_offset == 0 && pi.payload_len == 0 && pi.src_port == 0 && pi.dst_port == 0);
    }
    if (!pi.is_first_fragment) check(pi.is_fragment && pi.l4_offset == 0);
    if (!pi.is_fragment) check(pi.fragment_id == 0);
    if (pi.l4_proto != millipede::net::kProtoTCP || pi.l4_offset == 0)
        check(pi.tcp_flags == 0 && pi.tcp_seq == 0 && pi.tcp_ack == 0 && pi.tcp_window == 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // Frames beyond 64 KiB + headers do not occur (mbuf data_len is 16 bits)
    // and would only slow the fuzzer down.
    if (size > 70000) return 0;
    PacketInfo pi;
    const Reject r = millipede::net::parse_packet(data, static_cast<uint32_t>(size), pi);
    check(static_cast<unsigned>(r) < millipede::net::kRejectCount);
    check(millipede::net::reject_name(r)[0] != '\0');
    if (r == Reject::NONE) check_accepted(pi, size);
    return 0;
}

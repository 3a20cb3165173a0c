// One ended flow as the exporters see it: what a collector or a SIEM is
// told about a flow, in the flow's own terms and in no format's.
//
// Contract
// - A plain value: the exporters only read it. The string views must stay
//   valid for the call they are passed to (nothing keeps them).
// - The initiator (the sender of the first packet seen) is `src`; index 0 of
//   the per-direction arrays is initiator to responder, index 1 back.
// - lib/export touches no EAL and no nDPI: whoever fills this in (tap's
//   writer thread) turns its own record and nDPI's names into it.
#pragma once

#include <cstdint>
#include <string_view>

namespace millipede::flow_export {

// Why the flow ended; the exporters map it to their vocabularies (IPFIX
// flowEndReason, eve's flow.state and flow.reason).
enum class EndReason : uint8_t {
    Idle,       // idle timeout
    Fin,        // both sides sent FIN
    Rst,        // a side sent RST
    Evicted,    // the flow table was full
    Reused,     // a new SYN on the 5-tuple ended the old connection
    EndOfInput, // the input ended (end of capture, shutdown)
};

struct FlowView {
    uint8_t ip_version = 4; // 4 or 6
    uint8_t proto = 0;      // IP protocol number
    // Network byte order; IPv4 occupies the first 4 bytes.
    uint8_t src[16] = {};
    uint8_t dst[16] = {};
    uint16_t sport = 0, dport = 0; // TCP, UDP and SCTP ports; 0 for other protocols
    bool icmp = false;             // ICMP or ICMPv6: icmp_type/icmp_code of the first packet
    uint8_t icmp_type = 0, icmp_code = 0;
    uint64_t first_ns = 0, last_ns = 0; // Unix time of the first and last packet, nanoseconds
    uint64_t packets[2] = {};
    uint64_t frame_bytes[2] = {}; // whole frames as received, L2 header included
    uint64_t ip_bytes[2] = {};    // IP datagrams: IP header and payload, as their length fields say
    uint8_t tcp_flags[2] = {};    // OR of the TCP flags each side sent (low 8 bits: CWR..FIN)
    EndReason end = EndReason::Idle;
    bool dpi = false;          // app_* hold nDPI's verdict (false: inspection was off)
    bool app_guessed = false;  // nDPI guessed from ports/addresses
    std::string_view app_label;  // as ndpiReader prints it: "TLS.Google", "DNS", "Unknown"
    std::string_view app_master; // nDPI's master protocol name ("TLS"), "Unknown" when none
    std::string_view app_app;    // nDPI's app protocol name ("Google"), "Unknown" when none
    std::string_view community_id; // Community ID v1 text ("1:..."), empty when none
};

} // namespace millipede::flow_export

// Suricata eve.json flow events (`event_type: "flow"`) for ended flows, so
// that pipelines built for Suricata (Filebeat's and Logstash's Suricata
// modules, Splunk's TA, Wazuh, Security Onion) read tap's records unchanged.
//
// The fields those readers use, in Suricata's names and types: timestamp
// (ISO 8601 with microseconds and a +0000 offset), flow_id (integer),
// event_type, src_ip, src_port, dest_ip, dest_port (ports only for TCP, UDP
// and SCTP; icmp_type and icmp_code for ICMP), proto (Suricata's names:
// "TCP", "UDP", "ICMP", "IPv6-ICMP", ...), app_proto, community_id, flow
// {pkts_toserver, pkts_toclient, bytes_toserver, bytes_toclient, start, end,
// age, state, reason, alerted}, and for TCP tcp {tcp_flags, tcp_flags_ts,
// tcp_flags_tc and a true boolean per flag seen}. nDPI's own verdict is kept
// in an extra object, ndpi {l7, master, app, guessed}, that Suricata's
// readers ignore. docs/tap.md has the field mapping.
//
// Contract: pure functions of the FlowView; any thread, concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "millipede/export/flow_view.h"

namespace millipede::flow_export {

// Appends one event as a JSON line (with '\n') to `out`.
void append_eve(std::string &out, const FlowView &f);

// Suricata's app-layer name for nDPI's master/app protocol names when
// Suricata has one ("tls" for TLS.Google, "ftp" for FTP_CONTROL), otherwise
// nDPI's name in lower case, and "failed" when nDPI named nothing.
std::string suricata_app_proto(std::string_view master, std::string_view app);

// Suricata's protocol name for an IP protocol number ("TCP", "IPv6-ICMP"),
// or the number in decimal.
std::string suricata_proto_name(uint8_t proto);

// A 51-bit flow id (an integer a JSON reader keeps exactly), stable for a
// flow: from its 5-tuple and first-packet time, so the same capture gives
// the same ids run after run.
uint64_t eve_flow_id(const FlowView &f);

// "2019-03-14T19:44:03.371057+0000" for Unix nanoseconds.
std::string eve_time(uint64_t ns);

} // namespace millipede::flow_export

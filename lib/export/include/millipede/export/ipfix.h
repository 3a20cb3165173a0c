// IPFIX (RFC 7011) encoding of ended flows: the Template Set that describes
// our records and Data Sets of them, packed into IPFIX Messages.
//
// What a record holds: the 5-tuple (sourceIPv4Address/sourceIPv6Address,
// destination..., source/destinationTransportPort, protocolIdentifier;
// icmpTypeCodeIPv4/IPv6 in place of the ports for ICMP),
// flowStartMilliseconds, flowEndMilliseconds, packetDeltaCount and
// octetDeltaCount (IP bytes), layer2OctetDeltaCount (whole frames),
// flowEndReason, biflowDirection, tcpControlBits (not for ICMP), and two
// enterprise-specific strings under the configured Private Enterprise
// Number: nDPI's application name (element 1) and the Community ID
// (element 2). Four templates (IPv4 / IPv6, ports / ICMP), ids 256-259, so
// no record carries fields it has no value for.
//
// A flow goes out in one of two shapes (IpfixConfig::biflow):
// - uniflows (the default): one record per direction that sent packets, as
//   NetFlow-era collectors expect (nfdump 1.7 reads no RFC 5103 reverse
//   elements). The initiator's record has biflowDirection 1 (initiator),
//   the responder's has source and destination swapped and biflowDirection
//   2 (reverseInitiator); both carry the flow's start and end times, end
//   reason, application name and Community ID, which joins them.
// - one RFC 5103 biflow record: the initiator's direction in the IANA
//   elements, the responder's in reverse elements (enterprise 29305:
//   packets, octets, layer-2 octets, TCP flags), biflowDirection 1.
//
// Contract
// - IpfixEncoder is a plain value owned by one thread (tap's writer
//   thread); nothing in it is shared or locked. It does no I/O.
// - Message sequence numbers follow RFC 7011 3.1: each message carries the
//   count, modulo 2^32, of the Data Records in the messages built before it
//   for this Observation Domain; Template Records do not count. A message is
//   counted when take() builds it, whether or not its sending succeeds, so a
//   collector sees a message the exporter could not send as a gap.
// - A message never exceeds IpfixConfig::max_message bytes (RFC 7011 10.3.3:
//   an IPFIX Message over UDP should fit the path MTU). Strings are cut to
//   kMaxStringField bytes, so every flow's records fit an empty message; a
//   flow's records are never split over two messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "millipede/export/flow_view.h"

namespace millipede::flow_export {

inline constexpr uint16_t kIpfixVersion = 10;
inline constexpr uint32_t kReversePen = 29305; // RFC 5103 reverse information elements
// RFC 5612's Private Enterprise Number for documentation and examples: the
// default until a deployment configures its own (the project has none).
inline constexpr uint32_t kExamplePen = 32473;
// Our enterprise-specific elements under the configured PEN.
inline constexpr uint16_t kIeApplicationName = 1; // string: nDPI's label, "TLS.Google"
inline constexpr uint16_t kIeCommunityId = 2;     // string: Community ID v1, "1:..."
// Longer names are cut: nDPI's labels are under 40 bytes, a Community ID is
// 30, and this bound lets a flow's records (two uniflows of IPv6 with both
// strings full) fit the smallest message (512 bytes).
inline constexpr std::size_t kMaxStringField = 64;

// IANA IPFIX information element ids used here.
namespace ie {
inline constexpr uint16_t octetDeltaCount = 1;
inline constexpr uint16_t packetDeltaCount = 2;
inline constexpr uint16_t protocolIdentifier = 4;
inline constexpr uint16_t tcpControlBits = 6;
inline constexpr uint16_t sourceTransportPort = 7;
inline constexpr uint16_t sourceIPv4Address = 8;
inline constexpr uint16_t destinationTransportPort = 11;
inline constexpr uint16_t destinationIPv4Address = 12;
inline constexpr uint16_t sourceIPv6Address = 27;
inline constexpr uint16_t destinationIPv6Address = 28;
inline constexpr uint16_t icmpTypeCodeIPv4 = 32;
inline constexpr uint16_t icmpTypeCodeIPv6 = 139;
inline constexpr uint16_t flowEndReason = 136;
inline constexpr uint16_t biflowDirection = 239;
inline constexpr uint16_t flowStartMilliseconds = 152;
inline constexpr uint16_t flowEndMilliseconds = 153;
inline constexpr uint16_t layer2OctetDeltaCount = 352;
} // namespace ie

// flowEndReason values (IANA "flowEndReason" registry).
enum class IpfixEndReason : uint8_t {
    IdleTimeout = 1,
    ActiveTimeout = 2,
    EndOfFlowDetected = 3,
    ForcedEnd = 4,
    LackOfResources = 5,
};
IpfixEndReason ipfix_end_reason(EndReason why);

// biflowDirection values (IANA "biflowDirection" registry).
enum class IpfixBiflowDirection : uint8_t {
    Initiator = 1,        // the record's source initiated the flow
    ReverseInitiator = 2, // its destination did
};

enum TemplateId : uint16_t {
    kTemplateV4 = 256,
    kTemplateV6 = 257,
    kTemplateIcmpV4 = 258,
    kTemplateIcmpV6 = 259,
};

struct IpfixConfig {
    uint32_t observation_domain = 0;
    uint32_t enterprise = kExamplePen; // PEN of the application-name and Community ID elements
    std::size_t max_message = 1400;    // bytes per message (UDP payload); at least 512
    bool biflow = false;               // one RFC 5103 record per flow instead of one per direction
};

// One field of a template, as it goes on the wire (RFC 7011 3.2).
struct FieldSpec {
    uint16_t id;
    uint16_t length;     // 0xffff: variable length (RFC 7011 7)
    uint32_t enterprise; // 0: IANA
};
inline constexpr uint16_t kVariableLength = 0xffff;

// The fields of one of our templates, in record order, for `cfg`'s shape
// and Private Enterprise Number.
std::vector<FieldSpec> template_fields(TemplateId id, const IpfixConfig &cfg);
// The template a flow's record uses.
TemplateId template_for(const FlowView &f);

class IpfixEncoder {
public:
    explicit IpfixEncoder(const IpfixConfig &cfg);

    // A complete message holding the Template Set with all four templates,
    // stamped with `export_time` (Unix seconds) and the current sequence
    // number, which it does not advance.
    std::vector<uint8_t> templates_message(uint32_t export_time) const;

    // Appends the flow's Data Record(s) to the message being built and
    // returns how many (uniflows: 1 or 2). 0 when they do not fit: take()
    // the message, then add again (always fits).
    unsigned add(const FlowView &f);
    unsigned pending_records() const { return records_; }

    // Completes the message (header length, export time, sequence number),
    // advances the sequence by its records and starts a new one. The bytes
    // stay valid until the next add() or take(). Empty when nothing is pending.
    std::span<const uint8_t> take(uint32_t export_time);

    uint32_t sequence() const { return sequence_; } // the next message's sequence number
    const IpfixConfig &config() const { return cfg_; }

private:
    void close_set();
    void put_record(const FlowView &f, TemplateId tid, bool responder);

    IpfixConfig cfg_;
    std::vector<FieldSpec> fields_[4]; // per template, kTemplateV4 first
    std::vector<uint8_t> msg_;    // header (16 bytes) + sets, being built
    std::vector<uint8_t> out_;    // the last message taken
    std::size_t set_start_ = 0;   // offset of the open Data Set's header; 0 = none open
    uint16_t set_template_ = 0;
    unsigned records_ = 0;
    uint32_t sequence_ = 0;
};

} // namespace millipede::flow_export

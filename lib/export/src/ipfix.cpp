#include "millipede/export/ipfix.h"

#include <algorithm>
#include <cstring>

namespace millipede::flow_export {

namespace {

constexpr std::size_t kSetHeaderLen = 4; // RFC 7011 3.3.2
constexpr uint16_t kTemplateSetId = 2;   // RFC 7011 3.3.2
constexpr uint32_t kIana = 0;

constexpr TemplateId kTemplates[] = {kTemplateV4, kTemplateV6, kTemplateIcmpV4, kTemplateIcmpV6};

void put8(std::vector<uint8_t> &b, uint8_t v) { b.push_back(v); }
void put16(std::vector<uint8_t> &b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}
void put32(std::vector<uint8_t> &b, uint32_t v) {
    put16(b, static_cast<uint16_t>(v >> 16));
    put16(b, static_cast<uint16_t>(v));
}
void put64(std::vector<uint8_t> &b, uint64_t v) {
    put32(b, static_cast<uint32_t>(v >> 32));
    put32(b, static_cast<uint32_t>(v));
}
void set16(std::vector<uint8_t> &b, std::size_t at, uint16_t v) {
    b[at] = static_cast<uint8_t>(v >> 8);
    b[at + 1] = static_cast<uint8_t>(v);
}
void set32(std::vector<uint8_t> &b, std::size_t at, uint32_t v) {
    set16(b, at, static_cast<uint16_t>(v >> 16));
    set16(b, at + 2, static_cast<uint16_t>(v));
}

// RFC 7011 7: a length octet below 255, or 255 and a 16-bit length. Ours are
// cut to kMaxStringField, so the short form always does.
std::string_view cut(std::string_view s) { return s.substr(0, kMaxStringField); }
void put_string(std::vector<uint8_t> &b, std::string_view s) {
    s = cut(s);
    put8(b, static_cast<uint8_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
}

void put_header(std::vector<uint8_t> &b, uint32_t export_time, uint32_t sequence, uint32_t domain) {
    put16(b, kIpfixVersion);
    put16(b, 0); // length: set when complete (the header is 16 bytes, RFC 7011 3.1)
    put32(b, export_time);
    put32(b, sequence);
    put32(b, domain);
}

uint64_t ms(uint64_t ns) { return ns / 1'000'000; }

std::size_t index_of(TemplateId id) { return static_cast<std::size_t>(id - kTemplateV4); }

std::string_view app_name(const FlowView &f) { return f.dpi ? f.app_label : std::string_view{}; }

} // namespace

IpfixEndReason ipfix_end_reason(EndReason why) {
    switch (why) {
    case EndReason::Idle: return IpfixEndReason::IdleTimeout;
    case EndReason::Fin:
    case EndReason::Rst:
    case EndReason::Reused: return IpfixEndReason::EndOfFlowDetected;
    case EndReason::Evicted: return IpfixEndReason::LackOfResources;
    case EndReason::EndOfInput: return IpfixEndReason::ForcedEnd;
    }
    return IpfixEndReason::ForcedEnd;
}

std::vector<FieldSpec> template_fields(TemplateId id, const IpfixConfig &cfg) {
    bool v6 = id == kTemplateV6 || id == kTemplateIcmpV6;
    bool icmp = id == kTemplateIcmpV4 || id == kTemplateIcmpV6;
    std::vector<FieldSpec> f;
    f.reserve(24); // the most any template has is 20
    // The direction-neutral part first, then the counters (the responder's
    // as RFC 5103 reverse elements in a biflow), then ours.
    if (v6) f.insert(f.end(), {{ie::sourceIPv6Address, 16, kIana}, {ie::destinationIPv6Address, 16, kIana}});
    else f.insert(f.end(), {{ie::sourceIPv4Address, 4, kIana}, {ie::destinationIPv4Address, 4, kIana}});
    if (icmp) f.push_back({v6 ? ie::icmpTypeCodeIPv6 : ie::icmpTypeCodeIPv4, 2, kIana});
    else f.insert(f.end(), {{ie::sourceTransportPort, 2, kIana}, {ie::destinationTransportPort, 2, kIana}});
    f.insert(f.end(), {{ie::protocolIdentifier, 1, kIana},
                       {ie::flowStartMilliseconds, 8, kIana},
                       {ie::flowEndMilliseconds, 8, kIana},
                       {ie::packetDeltaCount, 8, kIana},
                       {ie::octetDeltaCount, 8, kIana},
                       {ie::layer2OctetDeltaCount, 8, kIana}});
    if (cfg.biflow)
        f.insert(f.end(), {{ie::packetDeltaCount, 8, kReversePen},
                           {ie::octetDeltaCount, 8, kReversePen},
                           {ie::layer2OctetDeltaCount, 8, kReversePen}});
    f.insert(f.end(), {{ie::flowEndReason, 1, kIana}, {ie::biflowDirection, 1, kIana}});
    if (!icmp) {
        f.push_back({ie::tcpControlBits, 2, kIana});
        if (cfg.biflow) f.push_back({ie::tcpControlBits, 2, kReversePen});
    }
    f.insert(f.end(), {{kIeApplicationName, kVariableLength, cfg.enterprise},
                       {kIeCommunityId, kVariableLength, cfg.enterprise}});
    return f;
}

TemplateId template_for(const FlowView &f) {
    if (f.icmp) return f.ip_version == 6 ? kTemplateIcmpV6 : kTemplateIcmpV4;
    return f.ip_version == 6 ? kTemplateV6 : kTemplateV4;
}

IpfixEncoder::IpfixEncoder(const IpfixConfig &cfg) : cfg_(cfg) {
    cfg_.max_message = std::clamp<std::size_t>(cfg_.max_message, 512, 65535);
    for (TemplateId id : kTemplates) fields_[index_of(id)] = template_fields(id, cfg_);
    msg_.reserve(cfg_.max_message);
    out_.reserve(cfg_.max_message);
}

std::vector<uint8_t> IpfixEncoder::templates_message(uint32_t export_time) const {
    std::vector<uint8_t> b;
    put_header(b, export_time, sequence_, cfg_.observation_domain);
    std::size_t set_at = b.size();
    put16(b, kTemplateSetId);
    put16(b, 0);
    for (TemplateId id : kTemplates) {
        const std::vector<FieldSpec> &fields = fields_[index_of(id)];
        put16(b, id); // RFC 7011 3.4.1: Template ID, Field Count, Field Specifiers
        put16(b, static_cast<uint16_t>(fields.size()));
        for (const FieldSpec &fs : fields) {
            // RFC 7011 3.2: the enterprise bit, then the Enterprise Number.
            put16(b, static_cast<uint16_t>(fs.id | (fs.enterprise ? 0x8000 : 0)));
            put16(b, fs.length);
            if (fs.enterprise) put32(b, fs.enterprise);
        }
    }
    set16(b, set_at + 2, static_cast<uint16_t>(b.size() - set_at));
    set16(b, 2, static_cast<uint16_t>(b.size()));
    return b;
}

void IpfixEncoder::close_set() {
    if (!set_start_) return;
    set16(msg_, set_start_ + 2, static_cast<uint16_t>(msg_.size() - set_start_));
    set_start_ = 0;
}

// Written field by field from the template's own list, so a record cannot
// disagree with the template that describes it.
void IpfixEncoder::put_record(const FlowView &f, TemplateId tid, bool responder) {
    const unsigned fwd = responder ? 1 : 0, rev = 1 - fwd; // which direction's counters
    const std::size_t alen = f.ip_version == 6 ? 16 : 4;
    const uint8_t *src = responder ? f.dst : f.src, *dst = responder ? f.src : f.dst;
    for (const FieldSpec &fs : fields_[index_of(tid)]) {
        bool reverse = fs.enterprise == kReversePen;
        unsigned d = reverse ? rev : fwd;
        if (fs.length == kVariableLength) { // our two strings
            put_string(msg_, fs.id == kIeApplicationName ? app_name(f) : f.community_id);
            continue;
        }
        switch (fs.id) {
        case ie::sourceIPv4Address:
        case ie::sourceIPv6Address: msg_.insert(msg_.end(), src, src + alen); break;
        case ie::destinationIPv4Address:
        case ie::destinationIPv6Address: msg_.insert(msg_.end(), dst, dst + alen); break;
        case ie::sourceTransportPort: put16(msg_, responder ? f.dport : f.sport); break;
        case ie::destinationTransportPort: put16(msg_, responder ? f.sport : f.dport); break;
        case ie::icmpTypeCodeIPv4:
        case ie::icmpTypeCodeIPv6: put16(msg_, static_cast<uint16_t>(f.icmp_type << 8 | f.icmp_code)); break;
        case ie::protocolIdentifier: put8(msg_, f.proto); break;
        case ie::flowStartMilliseconds: put64(msg_, ms(f.first_ns)); break;
        case ie::flowEndMilliseconds: put64(msg_, ms(f.last_ns)); break;
        case ie::packetDeltaCount: put64(msg_, f.packets[d]); break;
        case ie::octetDeltaCount: put64(msg_, f.ip_bytes[d]); break;
        case ie::layer2OctetDeltaCount: put64(msg_, f.frame_bytes[d]); break;
        case ie::flowEndReason: put8(msg_, static_cast<uint8_t>(ipfix_end_reason(f.end))); break;
        case ie::biflowDirection:
            put8(msg_, static_cast<uint8_t>(responder ? IpfixBiflowDirection::ReverseInitiator
                                                      : IpfixBiflowDirection::Initiator));
            break;
        case ie::tcpControlBits: put16(msg_, f.tcp_flags[d]); break;
        }
    }
}

unsigned IpfixEncoder::add(const FlowView &f) {
    if (msg_.empty()) put_header(msg_, 0, 0, cfg_.observation_domain);
    TemplateId tid = template_for(f);
    const std::vector<FieldSpec> &fields = fields_[index_of(tid)];
    std::size_t one = 0;
    for (const FieldSpec &fs : fields) {
        if (fs.length != kVariableLength) one += fs.length;
        else one += 1 + cut(fs.id == kIeApplicationName ? app_name(f) : f.community_id).size();
    }
    // A uniflow for the responder only when it sent anything.
    unsigned records = !cfg_.biflow && f.packets[1] ? 2 : 1;
    bool new_set = !set_start_ || set_template_ != tid;
    std::size_t need = records * one + (new_set ? kSetHeaderLen : 0);
    if (msg_.size() + need > cfg_.max_message) return 0;
    if (new_set) {
        close_set();
        set_start_ = msg_.size();
        set_template_ = tid;
        put16(msg_, tid); // a Data Set's id is its template's (RFC 7011 3.3.2)
        put16(msg_, 0);
    }
    put_record(f, tid, false);
    if (records == 2) put_record(f, tid, true);
    records_ += records;
    return records;
}

std::span<const uint8_t> IpfixEncoder::take(uint32_t export_time) {
    if (!records_) return {};
    close_set();
    set16(msg_, 2, static_cast<uint16_t>(msg_.size()));
    set32(msg_, 4, export_time);
    set32(msg_, 8, sequence_);
    sequence_ += records_; // modulo 2^32 by unsigned wrap-around
    records_ = 0;
    out_.swap(msg_);
    msg_.clear();
    return out_;
}

} // namespace millipede::flow_export

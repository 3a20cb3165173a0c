// A small IPFIX (RFC 7011) collector-side decoder for the tests, written
// from the RFC and apart from lib/export's encoder: it learns templates
// from Template Sets and decodes Data Sets by them, and checks every length
// on the way. Field values are kept as raw bytes keyed by (enterprise, id).
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace millipede::testing {

struct Field {
    uint16_t id;
    uint16_t length; // 65535 = variable
    uint32_t enterprise;
};

struct DecodedRecord {
    uint16_t template_id = 0;
    std::map<std::pair<uint32_t, uint16_t>, std::vector<uint8_t>> values;

    bool has(uint32_t pen, uint16_t id) const { return values.count({pen, id}) != 0; }
    const std::vector<uint8_t> &raw(uint32_t pen, uint16_t id) const {
        auto it = values.find({pen, id});
        if (it == values.end()) throw std::runtime_error("no field " + std::to_string(pen) + "/" + std::to_string(id));
        return it->second;
    }
    uint64_t num(uint32_t pen, uint16_t id) const { // unsigned, any length up to 8 (reduced-size encoding)
        uint64_t v = 0;
        for (uint8_t b : raw(pen, id)) v = v << 8 | b;
        return v;
    }
    std::string str(uint32_t pen, uint16_t id) const {
        const auto &r = raw(pen, id);
        return std::string(r.begin(), r.end());
    }
};

struct DecodedMessage {
    uint16_t version = 0, length = 0;
    uint32_t export_time = 0, sequence = 0, domain = 0;
    unsigned template_records = 0;
    std::vector<uint16_t> set_ids;
    std::vector<DecodedRecord> records;
};

class IpfixDecoder {
public:
    std::map<uint16_t, std::vector<Field>> templates;

    DecodedMessage decode(const std::vector<uint8_t> &m) {
        DecodedMessage out;
        if (m.size() < 16) throw std::runtime_error("message shorter than its header");
        out.version = be16(m, 0);
        out.length = be16(m, 2);
        out.export_time = be32(m, 4);
        out.sequence = be32(m, 8);
        out.domain = be32(m, 12);
        if (out.length != m.size()) throw std::runtime_error("header length != datagram length");
        std::size_t at = 16;
        while (at < m.size()) {
            if (at + 4 > m.size()) throw std::runtime_error("truncated set header");
            uint16_t set_id = be16(m, at), set_len = be16(m, at + 2);
            if (set_len < 4 || at + set_len > m.size()) throw std::runtime_error("bad set length");
            out.set_ids.push_back(set_id);
            std::size_t end = at + set_len, p = at + 4;
            if (set_id == 2) {
                while (p + 4 <= end) {
                    uint16_t tid = be16(m, p), count = be16(m, p + 2);
                    p += 4;
                    std::vector<Field> fields;
                    for (unsigned i = 0; i < count; ++i) {
                        if (p + 4 > end) throw std::runtime_error("truncated field specifier");
                        uint16_t id = be16(m, p), len = be16(m, p + 2);
                        p += 4;
                        uint32_t pen = 0;
                        if (id & 0x8000) {
                            if (p + 4 > end) throw std::runtime_error("truncated enterprise number");
                            pen = be32(m, p);
                            p += 4;
                            id &= 0x7fff;
                        }
                        fields.push_back({id, len, pen});
                    }
                    templates[tid] = fields;
                    ++out.template_records;
                }
                if (p != end) throw std::runtime_error("template set has trailing bytes");
            } else if (set_id >= 256) {
                auto t = templates.find(set_id);
                if (t == templates.end()) throw std::runtime_error("data set without its template");
                std::size_t min = 0;
                for (const Field &f : t->second) min += f.length == 65535 ? 1 : f.length;
                // RFC 7011 3.3.1: what follows the last record and is shorter
                // than one is padding.
                while (end - p >= min && min) {
                    DecodedRecord r;
                    r.template_id = set_id;
                    for (const Field &f : t->second) {
                        std::size_t len = f.length;
                        if (len == 65535) {
                            len = m.at(p++);
                            if (len == 255) {
                                len = be16(m, p);
                                p += 2;
                            }
                        }
                        if (p + len > end) throw std::runtime_error("field runs past its set");
                        r.values[{f.enterprise, f.id}] = std::vector<uint8_t>(m.begin() + p, m.begin() + p + len);
                        p += len;
                    }
                    out.records.push_back(std::move(r));
                }
            } else {
                throw std::runtime_error("unexpected set id " + std::to_string(set_id));
            }
            at = end;
        }
        return out;
    }

private:
    static uint16_t be16(const std::vector<uint8_t> &m, std::size_t at) {
        if (at + 2 > m.size()) throw std::runtime_error("read past the message");
        return static_cast<uint16_t>(m[at] << 8 | m[at + 1]);
    }
    static uint32_t be32(const std::vector<uint8_t> &m, std::size_t at) {
        return uint32_t(be16(m, at)) << 16 | be16(m, at + 2);
    }
};

} // namespace millipede::testing

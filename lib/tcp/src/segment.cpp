#include "millipede/tcp/segment.h"

#include <cstring>

#include "millipede/net/bytes.h"
#include "millipede/net/checksum.h"

namespace millipede::tcp {

using net::load_be16;
using net::load_be32;
using net::store_be16;
using net::store_be32;

namespace {
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t OPT_EOL = 0, OPT_NOP = 1, OPT_MSS = 2, OPT_WS = 3, OPT_SACK_PERM = 4, OPT_SACK = 5, OPT_TS = 8,
                  OPT_EXP = 254; // RFC 4727 / RFC 6994 experimental, with a 16-bit ExID

uint32_t pseudo(const IpAddr &src, const IpAddr &dst, uint32_t len) {
    if (src.is_v6) return net::pseudo_header_v6(src.bytes.data(), dst.bytes.data(), kProtoTcp, len);
    return net::pseudo_header_v4(src.v4_host_order(), dst.v4_host_order(), kProtoTcp, len);
}

uint32_t fold16(uint32_t s) {
    while (s >> 16) s = (s & 0xffffu) + (s >> 16);
    return s;
}

// RFC 9293 3.1 / 3.2: options are TLVs except EOL and NOP. Every length is
// checked against the end before any byte of the option is read.
void parse_options(const uint8_t *p, size_t len, Options &o) {
    size_t i = 0;
    while (i < len) {
        const uint8_t kind = p[i];
        if (kind == OPT_EOL) break;
        if (kind == OPT_NOP) {
            ++i;
            continue;
        }
        if (i + 1 >= len) {
            o.malformed = true;
            break;
        }
        const uint8_t olen = p[i + 1];
        if (olen < 2 || i + olen > len) {
            o.malformed = true;
            break;
        }
        const uint8_t *v = p + i + 2;
        switch (kind) {
        case OPT_MSS: // RFC 9293 3.7.1
            if (olen == 4) {
                o.has_mss = true;
                o.mss = load_be16(v);
            }
            break;
        case OPT_WS: // RFC 7323 2.2
            if (olen == 3) {
                o.has_wscale = true;
                o.wscale = v[0];
            }
            break;
        case OPT_SACK_PERM: // RFC 2018 2
            if (olen == 2) o.sack_permitted = true;
            break;
        case OPT_SACK: // RFC 2018 3
            if (olen >= 10 && (olen - 2) % 8 == 0) {
                const size_t n = (olen - 2) / 8;
                o.sack_count = 0;
                for (size_t b = 0; b < n && b < kMaxSackBlocksOnWire; ++b) {
                    o.sack[b].left = load_be32(v + 8 * b);
                    o.sack[b].right = load_be32(v + 8 * b + 4);
                    o.sack_count++;
                }
            }
            break;
        case OPT_TS: // RFC 7323 3.2
            if (olen == 10) {
                o.has_ts = true;
                o.ts_val = load_be32(v);
                o.ts_ecr = load_be32(v + 4);
            }
            break;
        case OPT_EXP: // RFC 6994 3: an ExID we do not know is skipped
            if (olen == 4 && load_be16(v) == kChecksumTrustExId) o.checksum_trust = true;
            break;
        default: // unknown options are skipped by length (RFC 9293 3.1)
            break;
        }
        i += olen;
    }
}

struct OptLayout {
    size_t base = 0;    // bytes before SACK blocks
    size_t nsack = 0;   // SACK blocks that fit
    size_t total = 0;
};

OptLayout layout(const Options &o) {
    OptLayout l;
    if (o.has_mss) l.base += 4;
    if (o.has_ts) l.base += 12;                      // [SACKOK or NOP NOP] TS
    else if (o.sack_permitted) l.base += 4;          // NOP NOP SACKOK
    if (o.has_wscale) l.base += 4;                   // NOP WS
    if (o.checksum_trust) l.base += 4;               // EXP(254) ExID
    l.nsack = o.sack_count;
    if (l.nsack > kMaxSackBlocksOnWire) l.nsack = kMaxSackBlocksOnWire;
    while (l.nsack > 0 && l.base + 4 + 8 * l.nsack > 40) --l.nsack;
    l.total = l.base + (l.nsack ? 4 + 8 * l.nsack : 0);
    return l;
}
} // namespace

IpAddr IpAddr::v4(uint32_t host_order) {
    IpAddr a;
    store_be32(a.bytes.data(), host_order);
    return a;
}

IpAddr IpAddr::v6(const uint8_t addr[16]) {
    IpAddr a;
    std::memcpy(a.bytes.data(), addr, 16);
    a.is_v6 = true;
    return a;
}

uint32_t IpAddr::v4_host_order() const { return load_be32(bytes.data()); }

ParseResult parse_segment(std::span<const uint8_t> b, const IpAddr &src, const IpAddr &dst, Segment &out,
                          bool verify_checksum) {
    if (b.size() < 20) return ParseResult::Truncated;
    const uint8_t *p = b.data();
    const size_t doff = static_cast<size_t>(p[12] >> 4) * 4;
    if (doff < 20 || doff > b.size()) return ParseResult::BadDataOffset;
    if (verify_checksum) {
        // RFC 9293 3.1: the sum over pseudo-header, header and data of a
        // correct segment folds to all ones.
        uint32_t s = pseudo(src, dst, static_cast<uint32_t>(b.size()));
        s = net::checksum_partial(p, b.size(), s);
        if (net::checksum_finish(s) != 0) return ParseResult::BadChecksum;
    }
    out = Segment{};
    out.src_ip = src;
    out.dst_ip = dst;
    out.src_port = load_be16(p);
    out.dst_port = load_be16(p + 2);
    out.seq = load_be32(p + 4);
    out.ack = load_be32(p + 8);
    out.flags = p[13];
    out.window = load_be16(p + 14);
    out.urgent = load_be16(p + 18);
    parse_options(p + 20, doff - 20, out.opt);
    out.payload = b.subspan(doff);
    return ParseResult::Ok;
}

size_t options_length(const Options &opt) { return layout(opt).total; }

namespace {

// Header and options at p (hlen bytes); checksum field zero.
void write_header(const Segment &seg, const OptLayout &l, size_t hlen, uint8_t *p) {
    store_be16(p, seg.src_port);
    store_be16(p + 2, seg.dst_port);
    store_be32(p + 4, seg.seq);
    store_be32(p + 8, seg.ack);
    p[12] = static_cast<uint8_t>((hlen / 4) << 4);
    p[13] = seg.flags;
    store_be16(p + 14, seg.window);
    store_be16(p + 16, 0);
    store_be16(p + 18, seg.urgent);
    // Option order as Linux sends them, so captures look familiar.
    uint8_t *o = p + 20;
    const Options &op = seg.opt;
    if (op.has_mss) {
        o[0] = OPT_MSS, o[1] = 4;
        store_be16(o + 2, op.mss);
        o += 4;
    }
    if (op.has_ts) {
        if (op.sack_permitted) o[0] = OPT_SACK_PERM, o[1] = 2;
        else o[0] = OPT_NOP, o[1] = OPT_NOP;
        o[2] = OPT_TS, o[3] = 10;
        store_be32(o + 4, op.ts_val);
        store_be32(o + 8, op.ts_ecr);
        o += 12;
    } else if (op.sack_permitted) {
        o[0] = OPT_NOP, o[1] = OPT_NOP, o[2] = OPT_SACK_PERM, o[3] = 2;
        o += 4;
    }
    if (op.has_wscale) {
        o[0] = OPT_NOP, o[1] = OPT_WS, o[2] = 3, o[3] = op.wscale;
        o += 4;
    }
    if (op.checksum_trust) {
        o[0] = OPT_EXP, o[1] = 4;
        store_be16(o + 2, kChecksumTrustExId);
        o += 4;
    }
    if (l.nsack) {
        o[0] = OPT_NOP, o[1] = OPT_NOP, o[2] = OPT_SACK, o[3] = static_cast<uint8_t>(2 + 8 * l.nsack);
        o += 4;
        for (size_t i = 0; i < l.nsack; ++i, o += 8) {
            store_be32(o, op.sack[i].left);
            store_be32(o + 4, op.sack[i].right);
        }
    }
}

} // namespace

size_t serialize(const Segment &seg, std::span<uint8_t> out) {
    const OptLayout l = layout(seg.opt);
    const size_t hlen = 20 + l.total;
    const size_t total = hlen + seg.payload_len();
    if (out.size() < total) return 0;
    uint8_t *p = out.data();
    write_header(seg, l, hlen, p);
    uint8_t *d = p + hlen;
    if (!seg.payload.empty()) std::memcpy(d, seg.payload.data(), seg.payload.size());
    d += seg.payload.size();
    if (!seg.payload2.empty()) std::memcpy(d, seg.payload2.data(), seg.payload2.size());
    d += seg.payload2.size();
    for (size_t i = 0; i < seg.npieces; ++i) {
        if (seg.pieces[i].len) std::memcpy(d, seg.pieces[i].data, seg.pieces[i].len);
        d += seg.pieces[i].len;
    }

    uint32_t s = pseudo(seg.src_ip, seg.dst_ip, static_cast<uint32_t>(total));
    if (seg.checksum_offload) {
        // DPDK TX offload wants the folded, uncomplemented pseudo-header sum.
        store_be16(p + 16, static_cast<uint16_t>(fold16(s)));
        return total;
    }
    s = net::checksum_partial(p, total, s);
    store_be16(p + 16, net::checksum_finish(s));
    return total;
}

size_t serialize_header(const Segment &seg, std::span<uint8_t> out) {
    const OptLayout l = layout(seg.opt);
    const size_t hlen = 20 + l.total;
    if (out.size() < hlen) return 0;
    uint8_t *p = out.data();
    write_header(seg, l, hlen, p);
    const size_t total = hlen + seg.payload_len();
    uint32_t s = pseudo(seg.src_ip, seg.dst_ip, static_cast<uint32_t>(total));
    if (seg.checksum_offload) {
        store_be16(p + 16, static_cast<uint16_t>(fold16(s)));
        return hlen;
    }
    // hlen is a multiple of 4: the payload starts in even lanes.
    s = net::checksum_partial(p, hlen, s);
    size_t off = 0;
    auto add = [&](const uint8_t *d, size_t n) {
        if (!n) return;
        s = net::checksum_partial_at(d, n, off, s);
        off += n;
    };
    add(seg.payload.data(), seg.payload.size());
    add(seg.payload2.data(), seg.payload2.size());
    for (size_t i = 0; i < seg.npieces; ++i) add(seg.pieces[i].data, seg.pieces[i].len);
    store_be16(p + 16, net::checksum_finish(s));
    return hlen;
}

} // namespace millipede::tcp

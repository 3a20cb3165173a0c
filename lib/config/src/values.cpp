// Setting keys: their syntax, general range and overlay; RSS names and keys.
#include "values.h"

#include <charconv>
#include <cstdio>

#include <rte_ethdev.h> // RTE_ETH_RSS_* (constants only; nothing here calls ethdev)

namespace millipede::config {

std::string Origin::where() const { return file + " [" + section + "] " + key + " = " + text; }

std::vector<uint8_t> symmetric_rss_key(size_t size) {
    std::vector<uint8_t> k(size);
    for (size_t i = 0; i < size; ++i) k[i] = (i % 2 == 0) ? 0x6d : 0x5a;
    return k;
}

namespace {

struct RssName {
    const char *name;
    uint64_t bits;
    bool group; // expands to several fields; not used when printing
};
// testpmd's names for the hash fields (`port config all rss ...`).
constexpr RssName kRssNames[] = {
    {"ipv4", RTE_ETH_RSS_IPV4, false},
    {"frag-ipv4", RTE_ETH_RSS_FRAG_IPV4, false},
    {"ipv4-tcp", RTE_ETH_RSS_NONFRAG_IPV4_TCP, false},
    {"ipv4-udp", RTE_ETH_RSS_NONFRAG_IPV4_UDP, false},
    {"ipv4-sctp", RTE_ETH_RSS_NONFRAG_IPV4_SCTP, false},
    {"ipv4-other", RTE_ETH_RSS_NONFRAG_IPV4_OTHER, false},
    {"ipv6", RTE_ETH_RSS_IPV6, false},
    {"frag-ipv6", RTE_ETH_RSS_FRAG_IPV6, false},
    {"ipv6-tcp", RTE_ETH_RSS_NONFRAG_IPV6_TCP, false},
    {"ipv6-udp", RTE_ETH_RSS_NONFRAG_IPV6_UDP, false},
    {"ipv6-sctp", RTE_ETH_RSS_NONFRAG_IPV6_SCTP, false},
    {"ipv6-other", RTE_ETH_RSS_NONFRAG_IPV6_OTHER, false},
    {"l2-payload", RTE_ETH_RSS_L2_PAYLOAD, false},
    {"ipv6-ex", RTE_ETH_RSS_IPV6_EX, false},
    {"ipv6-tcp-ex", RTE_ETH_RSS_IPV6_TCP_EX, false},
    {"ipv6-udp-ex", RTE_ETH_RSS_IPV6_UDP_EX, false},
    {"ip", RTE_ETH_RSS_IP, true},
    {"tcp", RTE_ETH_RSS_TCP, true},
    {"udp", RTE_ETH_RSS_UDP, true},
    {"sctp", RTE_ETH_RSS_SCTP, true},
};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::optional<uint64_t> parse_decimal(std::string_view s) {
    uint64_t v = 0;
    if (s.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

template <class T>
SetResult set_number(Setting<T> &s, const Origin &o, uint64_t lo, uint64_t hi, std::string &err) {
    auto v = parse_decimal(o.text);
    if (!v || *v < lo || *v > hi) {
        err = o.where() + ": allowed " + std::to_string(lo) + "-" + std::to_string(hi);
        return SetResult::bad;
    }
    s.value = static_cast<T>(*v);
    s.origin = o;
    return SetResult::ok;
}

SetResult set_toggle(Setting<bool> &s, const Origin &o, std::string &err) {
    if (o.text == "on") s.value = true;
    else if (o.text == "off") s.value = false;
    else {
        err = o.where() + ": allowed on or off";
        return SetResult::bad;
    }
    s.origin = o;
    return SetResult::ok;
}

} // namespace

std::optional<uint64_t> parse_rss_hash(std::string_view list, std::string &bad) {
    list = trim(list);
    if (list == "none") return 0;
    uint64_t bits = 0;
    while (true) {
        const size_t comma = list.find(',');
        const std::string_view name = trim(list.substr(0, comma));
        bool found = false;
        for (const auto &n : kRssNames)
            if (name == n.name) {
                bits |= n.bits;
                found = true;
            }
        if (!found) {
            bad = std::string(name);
            return std::nullopt;
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return bits;
}

std::string rss_hash_names(uint64_t bits) {
    std::string out;
    for (const auto &n : kRssNames)
        if (!n.group && (bits & n.bits)) {
            if (!out.empty()) out += ',';
            out += n.name;
            bits &= ~n.bits;
        }
    if (bits) { // fields without a name here (e.g. a driver's L3_SRC_ONLY)
        char hex[32];
        std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(bits));
        if (!out.empty()) out += ',';
        out += hex;
    }
    return out.empty() ? "none" : out;
}

std::string rss_hash_known_names() {
    std::string out = "none";
    for (const auto &n : kRssNames) out += std::string(", ") + n.name;
    return out;
}

std::string to_hex(const std::vector<uint8_t> &bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (uint8_t b : bytes) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

std::string format_rss_key(const RssKey &k) {
    switch (k.kind) {
    case RssKeyKind::driver_default: return "default";
    case RssKeyKind::symmetric: return "symmetric";
    case RssKeyKind::bytes: return to_hex(k.bytes);
    }
    return "?";
}

void PortSettings::overlay(const PortSettings &over) {
    auto take = [](auto &mine, const auto &theirs) {
        if (theirs) mine = theirs;
    };
    take(rx_queues, over.rx_queues);
    take(tx_queues, over.tx_queues);
    take(rx_desc, over.rx_desc);
    take(tx_desc, over.tx_desc);
    take(mbufs, over.mbufs);
    take(mempool_cache, over.mempool_cache);
    take(mtu, over.mtu);
    take(rx_checksum, over.rx_checksum);
    take(tx_checksum, over.tx_checksum);
    take(tso, over.tso);
    take(lro, over.lro);
    take(rss_hash, over.rss_hash);
    take(rss_key, over.rss_key);
    take(flow_control, over.flow_control);
}

SetResult set_port_setting(PortSettings &s, const Origin &o, std::string &err) {
    const std::string &k = o.key;
    if (k == "rx_queues") return set_number(s.rx_queues, o, 1, kMaxQueues, err);
    if (k == "tx_queues") return set_number(s.tx_queues, o, 1, kMaxQueues, err);
    if (k == "rx_desc") return set_number(s.rx_desc, o, 1, UINT16_MAX, err);
    if (k == "tx_desc") return set_number(s.tx_desc, o, 1, UINT16_MAX, err);
    if (k == "mbufs") return set_number(s.mbufs, o, kMinMbufs, kMaxMbufs, err);
    if (k == "mempool_cache") return set_number(s.mempool_cache, o, 0, kMaxMempoolCache, err);
    if (k == "mtu") return set_number(s.mtu, o, kMinMtu, UINT16_MAX, err);
    if (k == "rx_checksum") return set_toggle(s.rx_checksum, o, err);
    if (k == "tx_checksum") return set_toggle(s.tx_checksum, o, err);
    if (k == "tso") return set_toggle(s.tso, o, err);
    if (k == "lro") return set_toggle(s.lro, o, err);
    if (k == "rss_hash") {
        std::string bad;
        auto bits = parse_rss_hash(o.text, bad);
        if (!bits) {
            err = o.where() + ": unknown hash field '" + bad + "' (allowed: " + rss_hash_known_names() + ")";
            return SetResult::bad;
        }
        s.rss_hash.value = *bits;
        s.rss_hash.origin = o;
        return SetResult::ok;
    }
    if (k == "rss_key") {
        RssKey key;
        if (o.text == "default") key.kind = RssKeyKind::driver_default;
        else if (o.text == "symmetric") key.kind = RssKeyKind::symmetric;
        else {
            key.kind = RssKeyKind::bytes;
            const std::string &t = o.text;
            bool ok = t.size() % 2 == 0 && !t.empty();
            for (size_t i = 0; ok && i < t.size(); i += 2) {
                const int hi = hex_digit(t[i]), lo = hex_digit(t[i + 1]);
                ok = hi >= 0 && lo >= 0;
                if (ok) key.bytes.push_back(static_cast<uint8_t>(hi << 4 | lo));
            }
            if (!ok) {
                err = o.where() + ": allowed default, symmetric, or the key's bytes in hex (40 or 52 bytes: 80 "
                                  "or 104 digits, as the NIC's key size)";
                return SetResult::bad;
            }
        }
        s.rss_key.value = std::move(key);
        s.rss_key.origin = o;
        return SetResult::ok;
    }
    if (k == "flow_control") {
        if (o.text == "off") s.flow_control.value = FlowControl::off;
        else if (o.text == "driver") s.flow_control.value = FlowControl::driver;
        else {
            err = o.where() + ": allowed off (no pause frames) or driver (leave the NIC's setting)";
            return SetResult::bad;
        }
        s.flow_control.origin = o;
        return SetResult::ok;
    }
    return SetResult::unknown;
}

const char *port_setting_keys() {
    return "rx_queues, tx_queues, rx_desc, tx_desc, mbufs, mempool_cache, mtu, rx_checksum, tx_checksum, tso, "
           "lro, rss_hash, rss_key, flow_control";
}

std::string desc_allowed(const DescLimits &d) {
    std::string s = std::to_string(d.min) + "-" + std::to_string(d.max);
    if (d.power_of_two) s += ", a power of two";
    else if (d.align > 1) s += ", a multiple of " + std::to_string(d.align);
    return s;
}

bool desc_fits(const DescLimits &d, uint32_t n) {
    if (n < d.min || n > d.max) return false;
    if (d.align > 1 && n % d.align != 0) return false;
    if (d.power_of_two && (n & (n - 1)) != 0) return false;
    return true;
}

std::string check_limits(const PortSettings &s, const Limits &l, const std::string &whose) {
    const std::string why = " (" + whose + ")";
    if (s.rx_desc && !desc_fits(l.rx_desc, *s.rx_desc))
        return s.rx_desc.origin.where() + ": allowed " + desc_allowed(l.rx_desc) + why;
    if (s.tx_desc && !desc_fits(l.tx_desc, *s.tx_desc))
        return s.tx_desc.origin.where() + ": allowed " + desc_allowed(l.tx_desc) + why;
    if (s.rx_queues && *s.rx_queues > l.max_rx_queues)
        return s.rx_queues.origin.where() + ": allowed 1-" + std::to_string(l.max_rx_queues) + why;
    if (s.tx_queues && *s.tx_queues > l.max_tx_queues)
        return s.tx_queues.origin.where() + ": allowed 1-" + std::to_string(l.max_tx_queues) + why;
    if (s.mtu && (*s.mtu < l.min_mtu || *s.mtu > l.max_mtu))
        return s.mtu.origin.where() + ": allowed " + std::to_string(l.min_mtu) + "-" + std::to_string(l.max_mtu) + why;
    struct Toggle {
        const Setting<bool> &s;
        bool offered;
        const char *what;
    };
    for (const Toggle &t : {Toggle{s.rx_checksum, l.rx_checksum, "RX checksum offload"},
                            Toggle{s.tx_checksum, l.tx_checksum, "TX checksum offload"},
                            Toggle{s.tso, l.tso, "TSO"}, Toggle{s.lro, l.lro, "LRO"}})
        if (t.s && *t.s && !t.offered)
            return t.s.origin.where() + ": allowed off: no " + t.what + why;
    if (s.rss_hash && (*s.rss_hash & ~l.rss_hash) != 0) {
        if (l.rss_hash == 0) return s.rss_hash.origin.where() + ": allowed none: no RSS" + why;
        return s.rss_hash.origin.where() + ": allowed none or some of " + rss_hash_names(l.rss_hash) + "; not " +
               rss_hash_names(*s.rss_hash & ~l.rss_hash) + why;
    }
    if (s.rss_key && s.rss_key->kind != RssKeyKind::driver_default) {
        if (l.rss_key_size == 0) return s.rss_key.origin.where() + ": allowed default: no RSS" + why;
        if (s.rss_key->kind == RssKeyKind::bytes && s.rss_key->bytes.size() != l.rss_key_size)
            return s.rss_key.origin.where() + ": allowed default, symmetric or " + std::to_string(l.rss_key_size) +
                   " bytes (" + std::to_string(2 * l.rss_key_size) + " hex digits), not " +
                   std::to_string(s.rss_key->bytes.size()) + why;
    }
    return check_pool(s);
}

std::string check_pool(const PortSettings &s) {
    // rte_mempool_create() refuses a cache above RTE_MEMPOOL_CACHE_MAX_SIZE or
    // one whose flush threshold (1.5 x the cache) exceeds the pool.
    if (s.mempool_cache && s.mbufs && uint64_t(*s.mempool_cache) * 3 / 2 > *s.mbufs)
        return s.mempool_cache.origin.where() + ": allowed 0-" + std::to_string(*s.mbufs * 2 / 3) +
               " (at most 2/3 of mbufs = " + std::to_string(*s.mbufs) + ": rte_mempool's cache flush threshold)";
    // Every RX descriptor holds an mbuf from the start, and TX descriptors
    // hold theirs until the NIC is done: a smaller pool leaves nothing to
    // receive into.
    if (s.mbufs) {
        const uint64_t need = uint64_t(s.rx_desc ? *s.rx_desc : 0) * (s.rx_queues ? *s.rx_queues : 1) +
                              uint64_t(s.tx_desc ? *s.tx_desc : 0) * (s.tx_queues ? *s.tx_queues : 1);
        if (*s.mbufs < need)
            return s.mbufs.origin.where() + ": allowed " + std::to_string(need) + "-" + std::to_string(kMaxMbufs) +
                   " (rx_desc x rx_queues + tx_desc x tx_queues mbufs sit in the rings)";
    }
    return {};
}

} // namespace millipede::config

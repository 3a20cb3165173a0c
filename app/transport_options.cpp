// `tx` / `rx` command line: viamillipede's words plus dpdk-millipede's
// options, parsed before EAL starts (set-up code: one line of error text,
// never an exit or an exception).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "millipede/net/addr_parse.h"
#include "millipede/seal/key_file.h"
#include "millipede/stripe/aead.h"
#include "options.h"
#include "transport_mode.h"

namespace millipede::app {

namespace {

std::optional<uint64_t> parse_bytes(std::string_view s, uint64_t lo, uint64_t hi) {
    uint64_t mult = 1;
    if (!s.empty()) {
        char c = s.back();
        if (c == 'k' || c == 'K') mult = 1ull << 10;
        else if (c == 'm' || c == 'M') mult = 1ull << 20;
        else if (c == 'g' || c == 'G') mult = 1ull << 30;
        else if (c == 't' || c == 'T') mult = 1ull << 40;
        if (mult != 1) s.remove_suffix(1);
    }
    auto v = parse_uint(s, 0, UINT64_MAX / mult);
    if (!v) return std::nullopt;
    uint64_t r = *v * mult;
    if (r < lo || r > hi) return std::nullopt;
    return r;
}

// "0.5" -> 5000 parts per million; at most three decimals, at most `max_ppm`.
std::optional<uint32_t> parse_percent_ppm(std::string_view s, uint32_t max_ppm) {
    const size_t dot = s.find('.');
    std::string_view whole = s.substr(0, dot), frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
    if (whole.empty() || frac.size() > 4 || (dot != std::string_view::npos && frac.empty())) return std::nullopt;
    auto w = parse_uint(whole, 0, 100);
    if (!w) return std::nullopt;
    uint64_t ppm = *w * 10'000;
    uint64_t scale = 1000;
    for (char c : frac) {
        if (c < '0' || c > '9') return std::nullopt;
        ppm += uint64_t(c - '0') * scale;
        scale /= 10;
    }
    if (ppm > max_ppm) return std::nullopt;
    return static_cast<uint32_t>(ppm);
}

// A whole number as C's strtoul(s, NULL, 0) reads one (what stock
// viamillipede uses for prbs and leglimit): decimal, 0x hex or 0 octal.
std::optional<uint64_t> parse_c_number(std::string_view s) {
    if (s.empty() || s.size() > 24 || !(s[0] >= '0' && s[0] <= '9')) return std::nullopt;
    const std::string str(s);
    char *end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(str.c_str(), &end, 0);
    if (errno != 0 || end != str.c_str() + str.size()) return std::nullopt;
    return static_cast<uint64_t>(v);
}

} // namespace

std::string parse_transport_args(int argc, char **argv, TransportOptions &o) {
    // `rx PORT` and `tx HOST PORT` together (either order) are full duplex,
    // as in stock viamillipede: stdin out over tx, PORT's stream to stdout.
    bool saw_tx = false, saw_rx = false;
    bool compress_threads_given = false;
    bool parity_queue_ahead_given = false;
    uint64_t delayus = 0;
    bool checkphrase_given = false; // key FILE replaces it
    bool stall_given = false;       // a tunnel has no stall timeout unless given one
    bool terminate_on_given = false; // --terminate-on: only with terminate
    for (int i = 0; i < argc; ++i)
        if (std::string_view a = argv[i]; a == "--help" || a == "-h" || a == "help") {
            o.help = true;
            return {};
        }
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        auto need = [&](int n) { return i + n < argc; };
        if (a == "--help" || a == "-h" || a == "help") {
            o.help = true;
            return {};
        } else if (a == "tx") {
            if (!need(2)) return "tx needs HOST PORT, e.g. tx 10.0.0.2 8834";
            TxDestination d;
            if (net::parse_ipv6(argv[i + 1], d.addr6.data())) {
                d.v6 = true;
                if (net::ipv6_is_unspecified(d.addr6.data()) || net::ipv6_is_multicast(d.addr6.data()) ||
                    net::ipv6_is_loopback(d.addr6.data()))
                    return "tx HOST must be a unicast address of a neighbour: '" + std::string(argv[i + 1]) + "'";
            } else if (!net::parse_ipv4(argv[i + 1], d.addr)) {
                return "tx HOST must be an IPv4 or IPv6 address (no name resolution on the DPDK data plane): '" +
                       std::string(argv[i + 1]) + "'";
            }
            auto p = parse_uint(argv[i + 2], 1, 65535);
            if (!p) return "tx PORT must be 1-65535: '" + std::string(argv[i + 2]) + "'";
            d.port = static_cast<uint16_t>(*p);
            o.dests.push_back(d);
            saw_tx = true;
            i += 2;
        } else if (a == "rx") {
            if (saw_rx) return "rx given twice: one process listens on one PORT";
            if (!need(1)) return "rx needs PORT, e.g. rx 8834";
            auto p = parse_uint(argv[i + 1], 1, 65535);
            if (!p) return "rx PORT must be 1-65535: '" + std::string(argv[i + 1]) + "'";
            o.listen_port = static_cast<uint16_t>(*p);
            saw_rx = true;
            i += 1;
        } else if (a == "threads") {
            auto n = need(1) ? parse_uint(argv[++i], 1, 64) : std::nullopt;
            if (!n) return "threads needs a number from 1 to 64";
            o.threads = static_cast<uint32_t>(*n);
        } else if (a == "checksums" || a == "checksum") { // stock spells it `checksums`
            o.checksum = true;
        } else if (a == "chaos") {
            auto n = need(1) ? parse_uint(argv[++i], 0, UINT64_MAX) : std::nullopt;
            if (!n) return "chaos needs a number of chunks (0: off)";
            o.chaos = *n;
        } else if (a == "parity") {
            auto n = need(1) ? parse_uint(argv[++i], 0, 63) : std::nullopt;
            if (!n) return "parity needs the number of parity chunks per stripe, 1 to 63 (0: off)";
            o.parity = static_cast<uint32_t>(*n);
        } else if (a == "--parity-queue-ahead") {
            // How many bytes a leg may hold TCP-unacknowledged before it
            // takes its next chunk (parity only; docs/benchmarks.md).
            const std::string_view v = need(1) ? std::string_view(argv[++i]) : std::string_view();
            std::optional<uint64_t> n;
            if (v == "auto") {
                o.parity_queue_ahead = stripe::QueueAhead::AUTO;
            } else if (v == "off") {
                o.parity_queue_ahead = stripe::QueueAhead::OFF;
            } else if ((n = parse_bytes(v, 1, 1ull << 40))) {
                o.parity_queue_ahead = stripe::QueueAhead::FIXED;
                o.parity_queue_ahead_bytes = *n;
            } else {
                return "--parity-queue-ahead needs auto, off or a byte count > 0 (K/M/G suffixes), e.g. 256K";
            }
            parity_queue_ahead_given = true;
        } else if (a == "verbose") {
            auto n = need(1) ? parse_uint(argv[++i], 0, UINT64_MAX) : std::nullopt;
            if (!n) return "verbose needs a level (a number, 0 and up)";
            o.verbose = static_cast<unsigned>(std::min<uint64_t>(*n, 20));
        } else if (a == "checkphrase") {
            if (!need(1) || std::strlen(argv[i + 1]) != 4)
                return "checkphrase needs exactly 4 characters, e.g. checkphrase yoes (stock viamillipede "
                       "sends and compares only the first 4 of a longer one: give those)";
            std::memcpy(o.checkphrase, argv[++i], 4);
            checkphrase_given = true;
        } else if (a == "key") {
            if (!need(1)) return "key needs a file holding a 256-bit key (32 raw bytes or 64 hex digits), e.g. key /etc/millipede.key";
            std::string err, warning;
            seal::Key k;
            if (!seal::load_key_file(argv[++i], k, err, warning)) return err;
            if (!warning.empty()) std::fprintf(stderr, "dpdk-millipede: warning: %s\n", warning.c_str());
            std::copy(k.begin(), k.end(), o.key.begin());
            explicit_bzero(k.data(), k.size());
            o.keyed = true;
        } else if (a == "prbs") {
            auto n = need(1) ? parse_c_number(argv[++i]) : std::nullopt;
            if (!n) return "prbs needs a seed, a number (decimal or 0x hex), e.g. prbs 0x5aa5";
            o.prbs = true;
            o.prbs_seed = *n;
        } else if (a == "leglimit") {
            auto n = need(1) ? parse_c_number(argv[++i]) : std::nullopt;
            if (!n) return "leglimit needs a number of chunks (0: no limit)";
            o.leglimit = *n;
        } else if (a == "compress") {
            o.compress = true;
        } else if (a == "--compress-threads") {
            auto n = need(1) ? parse_uint(argv[++i], 1, 16) : std::nullopt;
            if (!n) return "--compress-threads needs a number from 1 to 16";
            o.compress_threads = static_cast<uint32_t>(*n);
            compress_threads_given = true;
        } else if (a == "charmode") {
            o.charmode = true;
        } else if (a == "delayus") {
            auto n = need(1) ? parse_uint(argv[++i], 0, 60'000'000) : std::nullopt;
            if (!n) return "delayus needs microseconds from 0 to 60000000 (0: no delay)";
            delayus = *n;
        } else if (a == "--rate") {
            auto n = need(1) ? parse_bytes(argv[++i], 1, UINT64_MAX / 2) : std::nullopt;
            if (!n) return "--rate needs bytes per second > 0 (K/M/G suffixes allowed, e.g. --rate 100M)";
            o.rate = *n;
        } else if (a == "terminate") {
            if (o.terminate_port) return "terminate given twice: one process accepts on one PORT";
            auto p = need(1) ? parse_uint(argv[i + 1], 1, 65535) : std::nullopt;
            if (!p) return "terminate needs PORT (1-65535), the host's TCP port to accept tunnelled connections on";
            o.terminate_port = static_cast<uint16_t>(*p);
            i += 1;
        } else if (a == "--terminate-on") {
            const std::string v = need(1) ? argv[++i] : "";
            if (v == "ports") o.terminate_on_ports = true;
            else if (v == "kernel") o.terminate_on_ports = false;
            else return "--terminate-on needs kernel (the host's TCP port, the default) or ports (the DPDK ports' own addresses)";
            terminate_on_given = true;
        } else if (a == "initiate") {
            if (!o.initiate_host.empty()) return "initiate given twice: one process opens connections to one HOST PORT";
            if (!need(2)) return "initiate needs HOST PORT, e.g. initiate 127.0.0.1 22";
            auto p = parse_uint(argv[i + 2], 1, 65535);
            if (!p || !*argv[i + 1]) return "initiate PORT must be 1-65535: '" + std::string(argv[i + 2]) + "'";
            o.initiate_host = argv[i + 1];
            o.initiate_port = static_cast<uint16_t>(*p);
            i += 2;
        } else if (a == "--ip") {
            if (!need(1)) return "--ip needs PORTID=ADDR/PREFIX, e.g. --ip 0=10.0.0.1/24";
            net::IpAssignment ip;
            std::string err;
            if (!net::parse_ip_option(argv[++i], ip, err)) return err;
            for (const auto &x : o.ips) {
                if (x.v6 == ip.v6 && x.addr == ip.addr && x.addr6 == ip.addr6)
                    return "--ip: address " + ip.text() + " given twice";
                // The data plane keys IPv6 addresses by a 32-bit hash (ipv6.h).
                if (x.v6 && ip.v6 && x.addr == ip.addr)
                    return "--ip: addresses " + x.text() + " and " + ip.text() +
                           " share an internal key; give one of them another address";
                if (x.v6 != ip.v6)
                    return "--ip: " + x.text() + " and " + ip.text() +
                           ": IPv4 and IPv6 addresses cannot be mixed in one run (give all --ip in one family)";
            }
            o.ips.push_back(ip);
        } else if (a == "--neigh") {
            if (!need(1)) return "--neigh needs ADDR=MAC, e.g. --neigh 10.0.0.2=02:00:00:00:00:02";
            net::StaticNeighbour n;
            std::string err;
            if (!net::parse_neigh_option(argv[++i], n, err)) return err;
            o.neighs.push_back(n);
        } else if (a == "--compat") {
            if (!need(1) || std::string_view(argv[i + 1]) != "viamillipede")
                return "--compat needs 'viamillipede'";
            ++i;
            o.compat = true;
        } else if (a == "--size") {
            auto n = need(1) ? parse_bytes(argv[++i], 0, UINT64_MAX - 1) : std::nullopt;
            if (!n) return "--size needs a byte count (K/M/G/T suffixes allowed)";
            o.size = *n;
            o.size_given = true;
        } else if (a == "--chunk") {
            auto n = need(1) ? parse_bytes(argv[++i], 1024, 2u << 20) : std::nullopt;
            if (!n) return "--chunk needs a byte count from 1K to 2M";
            o.chunk_bytes = static_cast<uint32_t>(*n);
        } else if (a == "--progress") {
            o.progress = 1;
        } else if (a == "--no-progress") {
            o.progress = 0;
        } else if (a == "--connect-timeout" || a == "--stall-timeout" || a == "--wait") {
            auto ns = need(1) ? parse_seconds_ns(argv[++i]) : std::nullopt;
            if (!ns) return std::string(a) + " needs seconds > 0";
            // Rounded up: a value under 1 us must not become 0, which means "no limit".
            uint64_t us = (*ns + 999) / 1000;
            if (us == 0) us = 1;
            if (a == "--connect-timeout") o.connect_timeout_us = us;
            else if (a == "--stall-timeout") o.stall_timeout_us = us, stall_given = true;
            else o.wait_us = us;
        } else if (a == "--drop-rx" || a == "--drop-tx") {
            auto ppm = need(1) ? parse_percent_ppm(argv[++i], 500'000) : std::nullopt;
            if (!ppm) return std::string(a) + " needs a percentage from 0 to 50, e.g. 0.5";
            (a == "--drop-rx" ? o.drop_rx_ppm : o.drop_tx_ppm) = *ppm;
        } else if (a == "--mtu") {
            auto n = need(1) ? parse_uint(argv[++i], 576, 9000) : std::nullopt;
            if (!n) return "--mtu needs a number from 576 to 9000";
            o.mtu = static_cast<uint16_t>(*n);
        } else if (a == "--config") {
            if (!need(1) || !*argv[i + 1]) return "--config needs a host file, e.g. --config /etc/dpdk-millipede/host.ini";
            o.config_path = argv[++i];
        } else if (a == "--print-config") {
            o.print_config = true;
        } else if (a == "--no-offload") {
            o.offload = false;
        } else if (a == "--workers") {
            auto n = need(1) ? parse_uint(argv[++i], 1, 64) : std::nullopt;
            if (!n) return "--workers needs a number from 1 to 64";
            o.workers = static_cast<unsigned>(*n);
        } else if (a == "--busy-poll") {
            o.busy_poll = true;
        } else if (a == "--no-big-segments") {
            o.big_segments = false;
        } else if (a == "--verify-memif-checksums") {
            o.verify_memif_checksums = true;
        } else if (a == "--memif-mss") {
            auto n = need(1) ? parse_uint(argv[++i], 536, 65000) : std::nullopt;
            if (!n) return "--memif-mss needs a number from 536 to 65000";
            o.memif_mss = static_cast<uint32_t>(*n);
        } else if (a == "--cc") {
            if (!need(1) || !tcp::parse_congestion_algo(argv[i + 1], o.cc))
                return "--cc needs reno, cubic or bbr";
            ++i;
        } else if (a == "--drop-seed") {
            auto n = need(1) ? parse_uint(argv[++i], 0, UINT64_MAX) : std::nullopt;
            if (!n) return "--drop-seed needs a decimal number";
            o.drop_seed = *n;
        } else {
            return "unknown word '" + std::string(a) + "' (see -- tx --help)";
        }
    }
    if (!saw_tx && !saw_rx) return "no mode: give 'tx HOST PORT', 'rx PORT' or both (full duplex)";
    o.tx = saw_tx;
    o.duplex = saw_tx && saw_rx;
    if (!o.tx) { // (stock viamillipede ignores these on its receiver)
        if (o.chaos) return "chaos is a sender word: give it to tx, leave it out on rx";
        if (o.leglimit) return "leglimit is a sender word: give it to tx, leave it out on rx";
        if (o.rate || delayus) return "--rate and delayus limit the sender: give them to tx, leave them out on rx";
        if (o.parity)
            return "parity is a sender word: give it to tx; rx follows the sender's hello (feature bit 3)";
        if (o.compress)
            return "compress is a sender word: give it to tx; rx inflates whatever the sender compressed "
                   "(--compress-threads N sizes its pool)";
        if (o.charmode) return "charmode is a sender word: give it to tx (rx writes every chunk as soon as it is in order)";
        if (o.threads)
            return "threads is a sender word: leave it out on rx (the receiver serves as many connections as "
                   "the sender opens)";
    }
    if (std::string te = check_tunnel_words(o, stall_given); !te.empty()) return te;
    if (terminate_on_given && !o.terminate_port) return "--terminate-on without terminate PORT: it says where terminate accepts";
    if (o.terminate_on_ports) {
        if (!o.multiplexed_tunnel())
            return "--terminate-on ports needs the multiplexed tunnel (rx PORT tx HOST PORT terminate PORT, without "
                   "--compat): stock viamillipede's one-connection terminate accepts on the host's kernel";
        if (o.terminate_port == o.listen_port)
            return "--terminate-on ports: terminate PORT " + std::to_string(o.terminate_port) +
                   " is rx's PORT on the same addresses; give the tunnel another port";
    }
    if (o.prbs && o.compat)
        return "prbs with --compat viamillipede: stock viamillipede's PRBS pattern is not implemented, only "
               "dpdk-millipede's own (dpdk-millipede on both ends, without --compat); against stock "
               "viamillipede, send a file and compare checksums, e.g. `head -c 1G /dev/urandom > f; sha256sum f`";
    if (o.parity && o.compat)
        return "parity with --compat viamillipede: stock viamillipede's format has no parity chunks (a stock "
               "receiver would write them into the output); drop parity, or run dpdk-millipede on both ends "
               "without --compat";
    if (parity_queue_ahead_given && !o.parity)
        return "--parity-queue-ahead without parity: it bounds what each leg queues ahead when tx sends "
               "parity chunks (give parity K to tx)";
    if (o.tx && o.parity) {
        const uint64_t legs = o.threads ? o.threads : std::min<uint64_t>(64, 2 * o.dests.size());
        if (o.parity >= legs)
            return "parity " + std::to_string(o.parity) + " needs more legs than parity chunks: with " +
                   std::to_string(legs) + " legs a stripe would have no data chunk; give threads N with N > " +
                   std::to_string(o.parity) + " (a stripe is N - K data chunks and K parity chunks, one per leg)";
    }
    if (compress_threads_given && o.compat)
        return "--compress-threads with --compat viamillipede: stock viamillipede's wire format has no "
               "compressed chunks, so there is nothing to deflate or inflate";
    if (compress_threads_given && o.tx && !o.compress)
        return "--compress-threads without compress: tx deflates nothing unless given the word compress";
    if (o.compress && o.compat)
        return "compress with --compat viamillipede: stock viamillipede's wire format has no compressed "
               "chunks; drop compress, or run dpdk-millipede on both ends without --compat (or pipe through "
               "`gzip -1` / `zstd -1` before tx and after rx)";
    if (o.keyed && checkphrase_given)
        return "checkphrase with key: the key proof replaces the checkphrase (a wrong key is refused before any "
               "data flows); give key alone";
    if (o.keyed && o.compat)
        return "key with --compat viamillipede: stock viamillipede's wire format has no encryption; use "
               "dpdk-millipede on both ends without --compat, or leave key out";
    if (o.keyed && o.chunk_bytes <= stripe::kAeadTagBytes)
        return "key with --chunk " + std::to_string(o.chunk_bytes) + ": each chunk also carries a 16-byte tag; give --chunk 17 or more";
    if (delayus) {
        if (o.rate) return "delayus and --rate both limit the rate: give one";
        // Stock pauses delayus before each chunk it writes; here that is a
        // rate of one chunk per delayus over the whole stream.
        o.rate = std::max<uint64_t>(1, uint64_t(o.chunk_bytes) * 1'000'000 / delayus);
    }
    if (o.ips.empty())
        return "no address: give each DPDK port its address with --ip PORTID=ADDR/PREFIX, e.g. --ip 0=10.0.0.1/24 or --ip 0=fd00::1/64";
    if (o.ips[0].v6) {
        // IPv6 on the wire (docs/ipv6.md): neighbours by Neighbour Discovery.
        if (!o.neighs.empty())
            return "--neigh takes IPv4 neighbours: with IPv6 --ip addresses neighbours are found by Neighbour "
                   "Discovery; leave --neigh out";
    }
    for (const auto &d : o.dests)
        if (d.v6 != o.ips[0].v6)
            return std::string("tx HOST is ") + (d.v6 ? "IPv6" : "IPv4") + " but --ip gives " +
                   (o.ips[0].v6 ? "IPv6" : "IPv4") + " addresses: use one family on the wire";
    if (o.tx && o.dests.size() > 64) return "at most 64 tx destinations";
    if (o.duplex) {
        // No loopback on a DPDK port: a frame to our own address never
        // comes back to us.
        for (const auto &d : o.dests)
            for (const auto &ip : o.ips)
                if (d.v6 == ip.v6 && (d.v6 ? d.addr6 == ip.addr6 : d.addr == ip.addr))
                    return "tx " + (d.v6 ? net::format_ipv6(d.addr6.data()) : net::format_ipv4(d.addr)) + " " +
                           std::to_string(d.port) +
                           " is this process's own address: with rx " + std::to_string(o.listen_port) +
                           " (full duplex) give the peer's address to tx; a process cannot be its own peer";
        // Every wait is bounded: the peer's sending direction gets as long
        // to connect as ours (unless --wait says otherwise).
        if (!o.wait_us) o.wait_us = o.connect_timeout_us;
    }
    if (o.tx && o.threads && o.threads < o.dests.size())
        return "threads " + std::to_string(o.threads) + " is fewer than the " + std::to_string(o.dests.size()) +
               " tx destinations";
    return {};
}

} // namespace millipede::app

// libFuzzer target for the tx/rx command line: parse_transport_args()
// (app/transport_options.cpp, with app/options.cpp and lib/net's address
// parsers), the code that runs on whatever a user types after `--`.
//
// Input: the words, separated by NUL bytes (at most 64 words). Each word is
// its own exactly sized heap string, so ASan catches a read past its end.
//
// Checks: bad input gets one line of text (unless a word itself holds a
// line break, which the message may quote) and never a crash; --help
// anywhere wins; an accepted command line obeys every bound the usage text
// promises (ranges, sender-only words, threads >= destinations, no address
// given twice, timeouts > 0).
//
// tap's parser is not here: it lives in app/tap_mode.cpp next to EAL code
// (RTE_MAX_ETHPORTS) and cannot be compiled without it yet.
//
//   build-fuzz/tests/fuzz/transport_options_fuzz -max_total_time=60 NEW_DIR tests/fuzz/corpus/transport_options
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "transport_mode.h"

using namespace millipede::app;

namespace {

void check(bool ok) {
    if (!ok) __builtin_trap();
}

struct Argv {
    std::vector<std::unique_ptr<char[]>> words;
    std::vector<char *> ptrs;
    bool line_break = false; // some word holds '\n' or '\r'
    bool help_word = false;
};

Argv split(const uint8_t *data, size_t size) {
    Argv a;
    size_t start = 0;
    for (size_t i = 0; i <= size && a.words.size() < 64; i++) {
        if (i < size && data[i] != 0) continue;
        const size_t n = i - start;
        std::unique_ptr<char[]> w(new char[n + 1]);
        std::memcpy(w.get(), data + start, n);
        w[n] = '\0';
        const std::string_view v(w.get(), n);
        if (v.find_first_of("\r\n") != std::string_view::npos) a.line_break = true;
        if (v == "--help" || v == "-h" || v == "help") a.help_word = true;
        a.ptrs.push_back(w.get());
        a.words.push_back(std::move(w));
        start = i + 1;
    }
    return a;
}

void check_accepted(const TransportOptions &o) {
    check(!o.ips.empty());
    for (size_t i = 0; i < o.ips.size(); i++)
        for (size_t j = i + 1; j < o.ips.size(); j++) check(o.ips[i].addr != o.ips[j].addr);
    if (o.tx) {
        // Full duplex (rx PORT tx HOST PORT) also listens; a plain tx does not.
        check(!o.dests.empty() && o.dests.size() <= 64 && (o.duplex ? o.listen_port >= 1 : o.listen_port == 0));
        for (const auto &d : o.dests) check(d.port >= 1);
        check(o.threads == 0 || (o.threads <= 64 && o.threads >= o.dests.size()));
    } else {
        check(o.dests.empty() && o.listen_port >= 1);
        check(o.threads == 0 && o.chaos == 0 && o.leglimit == 0); // sender words
    }
    check(o.verbose <= 20);
    // --parity-queue-ahead: only with parity; a fixed bound is > 0 bytes
    // (the stripe sender refuses 0).
    check(o.parity_queue_ahead == millipede::stripe::QueueAhead::AUTO || o.parity > 0);
    check(o.parity_queue_ahead != millipede::stripe::QueueAhead::FIXED || o.parity_queue_ahead_bytes > 0);
    check(o.chunk_bytes >= 1024 && o.chunk_bytes <= (2u << 20));
    check(o.mtu == 0 || (o.mtu >= 576 && o.mtu <= 9000));
    check(o.drop_rx_ppm <= 500'000 && o.drop_tx_ppm <= 500'000);
    check(o.progress >= -1 && o.progress <= 1);
    check(o.size <= UINT64_MAX - 1);
    // "--connect-timeout S", "--stall-timeout S": "needs seconds > 0". A
    // zero here would turn a timeout into none at all.
    // A tunnel (terminate / initiate in native full duplex, docs/wire.md
    // 2.23) has no stall timeout unless given one: an idle tunnel makes no
    // progress. Everything else keeps one.
    const bool term = o.terminate_port != 0, init = !o.initiate_host.empty();
    const bool tunnel = o.duplex && !o.compat && (term || init);
    check(o.connect_timeout_us > 0 && (o.stall_timeout_us > 0 || tunnel));
    check(!(term && init));
    check(!term || o.tx);              // terminate feeds a sender
    check(!init || o.listen_port >= 1); // initiate takes a receiver's output
    if (tunnel) check(o.charmode && !o.prbs && o.leglimit == 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 2048) return 0;
    Argv a = split(data, size);
    const int argc = static_cast<int>(a.ptrs.size());

    TransportOptions o;
    const std::string err = parse_transport_args(argc, a.ptrs.data(), o);

    // The same words give the same verdict (no hidden state between calls).
    TransportOptions again;
    check(parse_transport_args(argc, a.ptrs.data(), again) == err);
    check(again.tx == o.tx && again.ips.size() == o.ips.size() && again.dests.size() == o.dests.size());

    if (a.help_word) {
        check(err.empty() && o.help);
        return 0;
    }
    check(!o.help);
    if (!err.empty()) {
        if (!a.line_break) check(err.find_first_of("\r\n") == std::string::npos);
        return 0;
    }
    check_accepted(o);
    return 0;
}

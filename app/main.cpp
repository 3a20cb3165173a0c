// dpdk-millipede: one data plane, three modes (tx, rx, tap).
//   dpdk-millipede [EAL options] -- MODE [mode options]
#include <cstdio>
#include <cstring>
#include <string_view>

#include "modes.h"
#include "transport_mode.h"

namespace {

void usage(FILE *f) {
    std::fprintf(f,
                 "dpdk-millipede %s - kernel-bypass pipe striping and flow-pinned DPI tap on DPDK\n"
                 "\n"
                 "usage: dpdk-millipede [EAL options] -- MODE [options]\n"
                 "\n"
                 "modes:\n"
                 "  tx      stdin striped over TCP connections on DPDK ports to an rx\n"
                 "          (dpdk-millipede -- tx --help)\n"
                 "  rx      accept a tx's connections, write the stream to stdout in order\n"
                 "          (dpdk-millipede -- rx --help)\n"
                 "  tap     classify traffic from DPDK ports by flow, pin flows to workers\n"
                 "          (dpdk-millipede -- tap --help)\n"
                 "\n"
                 "examples:\n"
                 "  dpdk-millipede -l 0-1 -a 03:00.0 -a 03:00.1 -- rx 8834 --ip 0=10.0.0.2/24 --ip 1=10.0.1.2/24 > out\n"
                 "  dpdk-millipede -l 0-1 -a 03:00.0 -a 03:00.1 -- tx 10.0.0.2 8834 tx 10.0.1.2 8834 threads 8 \\\n"
                 "      --ip 0=10.0.0.1/24 --ip 1=10.0.1.1/24 < in\n"
                 "  dpdk-millipede --no-pci --vdev 'net_pcap0,rx_pcap=capture.pcap' -- tap --summary -\n"
                 "  dpdk-millipede -l 0-3 -a 03:00.0 -- tap --policy busy --migrate\n"
                 "\n"
                 "  --help, --version   (before or after --)\n",
                 MILLIPEDE_VERSION);
}

bool is_flag(const char *a, const char *name) { return std::strcmp(a, name) == 0; }

} // namespace

int main(int argc, char **argv) {
    // --help/--version work without EAL (no hugepages, no root needed).
    for (int i = 1; i < argc; ++i) {
        if (is_flag(argv[i], "--version")) {
            std::printf("dpdk-millipede %s\n", MILLIPEDE_VERSION);
            return 0;
        }
        if (is_flag(argv[i], "--help") && (i == 1 || is_flag(argv[i - 1], "--"))) {
            usage(stdout);
            return 0;
        }
    }
    int dashdash = -1;
    for (int i = 1; i < argc; ++i)
        if (is_flag(argv[i], "--")) {
            dashdash = i;
            break;
        }
    if (dashdash < 0 || dashdash + 1 >= argc) {
        std::fprintf(stderr, "dpdk-millipede: no mode given: dpdk-millipede [EAL options] -- MODE (see --help)\n");
        return 2;
    }
    std::string_view mode = argv[dashdash + 1];
    if (mode == "tx" || mode == "rx")
        return millipede::app::run_transport(argc - dashdash - 1, argv + dashdash + 1, dashdash, argv);
    if (mode != "tap") {
        std::fprintf(stderr, "dpdk-millipede: unknown mode '%.*s' (see --help)\n", int(mode.size()), mode.data());
        return 2;
    }
    // Like tx/rx: tap parses its options before it initialises EAL.
    return millipede::app::run_tap(argc - dashdash - 2, argv + dashdash + 2, dashdash, argv);
}

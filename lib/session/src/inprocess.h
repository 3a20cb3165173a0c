// In-process queues between a session core and one LegHost, for the
// single-threaded TxSession / RxSession (the simulator and tests).
#pragma once

#include "millipede/session/leg_host.h"
#include "millipede/session/messages.h"

namespace millipede::session::detail {

// Large enough for every burst the core and one host exchange between two
// pumps: writes are bounded by credit, reports by connections x spans.
inline constexpr size_t kInProcessQueue = 4096;

struct InProcessQueues : CommandOut, ReportOut {
    FixedFifo<LegCommand> commands{kInProcessQueue};
    FixedFifo<LegReport> reports{kInProcessQueue};
    bool send(uint32_t, const LegCommand &c) override { return commands.push(c); }
    uint32_t hosts() const override { return 1; }
    uint32_t pick_host(const tcp::Endpoints &) override { return 0; }
    bool send(const LegReport &r) override { return reports.push(r); }

    // Hands the core's commands to the host and the host's reports to the
    // core until neither queue moves (at most 64 rounds), as the data
    // plane's rings do between lcores. Core: TxCore or RxCore.
    template <class Core> void pump(LegHost &host, Core &core, uint64_t now) {
        for (int round = 0; round < 64; round++) {
            bool moved = false;
            LegCommand c;
            while (commands.pop(c)) {
                host.on_command(c, now);
                moved = true;
            }
            host.poll(now);
            LegReport r;
            while (reports.pop(r)) {
                core.on_report(r, now);
                moved = true;
            }
            if (!moved) return;
        }
    }
};

} // namespace millipede::session::detail

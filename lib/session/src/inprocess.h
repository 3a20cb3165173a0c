// In-process queues between a session core and one LegHost, for the
// single-threaded TxSession / RxSession (the simulator and tests).
#pragma once

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
};

} // namespace millipede::session::detail

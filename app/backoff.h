// Idle back-off for polling loops: spin politely first, then sleep in
// growing steps, so that an oversubscribed core (two DPDK processes on a
// 2-core machine) stays usable. Used by every mode's loops; one per loop.
#pragma once

#include <algorithm>

#include <rte_cycles.h>
#include <rte_pause.h>

namespace millipede::app {

struct Backoff {
    unsigned empty = 0;
    void reset() { empty = 0; }
    void idle() {
        if (++empty < 64) {
            rte_pause();
        } else {
            unsigned shift = std::min(empty / 64, 5u);
            rte_delay_us_sleep(10u << shift); // 10 us .. 320 us
        }
    }
};

} // namespace millipede::app

// Which lcore does what, and how an idle one waits.
//
// Roles collapse with the lcores given (-l / --lcores), as the design asks:
//
//   lcores | main lcore                    | second             | the rest
//   -------+-------------------------------+--------------------+-------------
//   1      | control+rx+session+worker 0   | -                  | -
//   2      | control                       | rx+session+worker 0| -
//   3+     | control                       | rx+session         | workers 0..n-3
//
// Workers are logical, as in tap: `--workers N` above the worker lcores
// puts several workers on one lcore (round-robin), each with its own rings
// and connections, polled in turn. So `--workers 2 -l 0` runs two
// share-nothing workers in one loop, and the same command scales out when
// it is given more lcores.
//
// "rx" polls the ports, classifies and owns ARP/ICMP and the neighbour
// caches; "session" runs the stripe core and talks to the pipe threads;
// a "worker" owns TCP connections (LegHost) and transmits on its own TX
// queue of every port.
//
// Contract: plan_lcores() is pure set-up code. Backoff belongs to one loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_pause.h>

namespace millipede::dataplane {

enum Role : uint32_t {
    kRoleControl = 1u << 0,
    kRoleRx = 1u << 1,
    kRoleSession = 1u << 2,
    kRoleWorker = 1u << 3,
};

struct LcorePlan {
    struct Lcore {
        unsigned id = 0;
        uint32_t roles = 0;
        std::vector<unsigned> workers; // logical workers this lcore polls (kRoleWorker)
    };
    std::vector<Lcore> lcores; // lcores[0] is the main lcore
    unsigned workers = 0;
    unsigned unused = 0;       // lcores given but not needed (max_workers)
    unsigned lcore_of_worker(unsigned w) const; // slot of the lcore that polls worker w
    // "lcore 0: control; lcore 1: rx+session+worker 0"
    std::string describe() const;
    static std::string role_name(uint32_t roles);
    // Distinct lcores that transmit (rx and workers): TX queues per port.
    unsigned transmitters() const;
    unsigned transmitter_index(unsigned lcore_slot) const; // 0.. for an lcore that transmits
};

// `ids`: the main lcore first, then the others (RTE_LCORE_FOREACH_WORKER).
// workers 0: one per worker lcore; fewer: the rest of the lcores stay
// unused; more: logical workers spread round-robin over the worker lcores.
LcorePlan plan_lcores(const std::vector<unsigned> &ids, unsigned workers);

// Idle back-off for polling loops: spin politely first, then sleep in
// growing steps, so that an oversubscribed core (two DPDK processes on a
// 2-core machine) stays usable. busy_poll: spin only (dedicated cores).
struct Backoff {
    bool busy_poll = false;
    unsigned empty = 0;
    void reset() { empty = 0; }
    void idle() {
        if (busy_poll || ++empty < 64) {
            rte_pause();
        } else {
            const unsigned shift = std::min(empty / 64, 5u);
            rte_delay_us_sleep(10u << shift); // 10 us .. 320 us
        }
    }
};

} // namespace millipede::dataplane

// Which lcore does what in the tap (tap.h, docs/tap.md "Lcores and shards").
//
// The tap's roles are control (stats lines, stop), rx (polls one RX queue of
// every port and runs that queue's classifier shard) and worker (logical
// workers' rings). With S shards (--rx-shards) and L lcores:
//
//   L      | main lcore                 | next                  | the rest
//   -------+----------------------------+-----------------------+----------------
//   1      | control+rx(all)+worker     | -                     | -
//   2      | control                    | rx(all)+worker        | -
//   3+     | control                    | R = min(S, L-2) rx    | worker lcores
//            lcores; shard s on rx lcore s mod R
//
// With S = 1 this is the transport's plan (lcores.h, plan_lcores()): control
// | rx | workers. Shards add parallelism only when L >= S + 2 (one rx lcore
// per shard and at least one worker lcore); with fewer lcores the shards
// share rx lcores and run in turn, which still works (each keeps its own
// table) but is no faster than one shard.
//
// Contract: pure set-up code, any thread, no EAL.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "millipede/dataplane/lcores.h"

namespace millipede::dataplane {

struct TapLayout {
    LcorePlan plan;                          // ids, roles, logical workers per lcore (filled for `workers`)
    std::vector<std::vector<unsigned>> shards; // per lcore slot: the shards it polls (rx role)
    unsigned worker_lcores = 0;
    // "lcore 0: control; lcore 1: rx shards 0,1; lcore 2: workers 0,1"
    std::string describe() const;
};

// `ids`: the main lcore first, then the others. `workers` 0: one logical
// worker per worker lcore; more: spread round-robin over the worker lcores.
inline TapLayout plan_tap_lcores(const std::vector<unsigned> &ids, unsigned shards, unsigned workers) {
    TapLayout t;
    const unsigned n = static_cast<unsigned>(ids.size());
    if (shards == 0) shards = 1;
    t.shards.resize(n);
    for (unsigned i = 0; i < n; ++i) t.plan.lcores.push_back({ids[i], 0, {}});
    if (n == 0) return t;
    unsigned rx_first = 0, rx_count = 1;
    t.plan.lcores[0].roles = kRoleControl;
    if (n == 1) {
        t.plan.lcores[0].roles |= kRoleRx | kRoleWorker;
    } else if (n == 2) {
        rx_first = 1;
        t.plan.lcores[1].roles = kRoleRx | kRoleWorker;
    } else {
        rx_first = 1;
        rx_count = std::min(shards, n - 2);
        for (unsigned i = 1; i <= rx_count; ++i) t.plan.lcores[i].roles = kRoleRx;
        for (unsigned i = rx_count + 1; i < n; ++i) t.plan.lcores[i].roles = kRoleWorker;
    }
    for (unsigned s = 0; s < shards; ++s) t.shards[rx_first + s % rx_count].push_back(s);
    std::vector<unsigned> worker_slots;
    for (unsigned i = 0; i < n; ++i)
        if (t.plan.lcores[i].roles & kRoleWorker) worker_slots.push_back(i);
    t.worker_lcores = static_cast<unsigned>(worker_slots.size());
    t.plan.workers = workers ? workers : t.worker_lcores;
    for (unsigned w = 0; w < t.plan.workers; ++w)
        t.plan.lcores[worker_slots[w % worker_slots.size()]].workers.push_back(w);
    return t;
}

inline std::string TapLayout::describe() const {
    auto list = [](const std::vector<unsigned> &v) {
        std::string s;
        for (unsigned x : v) {
            if (!s.empty()) s += ',';
            s += std::to_string(x);
        }
        return s;
    };
    std::string out;
    for (unsigned i = 0; i < plan.lcores.size(); ++i) {
        const LcorePlan::Lcore &l = plan.lcores[i];
        std::string roles;
        auto add = [&](const std::string &r) { roles += (roles.empty() ? "" : "+") + r; };
        if (l.roles & kRoleControl) add("control");
        if (l.roles & kRoleRx) add(std::string(shards[i].size() > 1 ? "rx shards " : "rx shard ") + list(shards[i]));
        if ((l.roles & kRoleWorker) && !l.workers.empty())
            add(std::string(l.workers.size() > 1 ? "workers " : "worker ") + list(l.workers));
        out += (out.empty() ? "" : "; ") + std::string("lcore ") + std::to_string(l.id) + ": " + (roles.empty() ? "idle" : roles);
    }
    return out;
}

} // namespace millipede::dataplane

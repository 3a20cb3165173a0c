// Lcore roles; see lcores.h.
#include "millipede/dataplane/lcores.h"

#include <algorithm>

namespace millipede::dataplane {

std::string LcorePlan::role_name(uint32_t r) {
    std::string s;
    auto add = [&](uint32_t bit, const char *name) {
        if (!(r & bit)) return;
        if (!s.empty()) s += "+";
        s += name;
    };
    add(kRoleControl, "control");
    add(kRoleRx, "rx");
    add(kRoleSession, "session");
    add(kRoleWorker, "worker");
    return s.empty() ? "unused" : s;
}

std::string LcorePlan::describe() const {
    std::string s;
    for (const Lcore &l : lcores) {
        if (!s.empty()) s += "; ";
        s += "lcore " + std::to_string(l.id) + ": " + role_name(l.roles);
        for (size_t k = 0; k < l.workers.size(); k++) {
            s += k ? ',' : ' ';
            s += std::to_string(l.workers[k]);
        }
    }
    return s;
}

unsigned LcorePlan::lcore_of_worker(unsigned w) const {
    for (unsigned slot = 0; slot < lcores.size(); slot++)
        for (unsigned x : lcores[slot].workers)
            if (x == w) return slot;
    return 0;
}

unsigned LcorePlan::transmitters() const {
    unsigned n = 0;
    for (const Lcore &l : lcores) n += (l.roles & (kRoleRx | kRoleWorker)) != 0;
    return n;
}

unsigned LcorePlan::transmitter_index(unsigned slot) const {
    unsigned n = 0;
    for (unsigned i = 0; i < slot && i < lcores.size(); i++) n += (lcores[i].roles & (kRoleRx | kRoleWorker)) != 0;
    return n;
}

LcorePlan plan_lcores(const std::vector<unsigned> &ids, unsigned workers) {
    LcorePlan p;
    if (ids.empty()) return p;
    // The lcores that will poll workers, by the table in lcores.h.
    std::vector<size_t> worker_slots;
    if (ids.size() == 1) {
        p.lcores.push_back({ids[0], kRoleControl | kRoleRx | kRoleSession | kRoleWorker, {}});
        worker_slots.push_back(0);
    } else {
        p.lcores.push_back({ids[0], kRoleControl, {}});
        if (ids.size() == 2 || workers == 1) {
            p.lcores.push_back({ids[1], kRoleRx | kRoleSession | kRoleWorker, {}});
            worker_slots.push_back(1);
            p.unused = static_cast<unsigned>(ids.size()) - 2;
        } else {
            p.lcores.push_back({ids[1], kRoleRx | kRoleSession, {}});
            for (size_t i = 2; i < ids.size(); i++) {
                if (workers && worker_slots.size() == workers) {
                    p.unused++;
                    continue;
                }
                worker_slots.push_back(p.lcores.size());
                p.lcores.push_back({ids[i], kRoleWorker, {}});
            }
        }
    }
    p.workers = std::max<unsigned>(workers, static_cast<unsigned>(worker_slots.size()));
    for (unsigned w = 0; w < p.workers; w++) p.lcores[worker_slots[w % worker_slots.size()]].workers.push_back(w);
    return p;
}

} // namespace millipede::dataplane

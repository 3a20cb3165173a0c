// Lcore roles; see lcores.h.
#include "millipede/dataplane/lcores.h"

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
        if (l.roles & kRoleWorker) s += " " + std::to_string(l.worker);
    }
    return s;
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

LcorePlan plan_lcores(const std::vector<unsigned> &ids, unsigned max_workers) {
    LcorePlan p;
    if (ids.empty()) return p;
    if (ids.size() == 1) {
        p.lcores.push_back({ids[0], kRoleControl | kRoleRx | kRoleSession | kRoleWorker, 0});
        p.workers = 1;
        return p;
    }
    p.lcores.push_back({ids[0], kRoleControl, 0});
    if (ids.size() == 2 || max_workers == 1) {
        p.lcores.push_back({ids[1], kRoleRx | kRoleSession | kRoleWorker, 0});
        p.workers = 1;
        p.unused = static_cast<unsigned>(ids.size()) - 2;
        return p;
    }
    p.lcores.push_back({ids[1], kRoleRx | kRoleSession, 0});
    for (size_t i = 2; i < ids.size(); i++) {
        if (max_workers && p.workers == max_workers) {
            p.unused++;
            continue;
        }
        p.lcores.push_back({ids[i], kRoleWorker, p.workers++});
    }
    return p;
}

} // namespace millipede::dataplane

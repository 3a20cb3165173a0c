#include "millipede/flow/balancer.h"

#include <stdexcept>

namespace millipede::flow {

std::optional<Policy> parse_policy(std::string_view name) {
    if (name == "hash") return Policy::Hash;
    if (name == "pending") return Policy::Pending;
    if (name == "busy") return Policy::Busy;
    return std::nullopt;
}

const char *policy_name(Policy p) {
    switch (p) {
    case Policy::Hash: return "hash";
    case Policy::Pending: return "pending";
    case Policy::Busy: return "busy";
    }
    return "?";
}

Balancer::Balancer(Policy policy, unsigned n_workers, BalancerTuning tuning)
    : policy_(policy), tuning_(tuning), score_(n_workers, 0.0f) {
    if (n_workers == 0) throw std::invalid_argument("balancer needs at least one worker");
}

void Balancer::refresh(std::span<const WorkerLoad> loads) {
    for (unsigned w = 0; w < score_.size() && w < loads.size(); ++w) {
        float s = static_cast<float>(loads[w].backlog);
        if (policy_ == Policy::Busy) s += tuning_.busy_weight * loads[w].busy_share;
        score_[w] = s;
    }
    rescan_best();
}

void Balancer::rescan_best() {
    unsigned best = 0;
    for (unsigned w = 1; w < score_.size(); ++w)
        if (score_[w] < score_[best]) best = w;
    best_ = best;
}

void Balancer::bump(unsigned worker, float by) {
    score_[worker] += by;
    if (worker == best_) rescan_best();
}

unsigned Balancer::pick_new(uint32_t flow_hash) {
    if (policy_ == Policy::Hash) {
        // Multiply-shift instead of modulo: uniform and division-free.
        return static_cast<unsigned>((uint64_t(flow_hash) * score_.size()) >> 32);
    }
    return best_;
}

unsigned Balancer::migration_target(unsigned current) const {
    if (policy_ == Policy::Hash || current == best_) return current;
    return score_[current] > score_[best_] + tuning_.migrate_margin ? best_ : current;
}

} // namespace millipede::flow

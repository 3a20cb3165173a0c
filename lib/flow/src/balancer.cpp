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
    : policy_(policy), tuning_(tuning), score_(n_workers, 0.0f), rate_(n_workers, 0.0f), hot_(n_workers, 0),
      tokens_(tuning.move_burst) {
    if (n_workers == 0) throw std::invalid_argument("balancer needs at least one worker");
}

void Balancer::refresh(std::span<const WorkerLoad> loads) {
    const unsigned n = static_cast<unsigned>(score_.size());
    float rate_sum = 0;
    for (unsigned w = 0; w < n && w < loads.size(); ++w) {
        float s = static_cast<float>(loads[w].backlog);
        if (policy_ == Policy::Busy) s += tuning_.busy_weight * loads[w].busy_share;
        score_[w] = s;
        rate_[w] = loads[w].rate;
        rate_sum += loads[w].rate;
    }
    rescan_best();
    if (policy_ == Policy::Hash) return; // nothing ever moves
    // Hysteresis per worker (see the header): the thresholds to turn hot are
    // above those to cool down, so a worker near one threshold does not
    // flip every burst and drag flows back and forth.
    const float mean = rate_sum / static_cast<float>(n);
    const float best_score = score_[best_];
    unsigned coolest = 0;
    bool any = false;
    for (unsigned w = 0; w < n; ++w) {
        if (rate_[w] < rate_[coolest]) coolest = w;
        bool rate_hot = mean > 0 && rate_[w] > mean * (1.0f + tuning_.hot_above);
        bool rate_cool = mean <= 0 || rate_[w] <= mean * (1.0f + tuning_.cool_below);
        bool score_hot = score_[w] > best_score + tuning_.migrate_margin;
        bool score_cool = score_[w] <= best_score + 0.5f * tuning_.migrate_margin;
        hot_[w] = hot_[w] ? !(rate_cool && score_cool) : (rate_hot || score_hot);
        any = any || hot_[w];
    }
    coolest_ = coolest;
    any_hot_ = any;
}

void Balancer::rescan_best() const {
    unsigned best = 0;
    for (unsigned w = 1; w < score_.size(); ++w)
        if (score_[w] < score_[best]) best = w;
    best_ = best;
    best_stale_ = false;
}

unsigned Balancer::pick_new(uint32_t flow_hash) {
    if (policy_ == Policy::Hash) {
        // Multiply-shift instead of modulo: uniform and division-free.
        return static_cast<unsigned>((uint64_t(flow_hash) * score_.size()) >> 32);
    }
    return best_worker();
}

void Balancer::note_move(unsigned from, unsigned to, float flow_rate) {
    tokens_ -= 1.0f;
    // Until the next refresh, so that the moves of one burst do not all go
    // to the worker that was coolest when it began.
    rate_[from] = rate_[from] > flow_rate ? rate_[from] - flow_rate : 0.0f;
    rate_[to] += flow_rate;
    float low = rate_[coolest_];
    unsigned c = coolest_;
    for (unsigned w = 0; w < rate_.size(); ++w)
        if (rate_[w] < low) {
            low = rate_[w];
            c = w;
        }
    coolest_ = c;
}

} // namespace millipede::flow

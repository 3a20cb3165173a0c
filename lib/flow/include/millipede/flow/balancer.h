// Which worker gets a flow: the balancer policy.
//
// Contract: pure (no EAL), owned and called by the classifier lcore only; not
// thread-safe. The classifier refreshes the per-worker load once per burst
// (backlog from ring positions, busy share from the workers' published busy
// cycles, the smoothed rate of packets it dispatched to each) and then asks
// for a worker per new flow, and - with migration on - whether an idle flow
// (nothing in flight on its worker) should move.
//
// Policies (docs/classifier.md):
//   hash    - static: flow hash times workers >> 32, what NIC RSS would do
//   pending - the flow-balancer seed: fewest packets waiting
//   busy    - backlog plus a moving average of the worker's busy cycles,
//             reliable because workers are pinned lcores
//
// Migration (pending and busy; docs/classifier.md "Flows stay put"): a flow
// may move only from a worker that is *hot*, and only while the move budget
// has a token. A worker turns hot when its smoothed dispatch rate exceeds
// the mean by `hot_above` or its instantaneous score exceeds the best
// worker's by `migrate_margin` (a backlog building up); it stays hot until
// its rate is back within `cool_below` of the mean and its score within the
// margin (hysteresis: no flapping around one threshold). The budget refills
// by `move_budget` tokens per dispatched packet, so moves never exceed that
// share of the packets (plus `move_burst`). The classifier adds the minimum
// dwell time per flow (BalancerTuning::min_dwell_ns), which needs per-flow
// state the balancer does not hold.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace millipede::flow {

enum class Policy : uint8_t { Hash, Pending, Busy };

std::optional<Policy> parse_policy(std::string_view name);
const char *policy_name(Policy p);

// A worker's load as last seen by the classifier.
struct WorkerLoad {
    uint32_t backlog = 0;  // packets handed over but not yet completed
    float busy_share = 0;  // moving average of busy cycles / all cycles, 0..1
    // Moving average of the packets dispatched to the worker per sample
    // interval (the classifier's own count: no cross-core read). 0 when the
    // caller does not track it; then only the score makes a worker hot.
    float rate = 0;
};

struct BalancerTuning {
    // How many packets of backlog a fully busy worker is worth: converts the
    // busy share into the same unit as backlog (one ring burst by default,
    // so backlog dominates once a worker falls a burst behind).
    float busy_weight = 32.0f;
    // A worker whose score exceeds the best worker's by more than this is
    // hot (overloaded right now). Two ring bursts: the classifier's own
    // staging (up to 64 packets per worker) moves scores by that much
    // without any worker falling behind.
    float migrate_margin = 64.0f;
    // Hysteresis on the smoothed dispatch rate: hot above mean x (1 +
    // hot_above), cool again below mean x (1 + cool_below).
    float hot_above = 0.02f;
    float cool_below = 0.005f;
    // Moves per dispatched packet, at most (token bucket), and the bucket's
    // depth: the move budget (docs/classifier.md).
    float move_budget = 0.005f;
    float move_burst = 64.0f;
    // After a move a flow stays at least this long on its new worker
    // (enforced by the classifier, which keeps each flow's last move time).
    uint64_t min_dwell_ns = 50'000'000ull;
};

class Balancer {
public:
    Balancer(Policy policy, unsigned n_workers, BalancerTuning tuning = {});

    Policy policy() const { return policy_; }
    unsigned workers() const { return static_cast<unsigned>(score_.size()); }
    const BalancerTuning &tuning() const { return tuning_; }

    // Once per burst, before any pick: the fresh load of every worker.
    void refresh(std::span<const WorkerLoad> loads);

    // The worker for a new flow.
    unsigned pick_new(uint32_t flow_hash);

    // Every packet dispatched to `worker` within the burst raises its score,
    // so a burst of new flows spreads instead of piling onto the worker that
    // was least loaded when the burst began. `weight`: what one dispatch is
    // worth in packets of backlog (a new connection counts more than a
    // packet). Also refills the move budget.
    void note_dispatch(unsigned worker, float weight = 1.0f) {
        tokens_ = tokens_ < tuning_.move_burst ? tokens_ + tuning_.move_budget : tokens_;
        bump(worker, weight);
    }

    // Cheap first test, per packet: can any flow move right now (migration
    // on a load-aware policy, a token in the budget, some worker hot)?
    bool may_migrate() const { return any_hot_ && tokens_ >= 1.0f; }

    // For a flow with nothing in flight on `current`: the worker it should
    // move to, or `current` when it should stay. Always `current` for hash.
    // Inline: it runs for most packets of a hot worker's flows while a token
    // waits for a flow that may move.
    unsigned migration_target(unsigned current) const {
        if (policy_ == Policy::Hash || !hot_[current] || tokens_ < 1.0f) return current;
        // Overloaded now (a backlog): relieve it onto the least loaded worker.
        const unsigned best = best_worker();
        if (score_[current] > score_[best] + tuning_.migrate_margin) return best;
        // Too much traffic over time: onto the worker with the least, unless
        // that one is the more backlogged right now.
        if (coolest_ != current && !hot_[coolest_] && score_[coolest_] <= score_[current] + tuning_.migrate_margin)
            return coolest_;
        return current;
    }

    // The flow moved from `from` to `to`: spends a token, and its rate
    // (packets per rate sample, as WorkerLoad::rate) counts on `to` from
    // now on. The caller moves it in its own averages too.
    void note_move(unsigned from, unsigned to, float flow_rate = 1.0f);

    float score(unsigned worker) const { return score_[worker]; }
    bool hot(unsigned worker) const { return hot_[worker] != 0; }
    float tokens() const { return tokens_; }

private:
    // A dispatch raises one score; only raising the lowest can change which
    // is lowest, and most packets never ask (a known flow that stays put),
    // so the scan waits for the next question instead of running per packet.
    void bump(unsigned worker, float by) {
        score_[worker] += by;
        if (worker == best_) best_stale_ = true;
    }
    unsigned best_worker() const {
        if (best_stale_) rescan_best();
        return best_;
    }
    void rescan_best() const;

    Policy policy_;
    BalancerTuning tuning_;
    std::vector<float> score_;   // sized once at set-up
    std::vector<float> rate_;    // as last refreshed
    std::vector<uint8_t> hot_;   // hysteresis state per worker
    mutable unsigned best_ = 0;  // lowest score (when not stale)
    mutable bool best_stale_ = false;
    unsigned coolest_ = 0;       // lowest rate (the move target)
    bool any_hot_ = false;
    float tokens_;
};

} // namespace millipede::flow

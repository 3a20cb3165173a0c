// Which worker gets a flow: the balancer policy.
//
// Contract: pure (no EAL), owned and called by the classifier lcore only; not
// thread-safe. The classifier refreshes the per-worker load once per burst
// (backlog from ring positions, busy share from the workers' published busy
// cycles) and then asks for a worker per new flow, and - with migration on -
// whether an idle flow (nothing in flight on its worker) should move.
//
// Policies (docs/classifier.md):
//   hash    - static: flow hash modulo workers, what NIC RSS would do
//   pending - the flow-balancer seed: fewest packets waiting
//   busy    - backlog plus a moving average of the worker's busy cycles,
//             reliable because workers are pinned lcores
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
};

struct BalancerTuning {
    // How many packets of backlog a fully busy worker is worth: converts the
    // busy share into the same unit as backlog (one ring burst by default,
    // so backlog dominates once a worker falls a burst behind).
    float busy_weight = 32.0f;
    // A flow migrates only when its worker's score exceeds the best worker's
    // by this much, so flows do not flap between nearly equal workers.
    float migrate_margin = 8.0f;
};

class Balancer {
public:
    Balancer(Policy policy, unsigned n_workers, BalancerTuning tuning = {});

    Policy policy() const { return policy_; }
    unsigned workers() const { return static_cast<unsigned>(score_.size()); }

    // Once per burst, before any pick: the fresh load of every worker.
    void refresh(std::span<const WorkerLoad> loads);

    // The worker for a new flow.
    unsigned pick_new(uint32_t flow_hash);

    // Every packet dispatched to `worker` within the burst raises its score,
    // so a burst of new flows spreads instead of piling onto the worker that
    // was least loaded when the burst began. `weight`: what one dispatch is
    // worth in packets of backlog (a new connection counts more than a packet).
    void note_dispatch(unsigned worker, float weight = 1.0f) { bump(worker, weight); }

    // For a flow with nothing in flight on `current`: the worker it should
    // move to, or `current` when it should stay. Always `current` for hash.
    unsigned migration_target(unsigned current) const;

    float score(unsigned worker) const { return score_[worker]; }

private:
    void bump(unsigned worker, float by);
    void rescan_best();

    Policy policy_;
    BalancerTuning tuning_;
    std::vector<float> score_; // sized once at set-up
    unsigned best_ = 0;
};

} // namespace millipede::flow

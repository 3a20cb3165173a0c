// Windowed extremum filters for BBR's path model (draft-ietf-ccwg-bbr).
//
// WindowedFilter: the best (max or min) sample seen within the last
// `window` units of some clock (wall time, round trips), by Kathleen
// Nichols' algorithm, which draft-ietf-ccwg-bbr 5.5.3 names: it keeps three
// samples (the best, and the best of successively later parts of the
// window) so that when the best one ages out a good replacement is already
// there; O(1) per update, no allocation.
//
// TwoCycleMaxFilter: BBR.max_bw's filter (5.5.3 and 5.5.6): the maximum of
// the current and the previous ProbeBW cycle's samples; a cycle with no
// sample keeps the older cycle's maximum.
//
// Contract: plain values, single-threaded, no allocation.
#pragma once

#include <algorithm>
#include <cstdint>

namespace millipede::tcp {

template <class T> struct MaxOf {
    bool operator()(const T &a, const T &b) const { return a >= b; } // a at least as good as b
};
template <class T> struct MinOf {
    bool operator()(const T &a, const T &b) const { return a <= b; }
};

template <class T, class AtLeastAsGood> class WindowedFilter {
  public:
    // Forgets every sample: `value` at `time` becomes the estimate.
    void reset(T value, uint64_t time) {
        for (Sample &s : s_) s = Sample{time, value};
    }
    T get() const { return s_[0].value; }
    uint64_t time_of_best() const { return s_[0].time; }

    // Adds a sample taken at `time` (non-decreasing) and returns the best
    // value of the last `window` time units.
    T update(T value, uint64_t time, uint64_t window) {
        const AtLeastAsGood good;
        const Sample v{time, value};
        // A new best, or everything kept is older than the window.
        if (good(value, s_[0].value) || time - s_[2].time > window) {
            reset(value, time);
            return value;
        }
        if (good(value, s_[1].value)) s_[2] = s_[1] = v;
        else if (good(value, s_[2].value)) s_[2] = v;
        // Age the kept samples.
        const uint64_t age = time - s_[0].time;
        if (age > window) {
            // The best left the window: the runners-up move up (twice if the
            // second one is out of the window too).
            s_[0] = s_[1];
            s_[1] = s_[2];
            s_[2] = v;
            if (time - s_[0].time > window) {
                s_[0] = s_[1];
                s_[1] = s_[2];
                s_[2] = v;
            }
        } else if (s_[1].time == s_[0].time && age > window / 4) {
            // A quarter of the window passed with no second choice: take one
            // from the second quarter.
            s_[2] = s_[1] = v;
        } else if (s_[2].time == s_[1].time && age > window / 2) {
            // Half the window passed with no third choice.
            s_[2] = v;
        }
        return s_[0].value;
    }

  private:
    struct Sample {
        uint64_t time = 0;
        T value{};
    };
    Sample s_[3]{};
};

template <class T> using WindowedMax = WindowedFilter<T, MaxOf<T>>;
template <class T> using WindowedMin = WindowedFilter<T, MinOf<T>>;

class TwoCycleMaxFilter {
  public:
    void reset() { cycle_[0] = cycle_[1] = 0; }
    double get() const { return std::max(cycle_[0], cycle_[1]); }
    void update(double sample) { cycle_[1] = std::max(cycle_[1], sample); }
    // A new cycle starts (BBR.cycle_count++, AdvanceMaxBwFilter()).
    void advance() {
        if (cycle_[1] == 0) return; // no sample in this cycle: keep the older one
        cycle_[0] = cycle_[1];
        cycle_[1] = 0;
    }

  private:
    double cycle_[2] = {0, 0}; // [0]: previous cycle, [1]: current cycle
};

} // namespace millipede::tcp

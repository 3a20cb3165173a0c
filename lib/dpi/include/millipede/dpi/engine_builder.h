// Builds nDPI engines on a helper thread while the caller does other set-up.
//
// Why: an Engine takes about 13 ms to build (nDPI loads its IP lists into
// patricia trees and compiles its host-name automata), needs nothing from
// EAL, and tap builds one per worker before it can start. Begun before
// rte_eal_init(), the build overlaps EAL's start-up on the second CPU
// instead of following it.
//
// Contract
// - start(n) is called once, from the set-up thread, before anything else;
//   it spawns one std::thread that builds n engines in turn.
// - take(count, err) is called once, from the same set-up thread: it joins
//   the helper, builds any engines still missing (count > n) on the calling
//   thread, destroys any surplus, and returns exactly `count` engines, or an
//   empty vector and the first error.
// - Only one thread touches nDPI at a time: the helper until take() joins
//   it, the caller afterwards. Not thread-safe otherwise.
// - The destructor joins a helper that take() never joined.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "millipede/dpi/inspector.h"

namespace millipede::dpi {

class EngineBuilder {
public:
    EngineBuilder() = default;
    ~EngineBuilder();
    EngineBuilder(const EngineBuilder &) = delete;
    EngineBuilder &operator=(const EngineBuilder &) = delete;

    // Begins building n engines (n may be 0: take() then builds them all).
    void start(unsigned n);

    std::vector<std::unique_ptr<Engine>> take(unsigned count, std::string &err);

    // Engines built on the helper thread (known after take()).
    unsigned built_ahead() const { return built_ahead_; }

private:
    std::thread helper_;
    std::vector<std::unique_ptr<Engine>> engines_;
    std::string err_;
    unsigned built_ahead_ = 0;
};

} // namespace millipede::dpi

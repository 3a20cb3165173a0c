#include "millipede/dpi/engine_builder.h"

namespace millipede::dpi {

EngineBuilder::~EngineBuilder() {
    if (helper_.joinable()) helper_.join();
}

void EngineBuilder::start(unsigned n) {
    if (n == 0) return;
    helper_ = std::thread([this, n] {
        for (unsigned i = 0; i < n; ++i) {
            auto e = Engine::create(err_);
            if (!e) return;
            engines_.push_back(std::move(e));
        }
    });
}

std::vector<std::unique_ptr<Engine>> EngineBuilder::take(unsigned count, std::string &err) {
    if (helper_.joinable()) helper_.join();
    built_ahead_ = static_cast<unsigned>(engines_.size());
    std::vector<std::unique_ptr<Engine>> out;
    if (!err_.empty()) {
        err = err_;
        engines_.clear();
        return out;
    }
    while (engines_.size() < count) {
        auto e = Engine::create(err);
        if (!e) {
            engines_.clear();
            return out;
        }
        engines_.push_back(std::move(e));
    }
    engines_.resize(count); // a surplus (fewer workers than guessed) is destroyed here
    out.swap(engines_);
    return out;
}

} // namespace millipede::dpi

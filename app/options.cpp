#include "options.h"

#include <charconv>
#include <cmath>

namespace millipede::app {

std::optional<uint64_t> parse_uint(std::string_view s, uint64_t lo, uint64_t hi) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v < lo || v > hi) return std::nullopt;
    return v;
}

std::optional<uint64_t> parse_seconds_ns(std::string_view s) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty() || !std::isfinite(v) || v <= 0 || v > 1e7)
        return std::nullopt;
    return static_cast<uint64_t>(v * 1e9);
}

} // namespace millipede::app

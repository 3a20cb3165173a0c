// Command-line parsing shared by the modes. Set-up code: may allocate, and
// reports bad input as a one-line message (never an assert or a crash).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace millipede::app {

// Parses a whole decimal number in [lo, hi]; nullopt on anything else.
std::optional<uint64_t> parse_uint(std::string_view s, uint64_t lo, uint64_t hi);

// Parses seconds ("30", "2.5") into nanoseconds; nullopt when malformed.
std::optional<uint64_t> parse_seconds_ns(std::string_view s);

struct UsageError {
    std::string message;
};

} // namespace millipede::app

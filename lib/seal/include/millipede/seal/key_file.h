// The pre-shared key of `key FILE`: 32 raw bytes, or 64 hexadecimal
// characters (optionally followed by one newline, "\n" or "\r\n").
//
// Contract: pure (no EAL), any thread. Never throws; errors come back as one
// line for the user. The key bytes are wiped from temporaries.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace millipede::seal {

using Key = std::array<uint8_t, 32>;

// Parses the file's contents. False with `err` set when it is neither form.
bool parse_key(const uint8_t *p, size_t n, Key &out, std::string &err);

// Reads and parses `path`. `warning` is set (non-empty) when the file is
// readable by its group or by others; the key is still returned.
bool load_key_file(const char *path, Key &out, std::string &err, std::string &warning);

} // namespace millipede::seal

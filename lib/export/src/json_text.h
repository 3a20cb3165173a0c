// Internal: JSON string literals (RFC 8259 7). Pure; any thread.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace millipede::flow_export {

// Appends `s` quoted, with '"', '\\' and control characters escaped. Bytes
// from 0x80 up pass unchanged (nDPI's names are ASCII; UTF-8 stays UTF-8).
inline void append_json_string(std::string &out, std::string_view s) {
    out += '"';
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", u);
            out += b;
        } else {
            out += c;
        }
    }
    out += '"';
}

} // namespace millipede::flow_export

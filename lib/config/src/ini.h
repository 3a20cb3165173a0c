// Internal: an INI file as read by DPDK's rte_cfgfile, copied into plain
// vectors (sections and entries in file order, duplicates kept so that the
// caller can refuse them).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace millipede::config::detail {

struct IniEntry {
    std::string key, value;
};
struct IniSection {
    std::string name;
    std::vector<IniEntry> entries;
};

// rte_cfgfile's syntax: `[section]`, `key = value`, comments from ';' to the
// end of the line. Fails with one line naming the file: unreadable, or what
// rte_cfgfile (or the pre-check for lines it would skip in silence) found.
std::optional<std::vector<IniSection>> read_ini(const std::string &path, std::string &err);

} // namespace millipede::config::detail

#include "ini.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>

#include <rte_cfgfile.h>
#include <rte_log.h>

namespace millipede::config::detail {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

// rte_cfgfile skips a line that is neither a section heading nor holds an
// '=' without a word (a "rx_desc 1024" would vanish). Not a parser: only the
// lines rte_cfgfile would drop in silence are reported, by number.
std::string silent_lines(const std::string &path) {
    std::ifstream in(path);
    std::string line;
    for (int lineno = 1; std::getline(in, line); ++lineno) {
        std::string_view l = line;
        if (size_t c = l.find(';'); c != std::string_view::npos) l = l.substr(0, c);
        l = trim(l);
        if (l.empty() || l.front() == '[' || l.find('=') != std::string_view::npos) continue;
        return path + " line " + std::to_string(lineno) + ": '" + std::string(l) +
               "' is neither a [section] nor key = value";
    }
    return {};
}

// rte_cfgfile's own complaint, without its "rte_cfgfile_load_with_params(): " prefix.
std::string cfgfile_message(const char *buf, size_t len) {
    std::string_view m(buf, len);
    if (size_t p = m.find("(): "); p != std::string_view::npos) m.remove_prefix(p + 4);
    if (size_t nl = m.find('\n'); nl != std::string_view::npos) m = m.substr(0, nl);
    return std::string(trim(m));
}

struct CfgClose {
    void operator()(rte_cfgfile *c) const { rte_cfgfile_close(c); }
};

} // namespace

std::optional<std::vector<IniSection>> read_ini(const std::string &path, std::string &err) {
    {
        std::FILE *f = std::fopen(path.c_str(), "r");
        if (!f) {
            err = "cannot read " + path + ": " + std::strerror(errno);
            return std::nullopt;
        }
        std::fclose(f);
    }
    // rte_cfgfile says what is wrong only through DPDK's log: catch that line.
    char *logbuf = nullptr;
    size_t loglen = 0;
    std::FILE *mem = open_memstream(&logbuf, &loglen);
    std::FILE *prev = rte_log_get_stream();
    if (mem) rte_openlog_stream(mem);
    rte_cfgfile_parameters params{};
    params.comment_character = ';';
    std::unique_ptr<rte_cfgfile, CfgClose> cfg(rte_cfgfile_load_with_params(path.c_str(), 0, &params));
    if (mem) {
        rte_openlog_stream(prev == stderr ? nullptr : prev);
        std::fclose(mem);
    }
    std::string logged = logbuf ? cfgfile_message(logbuf, loglen) : std::string();
    std::free(logbuf);
    if (!cfg) {
        // rte_cfgfile logs nothing for a key before the first section.
        err = path + ": " + (logged.empty() ? "a key = value line before the first [section]" : logged);
        return std::nullopt;
    }
    if (std::string s = silent_lines(path); !s.empty()) {
        err = s;
        return std::nullopt;
    }
    std::vector<IniSection> out;
    const int n = rte_cfgfile_num_sections(cfg.get(), "", 0);
    for (int i = 0; i < n; ++i) {
        char name[CFG_NAME_LEN] = {};
        const int ne = rte_cfgfile_section_num_entries_by_index(cfg.get(), name, i);
        if (ne < 0) continue;
        std::vector<rte_cfgfile_entry> entries(static_cast<size_t>(ne) + 1);
        const int got = rte_cfgfile_section_entries_by_index(cfg.get(), i, name, entries.data(), ne + 1);
        IniSection s;
        s.name = name;
        for (int e = 0; e < got; ++e) s.entries.push_back({entries[e].name, entries[e].value});
        out.push_back(std::move(s));
    }
    return out;
}

} // namespace millipede::config::detail

// Profiles (drivers-config/*.ini), host files (--config) and what one port gets.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <set>
#include <sys/stat.h>

#include "ini.h"
#include "values.h"

#ifndef MILLIPEDE_PROFILE_DIRS
#define MILLIPEDE_PROFILE_DIRS ""
#endif

namespace millipede::config {

using detail::IniSection;

namespace {

constexpr const char *kModes[] = {"tap", "tx", "rx"};

bool is_mode(std::string_view s) {
    return std::any_of(std::begin(kModes), std::end(kModes), [&](const char *m) { return s == m; });
}

Origin origin(const std::string &file, const IniSection &s, const detail::IniEntry &e) {
    return Origin{file, s.name, e.key, e.value};
}

// Sections and keys given twice: rte_cfgfile keeps both, we refuse them.
std::string duplicates(const std::string &file, const std::vector<IniSection> &ini) {
    std::set<std::string> names;
    for (const auto &s : ini) {
        if (!names.insert(s.name).second) return file + " [" + s.name + "]: section given twice";
        std::set<std::string> keys;
        for (const auto &e : s.entries)
            if (!keys.insert(e.key).second) return file + " [" + s.name + "] " + e.key + ": given twice";
    }
    return {};
}

std::optional<uint64_t> number(std::string_view s) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + uint64_t(c - '0');
    }
    return v;
}

// "A-B" with A <= B <= hi.
bool range(std::string_view s, uint64_t hi, uint64_t &lo_out, uint64_t &hi_out) {
    const size_t dash = s.find('-');
    if (dash == std::string_view::npos) return false;
    auto a = number(s.substr(0, dash)), b = number(s.substr(dash + 1));
    if (!a || !b || *a > *b || *b > hi) return false;
    lo_out = *a;
    hi_out = *b;
    return true;
}

std::string parse_limits(const std::string &file, const IniSection &sec, Limits &l) {
    std::set<std::string> seen;
    for (const auto &e : sec.entries) {
        const Origin o = origin(file, sec, e);
        const std::string &k = e.key, &v = e.value;
        uint64_t a = 0, b = 0;
        seen.insert(k);
        if (k == "rx_desc" || k == "tx_desc") {
            if (!range(v, UINT16_MAX, a, b) || a == 0) return o.where() + ": allowed MIN-MAX, 1-65535";
            DescLimits &d = k == "rx_desc" ? l.rx_desc : l.tx_desc;
            d.min = static_cast<uint16_t>(a);
            d.max = static_cast<uint16_t>(b);
        } else if (k == "rx_desc_align" || k == "tx_desc_align") {
            auto n = number(v);
            if (!n || *n == 0 || *n > 4096) return o.where() + ": allowed 1-4096";
            (k == "rx_desc_align" ? l.rx_desc : l.tx_desc).align = static_cast<uint16_t>(*n);
        } else if (k == "desc_power_of_two") {
            if (v != "yes" && v != "no") return o.where() + ": allowed yes or no";
            l.rx_desc.power_of_two = l.tx_desc.power_of_two = v == "yes";
        } else if (k == "rx_queues" || k == "tx_queues") {
            if (!range(v, kMaxQueues, a, b) || a != 1) return o.where() + ": allowed 1-MAX, MAX at most 1024";
            (k == "rx_queues" ? l.max_rx_queues : l.max_tx_queues) = static_cast<uint16_t>(b);
        } else if (k == "mtu") {
            if (!range(v, UINT16_MAX, a, b) || a < kMinMtu) return o.where() + ": allowed MIN-MAX, 68-65535";
            l.min_mtu = static_cast<uint16_t>(a);
            l.max_mtu = static_cast<uint16_t>(b);
        } else if (k == "rss_key_size") {
            auto n = number(v);
            if (!n || *n > 256) return o.where() + ": allowed 0-256 (bytes)";
            l.rss_key_size = static_cast<uint16_t>(*n);
        } else if (k == "rss_hash") {
            std::string bad;
            auto bits = parse_rss_hash(v, bad);
            if (!bits) return o.where() + ": unknown hash field '" + bad + "' (allowed: " + rss_hash_known_names() + ")";
            l.rss_hash = *bits;
        } else if (k == "offloads") {
            l.rx_checksum = l.tx_checksum = l.tso = l.lro = false;
            if (v != "none") {
                std::string_view rest = v;
                while (!rest.empty()) {
                    const size_t c = rest.find(',');
                    std::string_view w = rest.substr(0, c);
                    while (!w.empty() && w.front() == ' ') w.remove_prefix(1);
                    while (!w.empty() && w.back() == ' ') w.remove_suffix(1);
                    if (w == "rx_checksum") l.rx_checksum = true;
                    else if (w == "tx_checksum") l.tx_checksum = true;
                    else if (w == "tso") l.tso = true;
                    else if (w == "lro") l.lro = true;
                    else return o.where() + ": allowed none or some of rx_checksum, tx_checksum, tso, lro";
                    rest = c == std::string_view::npos ? std::string_view{} : rest.substr(c + 1);
                }
            }
        } else if (k == "flow_control") {
            if (v != "yes" && v != "no") return o.where() + ": allowed yes or no";
            l.flow_control = v == "yes";
        } else {
            return file + " [limits] " + k +
                   ": unknown key (known: rx_desc, tx_desc, rx_desc_align, tx_desc_align, desc_power_of_two, "
                   "rx_queues, tx_queues, mtu, rss_key_size, rss_hash, offloads, flow_control)";
        }
    }
    for (const char *need : {"rx_desc", "tx_desc", "rx_queues", "tx_queues", "mtu", "rss_hash", "offloads", "flow_control"})
        if (!seen.count(need)) return file + " [limits]: " + need + " is missing";
    if (l.rss_hash && !l.rss_key_size) return file + " [limits] rss_key_size: missing, and rss_hash offers RSS";
    for (const DescLimits *d : {&l.rx_desc, &l.tx_desc})
        if (d->align > 1 && (d->min % d->align || d->max % d->align))
            return file + " [limits]: descriptor range " + std::to_string(d->min) + "-" + std::to_string(d->max) +
                   " is not a multiple of its alignment " + std::to_string(d->align);
    return {};
}

std::string parse_settings(const std::string &file, const IniSection &sec, PortSettings &s,
                           const std::vector<std::string> &extra_keys, std::vector<Origin> *extras) {
    for (const auto &e : sec.entries) {
        const Origin o = origin(file, sec, e);
        if (std::find(extra_keys.begin(), extra_keys.end(), e.key) != extra_keys.end()) {
            if (extras) extras->push_back(o);
            continue;
        }
        std::string err;
        switch (set_port_setting(s, o, err)) {
        case SetResult::ok: break;
        case SetResult::bad: return err;
        case SetResult::unknown: {
            std::string known = port_setting_keys();
            for (const auto &k : extra_keys) known += ", " + k;
            return file + " [" + sec.name + "] " + e.key + ": unknown key (known: " + known + ")";
        }
        }
    }
    return {};
}

std::string dir_of(const std::string &path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

bool is_dir(const std::string &p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// PCI addresses as ethdev names them: "03:00.0" -> "0000:03:00.0", lower case.
std::string device_name(std::string name) {
    auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    const bool bdf = name.size() == 7 && hex(name[0]) && hex(name[1]) && name[2] == ':' && hex(name[3]) &&
                     hex(name[4]) && name[5] == '.' && hex(name[6]);
    const bool dbdf = name.size() == 12 && name[4] == ':' && name[7] == ':' && name[10] == '.' &&
                      std::all_of(name.begin(), name.begin() + 4, hex);
    if (bdf || dbdf)
        for (auto &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return bdf ? "0000:" + name : name;
}

bool names_a_path(std::string_view p) {
    return p.find('/') != std::string_view::npos || (p.size() > 4 && p.substr(p.size() - 4) == ".ini");
}

} // namespace

PortSettings Profile::for_mode(std::string_view mode) const {
    PortSettings s = port;
    if (auto it = modes.find(std::string(mode)); it != modes.end()) s.overlay(it->second);
    return s;
}

std::optional<Profile> load_profile(const std::string &path, std::string &err) {
    auto ini = detail::read_ini(path, err);
    if (!ini) return std::nullopt;
    if ((err = duplicates(path, *ini)), !err.empty()) return std::nullopt;
    Profile p;
    p.path = path;
    const size_t slash = path.rfind('/');
    p.name = path.substr(slash == std::string::npos ? 0 : slash + 1);
    if (p.name.size() > 4 && p.name.substr(p.name.size() - 4) == ".ini") p.name.resize(p.name.size() - 4);
    bool have_profile = false, have_limits = false, have_port = false;
    for (const auto &sec : *ini) {
        if (sec.name == "profile") {
            have_profile = true;
            for (const auto &e : sec.entries) {
                if (e.key == "driver") p.driver = e.value;
                else if (e.key == "description") p.description = e.value;
                else {
                    err = path + " [profile] " + e.key + ": unknown key (known: driver, description)";
                    return std::nullopt;
                }
            }
        } else if (sec.name == "limits") {
            have_limits = true;
            if ((err = parse_limits(path, sec, p.limits)), !err.empty()) return std::nullopt;
        } else if (sec.name == "port" || is_mode(sec.name)) {
            have_port |= sec.name == "port";
            PortSettings &s = sec.name == "port" ? p.port : p.modes[sec.name];
            if ((err = parse_settings(path, sec, s, {}, nullptr)), !err.empty()) return std::nullopt;
        } else {
            err = path + " [" + sec.name + "]: unknown section (known: profile, limits, port, tap, tx, rx)";
            return std::nullopt;
        }
    }
    if (!have_profile || p.driver.empty()) {
        err = path + ": no [profile] driver = NAME (the rte_eth_dev_info driver_name it is for, e.g. net_ixgbe)";
        return std::nullopt;
    }
    if (!have_limits || !have_port) {
        err = path + ": a profile needs [limits] (the PMD's documented limits) and [port] (its settings)";
        return std::nullopt;
    }
    // Each mode's settings as that mode sees them, within the limits.
    const std::string whose = p.name + "'s documented limits, [limits]";
    if ((err = check_limits(p.port, p.limits, whose)), !err.empty()) return std::nullopt;
    for (const char *m : kModes)
        if ((err = check_limits(p.for_mode(m), p.limits, whose)), !err.empty()) return std::nullopt;
    return p;
}

std::optional<std::vector<Profile>> load_profiles(const std::string &dir, std::string &err) {
    DIR *d = ::opendir(dir.c_str());
    if (!d) {
        err = "cannot read the profile directory " + dir + ": " + std::strerror(errno);
        return std::nullopt;
    }
    std::vector<std::string> files;
    while (dirent *e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 4 && n.substr(n.size() - 4) == ".ini" && n[0] != '.') files.push_back(n);
    }
    ::closedir(d);
    std::sort(files.begin(), files.end());
    std::vector<Profile> out;
    for (const auto &f : files) {
        auto p = load_profile(dir + "/" + f, err);
        if (!p) return std::nullopt;
        out.push_back(std::move(*p));
    }
    return out;
}

std::vector<std::string> default_profile_dirs() {
    std::vector<std::string> dirs;
    std::string_view all = MILLIPEDE_PROFILE_DIRS;
    while (!all.empty()) {
        const size_t colon = all.find(':');
        if (colon != 0) dirs.emplace_back(all.substr(0, colon));
        if (colon == std::string_view::npos) break;
        all.remove_prefix(colon + 1);
    }
    return dirs;
}

const HostDevice *HostConfig::device(std::string_view port_name) const {
    const std::string n = device_name(std::string(port_name));
    for (const auto &d : devices)
        if (d.name == n) return &d;
    return nullptr;
}

const Profile *HostConfig::profile(std::string_view name) const {
    for (const auto &p : profiles)
        if (p.name == name || (names_a_path(name) && p.path == name)) return &p;
    return nullptr;
}

std::optional<HostConfig> load_host_config(const std::string &path, const std::vector<std::string> &profile_dirs,
                                           std::string &err) {
    auto ini = detail::read_ini(path, err);
    if (!ini) return std::nullopt;
    if ((err = duplicates(path, *ini)), !err.empty()) return std::nullopt;
    HostConfig cfg;
    cfg.path = path;
    std::vector<Origin> named; // every `profile =`, to check they exist
    Setting<std::string> profile_dir;
    for (const auto &sec : *ini) {
        std::vector<Origin> extras;
        if (sec.name == "default") {
            if ((err = parse_settings(path, sec, cfg.defaults, {"profile", "profile_dir"}, &extras)), !err.empty())
                return std::nullopt;
            for (const auto &o : extras) {
                if (o.key == "profile") cfg.default_profile = {o.text, o};
                else profile_dir = {o.text, o};
            }
        } else {
            HostDevice d;
            d.name = device_name(sec.name);
            if (d.name.empty() || d.name.size() >= 64) {
                err = path + " [" + sec.name + "]: not a device name (a PCI address such as 0000:03:00.0, or a vdev "
                                               "name such as net_memif0)";
                return std::nullopt;
            }
            for (const auto &other : cfg.devices)
                if (other.name == d.name) {
                    err = path + " [" + sec.name + "]: the same device as [" + other.name + "]";
                    return std::nullopt;
                }
            if ((err = parse_settings(path, sec, d.settings, {"profile"}, &extras)), !err.empty()) return std::nullopt;
            for (const auto &o : extras) d.profile = {o.text, o};
            cfg.devices.push_back(std::move(d));
        }
    }
    if (cfg.default_profile) named.push_back(cfg.default_profile.origin);
    for (const auto &d : cfg.devices)
        if (d.profile) named.push_back(d.profile.origin);

    if (profile_dir) {
        std::string dir = *profile_dir;
        if (dir.front() != '/') dir = dir_of(path) + "/" + dir;
        if (!is_dir(dir)) {
            err = profile_dir.origin.where() + ": not a directory (" + dir + ")";
            return std::nullopt;
        }
        cfg.profile_dirs = {dir};
    } else {
        for (const auto &d : profile_dirs)
            if (is_dir(d)) cfg.profile_dirs.push_back(d);
    }
    for (const auto &dir : cfg.profile_dirs) {
        auto ps = load_profiles(dir, err);
        if (!ps) return std::nullopt;
        for (auto &p : *ps)
            if (!cfg.profile(p.name)) cfg.profiles.push_back(std::move(p));
    }
    for (const auto &o : named) {
        if (o.text == "auto" || cfg.profile(o.text)) continue;
        if (names_a_path(o.text)) {
            const std::string file = o.text.front() == '/' ? o.text : dir_of(path) + "/" + o.text;
            std::string perr;
            auto p = load_profile(file, perr);
            if (!p) {
                err = o.where() + ": " + perr;
                return std::nullopt;
            }
            p->path = o.text; // what the host file names it by
            cfg.profiles.push_back(std::move(*p));
            continue;
        }
        std::string names;
        for (const auto &p : cfg.profiles) names += (names.empty() ? "" : ", ") + p.name;
        std::string dirs;
        for (const auto &d : cfg.profile_dirs) dirs += (dirs.empty() ? "" : ", ") + d;
        err = o.where() + ": no such profile (allowed: auto, a file path, or one of " +
              (names.empty() ? std::string("none found") : names) + " in " + (dirs.empty() ? "no directory" : dirs) + ")";
        return std::nullopt;
    }
    // The host values alone (no profile known yet): the pool's own rules.
    if ((err = check_pool(cfg.defaults)), !err.empty()) return std::nullopt;
    return cfg;
}

std::optional<Resolved> resolve(const HostConfig &cfg, std::string_view port_name, std::string_view driver,
                                std::string_view mode, std::string &err) {
    Resolved r;
    const HostDevice *dev = cfg.device(port_name);
    const Setting<std::string> *named = nullptr;
    if (dev && dev->profile) named = &dev->profile;
    else if (cfg.default_profile) named = &cfg.default_profile;
    if (named && named->value != "auto") {
        r.profile = cfg.profile(**named);
        r.profile_origin = named->origin;
        if (!r.profile) { // load_host_config() checked every name
            err = named->origin.where() + ": no such profile";
            return std::nullopt;
        }
        if (r.profile->driver != driver) {
            std::string fits;
            for (const auto &p : cfg.profiles)
                if (p.driver == driver) fits += ", " + p.name;
            err = named->origin.where() + ": port " + std::string(port_name) + " is a " + std::string(driver) +
                  " device, profile " + r.profile->name + " is for " + r.profile->driver + " (allowed: auto" + fits + ")";
            return std::nullopt;
        }
    } else {
        for (const auto &p : cfg.profiles)
            if (p.driver == driver) {
                r.profile = &p;
                break;
            }
    }
    if (r.profile) r.settings = r.profile->for_mode(mode);
    r.settings.overlay(cfg.defaults);
    if (dev) r.settings.overlay(dev->settings);
    err = r.profile ? check_limits(r.settings, r.profile->limits, r.profile->name + "'s documented limits, " +
                                                                      r.profile->path + " [limits]")
                    : check_pool(r.settings);
    if (!err.empty()) return std::nullopt;
    return r;
}

} // namespace millipede::config

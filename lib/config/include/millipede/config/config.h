// Port settings from drivers-config/ profiles and a host file (`--config
// FILE`): loading and checking, without EAL.
//
// A profile (drivers-config/NAME.ini) describes one driver family: what its
// PMD documents as limits ([limits]) and the settings dpdk-millipede uses on
// it ([port], with [tap], [tx] and [rx] over it for one mode). A host file
// has a [default] section and one section per device (a PCI address such as
// 0000:03:00.0, or a vdev name such as net_memif0); each may name a profile
// (`profile = ixgbe`) and override any setting. docs/drivers-config.md lists the keys.
//
// Both are INI files read with DPDK's rte_cfgfile (no parser of our own).
// A value is checked when it is loaded: its syntax and general range, and
// against the documented limits of the profile it ends up with. The device's
// own limits (rte_eth_dev_info) are checked where ports start (lib/port,
// millipede/port/configured.h).
//
// Contract
// - Pure set-up code: no EAL call, no exception escapes. Every failure is one
//   line of text naming the file, the section, the key, the value and what
//   is allowed, e.g.
//     host.ini [0000:03:00.0] rx_desc = 5000: allowed 64-4096, a multiple of 8 (ixgbe's documented limits)
// - Loading redirects DPDK's log stream while rte_cfgfile reads (to put its
//   complaint into that line): call it from the main thread, before EAL
//   starts or while no other thread logs.
// - Loaded objects are immutable; any thread may read them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace millipede::config {

// Where a value was written.
struct Origin {
    std::string file;    // as given (host file path, profile path)
    std::string section; // without the brackets
    std::string key;
    std::string text;    // the value as written
    // "FILE [SECTION] KEY = TEXT"
    std::string where() const;
};

template <class T> struct Setting {
    std::optional<T> value;
    Origin origin; // empty when not set
    explicit operator bool() const { return value.has_value(); }
    const T &operator*() const { return *value; }
    const T *operator->() const { return &*value; }
};

enum class RssKeyKind : uint8_t {
    driver_default, // leave the PMD's own key
    symmetric,      // symmetric_rss_key() of the device's key size
    bytes,          // the bytes given in hex
};
struct RssKey {
    RssKeyKind kind = RssKeyKind::driver_default;
    std::vector<uint8_t> bytes; // kind == bytes
};

// The symmetric Toeplitz key: 0x6d, 0x5a repeated to `size` bytes (S. Woo and
// K. Park, "Scalable TCP Session Monitoring with Symmetric Receive-side
// Scaling", KAIST technical report, 2012). Its 16-bit period makes the hash of
// (src addr, dst addr, src port, dst port) equal to that of the swapped tuple,
// so both directions of a flow reach one RX queue.
std::vector<uint8_t> symmetric_rss_key(size_t size);

enum class FlowControl : uint8_t {
    off,    // no pause frames sent or honoured (RTE_ETH_FC_NONE)
    driver, // leave the NIC's own setting
};

// Every setting a profile or a host file may give for a port. An unset value
// leaves the mode's own choice (what dpdk-millipede does without --config).
struct PortSettings {
    Setting<uint16_t> rx_queues, tx_queues; // at most this many (the mode uses what its lcores read)
    Setting<uint16_t> rx_desc, tx_desc;     // descriptors per queue
    Setting<uint32_t> mbufs;                // this port's share of the receive pool
    Setting<uint32_t> mempool_cache;        // per-lcore cache of that pool
    Setting<uint16_t> mtu;
    Setting<bool> rx_checksum, tx_checksum; // on: use the offload where the mode checksums; off: never
    Setting<bool> tso, lro;
    Setting<uint64_t> rss_hash; // RTE_ETH_RSS_* bits; 0: no RSS
    Setting<RssKey> rss_key;
    Setting<FlowControl> flow_control;

    // Each value set in `over` replaces this one's (with its origin).
    void overlay(const PortSettings &over);
};

struct DescLimits {
    uint16_t min = 1, max = UINT16_MAX, align = 1;
    bool power_of_two = false;
};

// A PMD's documented limits and capabilities: a profile's [limits].
struct Limits {
    DescLimits rx_desc, tx_desc;
    uint16_t max_rx_queues = 1, max_tx_queues = 1;
    uint16_t min_mtu = 68, max_mtu = 1500;
    uint16_t rss_key_size = 0; // bytes; 0: no RSS
    uint64_t rss_hash = 0;     // hash fields offered (RTE_ETH_RSS_* bits)
    bool rx_checksum = false, tx_checksum = false, tso = false, lro = false;
    bool flow_control = false; // pause frames can be switched
};

// The first value of `s` outside `l`, as one line ("" when all fit);
// `whose` ends it, e.g. "ixgbe's documented limits". Ends with check_pool().
std::string check_limits(const PortSettings &s, const Limits &l, const std::string &whose);
// mbufs against the descriptors and queues, the cache against mbufs.
std::string check_pool(const PortSettings &s);

struct Profile {
    std::string name;        // the file name without .ini: what `profile =` names
    std::string path;
    std::string driver;      // rte_eth_dev_info.driver_name it is for, e.g. net_ixgbe
    std::string description; // one line
    Limits limits;
    PortSettings port;                         // [port]
    std::map<std::string, PortSettings> modes; // [tap], [tx], [rx]: over [port] in that mode
    // [port], then the mode's section over it.
    PortSettings for_mode(std::string_view mode) const;
};

// One profile, its values checked against its own [limits].
std::optional<Profile> load_profile(const std::string &path, std::string &err);
// Every NAME.ini in `dir`, sorted by name; fails on the first bad one.
std::optional<std::vector<Profile>> load_profiles(const std::string &dir, std::string &err);

struct HostDevice {
    std::string name;             // section name (PCI addresses in full form, 0000:03:00.0)
    Setting<std::string> profile; // `profile =`
    PortSettings settings;
};

struct HostConfig {
    std::string path;
    Setting<std::string> default_profile; // [default] profile
    PortSettings defaults;                // [default]
    std::vector<HostDevice> devices;      // in file order
    std::vector<Profile> profiles;        // what `profile =` may name, and `auto` picks from
    std::vector<std::string> profile_dirs;

    const HostDevice *device(std::string_view port_name) const;
    const Profile *profile(std::string_view name) const;
};

// The directories searched for profiles when the host file names no
// `profile_dir`: the installed share/dpdk-millipede/drivers-config, then the
// source tree's drivers-config/ (so a binary in build/ finds them).
std::vector<std::string> default_profile_dirs();

// Loads a host file. Profiles come from its [default] `profile_dir` (relative
// to the host file) when given, else from `profile_dirs`; a name found in
// several directories is taken from the first. Every profile named must exist.
std::optional<HostConfig> load_host_config(const std::string &path, const std::vector<std::string> &profile_dirs,
                                           std::string &err);

// What one port gets: the profile's settings for the mode, then [default],
// then the device's section; all checked against the profile's limits.
struct Resolved {
    const Profile *profile = nullptr; // none: only the host file's values
    Origin profile_origin;            // where `profile =` was given (empty: chosen by driver)
    PortSettings settings;
};
// `port_name` is ethdev's name of the port (rte_eth_dev_get_name_by_port),
// `driver` its driver_name, `mode` tap, tx or rx. A profile that is named
// (`profile = NAME`) must be for `driver`; with none named, or `profile =
// auto`, the profile whose driver is `driver` is used when there is one.
std::optional<Resolved> resolve(const HostConfig &cfg, std::string_view port_name, std::string_view driver,
                                std::string_view mode, std::string &err);

// RSS hash field names (testpmd's: ipv4, ipv4-tcp, ...; groups ip, tcp, udp).
// "none" is 0. Empty optional: `bad` holds the unknown name.
std::optional<uint64_t> parse_rss_hash(std::string_view list, std::string &bad);
// Comma-separated names of `bits`, "none" for 0.
std::string rss_hash_names(uint64_t bits);
// Every name parse_rss_hash() knows, for messages.
std::string rss_hash_known_names();

std::string to_hex(const std::vector<uint8_t> &bytes);
std::string format_rss_key(const RssKey &k); // default | symmetric | hex

} // namespace millipede::config

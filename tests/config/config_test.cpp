// drivers-config profiles and host files (lib/config), without EAL.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <unistd.h>

#include <rte_ethdev.h>
#include <rte_thash.h>

#include "millipede/config/config.h"

namespace {

using namespace millipede::config;

const std::string kProfiles = DRIVERS_CONFIG_DIR;

// A scratch directory removed at the end of each test.
class ConfigFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/config_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
    std::string write(const std::string &name, const std::string &text) {
        const std::string path = dir_ + "/" + name;
        std::ofstream(path) << text;
        return path;
    }
    // Loads `text` as host.ini with the real profiles, then resolves
    // `port` (a `driver` device) in `mode`; returns the one-line error, or
    // "" when both succeed.
    std::string resolve_error(const std::string &text, const std::string &port, const std::string &driver,
                              const std::string &mode = "tap") {
        const std::string path = write("host.ini", text);
        std::string err;
        auto cfg = load_host_config(path, {kProfiles}, err);
        if (!cfg) return err;
        auto r = resolve(*cfg, port, driver, mode, err);
        return r ? std::string() : err;
    }
    std::string dir_;
};

TEST(Profiles, EveryFamilyLoadsWithinItsLimits) {
    std::string err;
    auto ps = load_profiles(kProfiles, err);
    ASSERT_TRUE(ps) << err;
    std::set<std::string> drivers;
    for (const auto &p : *ps) drivers.insert(p.driver);
    for (const char *d : {"net_memif", "net_af_packet", "net_pcap", "net_tap", "net_virtio_user", "net_virtio",
                          "net_ixgbe", "net_i40e", "net_ice", "mlx5_pci", "net_bnxt", "net_ena"})
        EXPECT_TRUE(drivers.count(d)) << "no profile for " << d;
    EXPECT_EQ(drivers.size(), ps->size()) << "two profiles for one driver";
}

// What the issue asks of each profile: rings, queues, pool, offloads, RSS
// and flow control all set; flow control off; the symmetric key for tap
// wherever the PMD hashes.
TEST(Profiles, EachSetsEveryPortSettingAndFlowControlOff) {
    std::string err;
    auto ps = load_profiles(kProfiles, err);
    ASSERT_TRUE(ps) << err;
    for (const auto &p : *ps) {
        SCOPED_TRACE(p.path);
        for (const char *mode : {"tap", "tx", "rx"}) {
            const PortSettings s = p.for_mode(mode);
            EXPECT_TRUE(s.rx_desc && s.tx_desc && s.rx_queues && s.tx_queues && s.mbufs && s.mempool_cache);
            EXPECT_TRUE(s.rx_checksum && s.tx_checksum && s.tso && s.lro && s.rss_hash && s.rss_key);
            ASSERT_TRUE(s.flow_control);
            EXPECT_EQ(*s.flow_control, FlowControl::off);
            EXPECT_TRUE(check_limits(s, p.limits, "test").empty());
        }
        const PortSettings tap = p.for_mode("tap");
        if (*tap.rss_hash != 0) {
            EXPECT_EQ(tap.rss_key->kind, RssKeyKind::symmetric) << "tap hashes without the symmetric key";
        }
        EXPECT_FALSE(p.description.empty());
    }
}

// Toeplitz over (src addr, dst addr, src port, dst port), as the NIC hashes
// IPv4/TCP: the symmetric key gives both directions one hash; a plain key
// (the one DPDK's testpmd uses, from Microsoft's RSS specification) does not.
TEST(SymmetricKey, BothDirectionsOfAFlowHashAlike) {
    const std::vector<uint8_t> sym = symmetric_rss_key(40);
    ASSERT_EQ(sym.size(), 40u);
    const uint8_t ms[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
                            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
                            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
    std::mt19937 rng(7);
    int plain_differs = 0;
    for (int i = 0; i < 1000; ++i) {
        const uint32_t a = rng(), b = rng();
        const uint16_t sp = static_cast<uint16_t>(rng()), dp = static_cast<uint16_t>(rng());
        uint32_t fwd[3] = {a, b, uint32_t(sp) << 16 | dp};
        uint32_t rev[3] = {b, a, uint32_t(dp) << 16 | sp};
        EXPECT_EQ(rte_softrss(fwd, 3, sym.data()), rte_softrss(rev, 3, sym.data()));
        plain_differs += rte_softrss(fwd, 3, ms) != rte_softrss(rev, 3, ms);
    }
    EXPECT_GT(plain_differs, 900);
    EXPECT_EQ(to_hex(symmetric_rss_key(4)), "6d5a6d5a");
}

TEST(RssNames, ParseAndPrint) {
    std::string bad;
    auto bits = parse_rss_hash("ipv4, ipv4-tcp,ipv6-udp", bad);
    ASSERT_TRUE(bits);
    EXPECT_EQ(*bits, RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP | RTE_ETH_RSS_NONFRAG_IPV6_UDP);
    EXPECT_EQ(rss_hash_names(*bits), "ipv4,ipv4-tcp,ipv6-udp");
    EXPECT_EQ(*parse_rss_hash("none", bad), 0u);
    EXPECT_EQ(rss_hash_names(0), "none");
    EXPECT_EQ(*parse_rss_hash("tcp", bad), uint64_t(RTE_ETH_RSS_TCP));
    EXPECT_FALSE(parse_rss_hash("ipv4,ipv5", bad));
    EXPECT_EQ(bad, "ipv5");
}

// [default] over the profile's mode section, the device's section over both.
TEST_F(ConfigFiles, DeviceOverDefaultOverProfile) {
    const std::string path = write("host.ini", "[default]\n"
                                               "profile = auto\n"
                                               "mbufs = 65536\n"
                                               "\n"
                                               "[03:00.0]   ; the short PCI form\n"
                                               "profile = ixgbe\n"
                                               "rx_desc = 2048\n");
    std::string err;
    auto cfg = load_host_config(path, {kProfiles}, err);
    ASSERT_TRUE(cfg) << err;
    ASSERT_NE(cfg->device("0000:03:00.0"), nullptr);
    auto r = resolve(*cfg, "0000:03:00.0", "net_ixgbe", "tap", err);
    ASSERT_TRUE(r) << err;
    ASSERT_NE(r->profile, nullptr);
    EXPECT_EQ(r->profile->name, "ixgbe");
    EXPECT_EQ(*r->settings.rx_desc, 2048);                  // the device's section
    EXPECT_EQ(r->settings.rx_desc.origin.section, "03:00.0");
    EXPECT_EQ(*r->settings.mbufs, 65536u);                  // [default]
    EXPECT_EQ(*r->settings.tx_desc, 512);                   // ixgbe [tap]
    EXPECT_EQ(*r->settings.rx_queues, 4);                   // ixgbe [port]
    EXPECT_EQ(r->settings.rss_key->kind, RssKeyKind::symmetric);
    // tx: ixgbe [port] without its [tap] section.
    r = resolve(*cfg, "0000:03:00.0", "net_ixgbe", "tx", err);
    ASSERT_TRUE(r) << err;
    EXPECT_EQ(*r->settings.tx_desc, 1024);
    EXPECT_EQ(r->settings.rss_key->kind, RssKeyKind::driver_default);
    // A port without a section: `auto` picks the profile by driver.
    r = resolve(*cfg, "net_memif0", "net_memif", "rx", err);
    ASSERT_TRUE(r) << err;
    ASSERT_NE(r->profile, nullptr);
    EXPECT_EQ(r->profile->name, "net_memif");
    EXPECT_EQ(*r->settings.mbufs, 65536u);
}

// Each wrong value: one line naming the file, the section, the key (with
// the value) and what is allowed.
TEST_F(ConfigFiles, WrongValuesGiveOneLineWithFileSectionKeyAndRange) {
    struct Case {
        std::string text, port, driver, want;
    };
    const std::string f = dir_ + "/host.ini";
    const Case cases[] = {
        {"[default]\n[0000:03:00.0]\nprofile = ixgbe\nrx_desc = 5000\n", "0000:03:00.0", "net_ixgbe",
         f + " [0000:03:00.0] rx_desc = 5000: allowed 32-4096, a multiple of 8 (ixgbe's documented limits, " +
             kProfiles + "/ixgbe.ini [limits])"},
        {"[default]\n[0000:03:00.0]\nprofile = ixgbe\nrx_desc = 1001\n", "0000:03:00.0", "net_ixgbe",
         f + " [0000:03:00.0] rx_desc = 1001: allowed 32-4096, a multiple of 8"},
        {"[default]\nprofile = mlx5\ntx_desc = 3000\n", "0000:81:00.0", "mlx5_pci",
         f + " [default] tx_desc = 3000: allowed 1-32768, a power of two"},
        {"[default]\nmtu = 20\n", "net_tap0", "net_tap", f + " [default] mtu = 20: allowed 68-65535"},
        {"[default]\nrx_queues = 0\n", "net_tap0", "net_tap", f + " [default] rx_queues = 0: allowed 1-1024"},
        {"[net_tap0]\nrx_queues = 17\n", "net_tap0", "net_tap", f + " [net_tap0] rx_queues = 17: allowed 1-16 (net_tap's"},
        {"[0000:03:00.0]\nprofile = i40e\nlro = on\n", "0000:03:00.0", "net_i40e",
         f + " [0000:03:00.0] lro = on: allowed off: no LRO (i40e's"},
        {"[default]\ntso = yes\n", "net_tap0", "net_tap", f + " [default] tso = yes: allowed on or off"},
        {"[default]\nrss_hash = ipv4,ipv5\n", "net_tap0", "net_tap",
         f + " [default] rss_hash = ipv4,ipv5: unknown hash field 'ipv5' (allowed: none, ipv4,"},
        {"[net_memif0]\nrss_hash = ipv4\n", "net_memif0", "net_memif",
         f + " [net_memif0] rss_hash = ipv4: allowed none: no RSS (net_memif's"},
        {"[0000:03:00.0]\nprofile = i40e\nrss_key = 6d5a6d5a\n", "0000:03:00.0", "net_i40e",
         f + " [0000:03:00.0] rss_key = 6d5a6d5a: allowed default, symmetric or 52 bytes (104 hex digits), not 4"},
        {"[default]\nrss_key = xyz\n", "net_tap0", "net_tap", f + " [default] rss_key = xyz: allowed default, symmetric"},
        {"[default]\nflow_control = on\n", "net_tap0", "net_tap", f + " [default] flow_control = on: allowed off"},
        {"[default]\nmbufs = 600\nmempool_cache = 512\n", "net_tap0", "net_tap",
         f + " [default] mempool_cache = 512: allowed 0-400 (at most 2/3 of mbufs = 600"},
        {"[net_tap0]\nmbufs = 1024\nrx_desc = 2048\n", "net_tap0", "net_tap",
         f + " [net_tap0] mbufs = 1024: allowed 3072-"},
        {"[default]\nprofile = ixgbe\n", "net_tap0", "net_tap",
         f + " [default] profile = ixgbe: port net_tap0 is a net_tap device, profile ixgbe is for net_ixgbe (allowed: auto, net_tap)"},
        {"[default]\nprofile = ixgbee\n", "net_tap0", "net_tap", f + " [default] profile = ixgbee: no such profile (allowed: auto"},
        {"[default]\nrx_ring = 1024\n", "net_tap0", "net_tap", f + " [default] rx_ring: unknown key (known: rx_queues,"},
        {"[default]\nrx_desc 1024\n", "net_tap0", "net_tap", f + " line 2: 'rx_desc 1024' is neither a [section] nor key = value"},
        {"[default]\nrx_desc = 1024\nrx_desc = 2048\n", "net_tap0", "net_tap", f + " [default] rx_desc: given twice"},
        {"rx_desc = 1024\n[default]\n", "net_tap0", "net_tap", f + ": "},
        {"[default]\n[03:00.0]\n[0000:03:00.0]\n", "net_tap0", "net_tap", f + " [0000:03:00.0]: the same device as [0000:03:00.0]"},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.text);
        const std::string err = resolve_error(c.text, c.port, c.driver);
        EXPECT_EQ(err.rfind(c.want, 0), 0u) << "got:  " << err << "\nwant: " << c.want << "...";
        EXPECT_EQ(err.find('\n'), std::string::npos) << "more than one line: " << err;
    }
}

TEST_F(ConfigFiles, MissingFileAndProfileDirectory) {
    std::string err;
    EXPECT_FALSE(load_host_config(dir_ + "/absent.ini", {kProfiles}, err));
    EXPECT_EQ(err, "cannot read " + dir_ + "/absent.ini: No such file or directory");
    const std::string path = write("host.ini", "[default]\nprofile_dir = nowhere\n");
    EXPECT_FALSE(load_host_config(path, {kProfiles}, err));
    EXPECT_EQ(err, path + " [default] profile_dir = nowhere: not a directory (" + dir_ + "/nowhere)");
}

// A profile of one's own, named by path, checked against its own [limits].
TEST_F(ConfigFiles, ProfileByPathIsCheckedAgainstItsLimits) {
    write("mine.ini", "[profile]\ndriver = net_tap\ndescription = x\n"
                      "[limits]\nrx_desc = 64-512\ntx_desc = 64-512\nrx_queues = 1-2\ntx_queues = 1-2\n"
                      "mtu = 68-1500\nrss_hash = none\noffloads = none\nflow_control = no\n"
                      "[port]\nrx_desc = 1024\n");
    std::string err = resolve_error("[default]\nprofile = ./mine.ini\n", "net_tap0", "net_tap");
    EXPECT_EQ(err, dir_ + "/host.ini [default] profile = ./mine.ini: " + dir_ +
                       "/./mine.ini [port] rx_desc = 1024: allowed 64-512 (mine's documented limits, [limits])");
    write("mine.ini", "[profile]\ndriver = net_tap\n[limits]\nrx_desc = 64-512\n[port]\n");
    err = resolve_error("[default]\nprofile = ./mine.ini\n", "net_tap0", "net_tap");
    EXPECT_EQ(err, dir_ + "/host.ini [default] profile = ./mine.ini: " + dir_ + "/./mine.ini [limits]: tx_desc is missing");
}

TEST_F(ConfigFiles, RssKeyInHexOfTheProfilesSize) {
    std::string key;
    for (int i = 0; i < 52; ++i) key += "6d";
    EXPECT_EQ(resolve_error("[0000:03:00.0]\nprofile = i40e\nrss_key = " + key + "\n", "0000:03:00.0", "net_i40e"), "");
    const std::string path = write("h2.ini", "[0000:03:00.0]\nprofile = i40e\nrss_key = " + key + "\n");
    std::string err;
    auto cfg = load_host_config(path, {kProfiles}, err);
    ASSERT_TRUE(cfg) << err;
    auto r = resolve(*cfg, "0000:03:00.0", "net_i40e", "rx", err);
    ASSERT_TRUE(r) << err;
    EXPECT_EQ(r->settings.rss_key->kind, RssKeyKind::bytes);
    EXPECT_EQ(r->settings.rss_key->bytes, std::vector<uint8_t>(52, 0x6d));
}

} // namespace

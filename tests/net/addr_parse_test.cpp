// --ip PORTID=ADDR/PREFIX and --neigh ADDR=MAC: values and error messages.
#include <string>

#include <gtest/gtest.h>

#include "millipede/net/addr_parse.h"

using namespace millipede::net;

TEST(AddrParse, Ipv4Strict) {
    uint32_t v = 0;
    EXPECT_TRUE(parse_ipv4("10.0.0.1", v));
    EXPECT_EQ(v, 0x0a000001u);
    EXPECT_TRUE(parse_ipv4("255.255.255.255", v));
    EXPECT_EQ(v, 0xffffffffu);
    EXPECT_TRUE(parse_ipv4("0.0.0.0", v));
    EXPECT_EQ(v, 0u);
    for (const char *bad : {"", "10", "10.0.0", "10.0.0.1.", "10.0.0.1.2", "10.0.0.256", "10.0.0.-1", "010.0.0.1",
                            "10..0.1", "a.b.c.d", " 10.0.0.1", "10.0.0.1 ", "1000.0.0.1", "10.0.0.0001"})
        EXPECT_FALSE(parse_ipv4(bad, v)) << bad;
}

TEST(AddrParse, Mac) {
    MacAddr m;
    EXPECT_TRUE(parse_mac("02:00:00:ab:CD:ef", m));
    EXPECT_EQ(format_mac(m), "02:00:00:ab:cd:ef");
    EXPECT_TRUE(parse_mac("02-00-00-00-00-09", m));
    EXPECT_EQ(m.b[5], 9);
    for (const char *bad : {"", "02:00:00:00:00", "02:00:00:00:00:0", "02:00:00:00:00:000", "02:00-00:00:00:00",
                            "0g:00:00:00:00:00", "02.00.00.00.00.00", "2:0:0:0:0:0"})
        EXPECT_FALSE(parse_mac(bad, m)) << bad;
}

TEST(AddrParse, IpOption) {
    IpAssignment a;
    std::string err;
    ASSERT_TRUE(parse_ip_option("0=10.0.0.1/24", a, err)) << err;
    EXPECT_EQ(a.port_id, 0);
    EXPECT_EQ(a.addr, 0x0a000001u);
    EXPECT_EQ(a.prefix_len, 24);
    EXPECT_EQ(a.netmask(), 0xffffff00u);
    EXPECT_TRUE(a.on_link(0x0a0000fe));
    EXPECT_FALSE(a.on_link(0x0a000100));
    ASSERT_TRUE(parse_ip_option("3=192.168.7.9/32", a, err)) << err;
    EXPECT_EQ(a.port_id, 3);
    EXPECT_EQ(a.netmask(), 0xffffffffu);
    ASSERT_TRUE(parse_ip_option("1=10.0.0.0/31", a, err)) << err; // RFC 3021: both addresses usable
}

TEST(AddrParse, IpOptionErrors) {
    IpAssignment a;
    std::string err;
    struct Case {
        const char *value;
        const char *want;
    } cases[] = {
        {"10.0.0.1/24", "expected PORTID=ADDR/PREFIX"},
        {"x=10.0.0.1/24", "port id \"x\" is not a number 0..1023"},
        {"1024=10.0.0.1/24", "port id \"1024\""},
        {"=10.0.0.1/24", "port id \"\""},
        {"0=10.0.0.1", "missing /PREFIX"},
        {"0=10.0.0.300/24", "\"10.0.0.300\" is not an IPv4 address"},
        {"0=10.0.0.1/33", "prefix length \"33\" is not 1..32"},
        {"0=10.0.0.1/0", "prefix length \"0\""},
        {"0=10.0.0.1/", "prefix length \"\""},
        {"0=10.0.0.1/2x", "prefix length \"2x\""},
        {"0=0.0.0.0/8", "0.0.0.0/8"},
        {"0=127.0.0.1/8", "loopback"},
        {"0=224.0.0.1/24", "multicast"},
        {"0=255.255.255.255/32", "limited broadcast"},
        {"0=10.0.0.0/24", "network address of its /24"},
        {"0=10.0.0.255/24", "broadcast address of its /24"},
    };
    for (const auto &c : cases) {
        err.clear();
        EXPECT_FALSE(parse_ip_option(c.value, a, err)) << c.value;
        EXPECT_NE(err.find(c.want), std::string::npos) << c.value << " -> " << err;
        EXPECT_EQ(err.rfind(std::string("--ip \"") + c.value + "\": ", 0), 0u) << err;
    }
}

TEST(AddrParse, NeighOption) {
    StaticNeighbour n;
    std::string err;
    ASSERT_TRUE(parse_neigh_option("10.0.0.2=02:00:00:00:00:02", n, err)) << err;
    EXPECT_EQ(n.addr, 0x0a000002u);
    EXPECT_EQ(format_mac(n.mac), "02:00:00:00:00:02");
    EXPECT_EQ(format_ipv4(n.addr), "10.0.0.2");
    struct Case {
        const char *value;
        const char *want;
    } cases[] = {
        {"10.0.0.2", "expected ADDR=MAC"},
        {"10.0.0=02:00:00:00:00:02", "\"10.0.0\" is not an IPv4 address"},
        {"10.0.0.2=02:00:00:00:00", "\"02:00:00:00:00\" is not a MAC address"},
        {"10.0.0.2=00:00:00:00:00:00", "00:00:00:00:00:00 is not a station address"},
        {"10.0.0.2=ff:ff:ff:ff:ff:ff", "multicast/broadcast"},
        {"10.0.0.2=01:00:5e:00:00:01", "multicast/broadcast"},
        {"0.0.0.0=02:00:00:00:00:02", "not a neighbour's address"},
        {"239.1.1.1=02:00:00:00:00:02", "multicast"},
    };
    for (const auto &c : cases) {
        err.clear();
        EXPECT_FALSE(parse_neigh_option(c.value, n, err)) << c.value;
        EXPECT_NE(err.find(c.want), std::string::npos) << c.value << " -> " << err;
        EXPECT_EQ(err.rfind(std::string("--neigh \"") + c.value + "\": ", 0), 0u) << err;
    }
}

// Found by tests/fuzz/addr_parse_fuzz: a value holding a line break was
// echoed as is, so the "one line" message became two. The text given is now
// shown with C escapes (line breaks, control bytes, quotes, backslashes).
TEST(AddrParse, ErrorsStayOneLineWhateverTheText) {
    IpAssignment a;
    StaticNeighbour n;
    std::string err;
    struct Case {
        std::string value;
        const char *shown;
    } cases[] = {
        {"\n", "\\n"},
        {"0=10.0.0.1/2\r\n4", "0=10.0.0.1/2\\r\\n4"},
        {std::string("0=10.0.0.\x01/24", 13), "0=10.0.0.\\x01/24"},
        {"0=\"10.0.0.1\"/24", "0=\\\"10.0.0.1\\\"/24"},
        {"x\\=10.0.0.1/24\t", "x\\\\=10.0.0.1/24\\t"},
        {"0=10.0.0.1/24\x7f", "0=10.0.0.1/24\\x7f"},
    };
    for (const auto &c : cases) {
        err.clear();
        EXPECT_FALSE(parse_ip_option(c.value, a, err));
        EXPECT_EQ(err.find_first_of("\r\n"), std::string::npos) << err;
        EXPECT_EQ(err.rfind(std::string("--ip \"") + c.shown + "\": ", 0), 0u) << err;
        err.clear();
        EXPECT_FALSE(parse_neigh_option(c.value, n, err));
        EXPECT_EQ(err.find_first_of("\r\n"), std::string::npos) << err;
        EXPECT_EQ(err.rfind(std::string("--neigh \"") + c.shown + "\": ", 0), 0u) << err;
    }
    // The part the message points at is escaped too.
    err.clear();
    EXPECT_FALSE(parse_ip_option("0=10.0.0.1/3\n3", a, err));
    EXPECT_NE(err.find("prefix length \"3\\n3\" is not 1..32"), std::string::npos) << err;
    err.clear();
    EXPECT_FALSE(parse_neigh_option("10.0.0.2=02:00:00:00:00:0\n", n, err));
    EXPECT_NE(err.find("\"02:00:00:00:00:0\\n\" is not a MAC address"), std::string::npos) << err;
    // UTF-8 is shown as it is.
    err.clear();
    EXPECT_FALSE(parse_ip_option("0=10.0.0.1/24\xc2\xb5", a, err));
    EXPECT_EQ(err.rfind("--ip \"0=10.0.0.1/24\xc2\xb5\": ", 0), 0u) << err;
}

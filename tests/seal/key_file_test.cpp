// `key FILE`: the two accepted forms, everything else refused with a
// message that says what a key is, and the permission warning.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "millipede/seal/key_file.h"

using millipede::seal::Key;
using millipede::seal::load_key_file;
using millipede::seal::parse_key;

namespace {

std::string write_file(const std::string &bytes, mode_t mode) {
    char path[] = "/tmp/mp_keyXXXXXX";
    const int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    fchmod(fd, mode);
    close(fd);
    return path;
}

const char *kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

} // namespace

TEST(KeyFile, RawThirtyTwoBytes) {
    uint8_t raw[32];
    for (int i = 0; i < 32; i++) raw[i] = static_cast<uint8_t>(0xF0 ^ i);
    Key k{};
    std::string err;
    ASSERT_TRUE(parse_key(raw, 32, k, err)) << err;
    EXPECT_EQ(0, std::memcmp(k.data(), raw, 32));
}

TEST(KeyFile, HexWithAndWithoutNewline) {
    for (const std::string tail : {"", "\n", "\r\n"}) {
        const std::string text = std::string(kHex) + tail;
        Key k{};
        std::string err;
        ASSERT_TRUE(parse_key(reinterpret_cast<const uint8_t *>(text.data()), text.size(), k, err)) << err;
        for (int i = 0; i < 32; i++) EXPECT_EQ(k[i], i) << "byte " << i;
    }
}

TEST(KeyFile, WrongLengthsAndDigitsAreRefused) {
    Key k{};
    std::string err;
    const std::string shorter(kHex, 62);
    EXPECT_FALSE(parse_key(reinterpret_cast<const uint8_t *>(shorter.data()), shorter.size(), k, err));
    EXPECT_NE(err.find("holds 62 bytes"), std::string::npos) << err;
    EXPECT_NE(err.find("32 raw bytes or 64 hex digits"), std::string::npos) << err;
    std::string bad(kHex);
    bad[10] = 'g';
    err.clear();
    EXPECT_FALSE(parse_key(reinterpret_cast<const uint8_t *>(bad.data()), bad.size(), k, err));
    EXPECT_NE(err.find("character 11 is not a hexadecimal digit"), std::string::npos) << err;
    err.clear();
    EXPECT_FALSE(parse_key(nullptr, 0, k, err));
    EXPECT_NE(err.find("holds 0 bytes"), std::string::npos) << err;
}

TEST(KeyFile, LoadWarnsWhenOthersMayReadIt) {
    std::string err, warning;
    Key k{};
    const std::string priv = write_file(kHex, 0600);
    ASSERT_TRUE(load_key_file(priv.c_str(), k, err, warning)) << err;
    EXPECT_TRUE(warning.empty()) << warning;
    EXPECT_EQ(k[31], 0x1F);
    const std::string open = write_file(kHex, 0644);
    ASSERT_TRUE(load_key_file(open.c_str(), k, err, warning)) << err;
    EXPECT_NE(warning.find("readable by its group or others"), std::string::npos) << warning;
    unlink(priv.c_str());
    unlink(open.c_str());
}

TEST(KeyFile, LoadRefusesMissingLongAndDirectory) {
    std::string err, warning;
    Key k{};
    EXPECT_FALSE(load_key_file("/nonexistent/mp.key", k, err, warning));
    EXPECT_NE(err.find("No such file"), std::string::npos) << err;
    const std::string big = write_file(std::string(1000, 'a'), 0600);
    EXPECT_FALSE(load_key_file(big.c_str(), k, err, warning));
    EXPECT_NE(err.find("more than 66 bytes"), std::string::npos) << err;
    unlink(big.c_str());
    EXPECT_FALSE(load_key_file("/tmp", k, err, warning));
    EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
}

// A FIFO with no writer: open() without O_NONBLOCK would wait for one for
// ever; the load must come back at once with the same refusal.
TEST(KeyFile, LoadRefusesFifoWithoutWaiting) {
    std::string err, warning;
    Key k{};
    char dir[] = "/tmp/mpkeyfifoXXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string fifo = std::string(dir) + "/key";
    ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_FALSE(load_key_file(fifo.c_str(), k, err, warning));
    EXPECT_NE(err.find("not a regular file"), std::string::npos) << err;
    unlink(fifo.c_str());
    rmdir(dir);
}

#include "millipede/seal/key_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace millipede::seal {

namespace {
int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
} // namespace

bool parse_key(const uint8_t *p, size_t n, Key &out, std::string &err) {
    if (n == out.size()) {
        std::memcpy(out.data(), p, out.size());
        return true;
    }
    size_t text = n;
    if (text > 0 && p[text - 1] == '\n') text--;
    if (text > 0 && p[text - 1] == '\r') text--;
    if (text == 2 * out.size()) {
        for (size_t i = 0; i < out.size(); i++) {
            const int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                err = "character " + std::to_string(2 * i + (hi < 0 ? 1 : 2)) +
                      " is not a hexadecimal digit (expected 64 hex digits or 32 raw bytes)";
                out.fill(0);
                return false;
            }
            out[i] = static_cast<uint8_t>(hi << 4 | lo);
        }
        return true;
    }
    err = "holds " + std::to_string(n) + " bytes; a key is exactly 32 raw bytes or 64 hex digits (e.g. `head -c 32 /dev/urandom > FILE`)";
    return false;
}

bool load_key_file(const char *path, Key &out, std::string &err, std::string &warning) {
    warning.clear();
    // O_NONBLOCK: a FIFO named as the key file must not hang start-up in
    // open(); it is refused below as not a regular file.
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        err = std::string("key file ") + path + ": " + std::strerror(errno);
        return false;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = std::string("key file ") + path + ": not a regular file";
        ::close(fd);
        return false;
    }
    // One byte more than the longest valid form ("64 hex\r\n") tells a
    // too-long file from a valid one without reading all of it.
    uint8_t buf[2 * 32 + 3];
    size_t n = 0;
    for (;;) {
        const ssize_t r = ::read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            err = std::string("key file ") + path + ": " + std::strerror(errno);
            ::close(fd);
            return false;
        }
        if (r == 0) break;
        n += static_cast<size_t>(r);
        if (n == sizeof buf) break;
    }
    ::close(fd);
    std::string why;
    bool ok;
    if (n == sizeof buf) { // longer than any valid form
        why = "holds more than 66 bytes; a key is exactly 32 raw bytes or 64 hex digits";
        ok = false;
    } else {
        ok = parse_key(buf, n, out, why);
    }
    explicit_bzero(buf, sizeof buf);
    if (!ok) {
        err = std::string("key file ") + path + " " + why;
        return false;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        warning = std::string("key file ") + path + " is readable by its group or others (chmod 600 " + path + ")";
    return true;
}

} // namespace millipede::seal

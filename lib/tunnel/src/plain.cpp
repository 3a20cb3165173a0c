// accept_one / connect_one: plain.h.
#include "millipede/tunnel/plain.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace millipede::tunnel {

namespace {
int wait_ms(uint64_t timeout_us) { return timeout_us ? static_cast<int>((timeout_us + 999) / 1000) : -1; }

void make_blocking(int fd) {
    const int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}
} // namespace

int accept_one(uint16_t port, uint64_t timeout_us, std::string &err) {
    const std::string what = "terminate " + std::to_string(port) + ": ";
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool v6 = fd >= 0;
    if (!v6) fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = what + "socket: " + std::strerror(errno);
        return -1;
    }
    int one = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        a->sin6_port = htons(port);
        len = sizeof *a;
    } else {
        auto *a = reinterpret_cast<sockaddr_in *>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        len = sizeof *a;
    }
    if (bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0 || listen(fd, 1) != 0) {
        err = what + "cannot listen on the host's TCP port: " + std::strerror(errno);
        close(fd);
        return -1;
    }
    pollfd p{fd, POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, wait_ms(timeout_us))) < 0 && errno == EINTR) {
    }
    if (r <= 0) {
        err = what + (r == 0 ? "no connection within the --wait" : std::string("poll: ") + std::strerror(errno));
        close(fd);
        return -1;
    }
    const int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    const int e = errno;
    close(fd); // one connection, as stock viamillipede takes
    if (c < 0) err = what + "accept: " + std::strerror(e);
    return c;
}

int connect_one(const std::string &host, uint16_t port, uint64_t timeout_us, std::string &err) {
    const std::string what = "initiate " + host + " " + std::to_string(port) + ": ";
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0 || !res) {
        err = what + "cannot resolve the host: " + gai_strerror(rc);
        return -1;
    }
    const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int r = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (fd < 0) {
        err = what + "socket: " + std::strerror(errno);
        return -1;
    }
    if (r != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        while ((r = poll(&p, 1, wait_ms(timeout_us ? timeout_us : 30'000'000))) < 0 && errno == EINTR) {
        }
        if (r == 0) {
            err = what + "no connection within the --connect-timeout";
            close(fd);
            return -1;
        }
        int e = 0;
        socklen_t l = sizeof e;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
        errno = e;
        r = e ? -1 : 0;
    }
    if (r != 0) {
        err = what + "connect: " + std::strerror(errno);
        close(fd);
        return -1;
    }
    make_blocking(fd);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

} // namespace millipede::tunnel

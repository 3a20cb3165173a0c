#include "millipede/export/ipfix_exporter.h"

#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace millipede::flow_export {

namespace {
// "'TEXT' why" (built by appending: GCC 12 warns falsely on "'" + string).
std::string quoted(std::string_view text, std::string_view why) {
    std::string s;
    s.reserve(text.size() + why.size() + 3);
    s += '\'';
    s += text;
    s += "' ";
    s += why;
    return s;
}
} // namespace

bool split_host_port(std::string_view text, std::string &host, std::string &port, std::string &err) {
    std::string_view h, p;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            err = quoted(text, "is not [IPv6]:PORT");
            return false;
        }
        h = text.substr(1, close - 1);
        p = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            err = quoted(text, "is not HOST:PORT (an IPv6 address goes in brackets: [::1]:4739)");
            return false;
        }
        h = text.substr(0, colon);
        p = text.substr(colon + 1);
    }
    unsigned value = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (h.empty() || p.empty() || ec != std::errc{} || end != p.data() + p.size() || value == 0 || value > 65535) {
        err = quoted(text, "needs a host and a port from 1 to 65535");
        return false;
    }
    host = std::string(h);
    port = std::string(p);
    return true;
}

ExportClock ExportClock::now() {
    timespec real{}, mono{};
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    return {static_cast<uint32_t>(real.tv_sec), uint64_t(mono.tv_sec) * 1'000'000'000ull + uint64_t(mono.tv_nsec)};
}

std::unique_ptr<IpfixExporter> IpfixExporter::open(const IpfixExporterConfig &cfg, std::string &err) {
    std::string host, port;
    if (!split_host_port(cfg.destination, host, port, err)) return nullptr;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo *res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
        err = "cannot resolve " + host + ": " + gai_strerror(rc);
        return nullptr;
    }
    std::unique_ptr<IpfixExporter> x(new IpfixExporter(cfg));
    std::string last;
    for (addrinfo *ai = res; ai && x->fd_ < 0; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = std::strerror(errno);
            continue;
        }
        // Connected: send() needs no address, and an ICMP port unreachable
        // from the collector's host comes back as ECONNREFUSED to count.
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            last = std::strerror(errno);
            ::close(fd);
            continue;
        }
        char name[NI_MAXHOST], serv[NI_MAXSERV];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, name, sizeof name, serv, sizeof serv,
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
            bool v6 = ai->ai_family == AF_INET6;
            x->peer_.clear();
            if (v6) x->peer_ += '[';
            x->peer_ += name;
            x->peer_ += v6 ? "]:" : ":";
            x->peer_ += serv;
        }
        x->fd_ = fd;
    }
    freeaddrinfo(res);
    if (x->fd_ < 0) {
        err = "cannot open a UDP socket to " + cfg.destination + ": " + last;
        return nullptr;
    }
    return x;
}

std::unique_ptr<IpfixExporter> IpfixExporter::adopt(int fd, const IpfixExporterConfig &cfg) {
    std::unique_ptr<IpfixExporter> x(new IpfixExporter(cfg));
    x->fd_ = fd;
    x->peer_ = cfg.destination;
    return x;
}

IpfixExporter::~IpfixExporter() {
    if (fd_ >= 0) ::close(fd_);
}

bool IpfixExporter::send(const uint8_t *data, std::size_t len) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        ssize_t n = ::send(fd_, data, len, MSG_DONTWAIT);
        if (n == static_cast<ssize_t>(len)) return true;
        int e = n < 0 ? errno : EMSGSIZE;
        stats_.last_errno.store(e, std::memory_order_relaxed);
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
            // The socket buffer is full: wait a little for room, once.
            pollfd p{fd_, POLLOUT, 0};
            if (attempt == 0 && ::poll(&p, 1, static_cast<int>(cfg_.send_wait_ms)) > 0) continue;
            return false;
        }
        // An ICMP error from an earlier datagram is reported once, by this
        // call, and this datagram was not sent: count it, send it again.
        if (e == ECONNREFUSED) {
            stats_.refused.fetch_add(1, std::memory_order_relaxed);
            if (attempt == 0) continue;
        }
        return false;
    }
    return false;
}

void IpfixExporter::send_templates_if_due(const ExportClock &now) {
    if (templates_sent_ && now.mono_ns < next_templates_ns_) return;
    std::vector<uint8_t> t = encoder_.templates_message(now.unix_s);
    if (send(t.data(), t.size())) {
        stats_.template_messages.fetch_add(1, std::memory_order_relaxed);
        templates_sent_ = true;
        next_templates_ns_ = now.mono_ns + cfg_.template_interval_ns;
    } else {
        // Not sent: due again with the next message.
        stats_.dropped_messages.fetch_add(1, std::memory_order_relaxed);
    }
}

void IpfixExporter::send_pending(const ExportClock &now) {
    unsigned records = encoder_.pending_records();
    if (!records) return;
    std::span<const uint8_t> m = encoder_.take(now.unix_s);
    if (send(m.data(), m.size())) {
        stats_.messages.fetch_add(1, std::memory_order_relaxed);
        stats_.records.fetch_add(records, std::memory_order_relaxed);
    } else {
        stats_.dropped_messages.fetch_add(1, std::memory_order_relaxed);
        stats_.dropped_records.fetch_add(records, std::memory_order_relaxed);
    }
}

void IpfixExporter::add(const FlowView &f, const ExportClock &now) {
    send_templates_if_due(now);
    if (encoder_.add(f)) return;
    send_pending(now);
    encoder_.add(f); // fits an empty message (IpfixEncoder's contract)
}

void IpfixExporter::flush(const ExportClock &now) {
    send_templates_if_due(now);
    send_pending(now);
}

} // namespace millipede::flow_export

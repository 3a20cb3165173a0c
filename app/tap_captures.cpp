// See tap_captures.h.
#include "tap_captures.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace millipede::app {

namespace {

// The value of every `--vdev X` / `--vdev=X` among the EAL arguments.
std::vector<std::string_view> vdev_args(int argc, char **argv) {
    std::vector<std::string_view> out;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--vdev" && i + 1 < argc) out.emplace_back(argv[++i]);
        else if (a.substr(0, 7) == "--vdev=") out.push_back(a.substr(7));
    }
    return out;
}

} // namespace

// net_pcap opens its rx_pcap files while EAL probes devices, and a missing
// one ends rte_eal_init with a probe message that does not name the file.
// Checked here first: missing, unreadable, or (for a regular file) not a
// pcap/pcapng capture. A FIFO is left alone (reading it would consume it).
std::string check_capture_files(int eal_argc, char **eal_argv) {
    for (std::string_view v : vdev_args(eal_argc, eal_argv)) {
        std::string_view name = v.substr(0, v.find(','));
        if (name.substr(0, 8) != "net_pcap" && name.substr(0, 8) != "eth_pcap") continue;
        for (size_t at = v.find(','); at != std::string_view::npos;) {
            size_t next = v.find(',', at + 1);
            std::string_view kv = v.substr(at + 1, next == std::string_view::npos ? next : next - at - 1);
            at = next;
            if (kv.substr(0, 8) != "rx_pcap=") continue;
            std::string path(kv.substr(8));
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0) {
                if (errno == ENOENT || errno == ENOTDIR) return "no such capture " + path;
                return "cannot open capture " + path + ": " + std::strerror(errno);
            }
            if (S_ISDIR(st.st_mode)) return "capture " + path + " is a directory";
            if (::access(path.c_str(), R_OK) != 0) return "cannot read capture " + path + ": " + std::strerror(errno);
            if (!S_ISREG(st.st_mode)) continue;
            int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            unsigned char magic[4] = {};
            ssize_t got = fd >= 0 ? ::read(fd, magic, sizeof magic) : -1;
            if (fd >= 0) ::close(fd);
            if (got < 0) return "cannot read capture " + path + ": " + std::strerror(errno);
            uint32_t m = uint32_t(magic[0]) << 24 | uint32_t(magic[1]) << 16 | uint32_t(magic[2]) << 8 | magic[3];
            // pcap (microsecond and nanosecond, either byte order) and pcapng.
            bool known = m == 0xa1b2c3d4 || m == 0xd4c3b2a1 || m == 0xa1b23c4d || m == 0x4d3cb2a1 || m == 0x0a0d0d0a;
            if (got != 4 || !known) return "capture " + path + " is not a pcap or pcapng file";
        }
    }
    return {};
}

// The EAL arguments without the capture files the mmap reader takes over
// (see the file comment), and those files. Only with --capture-reader mmap
// and no --port: removing a device renumbers the ports after it.
std::vector<char *> take_pcap_files(int eal_argc, char **eal_argv, bool mmap_reader, std::vector<std::string> &files) {
    std::vector<char *> kept(eal_argv, eal_argv + eal_argc);
    if (!mmap_reader) return kept;
    auto mappable = [](std::string_view v) -> std::string {
        std::string_view name = v.substr(0, v.find(','));
        if (name.substr(0, 8) != "net_pcap" && name.substr(0, 8) != "eth_pcap") return {};
        size_t comma = v.find(',');
        if (comma == std::string_view::npos) return {};
        std::string_view kv = v.substr(comma + 1);
        if (kv.substr(0, 8) != "rx_pcap=" || kv.find(',') != std::string_view::npos) return {};
        std::string path(kv.substr(8));
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        unsigned char magic[4] = {};
        ssize_t got = fd >= 0 ? ::read(fd, magic, sizeof magic) : -1;
        if (fd >= 0) ::close(fd);
        uint32_t m = uint32_t(magic[0]) << 24 | uint32_t(magic[1]) << 16 | uint32_t(magic[2]) << 8 | magic[3];
        bool pcap = m == 0xa1b2c3d4 || m == 0xd4c3b2a1 || m == 0xa1b23c4d || m == 0x4d3cb2a1;
        return got == 4 && pcap ? path : std::string{};
    };
    std::vector<char *> out;
    for (size_t i = 0; i < kept.size(); ++i) {
        std::string_view a = kept[i];
        std::string path;
        if (a == "--vdev" && i + 1 < kept.size()) {
            path = mappable(kept[i + 1]);
            if (!path.empty()) {
                files.push_back(path);
                ++i;
                continue;
            }
        } else if (a.substr(0, 7) == "--vdev=") {
            path = mappable(a.substr(7));
            if (!path.empty()) {
                files.push_back(path);
                continue;
            }
        }
        out.push_back(kept[i]);
    }
    return out;
}

} // namespace millipede::app

// See tap_captures.h.
#include "tap_captures.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

#include "millipede/dataplane/capture_file.h"

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

// The first four bytes of `path` into `b`; how many were read, -1 on error.
ssize_t first_four_bytes(const std::string &path, uint8_t (&b)[4]) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    const ssize_t got = ::read(fd, b, sizeof b);
    ::close(fd);
    return got;
}

// A pcapng section header block (its type reads the same in both byte orders).
bool pcapng_magic(const uint8_t (&b)[4]) { return b[0] == 0x0a && b[1] == 0x0d && b[2] == 0x0d && b[3] == 0x0a; }

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
            uint8_t magic[4] = {};
            const ssize_t got = first_four_bytes(path, magic);
            if (got < 0) return "cannot read capture " + path + ": " + std::strerror(errno);
            if (!dataplane::CaptureFile::known_magic(magic, static_cast<size_t>(got)))
                return "capture " + path + " is not a pcap or pcapng file";
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
        uint8_t magic[4] = {};
        const ssize_t got = first_four_bytes(path, magic);
        // pcap only: pcapng files stay with net_pcap.
        const bool pcap = got == 4 && dataplane::CaptureFile::known_magic(magic, 4) && !pcapng_magic(magic);
        return pcap ? path : std::string{};
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

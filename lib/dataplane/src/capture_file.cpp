// pcap and pcapng walked in place; see capture_file.h. Formats:
// pcap: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html
// pcapng: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html
#include "millipede/dataplane/capture_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace millipede::dataplane {

namespace {

constexpr uint32_t kPcapMicro = 0xa1b2c3d4, kPcapNano = 0xa1b23c4d;
constexpr uint32_t kNgSection = 0x0a0d0d0a, kNgByteOrder = 0x1a2b3c4d;
constexpr uint32_t kNgInterface = 1, kNgPacketObsolete = 2, kNgSimple = 3, kNgEnhanced = 6;
constexpr uint32_t kLinkEthernet = 1;
constexpr std::size_t kPcapHeader = 24, kPcapRecord = 16;
// Readahead granted ahead of the walk (see read_ahead()).
constexpr std::size_t kAdviseStep = 8u << 20;
constexpr std::size_t kPrefetchAhead = 4096;

uint32_t bswap(uint32_t v) { return __builtin_bswap32(v); }

uint32_t raw32(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The link type without libpcap's FCS bits (LT_LINKTYPE).
uint32_t link_type(uint32_t v) { return v & 0x03ffffff; }

// libpcap's snapshot for a header's snaplen (pcap_adjust_snapshot()).
uint32_t snapshot_of(uint32_t snaplen) {
    return snaplen == 0 || snaplen > CaptureFile::kMaxCaplen ? CaptureFile::kMaxCaplen : snaplen;
}

} // namespace

uint16_t CaptureFile::rd16(const uint8_t *p) const {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return swap_ ? __builtin_bswap16(v) : v;
}

uint32_t CaptureFile::rd32(const uint8_t *p) const {
    const uint32_t v = raw32(p);
    return swap_ ? bswap(v) : v;
}

bool CaptureFile::known_magic(const uint8_t *p, std::size_t n) {
    if (n < 4) return false;
    const uint32_t m = raw32(p);
    for (uint32_t k : {kPcapMicro, kPcapNano, kNgSection})
        if (m == k || m == bswap(k)) return true;
    return false;
}

std::unique_ptr<CaptureFile> CaptureFile::open(const std::string &path, std::string &err) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        err = errno == ENOENT || errno == ENOTDIR ? "no such capture " + path
                                                  : "cannot open capture " + path + ": " + std::strerror(errno);
        return nullptr;
    }
    if (S_ISDIR(st.st_mode)) {
        err = "capture " + path + " is a directory";
        return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
        // A pipe cannot be mapped: net_pcap reads those.
        err = "capture " + path + " is not a regular file (for a pipe use --vdev 'net_pcap0,rx_pcap=" + path + "')";
        return nullptr;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = "cannot read capture " + path + ": " + std::strerror(errno);
        return nullptr;
    }
    std::unique_ptr<CaptureFile> f(new CaptureFile());
    f->path_ = path;
    f->size_ = static_cast<std::size_t>(st.st_size);
    if (f->size_ >= 4) {
        void *m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            err = "cannot map capture " + path + ": " + std::strerror(errno);
            ::close(fd);
            return nullptr;
        }
        f->base_ = static_cast<const uint8_t *>(m);
        // The walk is sequential: let the kernel read ahead aggressively.
        ::madvise(m, f->size_, MADV_SEQUENTIAL);
    }
    ::close(fd); // the mapping keeps the file
    if (!known_magic(f->base_, f->size_)) {
        err = "capture " + path + " is not a pcap or pcapng file";
        return nullptr;
    }
    const uint32_t magic = raw32(f->base_);
    if (magic == kNgSection || magic == bswap(kNgSection)) {
        f->ng_ = true;
        if (f->size_ < 12) {
            err = "capture " + path + ": truncated pcapng section header";
            return nullptr;
        }
        // The section header's byte-order magic decides; interfaces follow.
        f->swap_ = raw32(f->base_ + 8) != kNgByteOrder;
        const uint32_t len = f->rd32(f->base_ + 4);
        if (!f->section_header(0, len)) {
            err = f->error_;
            return nullptr;
        }
    } else {
        f->swap_ = magic != kPcapMicro && magic != kPcapNano;
        f->nano_ = (f->swap_ ? bswap(magic) : magic) == kPcapNano;
        if (f->size_ < kPcapHeader) {
            err = "capture " + path + ": truncated pcap file header";
            return nullptr;
        }
        const uint32_t lt = link_type(f->rd32(f->base_ + 20));
        if (lt != kLinkEthernet) {
            err = "capture " + path + ": link type " + std::to_string(lt) + " is not Ethernet (1)";
            return nullptr;
        }
        f->snapshot_ = snapshot_of(f->rd32(f->base_ + 16));
        f->at_ = kPcapHeader;
    }
    f->read_ahead(kAdviseStep);
    return f;
}

CaptureFile::~CaptureFile() {
    if (base_) ::munmap(const_cast<uint8_t *>(base_), size_);
}

void CaptureFile::read_ahead(std::size_t bytes) {
    // MADV_POPULATE_READ (Linux 5.14) maps a window's pages in one call,
    // reading what is not cached yet: a page fault per 64 KiB of a capture
    // cost more than tap's own work on its packets. A window at a time, so
    // a capture larger than memory streams. Older kernels: MADV_WILLNEED
    // starts the reads without mapping.
    if (!base_ || advised_ >= size_ || at_ + bytes <= advised_) return;
    const std::size_t page = 4096;
    const std::size_t from = advised_ & ~(page - 1);
    const std::size_t to = std::min(size_, at_ + bytes + kAdviseStep);
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
    if (::madvise(const_cast<uint8_t *>(base_) + from, to - from, MADV_POPULATE_READ) != 0)
        ::madvise(const_cast<uint8_t *>(base_) + from, to - from, MADV_WILLNEED);
    advised_ = to;
}

bool CaptureFile::fail(const std::string &what) {
    error_ = "capture " + path_ + ": " + what + " at byte " + std::to_string(at_) + " (after " +
             std::to_string(packets_) + " packets)";
    at_ = size_;
    return false;
}

void CaptureFile::unread() {
    if (last_at_ < at_ && packets_ > 0) {
        at_ = last_at_;
        --packets_;
    }
}

void CaptureFile::rewind() {
    if (!error_.empty()) return;
    // pcapng: the section header at byte 0 is walked again (its interfaces
    // are read anew); pcap: the first record follows the file header.
    at_ = last_at_ = ng_ ? 0 : kPcapHeader;
    advised_ = 0;
    prefetched_ = 0;
    read_ahead(kAdviseStep);
}

bool CaptureFile::next(CapturedPacket &p) {
    if (at_ >= size_) return false;
    if ((at_ & ((1u << 20) - 1)) < 2048) read_ahead(kAdviseStep); // about once per MiB walked
    // Each record header is a cache miss, one after the other: the hardware
    // prefetcher gives up at every 4 KiB page. Every line up to
    // kPrefetchAhead bytes ahead is requested instead, so the misses overlap
    // (the bench file's header walk: 42 ms -> 24 ms here).
    const std::size_t ahead = std::min(size_, at_ + kPrefetchAhead);
    for (; prefetched_ < ahead; prefetched_ += 64) __builtin_prefetch(base_ + prefetched_);
    return ng_ ? next_pcapng(p) : next_pcap(p);
}

bool CaptureFile::next_pcap(CapturedPacket &p) {
    if (size_ - at_ < kPcapRecord) return fail("truncated record header");
    const uint8_t *h = base_ + at_;
    const uint32_t sec = rd32(h), frac = rd32(h + 4), caplen = rd32(h + 8), origlen = rd32(h + 12);
    if (caplen > kMaxCaplen) return fail("record length " + std::to_string(caplen) + " beyond any capture");
    if (size_ - at_ - kPcapRecord < caplen) return fail("truncated record");
    last_at_ = at_;
    p.data = h + kPcapRecord;
    p.caplen = caplen < snapshot_ ? caplen : snapshot_; // libpcap cuts to the snapshot
    p.origlen = origlen;
    p.ts_us = uint64_t(sec) * 1'000'000 + (nano_ ? frac / 1000 : frac);
    at_ += kPcapRecord + caplen;
    ++packets_;
    return true;
}

bool CaptureFile::section_header(std::size_t at, uint32_t len) {
    at_ = at;
    if (len < 28 || len % 4 || size_ - at < len) return fail("bad pcapng section header");
    const uint8_t *b = base_ + at;
    if (rd16(b + 12) != 1) return fail("pcapng major version " + std::to_string(rd16(b + 12)) + " (1 expected)");
    ifaces_.clear();
    at_ = at + len;
    return true;
}

bool CaptureFile::interface_block(const uint8_t *body, uint32_t len) {
    if (len < 8) return fail("short pcapng interface block");
    const uint32_t lt = rd16(body);
    if (lt != kLinkEthernet) return fail("interface link type " + std::to_string(lt) + " is not Ethernet (1)");
    Interface itf;
    itf.snapshot = snapshot_of(rd32(body + 4));
    // Options: code, length, value padded to 4 bytes.
    for (uint32_t o = 8; o + 4 <= len;) {
        const uint16_t code = rd16(body + o), olen = rd16(body + o + 2);
        if (code == 0 || o + 4 + olen > len) break; // opt_endofopt
        const uint8_t *v = body + o + 4;
        if (code == 9 && olen >= 1) { // if_tsresol: 10^-n, or 2^-n with the top bit
            const unsigned n = v[0] & 0x7f;
            uint64_t units = 1;
            if (v[0] & 0x80) {
                if (n > 63) return fail("if_tsresol 2^-" + std::to_string(n) + " out of range");
                units = uint64_t(1) << n;
            } else {
                if (n > 19) return fail("if_tsresol 10^-" + std::to_string(n) + " out of range");
                for (unsigned i = 0; i < n; ++i) units *= 10;
            }
            itf.units_per_sec = units;
        } else if (code == 14 && olen >= 8) { // if_tsoffset: seconds, signed 64 bits
            uint64_t seconds;
            std::memcpy(&seconds, v, 8);
            itf.offset_sec = static_cast<int64_t>(swap_ ? __builtin_bswap64(seconds) : seconds);
        }
        o += 4 + ((olen + 3u) & ~3u);
    }
    ifaces_.push_back(itf);
    return true;
}

bool CaptureFile::next_pcapng(CapturedPacket &p) {
    for (;;) {
        if (at_ >= size_) return false;
        if (size_ - at_ < 12) return fail("truncated pcapng block");
        const uint8_t *b = base_ + at_;
        const uint32_t raw_type = raw32(b);
        if (raw_type == kNgSection) {
            // A new section may change the byte order.
            swap_ = raw32(b + 8) != kNgByteOrder;
            if (!section_header(at_, rd32(b + 4))) return false;
            continue;
        }
        const uint32_t type = rd32(b), len = rd32(b + 4);
        if (len < 12 || len % 4 || size_ - at_ < len) return fail("bad pcapng block length " + std::to_string(len));
        const uint8_t *body = b + 8;
        const uint32_t body_len = len - 12;
        const std::size_t block_at = at_;
        at_ += len;
        if (type == kNgInterface) {
            at_ = block_at; // for the message
            if (!interface_block(body, body_len)) return false;
            at_ = block_at + len;
            continue;
        }
        uint32_t iface = 0, caplen = 0, origlen = 0, data_off = 0;
        uint64_t stamp = 0;
        bool stamped = true;
        if (type == kNgEnhanced && body_len >= 20) {
            iface = rd32(body);
            stamp = uint64_t(rd32(body + 4)) << 32 | rd32(body + 8);
            caplen = rd32(body + 12);
            origlen = rd32(body + 16);
            data_off = 20;
        } else if (type == kNgPacketObsolete && body_len >= 20) {
            iface = rd16(body);
            stamp = uint64_t(rd32(body + 4)) << 32 | rd32(body + 8);
            caplen = rd32(body + 12);
            origlen = rd32(body + 16);
            data_off = 20;
        } else if (type == kNgSimple && body_len >= 4) {
            origlen = rd32(body);
            data_off = 4;
            stamped = false;
            // No captured length of its own: the interface's snapshot bounds it.
            caplen = origlen;
            if (!ifaces_.empty() && caplen > ifaces_[0].snapshot) caplen = ifaces_[0].snapshot;
            if (caplen > body_len - 4) caplen = body_len - 4;
        } else {
            continue; // statistics, name resolution, custom blocks: not packets
        }
        if (iface >= ifaces_.size()) {
            at_ = block_at;
            return fail("packet of interface " + std::to_string(iface) + ", which the section does not describe");
        }
        if (caplen > kMaxCaplen || caplen > body_len - data_off) {
            at_ = block_at;
            return fail("packet length " + std::to_string(caplen) + " beyond its block");
        }
        const Interface &itf = ifaces_[iface];
        last_at_ = block_at;
        p.data = body + data_off;
        p.caplen = caplen < itf.snapshot ? caplen : itf.snapshot;
        p.origlen = origlen;
        if (stamped) {
            // libpcap: seconds and fraction in the interface's units, the
            // fraction scaled to microseconds (truncating), then the offset.
            const uint64_t sec = stamp / itf.units_per_sec, frac = stamp % itf.units_per_sec;
            const uint64_t us = static_cast<uint64_t>((unsigned __int128)frac * 1'000'000 / itf.units_per_sec);
            p.ts_us = (sec + static_cast<uint64_t>(itf.offset_sec)) * 1'000'000 + us;
        } else {
            p.ts_us = 0;
        }
        ++packets_;
        return true;
    }
}

} // namespace millipede::dataplane

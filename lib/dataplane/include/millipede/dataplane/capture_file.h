// A capture file (pcap or pcapng) read in place: the file is memory-mapped
// and its records are walked without copying, so a reader hands out
// pointers into the page cache (tap's file input, capture_source.h).
//
// Contract
// - Pure: no EAL. open() may allocate and reports a bad file as one line
//   (missing, unreadable, not a regular file, not a pcap/pcapng capture,
//   not Ethernet). next() allocates nothing.
// - One thread at a time per CaptureFile. The bytes a CapturedPacket points
//   at stay valid, read-only, until the CaptureFile is destroyed.
// - What a packet is, and its time, follow libpcap (which DPDK's net_pcap
//   reads through), so both inputs give tap the same frames: the captured
//   bytes (a record longer than the file's snapshot length is cut to it, as
//   libpcap does), the time in microseconds (nanosecond pcap files and
//   pcapng's if_tsresol/if_tsoffset scaled down the way libpcap does).
// - A record that runs past the end of the file, or whose length is beyond
//   any capture (262,144 bytes, libpcap's limit), ends the walk: next()
//   returns false and error() says where. A clean end leaves error() empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace millipede::dataplane {

struct CapturedPacket {
    const uint8_t *data = nullptr;
    uint32_t caplen = 0;  // bytes at data
    uint32_t origlen = 0; // length on the wire
    uint64_t ts_us = 0;   // Unix time, microseconds
};

class CaptureFile {
  public:
    static constexpr uint32_t kMaxCaplen = 262144; // libpcap's MAXIMUM_SNAPLEN

    static std::unique_ptr<CaptureFile> open(const std::string &path, std::string &err);
    ~CaptureFile();
    CaptureFile(const CaptureFile &) = delete;
    CaptureFile &operator=(const CaptureFile &) = delete;

    // The next packet; false at the end of the file (or of its readable part).
    bool next(CapturedPacket &p);
    // Steps back over the packet next() returned last (once): it comes again.
    void unread();
    // Back to the first record (a looped replay): the walk starts over, as
    // from open(). Not after an error (a cut-short walk stays ended).
    void rewind();
    // Asks the kernel to start reading the next `bytes` of the file.
    void read_ahead(std::size_t bytes);

    const std::string &error() const { return error_; }
    const std::string &path() const { return path_; }
    uint64_t packets() const { return packets_; }
    std::size_t size() const { return size_; }
    bool pcapng() const { return ng_; }

    // Whether the first bytes are a pcap or pcapng magic number (any byte order).
    static bool known_magic(const uint8_t *p, std::size_t n);

  private:
    CaptureFile() = default;
    bool next_pcap(CapturedPacket &p);
    bool next_pcapng(CapturedPacket &p);
    bool fail(const std::string &what);
    uint16_t rd16(const uint8_t *p) const;
    uint32_t rd32(const uint8_t *p) const;

    struct Interface {
        uint32_t snapshot = kMaxCaplen;
        uint64_t units_per_sec = 1'000'000; // if_tsresol
        int64_t offset_sec = 0;             // if_tsoffset
    };
    bool section_header(std::size_t at, uint32_t len);
    bool interface_block(const uint8_t *body, uint32_t len);

    std::size_t prefetched_ = 0; // every line before this offset was prefetched
    std::string path_;
    std::string error_;
    const uint8_t *base_ = nullptr;
    std::size_t size_ = 0;
    std::size_t at_ = 0; // next record
    std::size_t last_at_ = 0; // the record next() returned last
    std::size_t advised_ = 0;
    bool swap_ = false;
    bool ng_ = false;
    bool nano_ = false;            // pcap: nanosecond timestamps
    uint32_t snapshot_ = kMaxCaplen; // pcap
    std::vector<Interface> ifaces_;  // pcapng: of the current section
    uint64_t packets_ = 0;
};

} // namespace millipede::dataplane

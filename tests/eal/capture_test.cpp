// The memory-mapped capture reader (lib/dataplane capture_file.h,
// capture_source.h): what a packet and its time are, as libpcap (and so
// net_pcap) would say, and the mbufs that point into the mapping.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "millipede/dataplane/capture_file.h"
#include "millipede/dataplane/capture_flows.h"
#include "millipede/flow/flow_key.h"
#include "millipede/net/parse.h"
#include "millipede/dataplane/capture_source.h"

using namespace millipede::dataplane;

namespace {

using Bytes = std::vector<uint8_t>;

void put32(Bytes &b, uint32_t v, bool big) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(big ? v >> (24 - 8 * i) : v >> (8 * i)));
}
void put16(Bytes &b, uint16_t v, bool big) {
    for (int i = 0; i < 2; ++i) b.push_back(static_cast<uint8_t>(big ? v >> (8 - 8 * i) : v >> (8 * i)));
}

struct Record {
    uint32_t sec, frac;
    Bytes data;
    uint32_t origlen = 0; // 0: data.size()
};

Bytes pcap(const std::vector<Record> &rs, bool nano = false, bool big = false, uint32_t snaplen = 262144) {
    Bytes b;
    put32(b, nano ? 0xa1b23c4d : 0xa1b2c3d4, big);
    put16(b, 2, big);
    put16(b, 4, big);
    put32(b, 0, big);
    put32(b, 0, big);
    put32(b, snaplen, big);
    put32(b, 1, big); // Ethernet
    for (const Record &r : rs) {
        put32(b, r.sec, big);
        put32(b, r.frac, big);
        put32(b, static_cast<uint32_t>(r.data.size()), big);
        put32(b, r.origlen ? r.origlen : static_cast<uint32_t>(r.data.size()), big);
        b.insert(b.end(), r.data.begin(), r.data.end());
    }
    return b;
}

Bytes pattern(size_t n, uint8_t seed) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
    return b;
}

struct TempFile {
    std::string path;
    explicit TempFile(const Bytes &content) {
        char name[] = "/tmp/millipede_capture_XXXXXX";
        int fd = mkstemp(name);
        path = name;
        EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
        close(fd);
    }
    ~TempFile() { unlink(path.c_str()); }
};

} // namespace

TEST(CaptureFile, PcapRecordsAreCutToTheSnapshotWithMicrosecondTimes) {
    TempFile f(pcap({{100, 5, pattern(60, 1)}, {101, 999999, pattern(200, 2), 1500}}, false, false, 128));
    std::string err;
    auto c = CaptureFile::open(f.path, err);
    ASSERT_TRUE(c) << err;
    CapturedPacket p;
    ASSERT_TRUE(c->next(p));
    EXPECT_EQ(p.caplen, 60u);
    EXPECT_EQ(p.ts_us, 100'000'005u);
    EXPECT_EQ(0, std::memcmp(p.data, pattern(60, 1).data(), 60));
    ASSERT_TRUE(c->next(p));
    EXPECT_EQ(p.caplen, 128u); // the file's snapshot length, as libpcap cuts it
    EXPECT_EQ(p.origlen, 1500u);
    EXPECT_EQ(p.ts_us, 101'999'999u);
    EXPECT_FALSE(c->next(p));
    EXPECT_TRUE(c->error().empty()) << c->error();
    EXPECT_EQ(c->packets(), 2u);
}

TEST(CaptureFile, BigEndianNanosecondFilesAreScaledToMicroseconds) {
    TempFile f(pcap({{7, 123456789, pattern(64, 3)}}, true, true));
    std::string err;
    auto c = CaptureFile::open(f.path, err);
    ASSERT_TRUE(c) << err;
    CapturedPacket p;
    ASSERT_TRUE(c->next(p));
    EXPECT_EQ(p.ts_us, 7'123'456u); // truncated, as libpcap does
    EXPECT_EQ(p.caplen, 64u);
}

TEST(CaptureFile, ATruncatedRecordEndsTheWalkWithALine) {
    Bytes b = pcap({{1, 0, pattern(60, 1)}, {2, 0, pattern(60, 2)}});
    b.resize(b.size() - 10);
    TempFile f(b);
    std::string err;
    auto c = CaptureFile::open(f.path, err);
    ASSERT_TRUE(c) << err;
    CapturedPacket p;
    ASSERT_TRUE(c->next(p));
    EXPECT_FALSE(c->next(p));
    EXPECT_NE(c->error().find("truncated record"), std::string::npos) << c->error();
    EXPECT_NE(c->error().find("after 1 packets"), std::string::npos) << c->error();
}

TEST(CaptureFile, WhatIsNotACaptureIsRefusedByName) {
    TempFile f(Bytes{'h', 'e', 'l', 'l', 'o', '\n'});
    std::string err;
    EXPECT_FALSE(CaptureFile::open(f.path, err));
    EXPECT_EQ(err, "capture " + f.path + " is not a pcap or pcapng file");
    EXPECT_FALSE(CaptureFile::open("/nonexistent/capture.pcap", err));
    EXPECT_EQ(err, "no such capture /nonexistent/capture.pcap");
}

TEST(CaptureFile, PcapngEnhancedPacketsUseTheInterfaceResolution) {
    Bytes b;
    auto block = [&](uint32_t type, const Bytes &body) {
        const uint32_t len = static_cast<uint32_t>(12 + body.size());
        put32(b, type, false);
        put32(b, len, false);
        b.insert(b.end(), body.begin(), body.end());
        put32(b, len, false);
    };
    Bytes shb;
    put32(shb, 0x1a2b3c4d, false);
    put16(shb, 1, false);
    put16(shb, 0, false);
    for (int i = 0; i < 8; ++i) shb.push_back(0xff); // section length: unknown
    block(0x0a0d0d0a, shb);
    Bytes idb;
    put16(idb, 1, false); // Ethernet
    put16(idb, 0, false);
    put32(idb, 0, false); // snaplen 0: no limit
    put16(idb, 9, false); // if_tsresol: 10^-9
    put16(idb, 1, false);
    idb.insert(idb.end(), {9, 0, 0, 0});
    put16(idb, 0, false);
    put16(idb, 0, false);
    block(1, idb);
    Bytes epb;
    const uint64_t stamp = 5'000'000'123'456ull; // 5000.000123456 s
    put32(epb, 0, false);
    put32(epb, static_cast<uint32_t>(stamp >> 32), false);
    put32(epb, static_cast<uint32_t>(stamp), false);
    put32(epb, 62, false);
    put32(epb, 62, false);
    Bytes data = pattern(62, 9);
    epb.insert(epb.end(), data.begin(), data.end());
    epb.resize(epb.size() + 2); // padded to 32 bits
    block(6, epb);
    TempFile f(b);
    std::string err;
    auto c = CaptureFile::open(f.path, err);
    ASSERT_TRUE(c) << err;
    CapturedPacket p;
    ASSERT_TRUE(c->next(p));
    EXPECT_EQ(p.caplen, 62u);
    EXPECT_EQ(p.ts_us, 5'000'000'123u);
    EXPECT_EQ(0, std::memcmp(p.data, data.data(), 62));
    EXPECT_FALSE(c->next(p));
    EXPECT_TRUE(c->error().empty()) << c->error();
}

// The mbufs point into the mapping: the same bytes, the record's time in
// the Rx timestamp field, a frame over 65,535 bytes as a chain, and a pool
// that runs dry pauses the reader without losing a packet.
TEST(CaptureSource, BurstsOfMbufsOverTheRecords) {
    std::vector<Record> rs;
    for (uint32_t i = 0; i < 1100; ++i) rs.push_back({1000 + i, i, pattern(60 + i % 50, static_cast<uint8_t>(i))});
    rs[5].data = pattern(70000, 42); // longer than one mbuf can describe
    TempFile f(pcap(rs));
    std::string err;
    auto file = CaptureFile::open(f.path, err);
    ASSERT_TRUE(file) << err;
    auto src = CaptureSource::create(std::move(file), 1024, 0, "cap_test", err);
    ASSERT_TRUE(src) << err;
    const int ts_off = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
    const int ts_bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
    ASSERT_GE(ts_off, 0);
    ASSERT_GE(ts_bit, 0);

    std::vector<rte_mbuf *> held;
    size_t index = 0;
    auto check = [&](rte_mbuf *m) {
        const Record &r = rs[index++];
        ASSERT_EQ(rte_pktmbuf_pkt_len(m), r.data.size());
        Bytes got(r.data.size());
        const void *p = rte_pktmbuf_read(m, 0, static_cast<uint32_t>(got.size()), got.data());
        ASSERT_EQ(0, std::memcmp(p, r.data.data(), got.size())) << "packet " << index - 1;
        EXPECT_TRUE(m->ol_flags & (1ull << ts_bit));
        EXPECT_EQ(*RTE_MBUF_DYNFIELD(m, ts_off, uint64_t *), uint64_t(r.sec) * 1'000'000 + r.frac);
        EXPECT_EQ(m->nb_segs, r.data.size() > 65535 ? 2 : 1);
    };
    rte_mbuf *burst[32];
    // Hold every mbuf: the pool (1,024) runs dry before the file (1,100
    // packets and one extra segment) ends.
    for (int spins = 0; spins < 1000; ++spins) {
        const unsigned n = src->read_burst(burst, 32);
        if (n == 0) break;
        for (unsigned i = 0; i < n; ++i) {
            check(burst[i]);
            held.push_back(burst[i]);
        }
    }
    EXPECT_FALSE(src->done());
    EXPECT_EQ(held.size(), 1023u); // 1,024 mbufs, one of them the long frame's second segment
    for (rte_mbuf *m : held) rte_pktmbuf_free(m);
    while (!src->done()) {
        const unsigned n = src->read_burst(burst, 32);
        for (unsigned i = 0; i < n; ++i) {
            check(burst[i]);
            rte_pktmbuf_free(burst[i]);
        }
    }
    EXPECT_EQ(index, rs.size());
    EXPECT_EQ(src->packets(), rs.size());
    EXPECT_TRUE(src->error().empty()) << src->error();
}

// The flows of real captures, estimated, against an exact count of the keys
// the classifier would make (the same parse, key and hash).
TEST(CaptureFlows, EstimateMatchesTheExactCountOnRealCaptures) {
    const std::string dir = MILLIPEDE_PCAPS_DIR;
    std::vector<std::string> all;
    std::set<std::string> exact_all; // each key's bytes (a set of vector<uint8_t> trips GCC 12's -Wstringop-overread)
    for (const char *name : {"whatsapp.pcap", "quic.pcap", "dropbox.pcap", "tor.pcap", "bittorrent.pcap"}) {
        const std::string path = dir + "/" + name;
        all.push_back(path);
        std::string err;
        auto c = CaptureFile::open(path, err);
        ASSERT_TRUE(c) << err;
        std::set<std::string> exact;
        CapturedPacket cp;
        while (c->next(cp)) {
            millipede::net::PacketInfo p;
            if (millipede::net::parse_packet(cp.data, cp.caplen, p) != millipede::net::Reject::NONE) continue;
            millipede::flow::FlowKey k;
            millipede::flow::make_flow_key(p, k);
            const std::string bytes(reinterpret_cast<const char *>(&k), sizeof k);
            exact.insert(bytes);
            exact_all.insert(bytes);
        }
        auto est = millipede::dataplane::estimate_capture_flows({path});
        ASSERT_TRUE(est) << name;
        EXPECT_EQ(est->packets, c->packets()) << name;
        EXPECT_NEAR(double(est->flows), double(exact.size()), 0.05 * exact.size() + 1) << name;
    }
    auto est = millipede::dataplane::estimate_capture_flows(all);
    ASSERT_TRUE(est);
    EXPECT_GT(exact_all.size(), 100u);
    EXPECT_NEAR(double(est->flows), double(exact_all.size()), 0.05 * exact_all.size() + 1);
}

TEST(CaptureFlows, UnreadableOrTooBigGivesNothing) {
    EXPECT_FALSE(millipede::dataplane::estimate_capture_flows({"/nonexistent/capture.pcap"}));
    TempFile cut(pcap({{1, 0, pattern(60, 1)}}, false, false));
    ASSERT_EQ(truncate(cut.path.c_str(), 24 + 16 + 30), 0); // the record is cut short
    EXPECT_FALSE(millipede::dataplane::estimate_capture_flows({cut.path}));
    TempFile big(pcap({{1, 0, pattern(60, 1)}}, false, false));
    ASSERT_EQ(truncate(big.path.c_str(), millipede::dataplane::kCaptureScanLimit + 1), 0); // sparse
    EXPECT_FALSE(millipede::dataplane::estimate_capture_flows({big.path}));
}

TEST(CaptureFlows, TableCapacityIsTwiceTheFlowsAsAPowerOfTwoWithinBounds) {
    using millipede::dataplane::tap_table_capacity;
    EXPECT_EQ(tap_table_capacity(0, 1u << 20), 4096u);
    EXPECT_EQ(tap_table_capacity(159, 1u << 20), 4096u);
    EXPECT_EQ(tap_table_capacity(2048, 1u << 20), 4096u);
    EXPECT_EQ(tap_table_capacity(2049, 1u << 20), 8192u);
    EXPECT_EQ(tap_table_capacity(300'000, 1u << 20), 1u << 20);
    EXPECT_EQ(tap_table_capacity(10'000'000, 1u << 20), 1u << 20);
    EXPECT_EQ(tap_table_capacity(10, 1000), 1000u); // never above the configured default
}

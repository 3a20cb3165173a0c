// NeighbourCache: miss/request/resolve, waiting packets, retries and give-up,
// aging, probes, static entries, learning rules, bounds, and index churn.
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "l2_helpers.h"
#include "millipede/net/neighbour.h"

using namespace millipede::net;
using namespace l2_test;

namespace {

ArpPacket arp_from(uint32_t ip, const MacAddr &mac, uint16_t op = kArpOpReply, uint32_t target = kOurIp) {
    ArpPacket p;
    p.op = op;
    p.sender_ip = ip;
    p.sender_mac = mac;
    p.target_ip = target;
    return p;
}

NeighbourConfig small_cfg() {
    NeighbourConfig c;
    c.max_entries = 8;
    c.max_queued = 2;
    c.max_retries = 3;
    c.retry_interval_us = 1000;
    c.reachable_us = 10'000;
    c.stale_gc_us = 100'000;
    return c;
}

} // namespace

TEST(Neighbour, MissQueuesAndResolves) {
    NeighbourCache nc(small_cfg());
    auto r = nc.resolve(kPeerIp, 0, 101);
    EXPECT_EQ(r.kind, NeighLookup::Kind::PENDING);
    EXPECT_TRUE(r.send_request);
    r = nc.resolve(kPeerIp, 10, 102);
    EXPECT_EQ(r.kind, NeighLookup::Kind::PENDING);
    EXPECT_FALSE(r.send_request); // one request per retry interval, not per packet
    r = nc.resolve(kPeerIp, 20, 103);
    EXPECT_EQ(r.kind, NeighLookup::Kind::DROPPED); // policy: the new packet is dropped
    EXPECT_EQ(r.drop, NeighDrop::QUEUE_FULL);
    EXPECT_EQ(nc.stats().drops[static_cast<unsigned>(NeighDrop::QUEUE_FULL)], 1u);
    NeighEntry e;
    ASSERT_TRUE(nc.lookup(kPeerIp, 20, e));
    EXPECT_EQ(e.state, NeighState::INCOMPLETE);
    EXPECT_EQ(e.queued, 2u);

    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp, kPeerMac), true, 50), ArpLearn::RESOLVED);
    NeighRelease rel[4];
    ASSERT_EQ(nc.take_released(rel, 4), 2u);
    EXPECT_EQ(rel[0].pkt, 101u);
    EXPECT_EQ(rel[1].pkt, 102u);
    EXPECT_TRUE(rel[0].send && rel[1].send);
    EXPECT_EQ(rel[0].mac, kPeerMac);
    EXPECT_EQ(nc.take_released(rel, 4), 0u);
    r = nc.resolve(kPeerIp, 60, 104);
    EXPECT_EQ(r.kind, NeighLookup::Kind::RESOLVED);
    EXPECT_EQ(r.mac, kPeerMac);
    EXPECT_FALSE(r.send_request);
}

TEST(Neighbour, RetriesThenGivesUp) {
    NeighbourCache nc(small_cfg());
    ASSERT_TRUE(nc.resolve(kPeerIp, 0, 7).send_request); // request #1
    uint32_t req[4];
    EXPECT_EQ(nc.poll(999, req, 4), 0u);
    ASSERT_EQ(nc.poll(1000, req, 4), 1u); // #2
    EXPECT_EQ(req[0], kPeerIp);
    ASSERT_EQ(nc.poll(2000, req, 4), 1u); // #3
    NeighEntry e;
    ASSERT_TRUE(nc.lookup(kPeerIp, 2000, e));
    EXPECT_EQ(e.retries, 3u);
    EXPECT_EQ(nc.poll(3000, req, 4), 0u); // bounded: gives up instead of a 4th
    EXPECT_FALSE(nc.lookup(kPeerIp, 3000, e));
    NeighRelease rel[2];
    ASSERT_EQ(nc.take_released(rel, 2), 1u);
    EXPECT_EQ(rel[0].pkt, 7u);
    EXPECT_FALSE(rel[0].send);
    EXPECT_EQ(nc.stats().drops[static_cast<unsigned>(NeighDrop::RESOLUTION_FAILED)], 1u);
    EXPECT_EQ(nc.stats().requests, 3u);
    EXPECT_EQ(nc.size(), 0u);
    // A new attempt starts over.
    EXPECT_TRUE(nc.resolve(kPeerIp, 4000, 8).send_request);
}

TEST(Neighbour, PollRespectsOutputSpace) {
    NeighbourCache nc(small_cfg());
    for (uint32_t i = 0; i < 5; i++) nc.resolve(kPeerIp + i, 0);
    uint32_t req[2];
    EXPECT_EQ(nc.poll(1000, req, 2), 2u);
    EXPECT_EQ(nc.poll(1000, req, 2), 2u); // the rest stayed due
    EXPECT_EQ(nc.poll(1000, req, 2), 1u);
    EXPECT_EQ(nc.poll(1000, req, 2), 0u);
}

TEST(Neighbour, AgingStaleProbeAndReconfirm) {
    NeighbourCache nc(small_cfg());
    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp, kPeerMac), true, 0), ArpLearn::CREATED);
    NeighEntry e;
    ASSERT_TRUE(nc.lookup(kPeerIp, 5000, e));
    EXPECT_EQ(e.state, NeighState::REACHABLE);
    EXPECT_EQ(e.age_us, 5000u);
    auto r = nc.resolve(kPeerIp, 9999);
    EXPECT_EQ(r.kind, NeighLookup::Kind::RESOLVED);
    EXPECT_FALSE(r.send_request);
    // Past reachable_us the entry is stale: still used, and the use starts a probe.
    r = nc.resolve(kPeerIp, 10'000);
    EXPECT_EQ(r.kind, NeighLookup::Kind::RESOLVED);
    EXPECT_TRUE(r.send_request);
    ASSERT_TRUE(nc.lookup(kPeerIp, 10'000, e));
    EXPECT_EQ(e.state, NeighState::PROBE);
    EXPECT_FALSE(nc.resolve(kPeerIp, 10'001).send_request);
    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp, kPeerMac), false, 10'500), ArpLearn::CONFIRMED);
    ASSERT_TRUE(nc.lookup(kPeerIp, 10'500, e));
    EXPECT_EQ(e.state, NeighState::REACHABLE);
    EXPECT_EQ(e.age_us, 0u);
}

TEST(Neighbour, FailedProbeDeletesEntry) {
    NeighbourCache nc(small_cfg());
    nc.on_arp(arp_from(kPeerIp, kPeerMac), true, 0);
    ASSERT_TRUE(nc.resolve(kPeerIp, 20'000).send_request); // stale -> probe #1
    uint32_t req[4];
    EXPECT_EQ(nc.poll(21'000, req, 4), 1u);
    EXPECT_EQ(nc.poll(22'000, req, 4), 1u);
    EXPECT_EQ(nc.resolve(kPeerIp, 22'500).kind, NeighLookup::Kind::RESOLVED); // still used meanwhile
    EXPECT_EQ(nc.poll(23'000, req, 4), 0u);
    NeighEntry e;
    EXPECT_FALSE(nc.lookup(kPeerIp, 23'000, e));
    EXPECT_EQ(nc.resolve(kPeerIp, 23'001, 5).kind, NeighLookup::Kind::PENDING);
}

TEST(Neighbour, StaleEntriesAreCollected) {
    NeighbourCache nc(small_cfg());
    nc.on_arp(arp_from(kPeerIp, kPeerMac), true, 0);
    uint32_t req[4];
    nc.poll(50'000, req, 4);
    NeighEntry e;
    ASSERT_TRUE(nc.lookup(kPeerIp, 50'000, e));
    EXPECT_EQ(e.state, NeighState::STALE);
    nc.poll(100'000, req, 4);
    EXPECT_FALSE(nc.lookup(kPeerIp, 100'000, e));
    EXPECT_EQ(nc.stats().expired, 1u);
}

TEST(Neighbour, LearningRules) {
    NeighbourCache nc(small_cfg());
    // Not for us and unknown: RFC 826 does not add it.
    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp, kPeerMac, kArpOpRequest, 0x0a000063), false, 0), ArpLearn::IGNORED);
    // Probe (sender IP 0) teaches nothing.
    EXPECT_EQ(nc.on_arp(arp_from(0, kPeerMac, kArpOpRequest), true, 0), ArpLearn::IGNORED);
    // Gratuitous from an unknown host: not added; from a known one: updated.
    auto grat = arp_from(kPeerIp, kPeerMac, kArpOpRequest, kPeerIp);
    EXPECT_EQ(nc.on_arp(grat, false, 0), ArpLearn::IGNORED);
    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp, kPeerMac), true, 0), ArpLearn::CREATED);
    MacAddr moved{{0x02, 0, 0, 0, 0, 0x22}};
    grat.sender_mac = moved;
    EXPECT_EQ(nc.on_arp(grat, false, 10), ArpLearn::MAC_CHANGED);
    EXPECT_EQ(nc.resolve(kPeerIp, 20).mac, moved);
    EXPECT_EQ(nc.stats().mac_changes, 1u);
}

TEST(Neighbour, StaticEntries) {
    NeighbourCache nc(small_cfg());
    nc.resolve(kPeerIp, 0, 55); // waiting packet, then the operator's static entry resolves it
    ASSERT_TRUE(nc.add_static(kPeerIp, kPeerMac));
    NeighRelease rel[2];
    ASSERT_EQ(nc.take_released(rel, 2), 1u);
    EXPECT_EQ(rel[0].pkt, 55u);
    EXPECT_TRUE(rel[0].send);
    EXPECT_EQ(rel[0].mac, kPeerMac);
    MacAddr other{{0x02, 9, 9, 9, 9, 9}};
    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp, other), true, 1), ArpLearn::STATIC_CONFLICT);
    EXPECT_EQ(nc.stats().static_conflicts, 1u);
    uint32_t req[2];
    nc.poll(1'000'000'000, req, 2); // never ages, never collected
    auto r = nc.resolve(kPeerIp, 1'000'000'000);
    EXPECT_EQ(r.kind, NeighLookup::Kind::RESOLVED);
    EXPECT_EQ(r.mac, kPeerMac);
    EXPECT_FALSE(r.send_request);
    NeighEntry e;
    ASSERT_TRUE(nc.lookup(kPeerIp, 5, e));
    EXPECT_EQ(e.state, NeighState::STATIC);
    EXPECT_EQ(e.age_us, 0u);
    EXPECT_FALSE(nc.add_static(0, kPeerMac));
    EXPECT_FALSE(nc.add_static(0xe0000001, kPeerMac));
    EXPECT_FALSE(nc.add_static(0x0a000005, kBroadcastMac));
    EXPECT_FALSE(nc.add_static(0x0a000005, MacAddr{}));
}

TEST(Neighbour, TableFullDropsAndCounts) {
    NeighbourConfig c = small_cfg();
    c.max_entries = 4;
    NeighbourCache nc(c);
    for (uint32_t i = 0; i < 4; i++) EXPECT_EQ(nc.resolve(kPeerIp + i, 0).kind, NeighLookup::Kind::PENDING);
    auto r = nc.resolve(kPeerIp + 10, 0, 99);
    EXPECT_EQ(r.kind, NeighLookup::Kind::DROPPED);
    EXPECT_EQ(r.drop, NeighDrop::TABLE_FULL);
    EXPECT_EQ(nc.stats().drops[static_cast<unsigned>(NeighDrop::TABLE_FULL)], 1u);
    EXPECT_EQ(nc.size(), 4u);
    EXPECT_TRUE(nc.remove(kPeerIp));
    EXPECT_EQ(nc.resolve(kPeerIp + 10, 0).kind, NeighLookup::Kind::PENDING);
    EXPECT_EQ(nc.resolve(0, 0).drop, NeighDrop::INVALID_ADDRESS);
    EXPECT_EQ(nc.resolve(0xffffffff, 0).drop, NeighDrop::INVALID_ADDRESS);
    EXPECT_STREQ(neigh_drop_name(NeighDrop::QUEUE_FULL), "neigh_queue_full");
}

TEST(Neighbour, AHostAskingForUsDisplacesTheOldestUnansweredEntry) {
    // A SYN flood from spoofed on-link sources fills the table with
    // addresses nobody answers for; a real peer's ARP request must still be
    // learnt, or we could never answer it.
    NeighbourConfig c = small_cfg();
    c.max_entries = 4;
    NeighbourCache nc(c);
    for (uint32_t i = 0; i < 4; i++) EXPECT_EQ(nc.resolve(kPeerIp + i, 10 + i, 100 + i).kind, NeighLookup::Kind::PENDING);
    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp + 11, kPeerMac), true, 50), ArpLearn::CREATED);
    EXPECT_EQ(nc.stats().evicted_incomplete, 1u);
    EXPECT_EQ(nc.resolve(kPeerIp + 11, 60).kind, NeighLookup::Kind::RESOLVED);
    // The evicted entry (the oldest: kPeerIp) released its packet as failed.
    NeighRelease rel[8];
    ASSERT_EQ(nc.take_released(rel, 8), 1u);
    EXPECT_EQ(rel[0].pkt, 100u);
    EXPECT_FALSE(rel[0].send);
    // Not for us: nothing is displaced.
    EXPECT_EQ(nc.on_arp(arp_from(kPeerIp + 12, kPeerMac), false, 70), ArpLearn::IGNORED);
    // A table of answered entries stays as it is: the newcomer is refused.
    NeighbourCache full(c);
    for (uint32_t i = 0; i < 4; i++)
        EXPECT_EQ(full.on_arp(arp_from(kPeerIp + i, kPeerMac), true, 1), ArpLearn::CREATED);
    EXPECT_EQ(full.on_arp(arp_from(kPeerIp + 20, kPeerMac), true, 2), ArpLearn::TABLE_FULL);
    EXPECT_EQ(full.stats().drops[static_cast<unsigned>(NeighDrop::TABLE_FULL)], 1u);
}

TEST(Neighbour, ReleaseRingNeverOverflows) {
    // The owner never calls take_released(): held packets stay bounded and
    // the cache drops (and counts) instead of overflowing the ring.
    NeighbourConfig c = small_cfg();
    c.max_entries = 2;
    c.max_queued = 2;
    NeighbourCache nc(c);
    uint64_t pkt = 1, accepted = 0;
    for (int round = 0; round < 10; round++) {
        for (uint32_t i = 0; i < 2; i++)
            for (int k = 0; k < 3; k++)
                if (nc.resolve(kPeerIp + i, 0, pkt++).kind == NeighLookup::Kind::PENDING) accepted++;
        for (uint32_t i = 0; i < 2; i++) nc.on_arp(arp_from(kPeerIp + i, kPeerMac), true, 0);
        for (uint32_t i = 0; i < 2; i++) nc.remove(kPeerIp + i);
    }
    std::vector<NeighRelease> rel(100);
    EXPECT_EQ(nc.take_released(rel.data(), rel.size()), accepted);
    EXPECT_LE(accepted, 4u);
}

// Random insert/erase against a std::map: the index (linear probing with
// backward-shift deletion) never loses or invents an entry.
TEST(Neighbour, IndexChurnMatchesModel) {
    NeighbourConfig c;
    c.max_entries = 64;
    NeighbourCache nc(c);
    std::map<uint32_t, MacAddr> model;
    std::mt19937 rng(1);
    for (int step = 0; step < 200'000; step++) {
        const uint32_t ip = 0x0a000000 + (rng() % 200) * 7 + 1;
        MacAddr m{{0x02, 0, 0, 0, static_cast<uint8_t>(ip >> 8), static_cast<uint8_t>(ip)}};
        const unsigned op = rng() % 3;
        if (op == 0) {
            const bool ok = nc.add_static(ip, m);
            if (model.count(ip) || model.size() < 64) {
                ASSERT_TRUE(ok) << step;
                model[ip] = m;
            } else {
                ASSERT_FALSE(ok) << step;
            }
        } else if (op == 1) {
            ASSERT_EQ(nc.remove(ip), model.erase(ip) == 1) << step;
        } else {
            NeighEntry e;
            const bool found = nc.lookup(ip, 0, e);
            ASSERT_EQ(found, model.count(ip) == 1) << step;
            if (found) {
                ASSERT_EQ(e.mac, model[ip]);
            }
        }
        ASSERT_EQ(nc.size(), model.size());
    }
}

TEST(Neighbour, ConfigValidation) {
    NeighbourConfig c;
    c.max_entries = 0;
    EXPECT_THROW(NeighbourCache{c}, std::invalid_argument);
    c = NeighbourConfig{};
    c.max_queued = 65;
    EXPECT_THROW(NeighbourCache{c}, std::invalid_argument);
    c = NeighbourConfig{};
    c.max_retries = 0;
    EXPECT_THROW(NeighbourCache{c}, std::invalid_argument);
    c = NeighbourConfig{};
    c.max_queued = 0; // allowed: drop every packet that would wait
    NeighbourCache nc(c);
    auto r = nc.resolve(kPeerIp, 0, 1);
    EXPECT_EQ(r.kind, NeighLookup::Kind::DROPPED);
    EXPECT_TRUE(r.send_request); // the request still goes out
}

// DistinctCounter (HyperLogLog): the estimate against exact counts, from a
// handful of flows (linear counting) to millions, with repeats that must not
// count twice.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "millipede/flow/distinct_counter.h"
#include "millipede/flow/flow_key.h"

using millipede::flow::DistinctCounter;
using millipede::flow::FlowKey;

namespace {

uint32_t hash_of_flow(uint32_t i) {
    FlowKey k{};
    std::memcpy(k.addr_lo, &i, 4); // distinct flows: distinct addresses
    k.addr_hi[0] = 10;
    k.port_lo = 443;
    k.port_hi = static_cast<uint16_t>(i * 7);
    k.proto = 6;
    k.ip_version = 4;
    return millipede::flow::flow_hash(k);
}

} // namespace

TEST(DistinctCounter, EmptyIsZero) { EXPECT_EQ(DistinctCounter{}.estimate(), 0u); }

TEST(DistinctCounter, EstimatesWithinFivePercentFromTensToMillions) {
    for (uint32_t n : {10u, 100u, 1052u, 10'000u, 100'000u, 1'000'000u, 3'000'000u}) {
        DistinctCounter c;
        for (uint32_t i = 0; i < n; ++i) c.add(hash_of_flow(i));
        const double e = static_cast<double>(c.estimate());
        EXPECT_LE(std::fabs(e - n), 0.05 * n + 1) << n << " flows, estimated " << e;
    }
}

TEST(DistinctCounter, RepeatedPacketsOfAFlowCountOnce) {
    DistinctCounter once, many;
    for (uint32_t i = 0; i < 5000; ++i) once.add(hash_of_flow(i));
    for (int rep = 0; rep < 50; ++rep)
        for (uint32_t i = 0; i < 5000; ++i) many.add(hash_of_flow(i));
    EXPECT_EQ(once.estimate(), many.estimate());
}

// How many flows capture files hold, estimated before EAL starts, so that a
// tap reading only files sizes its flow table and nDPI flow states for them
// instead of for a mirror port's million flows (docs/benchmarks.md, tap
// against ndpiReader: the default tables cost about 45 ms of set-up, mostly
// the kernel clearing hugepages).
//
// Contract
// - estimate_capture_flows() is pure: no EAL, no mbufs. It maps each file
//   (CaptureFile), parses every packet as the classifier does
//   (net::parse_packet, flow::make_flow_key, flow::flow_hash) and feeds the
//   hashes to a flow::DistinctCounter. Safe on any thread; tap runs it on a
//   helper thread while EAL starts.
// - The walk costs about 90 ns per packet here (the record headers miss the
//   cache), about a fifth of tap's own work on a packet. So it stops being
//   worth it where the set-up it saves is small beside the run: above
//   kCaptureScanLimit bytes in all it returns nothing and the defaults stay.
// - It returns nothing when a file cannot be read or is cut short: the run
//   itself then reports the file (or uses it as far as it reads), and the
//   tables keep their defaults.
// - tap_table_capacity() is the sizing rule: twice the estimate (the
//   estimate's standard error is 1.6 %), rounded up to a power of two, at
//   least 4096, never more than the default. A flow table that fills anyway
//   evicts its oldest flow, counted as "evicted" in the summary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace millipede::dataplane {

inline constexpr std::size_t kCaptureScanLimit = std::size_t{256} << 20;

struct CaptureFlowEstimate {
    uint64_t flows = 0;   // distinct flow keys, estimated
    uint64_t packets = 0; // records read
};

std::optional<CaptureFlowEstimate> estimate_capture_flows(const std::vector<std::string> &paths);

uint32_t tap_table_capacity(uint64_t estimated_flows, uint32_t default_capacity);

} // namespace millipede::dataplane

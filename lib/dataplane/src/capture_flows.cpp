#include "millipede/dataplane/capture_flows.h"

#include <algorithm>
#include <memory>

#include "millipede/dataplane/capture_file.h"
#include "millipede/flow/distinct_counter.h"
#include "millipede/flow/flow_key.h"
#include "millipede/net/parse.h"

namespace millipede::dataplane {

std::optional<CaptureFlowEstimate> estimate_capture_flows(const std::vector<std::string> &paths) {
    flow::DistinctCounter counter;
    CaptureFlowEstimate est;
    std::vector<std::unique_ptr<CaptureFile>> files;
    std::size_t bytes = 0;
    for (const auto &path : paths) {
        std::string err;
        auto file = CaptureFile::open(path, err);
        if (!file) return std::nullopt;
        bytes += file->size();
        files.push_back(std::move(file));
    }
    if (bytes > kCaptureScanLimit) return std::nullopt;
    for (auto &file : files) {
        CapturedPacket cp;
        while (file->next(cp)) {
            ++est.packets;
            net::PacketInfo p;
            if (net::parse_packet(cp.data, cp.caplen, p) != net::Reject::NONE) continue;
            flow::FlowKey k;
            flow::make_flow_key(p, k);
            counter.add(flow::flow_hash(k));
        }
        if (!file->error().empty()) return std::nullopt;
    }
    est.flows = counter.estimate();
    return est;
}

uint32_t tap_table_capacity(uint64_t estimated_flows, uint32_t default_capacity) {
    uint64_t want = 4096;
    while (want < 2 * estimated_flows && want < default_capacity) want <<= 1;
    return static_cast<uint32_t>(std::min<uint64_t>(want, default_capacity));
}

} // namespace millipede::dataplane

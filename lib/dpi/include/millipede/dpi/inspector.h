// L7 protocol detection with nDPI 4.2, per flow, in packet order.
//
// Contract
// - An Engine owns one nDPI detection module (about 9 MB of heap, built in
//   create()). It is not thread-safe: each worker has its own and calls it
//   from one thread at a time. Set-up (create) may allocate and is slow (tens
//   of ms); process() and finish() are the per-packet / per-flow calls.
// - A flow's inspection state is caller-owned memory of flow_size() bytes,
//   aligned to kFlowAlign (a pool slot, never malloc'd per flow by this
//   wrapper). It holds no pointer to an engine: every engine is configured
//   alike, so a flow may move to another worker's engine provided only one
//   thread touches it at a time and the hand-over is ordered (the
//   classifier's migration rule gives that).
// - The detection rule is ndpiReader's (reader_util.c, nDPI 4.2), so the
//   results are comparable with `ndpiReader -i FILE`: packets are fed until
//   nDPI names an application and needs no extra dissection, or until the
//   flow has seen more than 80 (TCP) / 24 (UDP) packets; then, or at the
//   flow's end if still undecided, ndpi_detection_giveup() with guessing.
// - nDPI itself may allocate inside a flow (host names, TLS buffers);
//   finish() releases that, so every init() must be paired with finish().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct ndpi_detection_module_struct;

namespace millipede::dpi {

inline constexpr std::size_t kFlowAlign = 16;
inline constexpr unsigned kTcpGiveUpPackets = 80; // ndpiReader's -T default
inline constexpr unsigned kUdpGiveUpPackets = 24; // ndpiReader's -U default

// nDPI protocol ids: master (e.g. TLS) and application (e.g. Google); 0 is Unknown.
struct Protocol {
    uint16_t master = 0;
    uint16_t app = 0;
};

// Per-flow verdict, kept next to the nDPI state.
struct Verdict {
    Protocol proto;
    uint32_t packets = 0;   // packets given to nDPI
    bool done = false;      // no further packet will be inspected
    bool guessed = false;   // the result came from giveup's guess (ports, IPs)
};

class Engine {
public:
    // Initialises nDPI with every protocol enabled. nullptr + message on failure.
    static std::unique_ptr<Engine> create(std::string &err);
    ~Engine();
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    // Bytes and alignment of a flow's nDPI state.
    static std::size_t flow_size();

    // Starts a flow in `mem` (flow_size() bytes, kFlowAlign aligned).
    void init(void *mem, Verdict &v) const;

    // Inspects one packet of the flow. `l3` is the IP header, `len` the
    // bytes from there to the end of the frame, `l4_proto` the IP protocol
    // and `flow_packets` the flow's packet count including this one (the
    // give-up rule counts every packet, as ndpiReader does). Does nothing
    // once v.done. Returns v.done.
    bool process(void *mem, Verdict &v, const uint8_t *l3, uint16_t len, uint64_t time_ms, uint8_t l4_proto,
                 uint64_t flow_packets);

    // Ends the flow: gives up (with guessing) if undecided, then frees what
    // nDPI allocated inside the flow. `mem` may be reused after this.
    void finish(void *mem, Verdict &v);

    // nDPI's name of a protocol id ("Unknown" for 0 or an unknown id).
    const char *name(uint16_t id) const;
    // ndpiReader's form: "MASTER.APP", or one name when they agree or one is unknown.
    std::string label(Protocol p) const;
    // Every protocol name by id, to format records off the worker threads.
    std::vector<std::string> names() const;

private:
    Engine() = default;
    ndpi_detection_module_struct *mod_ = nullptr;
};

// Formats like Engine::label() from a name table of Engine::names().
std::string label(const std::vector<std::string> &names, Protocol p);

} // namespace millipede::dpi

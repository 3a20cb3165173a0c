#include "millipede/dpi/inspector.h"

#include <cstring>
#include <new>

extern "C" {
#include <ndpi/ndpi_api.h>
}

namespace millipede::dpi {

namespace {
constexpr uint8_t kTcp = 6, kUdp = 17;

ndpi_flow_struct *as_flow(void *mem) { return static_cast<ndpi_flow_struct *>(mem); }
} // namespace

std::unique_ptr<Engine> Engine::create(std::string &err) {
    std::unique_ptr<Engine> e(new Engine());
    e->mod_ = ndpi_init_detection_module(ndpi_no_prefs);
    if (!e->mod_) {
        err = "nDPI: ndpi_init_detection_module failed (out of memory?)";
        return nullptr;
    }
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(e->mod_, &all);
    ndpi_finalize_initialization(e->mod_);
    return e;
}

Engine::~Engine() {
    if (mod_) ndpi_exit_detection_module(mod_);
}

std::size_t Engine::flow_size() {
    std::size_t s = ndpi_detection_get_sizeof_ndpi_flow_struct();
    return (s + kFlowAlign - 1) & ~(kFlowAlign - 1);
}

void Engine::init(void *mem, Verdict &v) const {
    std::memset(mem, 0, flow_size());
    v = Verdict{};
}

bool Engine::process(void *mem, Verdict &v, const uint8_t *l3, uint16_t len, uint64_t time_ms, uint8_t l4_proto,
                     uint64_t flow_packets) {
    if (v.done) return true;
    ++v.packets;
    ndpi_protocol p = ndpi_detection_process_packet(mod_, as_flow(mem), l3, len, time_ms);
    v.proto = {p.master_protocol, p.app_protocol};
    // ndpiReader's rule (reader_util.c, packet_processing): enough packets,
    // or an application named and nothing more to dissect (e.g. a TLS
    // certificate still to come).
    bool enough = (l4_proto == kUdp && flow_packets > kUdpGiveUpPackets) ||
                  (l4_proto == kTcp && flow_packets > kTcpGiveUpPackets);
    if (enough || p.app_protocol != NDPI_PROTOCOL_UNKNOWN) {
        if (!enough && ndpi_extra_dissection_possible(mod_, as_flow(mem))) return false;
        v.done = true;
        if (p.app_protocol == NDPI_PROTOCOL_UNKNOWN) {
            uint8_t guessed = 0;
            p = ndpi_detection_giveup(mod_, as_flow(mem), 1, &guessed);
            v.proto = {p.master_protocol, p.app_protocol};
            v.guessed = guessed != 0;
        }
    }
    return v.done;
}

void Engine::finish(void *mem, Verdict &v) {
    if (!v.done) {
        uint8_t guessed = 0;
        ndpi_protocol p = ndpi_detection_giveup(mod_, as_flow(mem), 1, &guessed);
        v.proto = {p.master_protocol, p.app_protocol};
        v.guessed = guessed != 0;
        v.done = true;
    }
    ndpi_free_flow_data(as_flow(mem));
}

const char *Engine::name(uint16_t id) const {
    const char *n = ndpi_get_proto_name(mod_, id);
    return n ? n : "Unknown";
}

std::vector<std::string> Engine::names() const {
    std::vector<std::string> out;
    unsigned count = ndpi_get_num_supported_protocols(mod_);
    out.reserve(count);
    for (unsigned i = 0; i < count; ++i) out.emplace_back(name(static_cast<uint16_t>(i)));
    return out;
}

std::string label(const std::vector<std::string> &names, Protocol p) {
    auto n = [&](uint16_t id) -> const std::string & {
        static const std::string unknown = "Unknown";
        return id < names.size() ? names[id] : unknown;
    };
    // ndpi_protocol2name()'s rule, which ndpiReader prints.
    if (p.master != 0 && p.master != p.app) return p.app != 0 ? n(p.master) + "." + n(p.app) : n(p.master);
    return n(p.app);
}

std::string Engine::label(Protocol p) const { return dpi::label(names(), p); }

} // namespace millipede::dpi

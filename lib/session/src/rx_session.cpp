// RxSession: an RxCore and one LegHost in one thread. See rx_session.h.
#include "millipede/session/rx_session.h"

#include <stdexcept>

#include "inprocess.h"

namespace millipede::session {

struct RxSession::Queues : detail::InProcessQueues {};

namespace {

HostConfig host_config(const RxConfig &cfg) {
    if (cfg.local_ips.empty()) throw std::invalid_argument("rx session: no local address to listen on");
    if (cfg.port == 0) throw std::invalid_argument("rx session: no listening port");
    if (cfg.max_half_open == 0) throw std::invalid_argument("rx session: max_half_open must be >= 1");
    HostConfig h;
    h.host_id = 0;
    h.tcp = cfg.tcp;
    h.watchdog = cfg.watchdog;
    h.compat = cfg.stripe.codec == stripe::Codec::VIAMILLIPEDE;
    h.listen_ips = cfg.local_ips;
    h.listen_port = cfg.port;
    h.max_half_open = cfg.max_half_open;
    // Legs, plus room to accept (and then refuse) a few beyond them.
    h.max_connections = cfg.stripe.max_legs + 64;
    return h;
}

} // namespace

RxSession::RxSession(const RxConfig &cfg, tcp::SegmentSink sink, tcp::Random rng)
    : rng_(std::move(rng)), q_(std::make_unique<Queues>()) {
    if (!sink) throw std::invalid_argument("rx session: no segment sink");
    if (!rng_) throw std::invalid_argument("rx session: no random source");
    HostConfig hc = host_config(cfg);
    core_ = std::make_unique<RxCore>(cfg, *q_);
    host_ = std::make_unique<LegHost>(hc, std::move(sink), [this] { return rng_(); }, *q_);
}

RxSession::~RxSession() = default;

void RxSession::pump(uint64_t now) { q_->pump(*host_, *core_, now); }

void RxSession::on_segment(const tcp::Segment &seg, uint64_t now) {
    host_->on_segment(seg, now);
    pump(now);
}

bool RxSession::on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst,
                         uint64_t now) {
    if (!host_->on_bytes(bytes, src, dst, now)) return false;
    pump(now);
    return true;
}

void RxSession::poll(uint64_t now) {
    pump(now);
    core_->poll(now);
    pump(now);
}

uint64_t RxSession::next_deadline() const { return std::min(core_->next_deadline(), host_->next_deadline()); }

const RxStats &RxSession::stats() const {
    merged_ = core_->stats();
    const HostStats &h = host_->stats();
    merged_.segments_in = h.segments_in;
    merged_.bad_segments = h.bad_segments;
    merged_.unknown_segments = h.unknown_segments;
    merged_.watchdog_kills = std::max(merged_.watchdog_kills, h.watchdog_kills);
    return merged_;
}

const tcp::Connection *RxSession::leg_connection(uint32_t leg) const {
    const ConnHandle h = core_->leg_handle(leg);
    return h ? host_->connection(h) : nullptr;
}

} // namespace millipede::session

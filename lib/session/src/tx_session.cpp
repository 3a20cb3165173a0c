// TxSession: a TxCore and one LegHost in one thread. See tx_session.h.
#include "millipede/session/tx_session.h"

#include <stdexcept>

#include "inprocess.h"

namespace millipede::session {

struct TxSession::Queues : detail::InProcessQueues {};

namespace {

HostConfig host_config(const TxConfig &cfg) {
    HostConfig h;
    h.host_id = 0;
    h.tcp = cfg.tcp;
    if (legs_paced(cfg.stripe.parity_k, cfg.stripe.parity_queue_ahead)) h.tcp.pacing = true;
    h.watchdog = cfg.watchdog;
    h.compat = cfg.stripe.codec == stripe::Codec::VIAMILLIPEDE;
    // Legs, their replacements while the old ones close, and retired ones.
    h.max_connections = static_cast<uint32_t>(4 * stripe::kMaxLegs);
    return h;
}

} // namespace

TxSession::TxSession(const TxConfig &cfg, tcp::SegmentSink sink, tcp::Random rng)
    : rng_(std::move(rng)), q_(std::make_unique<Queues>()) {
    if (!sink) throw std::invalid_argument("tx session: no segment sink");
    if (!rng_) throw std::invalid_argument("tx session: no random source");
    tcp::Random shared = [this] { return rng_(); };
    core_ = std::make_unique<TxCore>(cfg, *q_, shared);
    host_ = std::make_unique<LegHost>(host_config(cfg), std::move(sink), shared, *q_);
}

TxSession::~TxSession() = default;

void TxSession::pump(uint64_t now) { q_->pump(*host_, *core_, now); }

void TxSession::on_segment(const tcp::Segment &seg, uint64_t now) {
    host_->on_segment(seg, now);
    pump(now);
}

bool TxSession::on_bytes(std::span<const uint8_t> bytes, const tcp::IpAddr &src, const tcp::IpAddr &dst,
                         uint64_t now) {
    if (!host_->on_bytes(bytes, src, dst, now)) return false;
    pump(now);
    return true;
}

void TxSession::poll(uint64_t now) {
    pump(now);
    core_->poll(now);
    pump(now);
    core_->poll(now); // the stripe sender writes into legs that came up meanwhile
    pump(now);
}

uint64_t TxSession::next_deadline() const { return std::min(core_->next_deadline(), host_->next_deadline()); }

const TxStats &TxSession::stats() const {
    merged_ = core_->stats();
    const HostStats &h = host_->stats();
    merged_.segments_in = h.segments_in;
    merged_.bad_segments = h.bad_segments;
    merged_.unknown_segments = h.unknown_segments;
    merged_.retired += h.retired;
    return merged_;
}

const tcp::Connection *TxSession::leg_connection(uint32_t leg) const {
    const ConnHandle h = core_->leg_handle(leg);
    return h ? host_->connection(h) : nullptr;
}

} // namespace millipede::session

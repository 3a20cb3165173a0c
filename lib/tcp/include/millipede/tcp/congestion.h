// Congestion control behind an interface, selectable per connection:
// NewReno (RFC 5681 + RFC 6582 for the window arithmetic), CUBIC
// (RFC 9438) and BBR (draft-ietf-ccwg-bbr, BBRv3; bbr.h). Loss *detection*
// and recovery bookkeeping (dup ACKs, NewReno partial ACKs, the RFC 6675
// scoreboard, RACK-TLP in tx_records.h) live in the connection;
// controllers decide cwnd and ssthresh, and a model-based controller also
// the pacing rate.
//
// Contract: owned by one connection, single-threaded, no allocation after
// construction. Units are bytes; `now_us` is the caller's clock.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace millipede::tcp {

enum class CongestionAlgo : uint8_t { NewReno, Cubic, Bbr };

// "reno" (or "newreno"), "cubic", "bbr"; false for anything else.
bool parse_congestion_algo(std::string_view name, CongestionAlgo &out);
const char *congestion_algo_name(CongestionAlgo algo);

// One ACK's delivery-rate sample (draft-ietf-ccwg-bbr 2.2 and 4.1,
// draft-cheng-iccrg-delivery-rate-estimation), built by the connection from
// its per-segment transmit records.
struct RateSample {
    double delivery_rate = 0;     // RS.delivery_rate, bytes per second (0: no valid sample)
    uint64_t delivered = 0;       // RS.delivered: delivered over the sampling interval
    uint64_t prior_delivered = 0; // RS.prior_delivered: P.delivered of the newest packet ACKed
    uint64_t interval_us = 0;     // RS.interval
    int64_t rtt_us = -1;          // RS.rtt, of the newest packet ACKed (-1: none)
    uint32_t newly_acked = 0;     // RS.newly_acked ("DeliveredData", RFC 6937)
    uint32_t newly_lost = 0;      // RS.newly_lost
    uint32_t tx_in_flight = 0;    // RS.tx_in_flight: C.inflight when the newest packet ACKed was sent
    uint64_t lost = 0;            // RS.lost: declared lost between its send and this ACK
    bool is_app_limited = false;  // RS.is_app_limited
    bool has_data = false;        // this ACK delivered something
};

// The connection's state a model-based controller reads (draft-ietf-ccwg-bbr
// 2.1), given with every call.
struct CcConnState {
    uint32_t mss = 536;           // C.SMSS
    uint32_t inflight = 0;        // C.inflight (bytes in flight, RFC 6675 "pipe")
    uint64_t delivered = 0;       // C.delivered
    uint64_t lost = 0;            // C.lost
    uint64_t srtt_us = 0;         // 0: no sample yet
    bool is_cwnd_limited = false; // C.is_cwnd_limited: cwnd was fully used in the last round trip
    bool in_recovery = false;     // fast recovery or RTO recovery
    bool has_sack = true;         // C.has_selective_acks
    bool app_limited = false;     // C.app_limited != 0
};

// A packet the loss detection just marked lost (draft-ietf-ccwg-bbr 5.2.4).
struct LostPacket {
    uint32_t size = 0;          // P.size
    uint32_t tx_in_flight = 0;  // P.tx_in_flight
    uint64_t lost_at_send = 0;  // P.lost (C.lost when it was sent)
    bool is_app_limited = false;
};

class CongestionControl {
public:
    virtual ~CongestionControl() = default;

    // Connection established: initial window per RFC 6928 / RFC 5681 3.1.
    virtual void init(uint32_t mss, uint32_t initial_cwnd_segments, uint64_t now_us) = 0;
    // New data acknowledged outside loss recovery. `rtt_us` is the latest
    // sample (0 if none).
    virtual void on_ack(uint32_t acked_bytes, uint32_t flight_bytes, uint64_t rtt_us, uint64_t now_us) = 0;
    // Loss detected by dup ACKs / SACK: sets ssthresh (and cwnd = ssthresh, the
    // window used once recovery ends).
    virtual void on_congestion_event(uint32_t flight_bytes, uint64_t now_us) = 0;
    // Retransmission timeout: ssthresh as for a congestion event, cwnd = 1 MSS
    // (RFC 5681 3.1 eq. 4 and the loss window).
    virtual void on_rto(uint32_t flight_bytes, uint64_t now_us) = 0;
    // Loss recovery finished (full ACK): cwnd returns to ssthresh.
    virtual void on_recovery_exit(uint64_t now_us) = 0;

    virtual uint32_t cwnd() const = 0;
    virtual uint32_t ssthresh() const = 0;
    virtual const char *name() const = 0;

    // --- model-based controllers (default: nothing; NewReno and CUBIC) ---
    // True: the controller wants on_ack_sample() / on_packet_lost() and keeps
    // deciding cwnd during loss recovery (the connection does not freeze it).
    virtual bool model_based() const { return false; }
    // Every ACK that delivered data or marked losses, after the connection
    // processed it (recovery entry or exit included). Returns true when the
    // connection is to be marked application-limited now (BBR's ProbeRTT
    // ignores its own low-rate samples, draft-ietf-ccwg-bbr 5.3.4).
    virtual bool on_ack_sample(const RateSample &rs, const CcConnState &c, uint64_t now_us) {
        (void)rs, (void)c, (void)now_us;
        return false;
    }
    // Each packet the loss detection marks lost, as it is marked.
    virtual void on_packet_lost(const LostPacket &p, const CcConnState &c, uint64_t now_us) {
        (void)p, (void)c, (void)now_us;
    }
    // Before transmitting data (draft-ietf-ccwg-bbr 5.2.2: restart from idle).
    virtual void on_transmit(const CcConnState &c, uint64_t now_us) { (void)c, (void)now_us; }
    // Pacing rate in bytes per second; 0: not paced (send as cwnd allows).
    virtual uint64_t pacing_rate() const { return 0; }
    // The largest burst sent back to back at the pacing rate (bytes).
    virtual uint32_t send_quantum() const { return 0; }
    // Randomness for the controller's own choices (BBR's probe timing),
    // from the connection's injected generator.
    virtual void seed(uint64_t s) { (void)s; }
};

// RFC 5681 slow start (with RFC 3465 L = 2 SMSS) and byte-counting
// congestion avoidance; ssthresh = max(FlightSize / 2, 2 SMSS).
class NewRenoCC final : public CongestionControl {
public:
    void init(uint32_t mss, uint32_t initial_cwnd_segments, uint64_t now_us) override;
    void on_ack(uint32_t acked_bytes, uint32_t flight_bytes, uint64_t rtt_us, uint64_t now_us) override;
    void on_congestion_event(uint32_t flight_bytes, uint64_t now_us) override;
    void on_rto(uint32_t flight_bytes, uint64_t now_us) override;
    void on_recovery_exit(uint64_t now_us) override;
    uint32_t cwnd() const override { return cwnd_; }
    uint32_t ssthresh() const override { return ssthresh_; }
    const char *name() const override { return "newreno"; }

private:
    uint32_t mss_ = 536;
    uint32_t cwnd_ = 0;
    uint32_t ssthresh_ = UINT32_MAX;
    uint32_t bytes_acked_ = 0; // congestion-avoidance byte counter (RFC 5681 3.1)
};

// CUBIC, RFC 9438: W_cubic(t) = C (t - K)^3 + W_max (eq. 1),
// K = cbrt((W_max - cwnd_epoch) / C) (eq. 2), beta = 0.7, C = 0.4,
// Reno-friendly estimate W_est (eq. 4) and fast convergence (4.7).
class CubicCC final : public CongestionControl {
public:
    static constexpr double kBeta = 0.7;
    static constexpr double kC = 0.4;

    void init(uint32_t mss, uint32_t initial_cwnd_segments, uint64_t now_us) override;
    void on_ack(uint32_t acked_bytes, uint32_t flight_bytes, uint64_t rtt_us, uint64_t now_us) override;
    void on_congestion_event(uint32_t flight_bytes, uint64_t now_us) override;
    void on_rto(uint32_t flight_bytes, uint64_t now_us) override;
    void on_recovery_exit(uint64_t now_us) override;
    uint32_t cwnd() const override;
    uint32_t ssthresh() const override;
    const char *name() const override { return "cubic"; }

    // Exposed for tests (segments, seconds).
    double w_max() const { return w_max_; }
    double k() const { return k_; }
    double w_est() const { return w_est_; }
    double cwnd_segments() const { return cwnd_; }
    static double w_cubic(double t_sec, double w_max, double k) {
        const double d = t_sec - k;
        return kC * d * d * d + w_max;
    }

private:
    void reduce(double cwnd_now);

    double mss_ = 536;
    double cwnd_ = 0;          // segments
    double ssthresh_ = 1e12;   // segments
    double w_max_ = 0;         // segments, before the last reduction
    double cwnd_prior_ = 0;    // cwnd when ssthresh was last set (4.3)
    double k_ = 0;             // seconds
    double w_est_ = 0;         // Reno-friendly estimate (segments)
    double cwnd_epoch_ = 0;
    uint64_t epoch_start_us_ = 0;
    bool epoch_valid_ = false;
};

std::unique_ptr<CongestionControl> make_congestion_control(CongestionAlgo algo);

} // namespace millipede::tcp

// Congestion control behind an interface, selectable per connection:
// NewReno (RFC 5681 + RFC 6582 for the window arithmetic) and CUBIC
// (RFC 9438). Loss *detection* and recovery bookkeeping (dup ACKs, NewReno
// partial ACKs, the RFC 6675 scoreboard) live in the connection; controllers
// only decide cwnd and ssthresh.
//
// Contract: owned by one connection, single-threaded, no allocation after
// construction. Units are bytes; `now_us` is the caller's clock.
#pragma once

#include <cstdint>
#include <memory>

namespace millipede::tcp {

enum class CongestionAlgo : uint8_t { NewReno, Cubic };

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

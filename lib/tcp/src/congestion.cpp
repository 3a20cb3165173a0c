#include "millipede/tcp/congestion.h"

#include <algorithm>
#include <cmath>

#include "millipede/tcp/bbr.h"

namespace millipede::tcp {

bool parse_congestion_algo(std::string_view name, CongestionAlgo &out) {
    if (name == "reno" || name == "newreno") out = CongestionAlgo::NewReno;
    else if (name == "cubic") out = CongestionAlgo::Cubic;
    else if (name == "bbr") out = CongestionAlgo::Bbr;
    else return false;
    return true;
}

const char *congestion_algo_name(CongestionAlgo algo) {
    switch (algo) {
    case CongestionAlgo::NewReno: return "newreno";
    case CongestionAlgo::Cubic: return "cubic";
    case CongestionAlgo::Bbr: return "bbr";
    }
    return "?";
}

// ---------------- NewReno (RFC 5681, RFC 3465, RFC 6582) ----------------

void NewRenoCC::init(uint32_t mss, uint32_t iw, uint64_t) {
    mss_ = mss;
    // RFC 6928 2: IW = min(10 * MSS, max(2 * MSS, 14600)) for iw = 10.
    cwnd_ = iw * mss;
    if (iw == 10) cwnd_ = std::min<uint32_t>(10 * mss, std::max<uint32_t>(2 * mss, 14600));
    ssthresh_ = UINT32_MAX; // RFC 5681 3.1: arbitrarily high initial ssthresh
    bytes_acked_ = 0;
}

void NewRenoCC::on_ack(uint32_t acked, uint32_t, uint64_t, uint64_t) {
    if (cwnd_ < ssthresh_) {
        // RFC 5681 3.1 slow start, RFC 3465 appropriate byte counting, L = 2.
        cwnd_ += std::min<uint32_t>(acked, 2 * mss_);
        return;
    }
    // RFC 5681 3.1 congestion avoidance by byte counting: +1 SMSS per cwnd
    // of acknowledged bytes.
    bytes_acked_ += acked;
    if (bytes_acked_ >= cwnd_) {
        bytes_acked_ -= cwnd_;
        cwnd_ += mss_;
    }
}

void NewRenoCC::on_congestion_event(uint32_t flight, uint64_t) {
    // RFC 5681 3.2 step 2 / eq. 4: ssthresh = max(FlightSize / 2, 2 * SMSS).
    ssthresh_ = std::max<uint32_t>(flight / 2, 2 * mss_);
    cwnd_ = ssthresh_;
    bytes_acked_ = 0;
}

void NewRenoCC::on_rto(uint32_t flight, uint64_t) {
    // RFC 5681 3.1 eq. 4 and "LW = 1 SMSS".
    ssthresh_ = std::max<uint32_t>(flight / 2, 2 * mss_);
    cwnd_ = mss_;
    bytes_acked_ = 0;
}

void NewRenoCC::on_recovery_exit(uint64_t) { cwnd_ = ssthresh_; } // RFC 6582 3.2 step 3

// ---------------- CUBIC (RFC 9438) ----------------

void CubicCC::init(uint32_t mss, uint32_t iw, uint64_t) {
    mss_ = mss;
    cwnd_ = iw;
    if (iw == 10) cwnd_ = std::min<double>(10, std::max<double>(2, 14600.0 / mss)); // RFC 6928
    ssthresh_ = 1e12;
    w_max_ = 0;
    epoch_valid_ = false;
}

void CubicCC::on_ack(uint32_t acked, uint32_t, uint64_t rtt_us, uint64_t now_us) {
    const double segs = acked / mss_;
    if (cwnd_ < ssthresh_) {
        // RFC 9438 4.10: standard slow start (RFC 3465 L = 2).
        cwnd_ += std::min(segs, 2.0);
        return;
    }
    if (!epoch_valid_) {
        // RFC 9438 4.2: a new congestion-avoidance epoch.
        epoch_valid_ = true;
        epoch_start_us_ = now_us;
        cwnd_epoch_ = cwnd_;
        if (cwnd_epoch_ < w_max_) {
            k_ = std::cbrt((w_max_ - cwnd_epoch_) / kC); // eq. 2
        } else {
            k_ = 0;
            w_max_ = cwnd_epoch_;
        }
        w_est_ = cwnd_epoch_;
    }
    const double t = static_cast<double>(now_us - epoch_start_us_) / 1e6;
    const double rtt = static_cast<double>(rtt_us) / 1e6;
    // RFC 9438 4.3: Reno-friendly estimate, alpha = 3(1-beta)/(1+beta) until
    // W_est reaches cwnd_prior, then 1.
    const double alpha = (w_est_ >= cwnd_prior_) ? 1.0 : 3.0 * (1.0 - kBeta) / (1.0 + kBeta);
    w_est_ += alpha * segs / cwnd_;
    const double w_t = w_cubic(t, w_max_, k_);
    if (w_t < w_est_) {
        cwnd_ = w_est_; // Reno-friendly region
        return;
    }
    // RFC 9438 4.4/4.5: concave and convex regions; target = W_cubic(t + RTT)
    // clamped to [cwnd, 1.5 cwnd] (4.2).
    double target = w_cubic(t + rtt, w_max_, k_);
    target = std::clamp(target, cwnd_, 1.5 * cwnd_);
    cwnd_ += (target - cwnd_) / cwnd_ * segs;
}

void CubicCC::reduce(double cwnd_now) {
    // RFC 9438 4.7 fast convergence: a flow that lost before reaching its old
    // W_max releases bandwidth to newer flows.
    if (cwnd_now < w_max_) w_max_ = cwnd_now * (1.0 + kBeta) / 2.0;
    else w_max_ = cwnd_now;
    cwnd_prior_ = cwnd_now;
    // RFC 9438 4.6: ssthresh = cwnd * beta_cubic, at least 2 segments.
    ssthresh_ = std::max(cwnd_now * kBeta, 2.0);
    epoch_valid_ = false;
}

void CubicCC::on_congestion_event(uint32_t, uint64_t) {
    reduce(cwnd_);
    cwnd_ = ssthresh_;
}

void CubicCC::on_rto(uint32_t, uint64_t) {
    // RFC 9438 4.8: same reduction, then cwnd = 1 segment (loss window).
    reduce(cwnd_);
    cwnd_ = 1;
}

void CubicCC::on_recovery_exit(uint64_t) { cwnd_ = ssthresh_; }

uint32_t CubicCC::cwnd() const { return static_cast<uint32_t>(std::min(cwnd_ * mss_, 4e9)); }
uint32_t CubicCC::ssthresh() const { return static_cast<uint32_t>(std::min(ssthresh_ * mss_, 4e9)); }

std::unique_ptr<CongestionControl> make_congestion_control(CongestionAlgo algo) {
    switch (algo) {
    case CongestionAlgo::Cubic: return std::make_unique<CubicCC>();
    case CongestionAlgo::Bbr: return std::make_unique<BbrCC>();
    case CongestionAlgo::NewReno: break;
    }
    return std::make_unique<NewRenoCC>();
}

} // namespace millipede::tcp

// port::init_eal's short TSC calibration (lib/port/include/millipede/port/eal_start.h).
// This binary's EAL was started by it (eal_main.cpp), so the rate checked
// here is the one the shortened window measured.
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>

#include <rte_cycles.h>

#include "millipede/port/eal_start.h"

using namespace millipede::port;

namespace {

double monotonic_raw_s() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC_RAW, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

} // namespace

TEST(TscCalibrationWindow, DefaultsToTenMillisecondsAndAcceptsOneToOneHundred) {
    std::string err;
    EXPECT_EQ(tsc_calibration_ms(nullptr, err), std::optional<unsigned>(kDefaultTscCalibrationMs));
    EXPECT_EQ(tsc_calibration_ms("1", err), std::optional<unsigned>(1));
    EXPECT_EQ(tsc_calibration_ms("100", err), std::optional<unsigned>(100));
    EXPECT_TRUE(err.empty());
}

TEST(TscCalibrationWindow, RejectsWhatIsNotAWholeNumberInRangeWithAMessage) {
    for (const char *bad : {"", "0", "101", "-5", "10ms", "abc", "99999999999999999999"}) {
        std::string err;
        EXPECT_FALSE(tsc_calibration_ms(bad, err).has_value()) << bad;
        EXPECT_NE(err.find("MILLIPEDE_TSC_CALIBRATION_MS"), std::string::npos) << bad;
    }
}

TEST(TscCalibrationWindow, ShortensOnlyDpdksCalibrationSleepInsideInit) {
    EXPECT_EQ(calibration_sleep_ns(kDpdkCalibrationSleepNs, 10), 10'000'000L);
    EXPECT_EQ(calibration_sleep_ns(kDpdkCalibrationSleepNs, 100), kDpdkCalibrationSleepNs);
    EXPECT_EQ(calibration_sleep_ns(kDpdkCalibrationSleepNs, 0), kDpdkCalibrationSleepNs); // not inside init_eal
    EXPECT_EQ(calibration_sleep_ns(50'000'000L, 10), 50'000'000L);
}

// The rate EAL settled on agrees with one measured here over a 200 ms
// window (twenty times the calibration's) to within EAL's rounding step.
TEST(EalStart, TscRateAgreesWithALongerIndependentMeasurement) {
    const double t0 = monotonic_raw_s();
    const uint64_t c0 = rte_rdtsc();
    timespec window{0, 200'000'000L};
    ASSERT_EQ(nanosleep(&window, nullptr), 0);
    const double t1 = monotonic_raw_s();
    const uint64_t c1 = rte_rdtsc();
    const double measured_hz = static_cast<double>(c1 - c0) / (t1 - t0);
    const double eal_hz = static_cast<double>(rte_get_tsc_hz());
    // EAL rounds to 10 MHz; allow that step plus 0.1 % for this measurement.
    EXPECT_LT(std::fabs(eal_hz - measured_hz), 5e6 + measured_hz * 1e-3)
        << "EAL " << eal_hz << " Hz, measured " << measured_hz << " Hz";
}

// Outside init_eal the process's nanosleep() sleeps what it is asked,
// including a request of exactly DPDK's 100 ms.
TEST(EalStart, OtherSleepsKeepTheirLength) {
    const double t0 = monotonic_raw_s();
    timespec req{0, kDpdkCalibrationSleepNs};
    ASSERT_EQ(nanosleep(&req, nullptr), 0);
    EXPECT_GE(monotonic_raw_s() - t0, 0.0999);
}

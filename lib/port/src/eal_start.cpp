#include "millipede/port/eal_start.h"

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include <rte_eal.h>
#include <rte_errno.h>

namespace millipede::port {
namespace {

// Set only on the thread inside init_eal(): EAL's own threads and every
// other caller of nanosleep() keep their full sleeps.
thread_local unsigned eal_init_window_ms = 0;

} // namespace

std::optional<unsigned> tsc_calibration_ms(const char *value, std::string &err) {
    if (value == nullptr) return kDefaultTscCalibrationMs;
    char *end = nullptr;
    errno = 0;
    unsigned long ms = std::strtoul(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno != 0 || ms < 1 || ms > 100 || *value == '-') {
        err = std::string("MILLIPEDE_TSC_CALIBRATION_MS must be a whole number of milliseconds from 1 to 100, not '") +
              value + "'";
        return std::nullopt;
    }
    return static_cast<unsigned>(ms);
}

long calibration_sleep_ns(long requested_ns, unsigned window_ms) {
    if (window_ms == 0 || requested_ns != kDpdkCalibrationSleepNs) return requested_ns;
    return static_cast<long>(window_ms) * 1'000'000L;
}

int init_eal(int argc, char **argv, std::string &err) {
    std::optional<unsigned> window = tsc_calibration_ms(std::getenv("MILLIPEDE_TSC_CALIBRATION_MS"), err);
    if (!window) return -1;
    eal_init_window_ms = *window;
    rte_errno = 0;
    int rc = rte_eal_init(argc, argv);
    eal_init_window_ms = 0;
    // Some of EAL's failures (a runtime directory another process holds)
    // leave rte_errno at 0, and "failed: Success" helps nobody.
    if (rc < 0 && rte_errno == 0) err = "EAL said why above (for a runtime directory in use: another --file-prefix)";
    return rc;
}

} // namespace millipede::port

// Replaces libc's nanosleep() for the process (see eal_start.h). Same
// semantics as glibc's: clock_nanosleep on CLOCK_REALTIME, -1 and errno on
// failure, the remaining time in `rem` when interrupted.
extern "C" int nanosleep(const struct timespec *req, struct timespec *rem) {
    using namespace millipede::port;
    struct timespec shortened;
    if (req != nullptr && req->tv_sec == 0) {
        long ns = calibration_sleep_ns(req->tv_nsec, eal_init_window_ms);
        if (ns != req->tv_nsec) {
            shortened = {0, ns};
            req = &shortened;
        }
    }
    int rc = clock_nanosleep(CLOCK_REALTIME, 0, req, rem);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

// EAL start-up without DPDK's 100 ms TSC calibration sleep.
//
// Why: DPDK 22.11's x86 EAL takes the TSC rate from CPUID leaf 0x15 or from
// MSR 0xCE through /dev/cpu/0/msr. Where the CPU reports neither (most VMs),
// lib/eal/linux/eal_timer.c get_tsc_freq() measures it: rdtsc and
// CLOCK_MONOTONIC_RAW around one 100 ms nanosleep(), rate = cycles over the
// nanoseconds it measured (not the nominal 100 ms), rounded to 10 MHz. Every
// process then spends 100 ms of its start-up asleep, which is a quarter of a
// 1 GiB pipe's wall time on a 2-vCPU VM (docs/benchmarks.md).
//
// The rate comes from the measured interval, so a shorter sleep gives the
// same rounded rate: the only error is the gap between each pair of clock
// reads (tens of nanoseconds), 1e-5 of a 10 ms window, against a rounding
// step of 0.4 % at 2.6 GHz. init_eal() runs rte_eal_init() with that one
// sleep shortened to the calibration window (default 10 ms). The
// environment variable MILLIPEDE_TSC_CALIBRATION_MS (1 to 100; 100 keeps
// DPDK's own) sets it.
//
// How: this library defines nanosleep(), which takes precedence over libc's
// for the whole process. It shortens only a request of exactly 100 ms made
// on the thread inside init_eal(), and otherwise behaves as libc's.
//
// Contract: main thread, once, before any other EAL call; not thread-safe.
#pragma once

#include <optional>
#include <string>

namespace millipede::port {

inline constexpr long kDpdkCalibrationSleepNs = 100'000'000; // get_tsc_freq()'s sleep
inline constexpr unsigned kDefaultTscCalibrationMs = 10;

// Parses MILLIPEDE_TSC_CALIBRATION_MS's value (nullptr: unset, the default).
// An empty, non-numeric or out-of-range value gives nullopt and a message.
std::optional<unsigned> tsc_calibration_ms(const char *value, std::string &err);

// How long the nanosleep() in effect sleeps for `requested_ns` on a thread
// inside init_eal() with `window_ms` (0: a thread not inside it).
long calibration_sleep_ns(long requested_ns, unsigned window_ms);

// rte_eal_init(argc, argv) with the short calibration. Returns its result:
// < 0 on failure, with rte_errno, or with `err` set where EAL left rte_errno
// at 0; -1 with `err` set when the environment variable is malformed (EAL is
// then not initialised).
int init_eal(int argc, char **argv, std::string &err);

} // namespace millipede::port

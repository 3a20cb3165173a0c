// Internal: setting keys and the checks shared by profiles and host files.
#pragma once

#include <string>

#include "millipede/config/config.h"

namespace millipede::config {

// General ranges, before any profile or device is known.
inline constexpr uint64_t kMaxQueues = 1024;        // RTE_MAX_QUEUES_PER_PORT (DPDK 22.11 config/rte_config.h)
inline constexpr uint64_t kMinMbufs = 512;
inline constexpr uint64_t kMaxMbufs = 1ull << 30;
inline constexpr uint64_t kMaxMempoolCache = 512;   // RTE_MEMPOOL_CACHE_MAX_SIZE
inline constexpr uint64_t kMinMtu = 68;             // RTE_ETHER_MIN_MTU (RFC 791's minimum datagram)

enum class SetResult { ok, unknown, bad };

// Stores `o.text` under `o.key` in `s`; `bad` with one line in `err`, or
// `unknown` when the key is no port setting.
SetResult set_port_setting(PortSettings &s, const Origin &o, std::string &err);
const char *port_setting_keys();

std::string desc_allowed(const DescLimits &d);
bool desc_fits(const DescLimits &d, uint32_t n);


} // namespace millipede::config

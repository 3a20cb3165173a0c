// The plain one-connection form of terminate / initiate (stock
// viamillipede's, used with --compat viamillipede): one kernel TCP
// connection instead of stdin or stdout, no multiplexing.
//
// Contract: set-up code on the control thread, before EAL starts. Each
// returns a connected, blocking socket, or -1 with one line in err. Every
// wait is bounded by timeout_us (0: accept waits without a bound, as rx
// waits for its sender by default).
#pragma once

#include <cstdint>
#include <string>

namespace millipede::tunnel {

int accept_one(uint16_t port, uint64_t timeout_us, std::string &err);
int connect_one(const std::string &host, uint16_t port, uint64_t timeout_us, std::string &err);

} // namespace millipede::tunnel

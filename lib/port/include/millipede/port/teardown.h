// The exit status survives a fault in EAL's teardown.
//
// Why: DPDK 22.11's rte_eal_cleanup() unmaps EAL memory while EAL's
// interrupt thread still runs. If that thread wakes at that moment (a memif
// peer hung up, a deferred unregistration), it reads an interrupt source's
// handle in unmapped memory and the process dies of SIGSEGV, after the
// transfer was verified and its result printed: seen once in about 190 tx
// runs, with no core file. An EAL alarm used as a barrier before the
// cleanup (tried 2026-12-05, not kept) made it frequent in rx, 1 run in
// 3 to 6, and its core dump put the interrupt thread in rte_intr_fd_get()
// while the main thread was in rte_fbarray_detach() under
// rte_eal_cleanup(). A script then sees a crash where the data arrived
// whole. The cause (a memif server's listener source that DPDK 22.11 never
// unregisters) is kept away by interrupt_park.h; this guard stays for
// whatever else EAL's teardown may touch.
//
// What: from guard_eal_teardown() on, SIGSEGV and SIGBUS in any thread
// write one line to stderr and end the process with the status the run
// had already decided (_exit), instead of a signal.
//
// Contract: main thread, once, after the run's status is final and every
// lcore has stopped, right before rte_eal_cleanup(). Not for the data
// path: a fault there is a bug and must crash.
#pragma once

namespace millipede::port {

void guard_eal_teardown(int status, const char *who);

} // namespace millipede::port

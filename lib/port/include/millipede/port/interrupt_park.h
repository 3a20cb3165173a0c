// Park EAL's interrupt thread before rte_eal_cleanup().
//
// Why: DPDK 22.11's memif server never unregisters its listener socket's
// interrupt callback. drivers/net/memif/memif_socket.c
// memif_socket_remove_device() frees the socket and its handle when the
// last port on it closes, but the callback stays in EAL's list of
// interrupt sources, and EAL keeps its own copy of the handle there,
// allocated in DPDK memory because memif's handle is a SHARED instance
// (rte_intr_callback_register -> rte_intr_instance_dup). Whenever the
// interrupt thread wakes, it walks every source and reads each copy
// (rte_intr_fd_get). rte_eal_cleanup() itself wakes it (the bus cleanup
// and the alarm cleanup unregister callbacks, which notify the thread) and
// then unmaps DPDK memory in rte_eal_memory_detach(): the thread can read
// that copy while it is being unmapped and the process dies of SIGSEGV
// after the run ended (the core dump of 2026-12-05: the thread in
// rte_intr_fd_get(), the main thread in rte_fbarray_detach()).
//
// What: park_interrupt_thread() registers a callback on an eventfd of its
// own (a PRIVATE handle: its copy lives in the C heap), signals it, and
// waits until EAL's interrupt thread runs that callback, which never
// returns. From then on the thread touches no EAL memory; the callback
// runs with EAL's interrupt lock released, so rte_eal_cleanup()'s own
// unregistrations do not wait for it. The thread ends with the process.
//
// Contract: main thread, once, right before rte_eal_cleanup(), after every
// lcore stopped and the ports were stopped: nothing may need EAL's
// interrupts any more (link events, memif control messages, alarms).
// Returns false if the thread did not reach the callback within
// `bound_ms` or the callback could not be registered; the cleanup then
// runs as before (guard_eal_teardown keeps the exit status).
#pragma once

namespace millipede::port {

bool park_interrupt_thread(unsigned bound_ms);

} // namespace millipede::port

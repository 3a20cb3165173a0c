#include "millipede/port/teardown.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace millipede::port {
namespace {

volatile sig_atomic_t teardown_status = 1;
char teardown_line[256];
size_t teardown_line_len = 0;

// Async-signal-safe: write(2) and _exit(2) only.
void on_teardown_fault(int) {
    if (teardown_line_len) {
        ssize_t w = write(STDERR_FILENO, teardown_line, teardown_line_len);
        (void)w;
    }
    _exit(teardown_status);
}

} // namespace

void guard_eal_teardown(int status, const char *who) {
    teardown_status = status;
    const int n = std::snprintf(teardown_line, sizeof teardown_line,
                                "dpdk-millipede %s: warning: a fault in EAL's teardown (rte_eal_cleanup) after the run "
                                "ended; exit status %d is the run's\n",
                                who ? who : "", status);
    teardown_line_len = n > 0 ? std::min(static_cast<size_t>(n), sizeof teardown_line - 1) : 0;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_teardown_fault;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
}

} // namespace millipede::port

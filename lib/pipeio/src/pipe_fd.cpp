#include "millipede/pipeio/pipe_fd.h"

#include <cstdio>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>

namespace millipede::pipeio {

bool fd_is_pipe(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

long pipe_max_size() {
    FILE *f = std::fopen("/proc/sys/fs/pipe-max-size", "re");
    if (!f) return -1;
    long v = -1;
    if (std::fscanf(f, "%ld", &v) != 1) v = -1;
    std::fclose(f);
    return v;
}

long enlarge_pipe(int fd, long want) {
    if (!fd_is_pipe(fd)) return -1;
    if (want == 0) want = pipe_max_size();
    const long cur = fcntl(fd, F_GETPIPE_SZ);
    if (want > 0 && want > cur) {
        // May fail (EPERM over the per-user pipe quota, EBUSY): keep the size.
        (void)fcntl(fd, F_SETPIPE_SZ, static_cast<int>(want));
    }
    return fcntl(fd, F_GETPIPE_SZ);
}

} // namespace millipede::pipeio

namespace millipede::pipeio::detail {

bool set_thread_cpus(const std::vector<int> &cpus) {
    if (cpus.empty()) return true;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus)
        if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

} // namespace millipede::pipeio::detail

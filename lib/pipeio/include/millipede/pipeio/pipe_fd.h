// Small helpers around the pipe file descriptors (stdin/stdout).
//
// Contract: any thread; each is one or two system calls; set-up time only.
#pragma once

#include <vector>

namespace millipede::pipeio {

// True when fd is a pipe or FIFO.
bool fd_is_pipe(int fd);

// /proc/sys/fs/pipe-max-size, or -1 when it cannot be read.
long pipe_max_size();

// When fd is a pipe: asks for a buffer of `want` bytes (0: pipe_max_size())
// with F_SETPIPE_SZ and returns the capacity it has afterwards (failure to
// grow is ignored: the pipe keeps its size). -1 when fd is not a pipe.
// A larger pipe lets the upstream (zfs send) run ahead while the data plane
// is busy, and lets one read(2)/write(2) move up to a whole chunk.
long enlarge_pipe(int fd, long want = 0);

} // namespace millipede::pipeio

namespace millipede::pipeio::detail {
// Moves the calling thread onto `cpus` (empty: leaves it); false on failure
// (the thread keeps running where it was).
bool set_thread_cpus(const std::vector<int> &cpus);
} // namespace millipede::pipeio::detail

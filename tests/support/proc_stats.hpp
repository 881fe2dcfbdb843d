#pragma once
// Test support: what /proc says of a process (CPU time, resident memory, open descriptors), and
// this process's own descriptor limit. A read that fails throws std::runtime_error naming it.

#include <chrono>
#include <cstddef>

#include <sys/resource.h>
#include <sys/types.h>

namespace coronet::testing {

// CPU time (user + system) a process has used so far.
std::chrono::duration<double> cpu_time(pid_t pid);

// Resident memory of a process in KiB (VmRSS in /proc/PID/status).
std::size_t rss_kib(pid_t pid);

// Descriptors a process has open.
std::size_t open_fd_count(pid_t pid);

// Lets this process open up to n descriptors (as far as its hard limit allows): tests that
// hold a thousand connections need more than the usual 1,024. Returns the new soft limit.
rlim_t raise_open_files(rlim_t n);

}  // namespace coronet::testing

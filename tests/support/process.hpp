#pragma once
// Test support for the tests that run example binaries: child processes
// (child_process.hpp), loopback TCP clients (tcp_client.hpp) and /proc readers
// (proc_stats.hpp), in one include.

#include "tests/support/child_process.hpp"
#include "tests/support/proc_stats.hpp"
#include "tests/support/tcp_client.hpp"

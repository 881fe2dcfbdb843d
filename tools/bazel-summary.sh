#!/usr/bin/env bash
# tools/bazel-summary.sh [-q] LOGFILE... — count the test results in the output of
# one or more `bazel test` runs (stdin if no file or "-").
#
# Bazel ends each `bazel test` with one line per test target, e.g.
#   //tests/lib:reactor_test                        PASSED in 0.4s
#   //tests/lib:reactor_test               (cached) PASSED in 0.4s
#   //tests/coro:task_test                          FAILED in 1.2s
#   //tests/coro:chat_test                          TIMEOUT in 60.0s
#   //tests/coro:chat_test       (1/2 cached) FLAKY, failed in 1 out of 2 in 0.1s
#   //tests/lib:select_test                         NO STATUS
#   //tests/lib:epoll_test                          FAILED TO BUILD
# Every such line is counted, so a target tested under several configurations
# (plain and --config=asan, say) counts once per run. PASSED counts as passed;
# FAILED, TIMEOUT, FLAKY, NO STATUS, INCOMPLETE, REMOTE FAILURE, FAILED TO BUILD
# and TOOL HALTED BEFORE TESTING count as failed (FLAKY too: the test failed at
# least once); SKIPPED is reported as skipped.
#
# Prints the summary lines that did not pass, then, as the last line,
#   N passed, M failed            (", K skipped" added when K > 0)
# -q prints the last line only. Exits 0 whatever the counts are; the caller
# decides (bazel's own exit code says whether the run failed).
set -euo pipefail

quiet=0
if [ "${1:-}" = "-q" ]; then
    quiet=1
    shift
fi
if [ "$#" -eq 0 ]; then
    set -- -
fi

# Colour codes and carriage returns (curses progress) are removed first.
sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' -e 's/\r$//' -e 's/.*\r//' -- "$@" | awk -v quiet="$quiet" '
    # A label, blanks, an optional "(cached)" / "(1/2 cached)", then the status.
    /^(@[^ \t\/]*)?\/\/[^ \t]*:[^ \t]+[ \t]+/ {
        rest = $0
        sub(/^[^ \t]+[ \t]+/, "", rest)
        sub(/^\([^)]*cached\)[ \t]+/, "", rest)
        if (rest ~ /^PASSED( |$)/) {
            passed++
        } else if (rest ~ /^(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|REMOTE FAILURE|TOOL HALTED)/) {
            failed++
            if (!quiet) print "  " $0
        } else if (rest ~ /^SKIPPED/) {
            skipped++
        }
    }
    END {
        line = sprintf("%d passed, %d failed", passed, failed)
        if (skipped > 0) line = line sprintf(", %d skipped", skipped)
        print line
    }
'

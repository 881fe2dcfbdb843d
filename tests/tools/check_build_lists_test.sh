#!/usr/bin/env bash
# tests/tools/check_build_lists_test.sh: tools/check-build-lists.py names the file missing from one
# build and where to add it (issue 18). It runs the check on a small tree written here (BUILD files
# and cmake/sources.cmake in the shapes of coronet's own), first in step, then with a file added
# to one build only, of each kind.
set -euo pipefail

here=$(dirname "$0")
check=${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/}tools/check-build-lists.py
[ -f "$check" ] || check=$here/../../tools/check-build-lists.py
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/check-build-lists-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# A tree in step: lib (a library), coro, the umbrella, one example, one test of each folder.
tree() {
    rm -rf "$work/t"
    mkdir -p "$work/t"/{lib,coro,examples,tests/lib,tests/coro,cmake}
    cd "$work/t"
    touch lib/reactor.cpp lib/reactor.hpp lib/backend.hpp coro/task.hpp coro/channel.cpp \
        coro/channel.hpp coronet.hpp examples/echo_server.cpp examples/cli.hpp \
        tests/lib/reactor_test.cpp tests/coro/channel_test.cpp
    cat >lib/BUILD.bazel <<'B'
load("//bazel:copts.bzl", "CORONET_COPTS")
package(default_visibility = ["//visibility:public"])
cc_library(name = "backend", hdrs = ["backend.hpp"], copts = CORONET_COPTS)
cc_library(
    name = "reactor",
    srcs = ["reactor.cpp"],
    hdrs = ["reactor.hpp"],
    copts = CORONET_COPTS + ["-DX"],
    deps = [":backend", "//third_party:liburing"],
)
B
    cat >coro/BUILD.bazel <<'B'
cc_library(name = "task", hdrs = ["task.hpp"])
cc_library(name = "channel", srcs = ["channel.cpp"], hdrs = ["channel.hpp"], deps = [":task"])
B
    echo 'cc_library(name = "coronet", hdrs = ["coronet.hpp"], deps = ["//coro:channel"])' >BUILD.bazel
    cat >examples/BUILD.bazel <<'B'
cc_library(name = "cli", hdrs = ["cli.hpp"])
cc_binary(name = "echo_server", srcs = ["echo_server.cpp"], deps = [":cli", "//:coronet"])
B
    echo 'cc_test(name = "reactor_test", srcs = ["reactor_test.cpp"], deps = ["//lib:reactor"])' >tests/lib/BUILD.bazel
    echo 'cc_test(name = "channel_test", srcs = ["channel_test.cpp"])' >tests/coro/BUILD.bazel
    cat >cmake/sources.cmake <<'C'
# lib/
set(CORONET_LIB_SOURCES
    lib/reactor.cpp
)
set(CORONET_LIB_HEADERS
    lib/backend.hpp
    lib/reactor.hpp
)
set(CORONET_CORO_SOURCES
    coro/channel.cpp
)
set(CORONET_CORO_HEADERS
    coro/channel.hpp
    coro/task.hpp  # a comment
)
set(CORONET_TOP_HEADERS
    coronet.hpp
)
set(CORONET_EXAMPLE_HEADERS
    examples/cli.hpp
)
set(CORONET_EXAMPLES
    "echo_server examples/echo_server.cpp"
)
set(CORONET_TESTS
    tests/lib/reactor_test.cpp
    tests/coro/channel_test.cpp
)
C
    cd - >/dev/null
}

# expect WHAT LINE: the check fails, and prints LINE (exactly) among its lines.
expect() {
    local what=$1 line=$2 out rc=0
    out=$(python3 "$check" --root "$work/t" 2>&1) || rc=$?
    [ "$rc" -eq 1 ] || fail "$what: exit $rc, expected 1: $out"
    grep -qxF -- "$line" <<<"$out" || fail "$what: no line
  $line
in:
$out"
}

tree
out=$(python3 "$check" --root "$work/t" 2>&1) || fail "in step: the check failed: $out"
grep -qx 'check-build-lists: 11 files in the Bazel rules, 11 in cmake/sources.cmake, 0 problem(s)' <<<"$out" || fail "in step: $out"

# A new library source in lib/BUILD.bazel only (an engineer adding TLS).
tree
touch "$work/t/lib/tls.cpp" "$work/t/lib/tls.hpp"
printf 'cc_library(name = "tls", srcs = ["tls.cpp"], hdrs = ["tls.hpp"], deps = [":reactor"])\n' >>"$work/t/lib/BUILD.bazel"
expect "lib source in Bazel only" 'check-build-lists: lib/tls.cpp is in lib/BUILD.bazel (cc_library tls) but not in the CMake build: add the line `    lib/tls.cpp` to CORONET_LIB_SOURCES in cmake/sources.cmake'
expect "lib header in Bazel only" 'check-build-lists: lib/tls.hpp is in lib/BUILD.bazel (cc_library tls) but not in the CMake build: add the line `    lib/tls.hpp` to CORONET_LIB_HEADERS in cmake/sources.cmake'

# A coro source in CMake only.
tree
touch "$work/t/coro/resolver.cpp"
sed -i 's|^    coro/channel.cpp$|&\n    coro/resolver.cpp|' "$work/t/cmake/sources.cmake"
expect "coro source in CMake only" 'check-build-lists: coro/resolver.cpp is in cmake/sources.cmake (CORONET_CORO_SOURCES) but in no rule of coro/BUILD.bazel: add it to the cc_library (or cc_binary, cc_test) it belongs to there, or remove it from CORONET_CORO_SOURCES'

# A file on disk in neither, a listed file that is gone, a test and an example source in Bazel only.
tree
touch "$work/t/lib/udp.cpp" "$work/t/tests/lib/tls_test.cpp" "$work/t/examples/status.cpp"
rm "$work/t/lib/backend.hpp"
echo 'cc_test(name = "tls_test", srcs = ["tls_test.cpp"])' >>"$work/t/tests/lib/BUILD.bazel"
sed -i 's|srcs = \["echo_server.cpp"\]|srcs = ["echo_server.cpp", "status.cpp"]|' "$work/t/examples/BUILD.bazel"
expect "in neither" 'check-build-lists: lib/udp.cpp is in neither build: add it to lib/BUILD.bazel and add the line `    lib/udp.cpp` to CORONET_LIB_SOURCES in cmake/sources.cmake'
expect "gone" 'check-build-lists: lib/backend.hpp is listed but does not exist'
expect "test in Bazel only" 'check-build-lists: tests/lib/tls_test.cpp is in tests/lib/BUILD.bazel (cc_test tls_test) but not in the CMake build: add the line `    tests/lib/tls_test.cpp` to CORONET_TESTS in cmake/sources.cmake'
expect "example source in Bazel only" 'check-build-lists: examples/status.cpp is in examples/BUILD.bazel (cc_binary echo_server) but not in the CMake build: add `examples/status.cpp` to the "echo_server ..." line of CORONET_EXAMPLES in cmake/sources.cmake'

if [ "$failures" -ne 0 ]; then
    echo "check_build_lists_test: $failures failure(s)" >&2
    exit 1
fi
echo "check_build_lists_test: OK"

#!/usr/bin/env bash
# tests/consumer-cmake/run.sh BUILD_DIR — coronet as an installed library, for projects without Bazel.
#
# BUILD_DIR is a built CMake tree of coronet (`cmake -S . -B BUILD_DIR && cmake --build BUILD_DIR`;
# `make cmake-check` does that first). This installs it into a scratch prefix P
# (`cmake --install BUILD_DIR --prefix P`), checks the installed layout (<coronet/coronet.hpp>,
# <coronet/lib/...>, <coronet/coro/...>, both libraries, the CMake package, coronet.pc), then
# builds consumer_echo.cpp twice, outside coronet's tree:
#   1. with CMake: this folder's CMakeLists.txt, find_package(coronet), coronet::coronet;
#   2. with a plain compiler command: c++ consumer_echo.cpp $(pkg-config --cflags --libs coronet).
# Each binary is started on a free loopback port, must echo a line, and exit 0 on SIGTERM.
# Only the PIDs started here are signalled; every wait is bounded. Exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: tests/consumer-cmake/run.sh BUILD_DIR}
build=$(cd "$build" && pwd)
jobs=${CMAKE_JOBS:-2}

pid=
work=$(mktemp -d -t coronet-consumer-cmake.XXXXXX)
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "consumer-cmake: FAILED: $*" >&2
    if [ -s "$work/err" ]; then sed 's/^/consumer-cmake: stderr: /' "$work/err" >&2; fi
    exit 1
}

prefix=$work/prefix
echo "consumer-cmake: cmake --install $build --prefix <scratch>"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log" >&2; fail "cmake --install"; }
for f in include/coronet/coronet.hpp include/coronet/lib/reactor.hpp include/coronet/coro/channel.hpp \
    lib/libcoronet.a lib/libcoronet.so lib/cmake/coronet/coronetConfig.cmake lib/pkgconfig/coronet.pc; do
    [ -e "$prefix/$f" ] || fail "not installed: P/$f"
done

# echo_check NAME BINARY [ENV...]: start it, echo one line through it, SIGTERM, exit 0.
echo_check() {
    local name=$1 bin=$2
    shift 2
    : >"$work/out"
    : >"$work/err"
    env "$@" "$bin" 0 >"$work/out" 2>"$work/err" &
    pid=$!
    local port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^consumer_echo: listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$work/out")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "$name: exited before listening"
        sleep 0.1
    done
    [ -n "$port" ] || fail "$name: no start line within 10 s"
    local line="hello from the $name consumer" got
    got=$(python3 - "$port" "$line" <<'PY'
import socket, sys
port, line = int(sys.argv[1]), (sys.argv[2] + "\n").encode()
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(line)
    back = b""
    while len(back) < len(line):
        chunk = s.recv(4096)
        if not chunk:
            break
        back += chunk
sys.stdout.write(back.decode(errors="replace"))
PY
    ) || fail "$name: could not talk to consumer_echo on port $port"
    [ "$got" = "$line" ] || fail "$name: sent '$line', got back '$got'"
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && fail "$name: still running 10 s after SIGTERM"
    local status=0
    wait "$pid" || status=$?
    pid=
    [ "$status" -eq 0 ] || fail "$name: exit status $status after SIGTERM"
    echo "consumer-cmake: $name: $(head -1 "$work/out"), echoed, exited 0"
}

# 1. find_package(coronet) from a separate CMake project.
echo "consumer-cmake: cmake project tests/consumer-cmake with find_package(coronet)"
cmake -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log" >&2; fail "configuring tests/consumer-cmake"; }
cmake --build "$work/cmake" -j "$jobs" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "building tests/consumer-cmake"; }
echo_check find_package "$work/cmake/consumer_echo"

# 2. pkg-config and a plain compiler command (the shared library is found with LD_LIBRARY_PATH,
#    as a user would with a prefix outside the loader's path).
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
flags=$(pkg-config --cflags --libs coronet) || fail "pkg-config --cflags --libs coronet"
echo "consumer-cmake: ${CXX:-c++} consumer_echo.cpp $flags"
# shellcheck disable=SC2086 # the flags are words
"${CXX:-c++}" -o "$work/consumer_echo_pc" "$here/consumer_echo.cpp" $flags 2>"$work/cc.log" ||
    { cat "$work/cc.log" >&2; fail "compiling with pkg-config's flags"; }
echo_check pkg-config "$work/consumer_echo_pc" LD_LIBRARY_PATH="$prefix/lib"

echo "consumer-cmake: OK (find_package and pkg-config consumers built against the installed tree, echoed)"

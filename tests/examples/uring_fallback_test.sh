#!/usr/bin/env bash
# tests/examples/uring_fallback_test.sh: the example servers when io_uring cannot be set up.
#
# CORONET_SIMULATE_URING_FAILURE=1 makes the reactor's automatic selection fail io_uring's setup
# (lib/reactor.hpp), as a kernel without io_uring, or one where it is disabled, would. Each server
# is started with no --backend (automatic), with 1 and 2 threads: it must log the fallback warning
# once per reactor, say "backend epoll" in its start line, pass a short integration check
# (echo_server: bytes over a socket; kv_server: redis-cli; http_server: curl) and exit 0 on SIGTERM.
# Only the servers started here are signalled, by PID; every wait is bounded.
set -euo pipefail

export CORONET_SIMULATE_URING_FAILURE=1
unset CORONET_BACKEND

bin="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-}/examples"
[ -x "$bin/echo_server" ] || bin=bazel-bin/examples
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/uring_fallback.XXXXXX")"
pid=
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

for tool in redis-cli curl; do
    command -v "$tool" >/dev/null || { echo "$tool not found: install it (tools/install-deps.sh test)" >&2; exit 1; }
done

# start NAME ARGS...: starts the server on port 0, sets $pid and $port (from its start line).
start() {
    local name=$1
    shift
    : >"$work/out"
    : >"$work/err"
    "$bin/$name" --port 0 "$@" >"$work/out" 2>"$work/err" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.* on \(http:\/\/\)\{0,1\}127\.0\.0\.1:\([0-9]*\).*/\2/p' "$work/out" | head -1)
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    fail "$name $*: no start line in 10 s; stderr: $(cat "$work/err")"
    return 1
}

# stop NAME THREADS: SIGTERM, exit 0 within 10 s, and the log says what the fallback did.
stop() {
    local name=$1 threads=$2 status=0
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" || status=$?
    pid=
    [ "$status" = 0 ] || fail "$name: exit status $status after SIGTERM; stderr: $(cat "$work/err")"
    grep -q '(backend epoll' "$work/out" || fail "$name: start line does not say epoll: $(cat "$work/out")"
    local warnings
    warnings=$(grep -c 'log: warning: io_uring unavailable (io_uring_setup (simulated failure): .*); falling back to epoll' "$work/err" || true)
    [ "$warnings" = "$threads" ] || fail "$name --threads $threads: $warnings fallback warnings, expected $threads; stderr: $(cat "$work/err")"
    echo "$name --threads $threads: $(head -1 "$work/out"); $(head -1 "$work/err")"
}

mkdir -p "$work/root"
printf 'fallback page\n' >"$work/root/page.txt"

for threads in 1 2; do
    # echo_server: a round trip over a socket (bash's /dev/tcp).
    if start echo_server --threads "$threads"; then
        exec 3<>"/dev/tcp/127.0.0.1/$port"
        printf 'hello fallback' >&3
        reply=
        read -r -N 14 -t 10 reply <&3 || true
        exec 3<&-
        [ "$reply" = "hello fallback" ] || fail "echo_server: got '$reply'"
        stop echo_server "$threads"
    fi

    # kv_server: redis-cli commands.
    if start kv_server --threads "$threads"; then
        got=$(timeout 20 redis-cli -p "$port" SET k fallback) || true
        [ "$got" = OK ] || fail "kv_server: SET answered '$got'"
        got=$(timeout 20 redis-cli -p "$port" GET k) || true
        [ "$got" = fallback ] || fail "kv_server: GET answered '$got'"
        got=$(timeout 20 redis-cli -p "$port" INCR n) || true
        [ "$got" = 1 ] || fail "kv_server: INCR answered '$got'"
        stop kv_server "$threads"
    fi

    # http_server: curl fetches a file and /hello.
    if start http_server --root "$work/root" --threads "$threads"; then
        got=$(curl -sS --max-time 20 "http://127.0.0.1:$port/page.txt") || true
        [ "$got" = "fallback page" ] || fail "http_server: /page.txt gave '$got'"
        got=$(curl -sS --max-time 20 "http://127.0.0.1:$port/hello") || true
        [ "$got" = "Hello, world!" ] || fail "http_server: /hello gave '$got'"
        stop http_server "$threads"
    fi
done

if [ "$failures" != 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all servers fell back to epoll and passed"

#!/usr/bin/env bash
# tests/consumer/run.sh — the consumer check: does coronet work as someone else's dependency?
#
# tests/consumer is a separate Bazel workspace (the outer workspace skips it: .bazelignore).
# Its WORKSPACE declares coronet with local_repository(path = "../..") and calls
# coronet_dependencies(), as a user's project would. This builds //:consumer_echo there (a small
# echo server using @coronet//:coronet and <coronet/coronet.hpp>), starts it on a free port,
# sends one line through it, stops it with SIGTERM and expects exit status 0.
# Exits non-zero on any failure. Only the PID this script starts is ever signalled.
# With CI=true (set by .ci/run) the consumer workspace's Bazel server is shut down at the end.
set -euo pipefail

cd "$(dirname "$0")"

BAZEL=${BAZEL:-bazel}
ui=()
if [ -n "${CI:-}" ] || [ ! -t 2 ]; then
    ui=(--noshow_progress --curses=no --color=no)
fi

pid=
work=$(mktemp -d -t coronet-consumer.XXXXXX)
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    if [ "${CI:-}" = true ]; then
        "$BAZEL" shutdown >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

fail() {
    echo "consumer: FAILED: $*" >&2
    if [ -s "$work/err" ]; then sed 's/^/consumer: stderr: /' "$work/err" >&2; fi
    exit 1
}

echo "consumer: bazel build //... in tests/consumer (coronet as @coronet)"
"$BAZEL" build "${ui[@]}" //... || fail "bazel build in tests/consumer"

bin=$("$BAZEL" info "${ui[@]}" bazel-bin 2>/dev/null)/consumer_echo
[ -x "$bin" ] || fail "no binary at $bin"

# Created here, not by the redirection below: that happens in the child, which
# may not have run yet when the loop first reads the file.
: >"$work/out"
: >"$work/err"
"$bin" 0 >"$work/out" 2>"$work/err" &
pid=$!

# The start line: "consumer_echo: listening on 127.0.0.1:PORT (backend NAME)".
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^consumer_echo: listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$work/out")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "consumer_echo exited before listening"
    sleep 0.1
done
[ -n "$port" ] || fail "no start line from consumer_echo within 10 s"
echo "consumer: $(head -1 "$work/out")"

line="hello from the consumer workspace"
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
) || fail "could not talk to consumer_echo on port $port"
[ "$got" = "$line" ] || fail "sent '$line', got back '$got'"
echo "consumer: echoed one line through port $port"

kill -TERM "$pid"
status=0
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "consumer_echo still running 10 s after SIGTERM"
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "consumer_echo exited with status $status after SIGTERM"
echo "consumer: OK (built against @coronet//:coronet, echoed, exited 0 on SIGTERM)"

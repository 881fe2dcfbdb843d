#!/usr/bin/env bash
# udp_echo_ab.sh: examples/udp_echo on io_uring with its multishot receive (A) against the
# same binary with --no-multishot (B), in alternated runs (A B, B A, ...) under udp_load.
#
#   bazel build --config=opt //examples:udp_echo //benchmarks:udp_load
#   benchmarks/udp_echo_ab.sh [ROUNDS=3] [SECONDS=3] [udp_load flags, e.g. --window 1]
#
# The server runs pinned to CPU 0, the load to CPU 1. Server CPU per datagram is the
# server's time on a CPU (/proc/PID/schedstat, ns: user and system) over the load run,
# divided by the datagrams echoed. Prints one line per run, then each side's medians.
# Loopback only; every server started here is stopped by its PID.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/bazel-bin}
rounds=${1:-3}
seconds=${2:-3}
shift $(($# < 2 ? $# : 2))
server_pid=""
out=$(mktemp -d)
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$out"' EXIT

run() {  # run LABEL [udp_echo flags]: prints "LABEL dgrams_per_s us_per_dgram lost"
    local label=$1
    shift
    # Emptied here, not by the child's redirection: the loop below must not read the last
    # run's port before the new server has truncated the file.
    : >"$out/server"
    taskset -c 0 "$bin/examples/udp_echo" --port 0 --backend io_uring "$@" >>"$out/server" 2>&1 &
    server_pid=$!
    local port="" i
    for i in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/server")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$out/server" >&2; exit 1; }
    local before after line
    before=$(cut -d' ' -f1 "/proc/$server_pid/schedstat")
    # A failed run (udp_load exits 1 on a damaged echo) ends the script.
    line=$(taskset -c 1 "$bin/benchmarks/udp_load" --port "$port" --duration "$seconds" --warmup 0 \
        "${ARGS[@]}")
    after=$(cut -d' ' -f1 "/proc/$server_pid/schedstat")
    kill "$server_pid"
    wait "$server_pid" || true
    server_pid=""
    local dgrams rate lost
    dgrams=$(sed 's/.*dgrams=\([0-9]*\) .*/\1/' <<<"$line")
    rate=$(sed 's/.*dgrams_per_s=\([0-9]*\).*/\1/' <<<"$line")
    lost=$(sed 's/.*lost=\([0-9]*\).*/\1/' <<<"$line")
    awk -v l="$label" -v r="$rate" -v c=$((after - before)) -v n="$dgrams" -v lo="$lost" \
        'BEGIN { printf "%s %d %.3f %d\n", l, r, c / 1000 / n, lo }'
}

ARGS=("$@")
echo "# side dgrams_per_s server_us_per_dgram lost   (udp_load ${ARGS[*]:-defaults}, ${seconds}s runs)"
: >"$out/results"
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
    for side in $order; do
        if [ "$side" = A ]; then run multishot; else run single-shot --no-multishot; fi
    done | tee -a "$out/results"
done
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for side in multishot single-shot; do
    rate=$(awk -v s="$side" '$1 == s { print $2 }' "$out/results" | median)
    cpu=$(awk -v s="$side" '$1 == s { print $3 }' "$out/results" | median)
    echo "median $side: $rate datagrams/s, $cpu us server CPU per datagram"
done

#!/usr/bin/env bash
# tools/stress.sh: a soak of the example servers under mixed load, on each backend.
#
# For each backend (io_uring, epoll, select; BACKENDS overrides), starts http_server, kv_server and
# echo_server built with --config=asan on loopback ports, and runs for SOAK_SECONDS (default 60):
#   wrk -t1 -c16 against http_server /hello,
#   redis-benchmark -P 16 (SET and GET, 100 keys), run again and again, against kv_server,
#   benchmarks' echo_load (16 connections, 512-byte messages, 4 in flight) against echo_server.
# Every second it samples each server's VmRSS (/proc/PID/status). At the end each server gets
# SIGTERM. A backend passes when the clients report no errors, every server exits 0 with no
# AddressSanitizer/LeakSanitizer report, and each server's RSS is flat: the mean of the last 10
# samples is within 10% of the mean of the first 10 (ASan's quarantine is off for that, see
# below). Prints a table; exits 1 if anything failed.
#
#   tools/stress.sh                       # or: make stress (which also runs tools/fuzz.sh)
#   SOAK_SECONDS=10 BACKENDS=epoll tools/stress.sh
#
# Servers run on CPU 0 and clients on CPU 1 when taskset is there (a soak, not a benchmark).
# Only the processes started here are signalled, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-60}
BACKENDS=${BACKENDS:-io_uring epoll select}
BAZEL=${BAZEL:-bazel}
BAZEL_FLAGS=${BAZEL_FLAGS:-}

for tool in wrk redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "stress: $tool not found (tools/install-deps.sh bench)" >&2; exit 1; }
done

echo "stress: building the servers with --config=asan and echo_load with --config=opt"
# shellcheck disable=SC2086
$BAZEL build --config=asan $BAZEL_FLAGS //examples:http_server //examples:kv_server //examples:echo_server
# shellcheck disable=SC2086
$BAZEL build --config=opt $BAZEL_FLAGS //benchmarks:echo_load
# shellcheck disable=SC2086
asan_bin=$($BAZEL info --config=asan $BAZEL_FLAGS bazel-bin 2>/dev/null)
# shellcheck disable=SC2086
opt_bin=$($BAZEL info --config=opt $BAZEL_FLAGS bazel-bin 2>/dev/null)

server_cpu=() client_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/coronet-stress.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# ASan keeps freed memory in a quarantine (256 MiB by default) to catch a use after free. Filling
# it, the servers' RSS climbs for as long as they free memory (a 20 s run with a 16 MiB quarantine:
# +98%; the plain build stays flat), so the samples would measure the sanitizer. The soak turns
# it off; overflows, leaks (LSan at exit) and the rest of ASan's checks stay on, and the test
# suite runs with the quarantine under --config=asan.
export ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=0
export LSAN_OPTIONS=report_objects=1
unset CORONET_BACKEND

# start NAME ARGS...: starts a server on port 0; sets started_pid and started_port.
start() {
    local name=$1
    shift
    "${server_cpu[@]}" "$asan_bin/examples/$name" --port 0 "$@" >"$work/$name.out" 2>"$work/$name.err" &
    local pid=$! port=
    pids+=("$pid")
    for _ in $(seq 200); do
        port=$(sed -n 's/.* on \(http:\/\/\)\{0,1\}127\.0\.0\.1:\([0-9]*\).*/\2/p' "$work/$name.out" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "stress: $name did not start: $(cat "$work/$name.err")" >&2; exit 1; }
    started_pid=$pid
    started_port=$port
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# mean A B FILE: mean of lines A..B of FILE (1-based).
mean() { sed -n "$1,$2p" "$3" | awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n; else print 0 }'; }

failed=0
rows=()
for backend in $BACKENDS; do
    echo "stress: $backend, $SOAK_SECONDS s"
    start http_server --backend "$backend" --root docs
    http_pid=$started_pid http_port=$started_port
    start kv_server --backend "$backend"
    kv_pid=$started_pid kv_port=$started_port
    start echo_server --backend "$backend"
    echo_pid=$started_pid echo_port=$started_port
    : >"$work/http.rss"
    : >"$work/kv.rss"
    : >"$work/echo.rss"

    end=$((SECONDS + SOAK_SECONDS))
    "${client_cpu[@]}" wrk -t1 -c16 -d"${SOAK_SECONDS}s" "http://127.0.0.1:$http_port/hello" \
        >"$work/wrk.out" 2>&1 &
    wrk_pid=$!
    "${client_cpu[@]}" "$opt_bin/benchmarks/echo_load" --host 127.0.0.1 --port "$echo_port" \
        --connections 16 --size 512 --pipeline 4 --duration "$SOAK_SECONDS" \
        >"$work/echo_load.out" 2>&1 &
    echo_load_pid=$!
    (   # redis-benchmark runs by count: rounds of 100,000 SETs and GETs until the time is up
        rounds=0 bad=0
        while [ "$SECONDS" -lt "$end" ]; do
            if ! out=$("${client_cpu[@]}" redis-benchmark -p "$kv_port" -t set,get -P 16 -n 100000 \
                -r 100 -c 16 --csv 2>&1) || grep -qiE 'err|warn' <<<"$out"; then
                bad=$((bad + 1))
                echo "$out" >>"$work/redis.errors"
            fi
            rounds=$((rounds + 1))
        done
        echo "$rounds $bad" >"$work/redis.out"
    ) &
    redis_pid=$!

    for _ in $(seq "$SOAK_SECONDS"); do
        sleep 1
        rss_kib "$http_pid" >>"$work/http.rss"
        rss_kib "$kv_pid" >>"$work/kv.rss"
        rss_kib "$echo_pid" >>"$work/echo.rss"
    done
    wait "$wrk_pid" || true
    wait "$echo_load_pid" || true
    wait "$redis_pid" || true

    # The clients' figures.
    http_requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
    http_errors=$(awk '/Socket errors/ { gsub(",", ""); e = $4 + $6 + $8 + $10 } /Non-2xx/ { e += $NF } END { print e + 0 }' "$work/wrk.out")
    [ -n "$http_requests" ] || { http_requests=0; http_errors="no wrk summary"; }
    read -r redis_rounds redis_errors <"$work/redis.out"
    kv_requests=$((redis_rounds * 200000))
    echo_msgs=$(sed -n 's/.*msgs=\([0-9]*\).*/\1/p' "$work/echo_load.out")
    echo_errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$work/echo_load.out")
    [ -n "$echo_msgs" ] || { echo_msgs=0; echo_errors="no echo_load summary"; }

    # Stop the servers; each must exit 0 with no sanitizer report.
    for name in http_server kv_server echo_server; do
        case $name in
            http_server) pid=$http_pid ;; kv_server) pid=$kv_pid ;; echo_server) pid=$echo_pid ;;
        esac
        kill -TERM "$pid"
        status=0
        wait "$pid" || status=$?
        if [ "$status" != 0 ] || grep -qE 'Sanitizer|runtime error' "$work/$name.err"; then
            echo "stress: $backend $name: exit status $status; stderr:" >&2
            tail -40 "$work/$name.err" >&2
            failed=1
            eval "${name%_server}_exit=\"exit $status\""
        else
            eval "${name%_server}_exit=\"exit 0\""
        fi
    done
    pids=()

    for name in http kv echo; do
        first=$(mean 1 10 "$work/$name.rss")
        last=$(mean $((SOAK_SECONDS > 10 ? SOAK_SECONDS - 9 : 1)) "$SOAK_SECONDS" "$work/$name.rss")
        change=$(awk -v a="$first" -v b="$last" 'BEGIN { if (a > 0) printf "%+.1f", (b - a) * 100 / a; else print "nan" }')
        flat=$(awk -v c="$change" 'BEGIN { print (c != "nan" && c <= 10 && c >= -10) ? "flat" : "NOT FLAT" }')
        [ "$flat" = flat ] || failed=1
        case $name in
            http) served="$http_requests requests"; errors=$http_errors; exit_text=$http_exit ;;
            kv) served="$kv_requests requests"; errors=$redis_errors; exit_text=$kv_exit ;;
            echo) served="$echo_msgs messages"; errors=$echo_errors; exit_text=$echo_exit ;;
        esac
        [ "$errors" = 0 ] || failed=1
        rows+=("$(printf '%-9s %-12s %-22s %-7s %9.1f %9.1f %7s%%  %-8s %s' "$backend" "${name}_server" \
            "$served" "$errors" "$(awk -v k="$first" 'BEGIN { print k / 1024 }')" \
            "$(awk -v k="$last" 'BEGIN { print k / 1024 }')" "$change" "$flat" "$exit_text")")
    done
    [ -z "$(cat "$work/redis.errors" 2>/dev/null)" ] || { echo "stress: redis-benchmark errors:" >&2; head -20 "$work/redis.errors" >&2; }
    rm -f "$work/redis.errors"
done

echo
echo "soak: ${SOAK_SECONDS} s per backend, servers built with --config=asan; RSS in MiB (mean of the first / last 10 s)"
printf '%-9s %-12s %-22s %-7s %9s %9s %8s  %-8s %s\n' backend server served errors "RSS first" "RSS last" change RSS exit
for row in "${rows[@]}"; do echo "$row"; done
if [ "$failed" != 0 ]; then
    echo "stress: FAILED" >&2
    exit 1
fi
echo "stress: passed"

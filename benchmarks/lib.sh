# shellcheck shell=bash
# lib.sh: helpers for coronet's benchmark harness (sourced by run.sh).
#
# Servers run pinned to SERVER_CPU (0) and load tools to CLIENT_CPU (1), so on
# a 2-core machine each side has one core. Every server started here is
# recorded by PID and stopped by PID on exit (trap), together with the
# processes it forked (nginx's worker); nothing is ever killed by name.
#
# Server CPU is read from /proc/PID/stat (utime+stime, in clock ticks,
# `getconf CLK_TCK`), summed over the server and its descendants, before and
# after a load run; server µs per request = Δticks / CLK_TCK * 1e6 / requests.
# utime (user space) and stime (the kernel, on the server's behalf) are read
# apart (cpu_ticks_split), so each has its µs per request too.
# All addresses are loopback.

SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CLK_TCK=$(getconf CLK_TCK)
BENCH_HOST=127.0.0.1
# Listening ports come from [PORT_LO, PORT_HI), below the ephemeral range
# (32768-60999 here) so a load tool's own sockets never take them; each
# server start gets a fresh port.
PORT_LO=${PORT_LO:-21000}
PORT_HI=${PORT_HI:-32000}
_next_port=""
SERVER_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# bench_init OUTDIR: scratch directory, descriptor limit, exit trap.
bench_init() {
  BENCH_OUT=$1
  mkdir -p "$BENCH_OUT"
  # Servers and load tools inherit this: 500 connections need > 1024 fds,
  # the idle cell far more.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  trap 'stop_all_servers' EXIT
  trap 'log "interrupted"; exit 130' INT TERM
  # A per-invocation starting point, so two harnesses started one after the
  # other do not both try the same first port.
  _next_port=$((PORT_LO + ($$ % 1000) * 10))
}

# port_free P: nothing on this machine has a socket on local port P.
port_free() {
  [ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ]
}

# pick_port: sets PICKED_PORT to a free port from the range and moves past
# it (call it directly, not in $(...), or the move is lost).
pick_port() {
  local tries=0 p
  while [ $tries -lt 2000 ]; do
    p=$_next_port
    _next_port=$((_next_port + 1))
    [ "$_next_port" -ge "$PORT_HI" ] && _next_port=$PORT_LO
    if port_free "$p"; then
      # shellcheck disable=SC2034 # read by the caller
      PICKED_PORT=$p
      return 0
    fi
    tries=$((tries + 1))
  done
  die "no free port in [$PORT_LO, $PORT_HI)"
}

# wait_port PORT PID [TIMEOUT_S]: until PORT accepts a connection; fails if
# PID dies first or the timeout passes.
wait_port() {
  local port=$1 pid=$2 timeout=${3:-10} i=0
  local n=$((timeout * 20))
  while [ $i -lt $n ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/$BENCH_HOST/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
    i=$((i + 1))
  done
  return 1
}

# proc_tree PID: PID and all its descendants, one per line.
proc_tree() {
  local pid=$1 child
  [ -d "/proc/$pid" ] || return 0
  echo "$pid"
  # shellcheck disable=SC2013 # the file is a list of PIDs, space-separated
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    proc_tree "$child"
  done
}

# cpu_ticks_split PID: "UTIME STIME" (clock ticks) of PID and its
# descendants: /proc/PID/stat fields 14 and 15, each process's figure already
# covering all its threads. The kernel splits a process's exact run time
# between the two in proportion to the ticks it sampled in each, so over a
# short run the split is coarser than the sum.
cpu_ticks_split() {
  local user=0 sys=0 p rest
  for p in $(proc_tree "$1"); do
    # Fields after "pid (comm) ": state is $1, utime $12, stime $13.
    rest=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    # shellcheck disable=SC2086
    set -- $rest
    user=$((user + ${12:-0}))
    sys=$((sys + ${13:-0}))
  done
  echo "$user $sys"
}

# rss_kb PID: VmRSS (KiB) of PID and its descendants.
rss_kb() {
  local total=0 p v
  for p in $(proc_tree "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# busy_ticks: all CPUs' non-idle time from /proc/stat (clock ticks); with the
# server's and the load tool's share taken out it tells how much else ran.
busy_ticks() {
  awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# start_server NAME PORT CMD...: starts CMD pinned to SERVER_CPU in the
# background (stdout/stderr to $BENCH_OUT/NAME.PORT.log), records its PID in
# SERVER_PID and SERVER_PIDS, and waits until PORT accepts. Returns non-zero
# (and stops what it started) if the server dies or never listens.
start_server() {
  local name=$1 port=$2
  shift 2
  local logf="$BENCH_OUT/$name.$port.log"
  taskset -c "$SERVER_CPU" "$@" >"$logf" 2>&1 </dev/null &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  if ! wait_port "$port" "$SERVER_PID" 15; then
    log "$name did not come up on port $port; its log:"
    tail -n 20 "$logf" >&2
    stop_server "$SERVER_PID"
    return 1
  fi
  return 0
}

# stop_server PID: SIGTERM to PID and its descendants (by PID), SIGKILL to
# whatever is left after 3 s, then reap.
stop_server() {
  local pid=$1 pids i
  [ -n "$pid" ] || return 0
  pids=$(proc_tree "$pid")
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null
    i=0
    while [ $i -lt 60 ] && kill -0 "$pid" 2>/dev/null; do
      sleep 0.05
      i=$((i + 1))
    done
    for p in $pids; do
      kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
  fi
  wait "$pid" 2>/dev/null
  local keep=()
  for p in "${SERVER_PIDS[@]}"; do
    [ "$p" = "$pid" ] || keep+=("$p")
  done
  SERVER_PIDS=("${keep[@]}")
  return 0
}

stop_all_servers() {
  local p
  for p in "${SERVER_PIDS[@]}"; do
    stop_server "$p"
  done
}

# run_load OUTFILE LIMIT_S CMD...: runs a load tool pinned to CLIENT_CPU with
# a hard time limit (timeout -k), its stdout+stderr to OUTFILE. Sets LOAD_RC,
# LOAD_WALL (s), LOAD_CPU_S (user+sys s) and LOAD_CPU_PCT (of one core over
# the tool's whole run).
# shellcheck disable=SC2034 # the LOAD_* results are read by the caller
run_load() {
  local out=$1 limit=$2
  shift 2
  local tf="$out.time" TIMEFORMAT='%3R %3U %3S'
  { time taskset -c "$CLIENT_CPU" timeout -k 5 "$limit" "$@" >"$out" 2>&1 </dev/null; } 2>"$tf"
  LOAD_RC=$?
  read -r LOAD_WALL _u _s <"$tf"
  LOAD_CPU_S=$(awk -v u="$_u" -v s="$_s" 'BEGIN {printf "%.3f", u + s}')
  LOAD_CPU_PCT=$(awk -v c="$LOAD_CPU_S" -v w="$LOAD_WALL" 'BEGIN {printf "%.1f", (w > 0 ? c / w * 100 : 0)}')
}

# us_per_req DTICKS REQUESTS: server CPU µs per request.
us_per_req() {
  awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN {if (n > 0) printf "%.3f", t / hz * 1e6 / n; else print "-"}'
}

# to_us VALUE-WITH-UNIT: "123.45us" / "1.2ms" / "2.0s" -> microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; else m = 1
    printf "%.1f", n * m }'
}

# ---- parsers: each prints "THROUGHPUT REQUESTS P50_US P99_US ERRORS" ("-"
# where the tool does not say). THROUGHPUT is requests (or messages) per s.

parse_echo_load() {
  awk '/^msgs=/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%s %s %s %s %s\n", v["msgs_per_s"], v["msgs"], v["p50_us"], v["p99_us"], v["errors"]; found = 1 }
    END { if (!found) print "- - - - 1" }' "$1"
}

parse_wrk() {
  local f=$1 p50 p99
  p50=$(awk '/^ +50% / {print $2}' "$f")
  p99=$(awk '/^ +99% / {print $2}' "$f")
  [ -n "$p50" ] && p50=$(to_us "$p50") || p50=-
  [ -n "$p99" ] && p99=$(to_us "$p99") || p99=-
  awk -v p50="$p50" -v p99="$p99" '
    / requests in / { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    END {
      if (rps == "") { print "- - - - 1"; exit }
      printf "%s %s %s %s %d\n", rps, reqs, p50, p99, err }' "$f"
}

parse_h2load() {
  awk '
    /^finished in / { rps = $4 }
    # requests: T total, S started, D done, OK succeeded, F failed, E errored, X timeout
    /^requests: / { done = $6; failed = $10; errored = $12; timeout = $14 }
    # status codes: A 2xx, B 3xx, C 4xx, D 5xx
    /^status codes: / { non2xx = $5 + $7 + $9 }
    END {
      if (rps == "" || done == "") { print "- - - - 1"; exit }
      printf "%s %s - - %d\n", rps, done, failed + errored + timeout + non2xx }' "$1"
}

# redis-benchmark --csv with one row per test: combined throughput over all
# tests (total requests / total time), worst p50 and p99 over the tests.
parse_redis_csv() {
  local f=$1 n=$2
  awk -F, -v n="$n" '
    { for (i = 1; i <= NF; i++) gsub(/"/, "", $i) }
    $1 == "test" { next }
    $2 + 0 > 0 { tests++; secs += n / $2; if ($5 * 1000 > p50) p50 = $5 * 1000; if ($7 * 1000 > p99) p99 = $7 * 1000 }
    END {
      if (tests == 0) { print "- - - - 1"; exit }
      printf "%.0f %d %.0f %.0f 0\n", tests * n / secs, tests * n, p50, p99 }' "$f"
}

# http_smoke PORT: one GET /hello must come back 200 with "Hello, world!".
http_smoke() {
  local body
  body=$(curl -s --max-time 5 "http://$BENCH_HOST:$1/hello") || return 1
  [ "$body" = "Hello, world!" ]
}

# resp_smoke PORT: PING must answer PONG.
resp_smoke() {
  [ "$(timeout 5 redis-cli -h "$BENCH_HOST" -p "$1" ping 2>/dev/null)" = "PONG" ]
}

# prep_nginx PORT DIR: nginx's scratch prefix with the config, port filled in.
prep_nginx() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  sed "s/__PORT__/$port/" "$BENCH_DIR/peers/nginx.conf" >"$dir/nginx.conf"
}

# ---- files ------------------------------------------------------------------------

# The file cells' sizes: NAME:BYTES, each served as /NAME.bin.
FILE_SIZES="1KiB:1024 64KiB:65536 10MiB:10485760"

# make_file_assets DIR: what the file cells serve, made at run time: DIR/www/
# 1KiB.bin, 64KiB.bin and 10MiB.bin, random bytes, readable by nginx's
# unprivileged worker. Sets FILE_DIR.
make_file_assets() {
  local f
  FILE_DIR=$1
  mkdir -p "$FILE_DIR/www" || return 1
  for f in $FILE_SIZES; do
    head -c "${f#*:}" /dev/urandom >"$FILE_DIR/www/${f%%:*}.bin" || return 1
  done
  chmod 755 "$FILE_DIR" "$FILE_DIR/www" && chmod 644 "$FILE_DIR"/www/*.bin
}

# prep_nginx_file PORT DIR: nginx_file.conf with the port and the file root
# filled in.
prep_nginx_file() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  sed -e "s|__PORT__|$port|" -e "s|__ROOT__|$FILE_DIR/www|" "$BENCH_DIR/peers/nginx_file.conf" >"$dir/nginx.conf"
}

# file_smoke PORT: every file of FILE_SIZES comes back whole (byte for byte).
file_smoke() {
  local f
  for f in $FILE_SIZES; do
    curl -s --max-time 20 "http://$BENCH_HOST:$1/${f%%:*}.bin" | cmp -s - "$FILE_DIR/www/${f%%:*}.bin" || return 1
  done
}

# ---- TLS --------------------------------------------------------------------------

# make_tls_assets DIR: what the TLS cells serve, made at run time (no key is
# committed): DIR/cert.pem and DIR/key.pem, a self-signed ECDSA P-256
# certificate for localhost and 127.0.0.1, and DIR/www/10MiB.bin, 10 MiB of
# random bytes. Sets TLS_DIR.
make_tls_assets() {
  TLS_DIR=$1
  mkdir -p "$TLS_DIR/www"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >"$TLS_DIR/openssl.log" 2>&1 || return 1
  head -c 10485760 /dev/urandom >"$TLS_DIR/www/10MiB.bin"
}

# prep_nginx_tls PORT DIR: nginx_tls.conf with the port, the certificate and
# the file root filled in.
prep_nginx_tls() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  sed -e "s|__PORT__|$port|" -e "s|__CERT__|$TLS_DIR/cert.pem|" -e "s|__KEY__|$TLS_DIR/key.pem|" \
    -e "s|__ROOT__|$TLS_DIR/www|" "$BENCH_DIR/peers/nginx_tls.conf" >"$dir/nginx.conf"
}

# tls_smoke PORT: GET /hello over HTTPS (the certificate verified against
# itself) must come back "Hello, world!", and the 10 MiB file whole.
tls_smoke() {
  local body n
  body=$(curl -s --max-time 5 --cacert "$TLS_DIR/cert.pem" "https://$BENCH_HOST:$1/hello") || return 1
  [ "$body" = "Hello, world!" ] || return 1
  n=$(curl -s --max-time 20 --cacert "$TLS_DIR/cert.pem" "https://$BENCH_HOST:$1/10MiB.bin" | wc -c)
  [ "$n" = 10485760 ]
}

# tls_handshake_info PORT: "New|Reused PROTOCOL CIPHER GROUP" of a second
# connection that offers the session ticket of a first (openssl s_client
# -sess_out, then -sess_in): the resumed cell relies on both peers resuming.
tls_handshake_info() {
  local port=$1 s="$BENCH_OUT/tls.sess.$1" req='GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
  # shellcheck disable=SC2059 # the request is the format
  printf "$req" | timeout 5 openssl s_client -connect "$BENCH_HOST:$port" -alpn http/1.1 -sess_out "$s" \
    -ign_eof >/dev/null 2>&1
  # shellcheck disable=SC2059
  printf "$req" | timeout 5 openssl s_client -connect "$BENCH_HOST:$port" -alpn http/1.1 -sess_in "$s" \
    -ign_eof 2>/dev/null | awk '
      /^(New|Reused), / { kind = $1; proto = $2; cipher = $NF; sub(/,$/, "", kind); sub(/,$/, "", proto) }
      /^Server Temp Key:/ { group = $4; sub(/,$/, "", group) }
      /^ALPN protocol:/ { alpn = $3 }
      END { printf "%s %s %s %s %s\n", kind ? kind : "failed", proto, cipher, group ? group : "-", alpn ? alpn : "-" }'
}

# parse_s_time FILE: tls_handshakes.sh's summary line.
parse_s_time() {
  awk '/^handshakes=/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%s %s - - %s\n", v["per_s"], v["handshakes"], v["errors"]; found = 1 }
    END { if (!found) print "- - - - 1" }' "$1"
}

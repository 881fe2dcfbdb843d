#!/usr/bin/env bash
# run.sh: coronet's benchmark harness.
#
#   benchmarks/run.sh             # full: 3 s per run, 3 runs per peer and cell (<= 30 min)
#   QUICK=1 benchmarks/run.sh     # quick: 0.5 s per run (wrk: 1 s), about 3 min on a
#                                 # quiet machine; cells marked "full" left out
#
# Knobs (environment): QUICK, DUR (seconds per run; wrk rounds up to whole
# seconds), RUNS (3), NOISE_MAX (a run during which other processes used more
# than this % of a core is done again, at most RETRIES (2) times; waiting for
# a quiet machine and redoing runs stops once NOISE_BUDGET seconds went on
# it: 30 quick, 180 full, so a busy machine cannot stretch a run unbounded),
# CELLS (regex on cell names), PEERS (regex on peer names), BACKENDS
# (coronet backends: "io_uring epoll select" full, "io_uring" quick; the
# thread-scaling cells use the first), FILE_BACKENDS (the file cells'
# coronet backends: "io_uring epoll"), IDLE_N (idle connection counts, one
# idle cell each: "10000 19000" full, 2000 quick), SYSCALL_BACKENDS (the
# syscall cell's: "io_uring epoll select" full, "io_uring epoll" quick),
# SYS_DUR (seconds per syscall-cell run: 3 full, DUR quick), MICRO_MIN_TIME
# (Google Benchmark --benchmark_min_time: 0.5 full, 0.05 quick), PROFILE (1:
# http_server under callgrind; on in the full run, off in QUICK), PROFILE_DUR
# (4), SKIP_BUILD=1, CORONET_BIN (directory holding echo_server, http_server,
# kv_server; default bazel-bin/examples of the opt build), RESULTS (output
# markdown, default benchmarks/RESULTS.md), PLOT (default
# benchmarks/results.png), SPLICE (1: a run of the TLS or file cells or the
# idle cell alone, e.g. `SPLICE=1 CELLS=^tls_ benchmarks/run.sh`, `SPLICE=1
# CELLS=^file_ benchmarks/run.sh` or `SPLICE=1 CELLS=idle benchmarks/run.sh`,
# replaces only the sections of RESULTS.md for what ran and their rows of its
# goals table; the plot is left alone; CELLS selecting any other cell is
# refused before anything runs. The idle cell runs on its own: it starts the
# echo peers itself, and without the echo_64B_c50 cell its "× alone" figures
# are "—").
#
# The TLS cells (group tls): coronet's http_server with --tls-cert/--tls-key
# against nginx in TLS mode (peers/nginx_tls.conf), given the same ECDSA
# P-256 certificate, made at run time with the openssl command under
# OUT/tls (no key is committed), and the same 10 MiB file: keep-alive /hello
# (wrk), full handshakes (tls_handshakes.sh: parallel openssl s_time -new;
# wrk resumes sessions on reconnection, so it cannot do this one), resumed
# handshakes (wrk with close.lua: Connection: close, a resumed handshake per
# request) and the 10 MiB file (wrk -c4).
#
# The file cells (group file): coronet's http_server --root on each of
# FILE_BACKENDS against nginx serving the same directory with sendfile and
# open_file_cache (peers/nginx_file.conf), files of random bytes made at run
# time under OUT/files/www: 1 KiB and 64 KiB (wrk -c50) and 10 MiB (wrk -c4).
#
# Full-run duration, estimated from per-run wall times on this machine: the
# echo cells about 6 min, HTTP 4.5, files 2 (3 cells x 3 peers x 3 runs of
# 3-4 s), TLS 4 (4 cells x 4 peers x 3 runs of 3-4 s), RESP 3, thread
# scaling 1.5, idle 2.5, syscalls 1.2, micro 0.7, profile 0.3, build and
# waits 0.5: about 26 min, plus at most NOISE_BUDGET (3 min) on a busy
# machine.
#
# Servers run on CPU 0 and load tools on CPU 1 (taskset). In each cell every
# peer of the cell's group is started once on its own fresh port, then the
# runs go A B C, C B A, A B C, ...; each run records throughput, latency
# where the tool gives it, the server's CPU per request (Δ utime+stime from
# /proc/PID/stat, and each of the two apart: user and sys µs per request),
# the load tool's CPU % and the CPU that neither used ("other", to spot a
# noisy machine). summarize.py turns the raw table into
# RESULTS.md (median and min-max per peer, ratio vs a reference peer) and
# results.png (gnuplot).
#
# Adding a peer: one line in PEER_TABLE below,
#   group|name|prep|command[|cpus]
# group: echo (echo_load cells + idle cell), http (wrk/h2load cells), file
# (the file cells), tls (the TLS cells), resp
# (redis-benchmark cells) or scale_echo/scale_http/scale_resp (the
# thread-scaling cells, coronet's servers only); prep: "-" or a lib.sh function called as
# `prep PORT DIR` before the start; command: the server's command line with
# {port} (the port to listen on, 127.0.0.1), {dir} (a scratch directory), {tls}
# (the TLS cells' directory: cert.pem, key.pem, www/10MiB.bin), {files} (the
# file cells' www directory) and {backend} (the row is repeated for each of
# $BACKENDS, in the file group $FILE_BACKENDS) filled in; cpus: the
# CPU list the server is pinned to (default SERVER_CPU). A row
# whose binary (any absolute path in the command) does not exist is skipped
# and reported as "skipped: not built".
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by lib.sh (prep_nginx)
BENCH_DIR=$HERE
REPO=$(dirname "$HERE")
# shellcheck source=benchmarks/lib.sh
. "$HERE/lib.sh"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DUR=${DUR:-0.5}
  BACKENDS=${BACKENDS:-io_uring}
  IDLE_N=${IDLE_N:-2000}
  QUIET_MAX=${QUIET_MAX:-3}
  SYS_DUR=${SYS_DUR:-$DUR}
  MICRO_MIN_TIME=${MICRO_MIN_TIME:-0.05}
  PROFILE=${PROFILE:-0}
else
  # 3 s per run keeps the full run (about 60 cell-peer pairs, 3 runs each,
  # plus the idle, syscall, micro, scaling and profile cells) under 25 minutes.
  DUR=${DUR:-3}
  BACKENDS=${BACKENDS:-io_uring epoll select}
  IDLE_N=${IDLE_N:-10000 19000}
  QUIET_MAX=${QUIET_MAX:-20}
  SYS_DUR=${SYS_DUR:-3}
  MICRO_MIN_TIME=${MICRO_MIN_TIME:-0.5}
  PROFILE=${PROFILE:-$([ "${SPLICE:-0}" = 1 ] && echo 0 || echo 1)} # not in a SPLICE run
fi
if [ "$QUICK" = 1 ]; then
  SYSCALL_BACKENDS=${SYSCALL_BACKENDS:-io_uring epoll}
else
  SYSCALL_BACKENDS=${SYSCALL_BACKENDS:-io_uring epoll select}
fi
PROFILE_DUR=${PROFILE_DUR:-4}
FILE_BACKENDS=${FILE_BACKENDS:-io_uring epoll}
RUNS=${RUNS:-3}
NOISE_MAX=${NOISE_MAX:-25}
RETRIES=${RETRIES:-2}
if [ "$QUICK" = 1 ]; then NOISE_BUDGET=${NOISE_BUDGET:-30}; else NOISE_BUDGET=${NOISE_BUDGET:-180}; fi
NOISE_SPENT=0 # seconds spent waiting for quiet or redoing noisy runs
CELLS=${CELLS:-.}
PEERS=${PEERS:-.}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
PLOT=${PLOT:-$HERE/results.png}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
awk -v d="$DUR" 'BEGIN {exit !(d + 0 > 0 && d + 0 <= 600)}' || die "DUR must be a number of seconds in (0, 600]"
DUR_MS=$(awk -v d="$DUR" 'BEGIN {printf "%d", d * 1000}')
DUR_WRK=$(awk -v d="$DUR" 'BEGIN {s = int(d); if (s < d) s++; printf "%d", s}') # wrk: whole seconds
SYS_DUR_WRK=$(awk -v d="$SYS_DUR" 'BEGIN {s = int(d); if (s < d) s++; printf "%d", s}')

# name|group|tool|arguments[|full]  ("full": left out of QUICK runs; wrk_file's
# arguments end with the path requested)
CELL_TABLE="
echo_64B_c50|echo|echo_load|--connections 50 --size 64 --pipeline 1
echo_64B_c500|echo|echo_load|--connections 500 --size 64 --pipeline 1
echo_4KiB_c50|echo|echo_load|--connections 50 --size 4096 --pipeline 1
echo_4KiB_c500|echo|echo_load|--connections 500 --size 4096 --pipeline 1
echo_64B_c50_pipe16|echo|echo_load|--connections 50 --size 64 --pipeline 16
http_wrk_c50|http|wrk|-c50
http_wrk_c500|http|wrk|-c500
http_wrk_c50_pipe16|http|wrk_pipeline|-c50
http_h2load_c50_m16|http|h2load|-c50 -m16
file_1KiB_c50|file|wrk_file|-c50 /1KiB.bin
file_64KiB_c50|file|wrk_file|-c50 /64KiB.bin
file_10MiB_c4|file|wrk_file|-c4 /10MiB.bin
tls_wrk_c50|tls|wrk_tls|-c50
tls_full_handshake|tls|s_time|4
tls_resumed_wrk_c50|tls|wrk_close|-c50
tls_file_10MiB_c4|tls|wrk_tls_file|-c4
resp_c50_P1|resp|redis|-P 1
resp_c50_P16|resp|redis|-P 16
scale_echo_64B_c50|scale_echo|echo_load|--connections 50 --size 64 --pipeline 1|full
scale_http_wrk_c50|scale_http|wrk|-c50
scale_resp_c50_P16|scale_resp|redis|-P 16|full
idle_conns|echo|idle|
syscalls|-|syscalls|
micro|-|micro|
"

# SPLICE=1 puts the cells that ran into the existing RESULTS.md, which
# summarize.py --splice can do only for the file and TLS groups and the idle
# cell: a run with other cells is refused here, before anything is built or run.
if [ "${SPLICE:-0}" = 1 ]; then
  spliceable="" refused=""
  while IFS='|' read -r cell group tool _ only; do
    [ -n "$cell" ] || continue
    [[ "$cell" =~ $CELLS ]] || continue
    [ "$QUICK" = 1 ] && [ "${only:-}" = full ] && continue
    if [ "$group" = file ] || [ "$group" = tls ] || [ "$tool" = idle ]; then
      spliceable="$spliceable $cell"
    else
      refused="$refused $cell"
    fi
  done <<<"$CELL_TABLE"
  [ -z "$refused" ] || die "SPLICE=1 can splice only the file and TLS cells and the idle cell (idle_conns);" \
    "CELLS='$CELLS' also selects:$refused"
  [ -n "$spliceable" ] || die "SPLICE=1: CELLS='$CELLS' selects no cell (the file and TLS cells and idle_conns can be spliced)"
  [ "$PROFILE" = 1 ] && die "SPLICE=1 with PROFILE=1: the profile section cannot be spliced"
  log "SPLICE=1: running$spliceable and splicing them into $RESULTS"
fi

OUT=$HERE/out/$(date +%Y%m%d-%H%M%S)-$$
bench_init "$OUT"
RAW=$OUT/raw.tsv
IDLE_TSV=$OUT/idle.tsv
SKIPPED=$OUT/skipped.tsv
: >"$SKIPPED"
printf 'cell\tgroup\tpeer\trun\tthroughput\trequests\tp50_us\tp99_us\terrors\tserver_ticks\tserver_us_per_req\tserver_user_us_per_req\tserver_sys_us_per_req\tload_cpu_pct\tother_cpu_pct\trc\n' >"$RAW"
printf 'peer\tconns\topened\talive\trss_before_kb\trss_with_conns_kb\tbytes_per_conn\tsetup_secs\tfresh_connect_us\tfresh_echo_us\tload_msgs_per_s\tload_p99_us\tload_us_per_msg\tload_user_us_per_msg\tload_sys_us_per_msg\tload_errors\tnote\n' >"$IDLE_TSV"
SYSCALL_TSV=$OUT/syscalls.tsv
# The TLS peers' handshakes (tls_handshake_info): peer, New/Reused, protocol,
# cipher, key exchange group, ALPN.
TLS_INFO=$OUT/tls_info.tsv
printf 'workload\tbackend\trequests\tsyscalls\tper_req\tthroughput\tstrace_requests\tstrace_syscalls\tstrace_per_req\ttop\n' >"$SYSCALL_TSV"
T_START=$(date +%s)

# ---- build -------------------------------------------------------------------

CORONET_TARGETS="//examples:echo_server //examples:http_server //examples:kv_server"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  targets="//benchmarks:echo_load //benchmarks:idle_conns //benchmarks:epoll_echo //benchmarks:uring_echo"
  if [ -f /usr/include/boost/version.hpp ]; then
    targets="$targets //benchmarks:asio_echo //benchmarks:asio_http"
  else
    log "no /usr/include/boost: the Asio peers will be skipped (apt-get install libboost-dev)"
  fi
  log "building peers: $targets"
  # shellcheck disable=SC2086 # a list of targets
  (cd "$REPO" && bazel build --config=opt $targets) >"$OUT/build.log" 2>&1 ||
    { tail -n 30 "$OUT/build.log" >&2; die "building the peers failed (log: $OUT/build.log)"; }
  existing=""
  for t in $CORONET_TARGETS; do
    (cd "$REPO" && bazel query "$t" >/dev/null 2>&1) && existing="$existing $t"
  done
  if [ -n "$existing" ]; then
    log "building coronet servers:$existing"
    # shellcheck disable=SC2086 # a list of targets
    (cd "$REPO" && bazel build --config=opt --keep_going $existing) >"$OUT/build-coronet.log" 2>&1 ||
      log "some coronet servers did not build (log: $OUT/build-coronet.log); their rows will be skipped"
  fi
  (cd "$REPO" && bazel build --config=opt //benchmarks:micro) >"$OUT/build-micro.log" 2>&1 ||
    log "benchmarks:micro did not build (log: $OUT/build-micro.log); the micro cell will be skipped"
fi
BIN=$(cd "$REPO" && bazel info --config=opt bazel-bin 2>/dev/null)
[ -n "$BIN" ] || die "bazel info bazel-bin failed"
CORONET_BIN=${CORONET_BIN:-$BIN/examples}
[ -x "$BIN/benchmarks/echo_load" ] || die "echo_load is not built ($BIN/benchmarks/echo_load)"

# ---- the tables ------------------------------------------------------------------

# The thread-scaling cells run coronet's servers on the first of BACKENDS.
SCALE_BACKEND=${BACKENDS%% *}

# group|name|prep|command  (see the header)
PEER_TABLE="
echo|epoll_echo|-|$BIN/benchmarks/epoll_echo --port {port}
echo|uring_echo|-|$BIN/benchmarks/uring_echo --port {port}
echo|asio_echo|-|$BIN/benchmarks/asio_echo --port {port}
echo|asyncore_echo|-|$PYTHON $HERE/peers/asyncore_echo.py --port {port}
echo|coronet_echo_{backend}|-|$CORONET_BIN/echo_server --port {port} --backend {backend} --max-connections 100000
http|nginx|prep_nginx|/usr/sbin/nginx -p {dir}/ -c {dir}/nginx.conf -e stderr
http|asio_http|-|$BIN/benchmarks/asio_http --port {port}
http|asynchat_http|-|$PYTHON $HERE/peers/asynchat_http.py --port {port}
http|coronet_http_{backend}|-|$CORONET_BIN/http_server --port {port} --backend {backend}
file|nginx_file|prep_nginx_file|/usr/sbin/nginx -p {dir}/ -c {dir}/nginx.conf -e stderr
file|coronet_file_{backend}|-|$CORONET_BIN/http_server --port {port} --backend {backend} --root {files}
tls|nginx_tls|prep_nginx_tls|/usr/sbin/nginx -p {dir}/ -c {dir}/nginx.conf -e stderr
tls|coronet_https_{backend}|-|$CORONET_BIN/http_server --port {port} --backend {backend} --root {tls}/www --tls-cert {tls}/cert.pem --tls-key {tls}/key.pem
resp|redis-server|-|/usr/bin/redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --daemonize no --dir {dir} --logfile ''
resp|coronet_kv_{backend}|-|$CORONET_BIN/kv_server --port {port} --backend {backend}
scale_echo|echo_server_t1|-|$CORONET_BIN/echo_server --port {port} --backend $SCALE_BACKEND --threads 1|$SERVER_CPU
scale_echo|echo_server_t2|-|$CORONET_BIN/echo_server --port {port} --backend $SCALE_BACKEND --threads 2|$SERVER_CPU,$CLIENT_CPU
scale_http|http_server_t1|-|$CORONET_BIN/http_server --port {port} --backend $SCALE_BACKEND --threads 1|$SERVER_CPU
scale_http|http_server_t2|-|$CORONET_BIN/http_server --port {port} --backend $SCALE_BACKEND --threads 2|$SERVER_CPU,$CLIENT_CPU
scale_resp|kv_server_t1|-|$CORONET_BIN/kv_server --port {port} --backend $SCALE_BACKEND --threads 1|$SERVER_CPU
scale_resp|kv_server_t2|-|$CORONET_BIN/kv_server --port {port} --backend $SCALE_BACKEND --threads 2|$SERVER_CPU,$CLIENT_CPU
"
# The peer each table's ratios are taken against.
declare -A REFERENCE=([echo]=epoll_echo [http]=nginx [file]=nginx_file [tls]=nginx_tls [resp]=redis-server
  [scale_echo]=echo_server_t1 [scale_http]=http_server_t1 [scale_resp]=kv_server_t1)

# redis-benchmark has no duration option: before a cell's runs each peer is
# timed with a short run (20000 requests per test times the pipeline depth)
# and then given requests for about DUR seconds per test. RESP_N=N fixes the
# count instead.
RESP_N=${RESP_N:-}

# Expand {backend} rows and drop rows whose binaries are missing. Fills
# ROW_GROUP, ROW_NAME, ROW_PREP, ROW_CMD (parallel arrays).
ROW_GROUP=() ROW_NAME=() ROW_PREP=() ROW_CMD=() ROW_CPUS=()
while IFS='|' read -r group name prep cmd cpus; do
  [ -n "$group" ] || continue
  if [[ "$cmd" != *"{backend}"* ]]; then variants=-; elif [ "$group" = file ]; then variants=$FILE_BACKENDS; else variants=$BACKENDS; fi
  for b in $variants; do
    n=${name//\{backend\}/$b}
    c=${cmd//\{backend\}/$b}
    [[ "$n" =~ $PEERS ]] || continue
    missing=""
    for w in $c; do
      [[ "$w" == /* && "$w" != *"{"* ]] || continue
      [ -e "$w" ] || { missing=$w; break; }
    done
    if [ -n "$missing" ]; then
      missing=${missing/#$BIN\//bazel-bin/}
      log "$n: skipped: not built ($missing)"
      printf '%s\t%s\tskipped: not built (%s)\n' "$group" "$n" "$missing" >>"$SKIPPED"
      continue
    fi
    ROW_GROUP+=("$group") ROW_NAME+=("$n") ROW_PREP+=("$prep") ROW_CMD+=("$c") ROW_CPUS+=("${cpus:-$SERVER_CPU}")
  done
done <<<"$PEER_TABLE"

# ---- one cell ----------------------------------------------------------------------

# wait_quiet MAX_S: wait (at most MAX_S) until the machine's other load is
# under a fifth of a core, so runs do not start in the middle of a build.
wait_quiet() {
  local max=$1 waited=0 b0 b1 other start=$SECONDS
  [ "$NOISE_SPENT" -lt "$NOISE_BUDGET" ] || return 0
  while :; do
    b0=$(busy_ticks)
    sleep 0.5
    b1=$(busy_ticks)
    other=$(((b1 - b0) * 100 * 2 / CLK_TCK)) # % of one core
    [ "$other" -lt 20 ] && break
    if [ "$waited" -ge "$max" ] || [ $((NOISE_SPENT + SECONDS - start)) -ge "$NOISE_BUDGET" ]; then
      log "machine busy (${other}% of a core used by others); going on"
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  NOISE_SPENT=$((NOISE_SPENT + SECONDS - start))
}

# start_peer I: starts row I on a fresh port; sets PEER_PID, PEER_PORT.
start_peer() {
  local i=$1 port dir c
  pick_port
  port=$PICKED_PORT
  dir="$OUT/${ROW_NAME[$i]}.$port.d"
  mkdir -p "$dir"
  if [ "${ROW_PREP[$i]}" != - ]; then "${ROW_PREP[$i]}" "$port" "$dir" || return 1; fi
  c=${ROW_CMD[$i]//\{port\}/$port}
  c=${c//\{dir\}/$dir}
  c=${c//\{tls\}/${TLS_DIR:-}}
  c=${c//\{files\}/${FILE_DIR:-}/www}
  eval "set -- $c"
  SERVER_CPU=${ROW_CPUS[$i]} start_server "${ROW_NAME[$i]}" "$port" "$@" || return 1
  PEER_PID=$SERVER_PID
  PEER_PORT=$port
}

# smoke GROUP PORT: the server answers right before it is loaded.
smoke() {
  case ${1#scale_} in
    http) http_smoke "$2" ;;
    tls) tls_smoke "$2" ;;
    file) file_smoke "$2" ;;
    resp) resp_smoke "$2" ;;
    *) true ;;
  esac
}

# load_cmd TOOL ARGS PORT: the load tool's command line (words).
load_cmd() {
  local tool=$1 args=$2 port=$3
  case $tool in
    echo_load) echo "$BIN/benchmarks/echo_load --host $BENCH_HOST --port $port $args --duration $DUR" ;;
    wrk) echo "wrk -t1 $args -d${DUR_WRK}s --timeout 5s --latency http://$BENCH_HOST:$port/hello" ;;
    wrk_pipeline) echo "wrk -t1 $args -d${DUR_WRK}s --timeout 5s -s $HERE/pipeline.lua http://$BENCH_HOST:$port/hello -- 16" ;;
    h2load) echo "h2load --h1 -t1 $args -D ${DUR_MS}ms http://$BENCH_HOST:$port/hello" ;;
    wrk_tls) echo "wrk -t1 $args -d${DUR_WRK}s --timeout 5s --latency https://$BENCH_HOST:$port/hello" ;;
    wrk_close) echo "wrk -t1 $args -d${DUR_WRK}s --timeout 5s --latency -s $HERE/close.lua https://$BENCH_HOST:$port/hello" ;;
    wrk_tls_file) echo "wrk -t1 $args -d${DUR_WRK}s --timeout 20s --latency https://$BENCH_HOST:$port/10MiB.bin" ;;
    wrk_file) echo "wrk -t1 ${args% *} -d${DUR_WRK}s --timeout 20s --latency http://$BENCH_HOST:$port${args##* }" ;;
    s_time) echo "$HERE/tls_handshakes.sh $BENCH_HOST:$port $DUR_WRK $args /hello" ;;
    redis) echo "redis-benchmark -h $BENCH_HOST -p $port -t set,get -c 50 -d 16 $args --csv" ;;
  esac
}

parse_out() {
  local tool=$1 f=$2 args=$3
  case $tool in
    echo_load) parse_echo_load "$f" ;;
    wrk | wrk_tls | wrk_close | wrk_tls_file | wrk_file) parse_wrk "$f" ;;
    s_time) parse_s_time "$f" ;;
    # wrk's latency figures mean nothing when a write carries 16 requests.
    wrk_pipeline) parse_wrk "$f" | awk '{print $1, $2, "-", "-", $5}' ;;
    h2load) parse_h2load "$f" ;;
    redis) parse_redis_csv "$f" "$(sed -n 's/.*-n \([0-9]*\).*/\1/p' <<<"$args")" ;;
  esac
}

# redis_requests PORT ARGS: requests per test for about DUR seconds per test.
redis_requests() {
  local port=$1 args=$2 depth ncal f thr
  if [ -n "$RESP_N" ]; then
    echo "$RESP_N"
    return
  fi
  depth=$(sed -n 's/.*-P \([0-9]*\).*/\1/p' <<<"$args")
  ncal=$((20000 * ${depth:-1}))
  f="$OUT/calibrate.$port.out"
  # shellcheck disable=SC2046 # load_cmd prints words
  taskset -c "$CLIENT_CPU" timeout -k 5 60 $(load_cmd redis "$args -n $ncal" "$port") >"$f" 2>&1 </dev/null
  read -r thr _ <<<"$(parse_redis_csv "$f" "$ncal")"
  awk -v t="$thr" -v d="$DUR" 'BEGIN {n = int(t * d); if (n < 2000) n = 2000; print n}'
}

# one_run CELL GROUP TOOL ARGS NAME PID PORT RUN
one_run() {
  local cell=$1 group=$2 tool=$3 args=$4 name=$5 pid=$6 port=$7 run=$8
  local f="$OUT/$cell.$name.run$run.out" limit u0 s0 u1 s1 b0 b1 thr reqs p50 p99 err dt us uus sus cl other
  if ! kill -0 "$pid" 2>/dev/null; then
    log "  $name: the server has died; run $run not done"
    printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t1\t-\t-\t-\t-\t-\t-\tdead\n' "$cell" "$group" "$name" "$run" >>"$RAW"
    return
  fi
  if [ "$tool" = redis ]; then limit=$((DUR_WRK * 20 + 30)); else limit=$((DUR_WRK + 20)); fi
  # shellcheck disable=SC2046
  set -- $(load_cmd "$tool" "$args" "$port")
  local try=0
  while :; do
    b0=$(busy_ticks)
    read -r u0 s0 <<<"$(cpu_ticks_split "$pid")"
    run_load "$f" "$limit" "$@"
    read -r u1 s1 <<<"$(cpu_ticks_split "$pid")"
    b1=$(busy_ticks)
    if ! kill -0 "$pid" 2>/dev/null; then
      # Its CPU time went with it: nothing of this run can be counted.
      log "  $name: the server died during run $run (its log: $OUT/$name.$port.log)"
      printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t1\t-\t-\t-\t-\t-\t-\tdead\n' "$cell" "$group" "$name" "$run" >>"$RAW"
      return
    fi
    dt=$((u1 - u0 + s1 - s0))
    # CPU time that neither the server nor the load tool used, % of a core.
    other=$(awk -v b="$((b1 - b0))" -v s="$dt" -v c="$LOAD_CPU_S" -v w="$LOAD_WALL" -v hz="$CLK_TCK" \
      'BEGIN {o = (b - s) / hz - c; if (o < 0) o = 0; printf "%.1f", (w > 0 ? o / w * 100 : 0)}')
    awk -v o="$other" -v m="$NOISE_MAX" 'BEGIN {exit !(o > m)}' || break
    if [ $try -ge "$RETRIES" ] || [ "$NOISE_SPENT" -ge "$NOISE_BUDGET" ]; then break; fi
    try=$((try + 1))
    log "  run $run $name: other processes used ${other}% of a core; again ($try/$RETRIES)"
    NOISE_SPENT=$(awk -v a="$NOISE_SPENT" -v w="$LOAD_WALL" 'BEGIN {printf "%d", a + w + 0.5}')
    wait_quiet "$QUIET_MAX"
  done
  read -r thr reqs p50 p99 err <<<"$(parse_out "$tool" "$f" "$args")"
  [ "$LOAD_RC" = 0 ] || err=$((${err/-/0} + 1))
  us=$(us_per_req "$dt" "$reqs")
  uus=$(us_per_req "$((u1 - u0))" "$reqs")
  sus=$(us_per_req "$((s1 - s0))" "$reqs")
  # The load tool's own figure where it has one (its measuring window only).
  cl=$LOAD_CPU_PCT
  if [ "$tool" = echo_load ]; then
    cl=$(sed -n 's/.*client_cpu_pct=\([0-9.]*\).*/\1/p' "$f")
    cl=${cl:-$LOAD_CPU_PCT}
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cell" "$group" "$name" "$run" \
    "$thr" "$reqs" "$p50" "$p99" "$err" "$dt" "$us" "$uus" "$sus" "$cl" "$other" "$LOAD_RC" >>"$RAW"
  log "  run $run $name: $thr/s p50=$p50 p99=$p99 server=${us}us/req (user $uus, sys $sus) load=${cl}% other=${other}% errors=$err"
}

run_cell() {
  local cell=$1 group=$2 tool=$3 args=$4
  local idx=() pids=() ports=() i k r order
  for i in "${!ROW_NAME[@]}"; do
    [ "${ROW_GROUP[$i]}" = "$group" ] && idx+=("$i")
  done
  [ ${#idx[@]} -gt 0 ] || { log "cell $cell: no peers"; return; }
  log "cell $cell ($tool $args)"
  if [ "$group" = tls ] && [ -z "${TLS_DIR:-}" ]; then
    make_tls_assets "$OUT/tls" || { log "cell $cell: openssl could not make the certificate; skipped"; TLS_DIR=; return; }
  fi
  if [ "$group" = file ] && [ -z "${FILE_DIR:-}" ]; then
    make_file_assets "$OUT/files" || { log "cell $cell: could not write the files under $OUT/files; skipped"; FILE_DIR=; return; }
  fi
  wait_quiet "$QUIET_MAX"
  local live=()
  for i in "${idx[@]}"; do
    if start_peer "$i"; then
      if smoke "$group" "$PEER_PORT"; then
        live+=("$i") pids+=("$PEER_PID") ports+=("$PEER_PORT")
        # Once per TLS peer: what a client negotiates with it, and whether
        # it resumes (the resumed cell counts on it).
        if [ "$group" = tls ] && ! grep -q "^${ROW_NAME[$i]}	" "$TLS_INFO" 2>/dev/null; then
          local info
          info=$(tls_handshake_info "$PEER_PORT")
          printf '%s\t%s\n' "${ROW_NAME[$i]}" "${info// /	}" >>"$TLS_INFO"
          log "  ${ROW_NAME[$i]}: second handshake with the first's ticket: $info"
        fi
        continue
      fi
      log "  ${ROW_NAME[$i]}: started but did not answer the smoke test"
      stop_server "$PEER_PID"
    else
      log "  ${ROW_NAME[$i]}: failed to start"
    fi
    printf '%s\t%s\t%s\t0\t-\t-\t-\t-\t1\t-\t-\t-\t-\t-\t-\tstart-failed\n' "$cell" "$group" "${ROW_NAME[$i]}" >>"$RAW"
  done
  # Per-peer arguments: redis-benchmark's request count is sized per peer.
  local pargs=()
  for k in "${!live[@]}"; do
    if [ "$tool" = redis ]; then
      pargs[k]="$args -n $(redis_requests "${ports[$k]}" "$args")"
      log "  ${ROW_NAME[${live[$k]}]}: ${pargs[k]}"
    else
      pargs[k]=$args
    fi
  done
  for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) = 1 ]; then order=$(seq 0 $((${#live[@]} - 1))); else order=$(seq $((${#live[@]} - 1)) -1 0); fi
    for k in $order; do
      one_run "$cell" "$group" "$tool" "${pargs[k]}" "${ROW_NAME[${live[$k]}]}" "${pids[$k]}" "${ports[$k]}" "$r"
      sleep 0.05
    done
  done
  for k in "${!pids[@]}"; do
    stop_server "${pids[$k]}"
  done
}

# The idle cells: per idle count N (IDLE_N) and echo peer, the server's RSS
# before and with N idle connections (idle_conns over 127.0.0.1-4, each
# connection pinged once so the server has accepted and served it), the
# latency of 20 fresh connections echoing 64 bytes one at a time beside them,
# and a 50-connection echo load (echo_load, 64 B, DUR seconds) beside them.
# select() cannot watch descriptors past FD_SETSIZE (1024), so the select
# backend is skipped above 1000 connections with a note.
run_idle() {
  local n
  for n in $IDLE_N; do
    run_idle_n "$n"
  done
}

# idle_row NAME N ... : one line of idle.tsv ("-" for what is missing).
idle_row() {
  local IFS=$'\t'
  echo "$*" >>"$IDLE_TSV"
}

run_idle_n() {
  local nconn=$1 i f name rss0 rss1 opened alive setup w srcs lp fc fe lf
  local thr reqs p50 p99 err u0 s0 u1 s1 us uus sus
  srcs=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4
  log "cell idle_conns ($nconn idle connections; fresh echoes and a 50-connection load beside them)"
  wait_quiet "$QUIET_MAX"
  for i in "${!ROW_NAME[@]}"; do
    [ "${ROW_GROUP[$i]}" = echo ] || continue
    name=${ROW_NAME[$i]}
    if [[ "$name" == *select* ]] && [ "$nconn" -gt 1000 ]; then
      idle_row "$name" "$nconn" - - - - - - - - - - - - - - "skipped: select() cannot watch descriptors past FD_SETSIZE (1024)"
      log "  $name: skipped (select() and $nconn descriptors)"
      continue
    fi
    if ! start_peer "$i"; then
      idle_row "$name" "$nconn" - - - - - - - - - - - - - - "failed to start"
      continue
    fi
    sleep 0.3
    rss0=$(rss_kb "$PEER_PID")
    f="$OUT/idle.$nconn.$name.out"
    # Held until stopped below (the hold is only a bound).
    taskset -c "$CLIENT_CPU" timeout -k 5 $((DUR_WRK + 300)) "$BIN/benchmarks/idle_conns" --host "$BENCH_HOST" \
      --port "$PEER_PORT" --connections "$nconn" --hold $((DUR_WRK + 200)) --ping --setup-timeout 90 \
      --fresh 20 --source-addrs "$srcs" >"$f" 2>&1 </dev/null &
    lp=$!
    w=0
    while ! grep -q '^fresh' "$f" 2>/dev/null && kill -0 "$lp" 2>/dev/null && [ $w -lt 1500 ]; do
      sleep 0.1
      w=$((w + 1))
    done
    sleep 0.3
    rss1=$(rss_kb "$PEER_PID")
    # The 50-connection load beside the idle ones.
    lf="$OUT/idle.$nconn.$name.load.out"
    thr=- p50=- p99=- err=- us=- uus=- sus=-
    if kill -0 "$lp" 2>/dev/null; then
      read -r u0 s0 <<<"$(cpu_ticks_split "$PEER_PID")"
      run_load "$lf" $((DUR_WRK + 60)) "$BIN/benchmarks/echo_load" --host "$BENCH_HOST" --port "$PEER_PORT" \
        --connections 50 --size 64 --pipeline 1 --duration "$DUR"
      read -r u1 s1 <<<"$(cpu_ticks_split "$PEER_PID")"
      read -r thr reqs p50 p99 err <<<"$(parse_echo_load "$lf")"
      [ "$LOAD_RC" = 0 ] || err=$((${err/-/0} + 1))
      us=$(us_per_req "$((u1 - u0 + s1 - s0))" "$reqs")
      uus=$(us_per_req "$((u1 - u0))" "$reqs")
      sus=$(us_per_req "$((s1 - s0))" "$reqs")
    fi
    kill -TERM "$lp" 2>/dev/null
    wait "$lp"
    read -r opened alive setup <<<"$(awk '/^conns=/ {for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
      print v["opened"], v["alive"], v["setup_secs"]}' "$f")"
    read -r fc fe <<<"$(awk '/^fresh / {for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
      if (v["ok"] > 0) print v["connect_us"], v["echo_us"]; else print "- -"}' "$f")"
    idle_row "$name" "$nconn" "${opened:--}" "${alive:--}" "$rss0" "$rss1" \
      "$(awk -v a="$rss0" -v b="$rss1" -v n="${opened:-0}" 'BEGIN {if (n > 0) printf "%.0f", (b - a) * 1024 / n; else print "-"}')" \
      "${setup:--}" "${fc:--}" "${fe:--}" "$thr" "$p99" "$us" "$uus" "$sus" "$err" "-"
    log "  $name: opened=${opened:-?} alive=${alive:-?} rss ${rss0} -> ${rss1} KiB; fresh echo ${fe:-?} us; load beside: $thr msgs/s p99=$p99 us server=${us}us/msg errors=$err"
    stop_server "$PEER_PID"
  done
}

# The syscall cell: coronet's servers on each of SYSCALL_BACKENDS under a
# bounded load, their syscalls counted twice over separate runs of the same
# load: by perf stat (the raw_syscalls:sys_enter tracepoint, which costs the
# server next to nothing; this is the syscalls/request figure) and by
# strace -c -f (which slows the server, so only its breakdown by syscall is
# used). Requests are the load tool's count for the same window; the server's
# connection setup falls inside it too.
# workload|server|tool|arguments[|full]
SYS_WORKLOADS="
echo_64B_c50_pipe16|echo_server|echo_load|--connections 50 --size 64 --pipeline 16
echo_64B_c50|echo_server|echo_load|--connections 50 --size 64 --pipeline 1|full
http_wrk_c50_pipe16|http_server|wrk_pipeline|-c50
"

# sys_load TOOL ARGS PORT OUTFILE: runs the load for SYS_DUR seconds; sets
# SYS_THR and SYS_REQS.
sys_load() {
  local tool=$1 args=$2 port=$3 out=$4 thr reqs
  # shellcheck disable=SC2046 # load_cmd prints words
  run_load "$out" $((SYS_DUR_WRK + 20)) $(DUR=$SYS_DUR DUR_WRK=$SYS_DUR_WRK load_cmd "$tool" "$args" "$port")
  read -r thr reqs _ <<<"$(parse_out "$tool" "$out" "$args")"
  SYS_THR=$thr SYS_REQS=$reqs
}

run_syscalls() {
  local wl server tool args b port f pf sf sp perf_pid n reqs thr sreqs scalls top pr spr
  log "cell syscalls (backends: $SYSCALL_BACKENDS; $SYS_DUR s per run)"
  if ! command -v strace >/dev/null; then
    log "  strace not found (tools/install-deps.sh bench): no breakdown"
  fi
  local have_perf=0
  if command -v perf >/dev/null && perf stat -x, -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
    have_perf=1
  else
    log "  perf cannot count the raw_syscalls tracepoint here: counts come from strace only (slowed server)"
  fi
  while IFS='|' read -r wl server tool args only; do
    [ -n "$wl" ] || continue
    [ "$QUICK" = 1 ] && [ "${only:-}" = full ] && continue
    wait_quiet "$QUIET_MAX"
    for b in $SYSCALL_BACKENDS; do
      [ -x "$CORONET_BIN/$server" ] || { log "  $server not built"; continue; }
      pick_port
      port=$PICKED_PORT
      start_server "sys_${server}_$b" "$port" "$CORONET_BIN/$server" --port "$port" --backend "$b" || continue
      smoke "${server%%_*}" "$port" || log "  $server ($b) did not answer the smoke test"
      f="$OUT/syscalls.$wl.$b"
      reqs=- n=- pr=- thr=-
      if [ "$have_perf" = 1 ]; then
        pf="$f.perf"
        perf stat -x, -e raw_syscalls:sys_enter -p "$SERVER_PID" -o "$pf" &
        perf_pid=$!
        sleep 0.3
        sys_load "$tool" "$args" "$port" "$f.load.out"
        kill -INT "$perf_pid" 2>/dev/null
        wait "$perf_pid"
        n=$(awk -F, '/raw_syscalls:sys_enter/ {print ($1 ~ /^[0-9]+$/ ? $1 : 0)}' "$pf")
        reqs=$SYS_REQS thr=$SYS_THR
        pr=$(awk -v n="${n:-0}" -v r="$reqs" 'BEGIN {if (r + 0 > 0) printf "%.4f", n / r; else print "-"}')
      fi
      sreqs=- scalls=- spr=- top=-
      if command -v strace >/dev/null; then
        sf="$f.strace"
        strace -c -f -q -p "$SERVER_PID" -o "$sf" 2>/dev/null &
        sp=$!
        sleep 0.5
        sys_load "$tool" "$args" "$port" "$f.strace.load.out"
        kill -INT "$sp" 2>/dev/null
        wait "$sp"
        sreqs=$SYS_REQS
        # strace -c: "% time seconds usecs/call calls [errors] syscall", then "total".
        scalls=$(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { t += $4 } END { printf "%d", t }' "$sf")
        # The five most frequent, as name:calls-per-request.
        top=$(awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $4, $NF }' "$sf" | sort -rn | head -5 |
          awk -v r="$sreqs" '{ if (r + 0 > 0) printf "%s%s:%.4f", (NR > 1 ? "," : ""), $2, $1 / r }')
        top=${top:--}
        spr=$(awk -v n="$scalls" -v r="$sreqs" 'BEGIN {if (r + 0 > 0) printf "%.4f", n / r; else print "-"}')
        if [ "$have_perf" = 0 ]; then reqs=$sreqs n=$scalls pr=$spr thr=-; fi
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wl" "$b" "$reqs" "$n" "$pr" "$thr" "$sreqs" "$scalls" "$spr" "$top" >>"$SYSCALL_TSV"
      log "  $wl $b: $n syscalls / $reqs requests = $pr per request (strace: $spr; $top)"
      stop_server "$SERVER_PID"
    done
  done <<<"$SYS_WORKLOADS"
}

# The micro cell: benchmarks/micro (Google Benchmark) pinned to SERVER_CPU.
run_micro() {
  local exe=$BIN/benchmarks/micro
  if [ ! -x "$exe" ]; then
    log "cell micro: benchmarks:micro not built; skipped"
    printf 'micro\tmicro\tskipped: not built (bazel-bin/benchmarks/micro)\n' >>"$SKIPPED"
    return
  fi
  log "cell micro (Google Benchmark, min time ${MICRO_MIN_TIME} s per benchmark)"
  wait_quiet "$QUIET_MAX"
  taskset -c "$SERVER_CPU" timeout -k 5 300 "$exe" --benchmark_min_time="$MICRO_MIN_TIME" \
    --benchmark_format=console --benchmark_out="$OUT/micro.json" --benchmark_out_format=json \
    >"$OUT/micro.out" 2>&1 </dev/null || log "  micro failed (rc $?; log: $OUT/micro.out)"
}

# The profile step (PROFILE=1): http_server under valgrind's callgrind with a
# bounded pipelined wrk load (16 requests per write, 10 connections), then
# the 15 functions with the highest inclusive cost (callgrind_annotate
# --inclusive=yes) and those with the highest self cost. The epoll backend is profiled: valgrind 3.19 does not
# model io_uring's shared rings, and the user-space path above the backend is
# the same.
run_profile() {
  local port pid f=$OUT/callgrind.out
  if ! command -v valgrind >/dev/null; then
    log "profile: valgrind not found (tools/install-deps.sh bench); skipped"
    return
  fi
  [ -x "$CORONET_BIN/http_server" ] || { log "profile: http_server not built; skipped"; return; }
  log "profile: http_server (epoll) under callgrind, wrk -c10 pipelined x16 for ${PROFILE_DUR}s"
  pick_port
  port=$PICKED_PORT
  start_server profile_http "$port" valgrind --tool=callgrind --callgrind-out-file="$f" \
    "$CORONET_BIN/http_server" --port "$port" --backend epoll || { log "profile: server did not start"; return; }
  pid=$SERVER_PID
  http_smoke "$port" || log "profile: smoke request failed"
  run_load "$OUT/profile.load.out" $((PROFILE_DUR + 30)) wrk -t1 -c10 -d"${PROFILE_DUR}s" --timeout 10s \
    -s "$HERE/pipeline.lua" "http://$BENCH_HOST:$port/hello" -- 16
  read -r PROFILE_THR PROFILE_REQS _ <<<"$(parse_wrk "$OUT/profile.load.out")"
  # callgrind writes its file as the server exits: give it time before
  # stop_server (which sends SIGKILL after 3 s) cleans up.
  kill -TERM "$pid" 2>/dev/null
  local w=0
  while kill -0 "$pid" 2>/dev/null && [ $w -lt 300 ]; do
    sleep 0.1
    w=$((w + 1))
  done
  stop_server "$pid"
  if [ ! -s "$f" ]; then
    log "profile: no callgrind output ($f)"
    return
  fi
  {
    echo "requests=$PROFILE_REQS"
    echo "== inclusive"
    callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$f" 2>/dev/null
    echo "== self"
    callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null
  } >"$OUT/profile.txt"
}

# ---- go --------------------------------------------------------------------------------

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
while IFS='|' read -r cell group tool args only; do
  [ -n "$cell" ] || continue
  [[ "$cell" =~ $CELLS ]] || continue
  [ "$QUICK" = 1 ] && [ "${only:-}" = full ] && continue
  if [ "$tool" = idle ]; then
    run_idle
  elif [ "$tool" = syscalls ]; then
    run_syscalls
  elif [ "$tool" = micro ]; then
    run_micro
  else
    run_cell "$cell" "$group" "$tool" "$args"
  fi
done <<<"$CELL_TABLE"
# The TLS and file cells' files are not worth keeping.
[ -n "${TLS_DIR:-}" ] && rm -f "$TLS_DIR/www/10MiB.bin"
[ -n "${FILE_DIR:-}" ] && rm -f "$FILE_DIR"/www/*.bin
PROFILE_THR=- PROFILE_REQS=-
[ "$PROFILE" = 1 ] && run_profile
T_END=$(date +%s)

{
  echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "cpus=$(nproc)"
  echo "kernel=$(uname -sr)"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit=$(cd "$REPO" && git describe --always --dirty 2>/dev/null)"
  echo "quick=$QUICK"
  echo "dur=$DUR"
  echo "dur_wrk=$DUR_WRK"
  echo "noise_max=$NOISE_MAX"
  echo "noise_budget=$NOISE_BUDGET"
  echo "noise_spent=$NOISE_SPENT"
  echo "runs=$RUNS"
  echo "backends=$BACKENDS"
  echo "file_backends=$FILE_BACKENDS"
  echo "idle_n=$IDLE_N"
  echo "sys_dur=$SYS_DUR"
  echo "micro_min_time=$MICRO_MIN_TIME"
  echo "profile=$PROFILE"
  echo "profile_dur=$PROFILE_DUR"
  echo "profile_throughput=$PROFILE_THR"
  echo "scale_backend=$SCALE_BACKEND"
  echo "server_cpu=$SERVER_CPU"
  echo "client_cpu=$CLIENT_CPU"
  echo "loadavg_at_start=$LOADAVG"
  echo "elapsed_s=$((T_END - T_START))"
  echo "cells=$CELLS"
  echo "peers=$PEERS"
  for g in "${!REFERENCE[@]}"; do echo "reference_$g=${REFERENCE[$g]}"; done
  echo "peer_order=${ROW_NAME[*]}"
  echo "tools=wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'); $(h2load --version 2>&1 | head -1); redis-benchmark $(redis-benchmark --version 2>/dev/null | awk '{print $2}'); nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///'); $($PYTHON --version 2>&1); $(openssl version 2>&1 | awk '{print $1, $2}')"
} >"$OUT/meta.env"

SPLICE_ARG=()
[ "${SPLICE:-0}" = 1 ] && SPLICE_ARG=(--splice)
"$PYTHON" "$HERE/summarize.py" --out "$OUT" --results "$RESULTS" --plot "$PLOT" "${SPLICE_ARG[@]}" ||
  die "summarize.py failed (raw data in $OUT)"
log "done in $((T_END - T_START)) s: $RESULTS, $PLOT (raw: $OUT)"

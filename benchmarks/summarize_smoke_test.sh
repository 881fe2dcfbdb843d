#!/usr/bin/env bash
# summarize_smoke_test: the harness's parsing, without a load run. lib.sh reads
# a server's user and sys ticks apart (cpu_ticks_split) and parses a file
# cell's wrk output; summarize.py turns a made-up run (HTTP, file and TLS
# cells, raw.tsv with the user/sys columns, and one run recorded before them)
# into RESULTS.md with the Files section, the user and sys columns, the file
# goal rows and user space's share of pipelined HTTP; and --splice puts a run
# of the file cells alone into that RESULTS.md, before the TLS section and the
# TLS goal rows, then replaces it in place on a second splice, leaving the rest
# as it was; and --splice of a run of the idle cell alone replaces the idle
# section and the idle goal rows, the rest byte for byte as it was, while a
# run with the syscall cell beside it is refused. Needs python3 (the harness
# does).
set -u
cd "${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-coronet}" 2>/dev/null || true
B=benchmarks
T=${TEST_TMPDIR:-/tmp}/summarize_smoke.$$
mkdir -p "$T"
PY=$(command -v python3 || true)
passed=0 failed=0

ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
# expect NAME FILE PATTERN: FILE has a line matching the extended regex.
expect() { if grep -qE -- "$3" "$2"; then ok "$1"; else fail "$1: no line matching /$3/ in $2"; fi; }

# shellcheck source=benchmarks/lib.sh
. "$B/lib.sh"

# ---- lib.sh -----------------------------------------------------------------------

read -r u s extra <<<"$(cpu_ticks_split $$)"
if [[ "$u" =~ ^[0-9]+$ && "$s" =~ ^[0-9]+$ && -z "$extra" ]]; then
  ok "cpu_ticks_split: user and sys ticks of this shell ($u $s)"
else
  fail "cpu_ticks_split printed '$u $s $extra'"
fi

cat >"$T/wrk_file.out" <<'EOF'
Running 1s test @ http://127.0.0.1:21536/10MiB.bin
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    28.50ms   10.54ms  53.54ms   69.11%
    Req/Sec   120.20     20.61   141.00     70.00%
  Latency Distribution
     50%   26.11ms
     75%   34.17ms
     90%   44.95ms
     99%   52.53ms
  123 requests in 1.03s, 1.22GB read
Requests/sec:    118.96
Transfer/sec:      1.18GB
EOF
got=$(parse_wrk "$T/wrk_file.out")
if [ "$got" = "118.96 123 26110.0 52530.0 0" ]; then ok "parse_wrk: a 10 MiB file run"; else fail "parse_wrk: '$got'"; fi
got=$(us_per_req 7 123)
if [ "$got" = "$(awk -v hz="$CLK_TCK" 'BEGIN {printf "%.3f", 7 / hz * 1e6 / 123}')" ]; then
  ok "us_per_req: $got µs"
else
  fail "us_per_req: '$got'"
fi

# ---- summarize.py ---------------------------------------------------------------

if [ -z "$PY" ]; then
  echo "skip summarize.py: no python3"
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
fi

# meta OUT CELLS: a run's meta.env.
meta() {
  cat >"$1/meta.env" <<EOF
cpu_model=test CPU
cpus=2
kernel=Linux test
date=2026-01-02T03:04:05Z
commit=abc1234
quick=1
dur=0.5
dur_wrk=1
noise_max=25
noise_budget=30
noise_spent=0
runs=3
backends=io_uring
file_backends=io_uring epoll
server_cpu=0
client_cpu=1
scale_backend=io_uring
loadavg_at_start=0.1 0.1 0.1
elapsed_s=60
cells=$2
peers=.
profile=0
reference_http=nginx
reference_file=nginx_file
reference_tls=nginx_tls
peer_order=nginx asio_http coronet_http_io_uring nginx_file coronet_file_io_uring coronet_file_epoll nginx_tls coronet_https_io_uring
tools=wrk test
EOF
}

HDR='cell	group	peer	run	throughput	requests	p50_us	p99_us	errors	server_ticks	server_us_per_req	server_user_us_per_req	server_sys_us_per_req	load_cpu_pct	other_cpu_pct	rc'
# row CELL GROUP PEER RUN THROUGHPUT US USER SYS: one raw.tsv line.
row() { printf '%s\t%s\t%s\t%s\t%s\t1000\t500\t900\t0\t10\t%s\t%s\t%s\t50\t5\t0\n' "$@"; }

# file_rows F14 F64 F10: the file cells' rows, coronet io_uring's µs/req scaled by F*.
file_rows() {
  local r
  for r in 1 2 3; do
    row file_1KiB_c50 file nginx_file $r 60000 13.0 2.0 11.0
    row file_1KiB_c50 file coronet_file_io_uring $r 50000 "$1" 3.0 9.0
    row file_1KiB_c50 file coronet_file_epoll $r 48000 13.5 3.5 10.0
    row file_64KiB_c50 file nginx_file $r 20000 25.0 4.0 21.0
    row file_64KiB_c50 file coronet_file_io_uring $r 9000 "$2" 8.0 80.0
    row file_64KiB_c50 file coronet_file_epoll $r 19000 30.0 5.0 25.0
    row file_10MiB_c4 file nginx_file $r 120 1900 80 1820
    row file_10MiB_c4 file coronet_file_io_uring $r 110 "$3" 0 1700
    row file_10MiB_c4 file coronet_file_epoll $r 115 1800 10 1790
  done
}

full=$T/full
mkdir -p "$full"
meta "$full" .
{
  echo "$HDR"
  for r in 1 2 3; do
    row http_wrk_c50_pipe16 http nginx $r 900000 1.20 0.40 0.80
    row http_wrk_c50_pipe16 http asio_http $r 1000000 0.96 0.30 0.66
    row http_wrk_c50_pipe16 http coronet_http_io_uring $r 950000 0.90 0.30 0.60
  done
  # A run recorded before run.sh read user and sys apart: no such columns.
  printf 'http_wrk_c50\thttp\tnginx\t1\t70000\t70000\t600\t900\t0\t80\t11.3\n'
  printf 'http_wrk_c50\thttp\tcoronet_http_io_uring\t1\t80000\t80000\t500\t800\t0\t80\t10.0\n'
  file_rows 12.0 90.0 1700
  # A run not done: the server had died.
  printf 'file_10MiB_c4\tfile\tcoronet_file_epoll\t4\t-\t-\t-\t-\t1\t-\t-\t-\t-\t-\t-\tdead\n'
  for r in 1 2 3; do
    row tls_wrk_c50 tls nginx_tls $r 20000 14.0 5.0 9.0
    row tls_wrk_c50 tls coronet_https_io_uring $r 17000 11.0 4.0 7.0
    row echo_64B_c50 echo epoll_echo $r 100000 10.0 2.0 8.0
    row echo_64B_c50 echo coronet_echo_io_uring $r 120000 8.0 2.0 6.0
  done
} >"$full/raw.tsv"
IDLE_HDR='peer	conns	opened	alive	rss_before_kb	rss_with_conns_kb	bytes_per_conn	setup_secs	fresh_connect_us	fresh_echo_us	load_msgs_per_s	load_p99_us	load_us_per_msg	load_user_us_per_msg	load_sys_us_per_msg	load_errors	note'
# idle_row PEER CONNS BYTES_PER_CONN LOAD_MSGS_PER_S: one idle.tsv line.
idle_row() { printf '%s\t%s\t%s\t%s\t3000\t16000\t%s\t0.5\t15.0\t20.0\t%s\t600\t6.00\t1.00\t5.00\t0\t-\n' "$1" "$2" "$2" "$2" "$3" "$4"; }
{
  echo "$IDLE_HDR"
  idle_row epoll_echo 10000 48 90000
  idle_row coronet_echo_io_uring 10000 1334 132000
  idle_row coronet_echo_io_uring 19000 1312 60000
} >"$full/idle.tsv"
R=$T/RESULTS.md
if "$PY" "$B/summarize.py" --out "$full" --results "$R" --plot "$T/results.png" >"$T/full.log" 2>&1; then
  ok "summarize.py: a full run"
else
  fail "summarize.py: a full run: $(tail -3 "$T/full.log")"
fi
expect "the Files section" "$R" '^## Files: static files against nginx'
expect "a file cell's table" "$R" '^### file_64KiB_c50$'
expect "the user and sys columns" "$R" '^\| peer \| throughput /s \| p50 µs \| p99 µs \| server µs/req \| user µs/req \| sys µs/req \|'
expect "a file cell's user and sys figures" "$R" '^\| coronet_file_io_uring \| 9,000 \| 500 \| 900 \| 90\.0 \| 8\.00 \| 80\.0 \|'
expect "no user/sys where the run did not record them" "$R" '^\| coronet_http_io_uring \| 80,000 \| 500 \| 800 \| 10\.0 \| - \| - \|'
expect "file goal 1 KiB met" "$R" '^\| file 1 KiB, wrk -c50 \| ≤ nginx µs/req \| 12\.0 µs/req \(0\.92× nginx\), 50,000/s \| nginx 13\.0 µs/req, 60,000/s; epoll 13\.5 µs/req, 48,000/s \| yes \|$'
expect "file goal 64 KiB not met" "$R" '^\| file 64 KiB, wrk -c50 \| .*\| \*\*no\*\* \|$'
expect "file goal 10 MiB in µs/MiB" "$R" '^\| file 10 MiB, wrk -c4 \| ≤ nginx µs/req \| 1,700 µs/file = 170 µs/MiB \(0\.89× nginx\)'
expect "a run lost to a dead server" "$R" '^\| coronet_file_epoll \| 115 \| .*\| 1 \(1 run lost: server dead\) \|$'
expect "the TLS goal row" "$R" '^\| TLS keep-alive /hello, wrk -c50 \| '
expect "an idle goal row against echo_64B_c50" "$R" '^\| idle, 10000 conns \| ≤ 768 B/conn; no throughput loss beside them \| 1,334 B/conn; load 1\.10× alone \| \(see the idle table\) \| \*\*no\*\* \|$'
expect "user space's share of pipelined HTTP" "$R" "^\*\*User space's share of the server's CPU\*\* \(http_wrk_c50_pipe16.*\`coronet_http_io_uring\` 0\.30 \+ 0\.60 µs/req \(33 % user\)"
# shellcheck disable=SC2016 # backquotes are Markdown here
expect "a file loss listed" "$R" '^- file_64KiB_c50: `coronet_file_io_uring` server µs/req 90\.0 vs `nginx_file` 25\.0'

# The same RESULTS.md without its Files section and file goal rows, as a full
# run before the file cells wrote it; then a run of the file cells alone.
"$PY" - "$R" "$T/before.md" <<'EOF'
import sys
lines = open(sys.argv[1]).read().split("\n")
out, skip = [], False
for ln in lines:
    if ln.startswith("## "):
        skip = ln.startswith("## Files")
    if not skip and not ln.startswith("| file "):
        out.append(ln)
open(sys.argv[2], "w").write("\n".join(out))
EOF
cp "$T/before.md" "$T/spliced.md"
one=$T/file1
mkdir -p "$one"
meta "$one" '^file_'
{
  echo "$HDR"
  file_rows 14.0 95.0 2100
} >"$one/raw.tsv"
sed -i 's/^date=.*/date=2026-01-05T06:07:08Z/' "$one/meta.env"
if "$PY" "$B/summarize.py" --out "$one" --results "$T/spliced.md" --plot "$T/unused.png" --splice >"$T/splice1.log" 2>&1; then
  ok "summarize.py --splice: a run of the file cells alone"
else
  fail "summarize.py --splice: $(tail -3 "$T/splice1.log")"
fi
order=$(grep -nE '^## (HTTP|Files|TLS)' "$T/spliced.md" | cut -d: -f2- | cut -c1-8 | tr '\n' ',')
if [ "$order" = "## HTTP ,## Files,## TLS: ," ]; then ok "splice: Files goes in between HTTP and TLS"; else fail "splice: sections in the order '$order'"; fi
rows=$(sed -n '/^## Summary/,/^## [^S]/p' "$T/spliced.md" | grep -E '^\| (file|TLS) ' | cut -c1-12 | tr '\n' ',')
if [ "$rows" = "| file 1 KiB,| file 64 Ki,| file 10 Mi,| TLS keep-a," ]; then
  ok "splice: the file goal rows go in before the TLS ones"
else
  fail "splice: goal rows '$rows'"
fi
expect "splice: the goal rows name their run" "$T/spliced.md" '^\| file 1 KiB, wrk -c50 \(file-only run 2026-01-05 06:07Z\) \| ≤ nginx µs/req \| 14\.0 µs/req'
expect "splice: the section says where its figures come from" "$T/spliced.md" '^These figures come from a run of the file cells alone'
if [ -z "$(diff <(grep -vE '^\| file |^These figures|^Goal: |^Where coronet loses here' "$T/spliced.md" | sed '/^## Files/,/^## TLS/{/^## TLS/!d}') "$T/before.md")" ]; then
  ok "splice: the rest of RESULTS.md left as it was"
else
  fail "splice: changed outside the Files section and file goal rows"
fi
# A second run of the file cells replaces the first in place.
sed -i 's/^date=.*/date=2026-01-06T06:07:08Z/' "$one/meta.env"
{
  echo "$HDR"
  file_rows 11.0 80.0 1500
} >"$one/raw.tsv"
"$PY" "$B/summarize.py" --out "$one" --results "$T/spliced.md" --plot "$T/unused.png" --splice >"$T/splice2.log" 2>&1
n_sec=$(grep -c '^## Files' "$T/spliced.md")
n_rows=$(grep -c '^| file ' "$T/spliced.md")
if [ "$n_sec" = 1 ] && [ "$n_rows" = 6 ] && grep -q '^| file 1 KiB, wrk -c50 (file-only run 2026-01-06 06:07Z) | ≤ nginx µs/req | 11.0 ' "$T/spliced.md"; then
  ok "splice: a second file run replaces the first (1 section, 3 goal rows + 3 in its own table)"
else
  fail "splice: after a second run: $n_sec Files sections, $n_rows file goal rows"
fi
# A run with cells --splice cannot place is refused.
if "$PY" "$B/summarize.py" --out "$full" --results "$T/refused.md" --plot "$T/unused.png" --splice >/dev/null 2>&1; then
  fail "splice: a run with HTTP cells was accepted"
else
  ok "splice: a run with cells of other groups is refused"
fi

# A run of the idle cell alone (`SPLICE=1 CELLS=idle`): no raw.tsv rows, only
# idle.tsv. Its section replaces "## Idle connections" and its rows the goals
# table's "| idle, " rows; the rest of the file is byte for byte as it was.
cp "$R" "$T/idle_before.md"
cp "$R" "$T/idle_spliced.md"
idl=$T/idle1
mkdir -p "$idl"
meta "$idl" idle
sed -i 's/^date=.*/date=2026-01-07T08:09:10Z/' "$idl/meta.env"
echo "idle_n=2000" >>"$idl/meta.env"
echo "$HDR" >"$idl/raw.tsv"
{
  echo "$IDLE_HDR"
  idle_row epoll_echo 2000 52 95000
  idle_row coronet_echo_io_uring 2000 400 140000
  printf 'coronet_echo_select\t2000\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tskipped: select() cannot watch descriptors past FD_SETSIZE (1024)\n'
} >"$idl/idle.tsv"
if "$PY" "$B/summarize.py" --out "$idl" --results "$T/idle_spliced.md" --plot "$T/unused.png" --splice >"$T/splice_idle.log" 2>&1; then
  ok "summarize.py --splice: a run of the idle cell alone"
else
  fail "summarize.py --splice (idle): $(tail -3 "$T/splice_idle.log")"
fi
# idle_sec FILE: the idle section; rest FILE: all but it and the idle goal rows.
# (The idle section runs up to the next "## " heading, the section after it kept.)
idle_sec() { awk '/^## / {in_idle = /^## Idle connections/} in_idle' "$1"; }
rest() { grep -v '^| idle, ' "$1" | awk '/^## / {in_idle = /^## Idle connections/} !in_idle'; }
n_new=$(idle_sec "$T/idle_spliced.md" | grep -cE '^\| [a-z_]+ \| 2000 \|')
n_old=$(idle_sec "$T/idle_spliced.md" | grep -cE '^\| [a-z_]+ \| (10000|19000) \|')
if [ "$n_new" = 3 ] && [ "$n_old" = 0 ] && [ "$(grep -c '^## Idle connections' "$T/idle_spliced.md")" = 1 ]; then
  ok "idle splice: one idle section, with the new run's rows only"
else
  fail "idle splice: the section has $n_new new rows and $n_old old ones"
fi
# shellcheck disable=SC2016 # backquotes are Markdown here
expect "idle splice: the section says where its figures come from" "$T/idle_spliced.md" \
  '^These figures come from a run of the idle cell alone \(`SPLICE=1 QUICK=1 CELLS=.idle. benchmarks/run.sh`\), 2026-01-07T08:09:10Z, commit abc1234, idle counts 2000,'
expect "idle splice: × alone is — without echo_64B_c50" "$T/idle_spliced.md" \
  '^\| coronet_echo_io_uring \| 2000 \| 2000 \| 2000 \| 3000 \| 16000 \| 400 \| 15\.0 \| 20\.0 \| 140,000 \| — \| 600 \|'
rows=$(grep -E '^\| idle, ' "$T/idle_spliced.md" | tr '\n' '#')
want='| idle, 2000 conns (idle-only run 2026-01-07 08:09Z) | ≤ 768 B/conn; no throughput loss beside them | 400 B/conn; load — × alone (no echo_64B_c50 in this run) | (see the idle table) | - |#'
if [ "$rows" = "$want" ]; then ok "idle splice: the idle goal rows replaced, marked as from the idle-only run"; else fail "idle splice: idle goal rows '$rows'"; fi
n_before=$(grep -n '^| idle, ' "$T/idle_before.md" | head -1 | cut -d: -f1)
n_after=$(grep -n '^| idle, ' "$T/idle_spliced.md" | head -1 | cut -d: -f1)
if [ -n "$n_before" ] && [ "$n_before" = "$n_after" ]; then ok "idle splice: the goal rows stay where they were"; else fail "idle splice: goal rows at line $n_after, were at $n_before"; fi
if cmp -s <(rest "$T/idle_before.md") <(rest "$T/idle_spliced.md"); then
  ok "idle splice: the rest of RESULTS.md byte for byte as it was"
else
  fail "idle splice: changed outside the idle section and goal rows: $(diff <(rest "$T/idle_before.md") <(rest "$T/idle_spliced.md") | head -5)"
fi
# A second idle run replaces the first in place.
sed -i 's/^date=.*/date=2026-01-08T08:09:10Z/' "$idl/meta.env"
"$PY" "$B/summarize.py" --out "$idl" --results "$T/idle_spliced.md" --plot "$T/unused.png" --splice >"$T/splice_idle2.log" 2>&1
if [ "$(grep -c '^## Idle connections' "$T/idle_spliced.md")" = 1 ] && [ "$(grep -c '^| idle, ' "$T/idle_spliced.md")" = 1 ] &&
  grep -q '^| idle, 2000 conns (idle-only run 2026-01-08 08:09Z) |' "$T/idle_spliced.md" &&
  cmp -s <(rest "$T/idle_before.md") <(rest "$T/idle_spliced.md"); then
  ok "idle splice: a second idle run replaces the first, the rest still as it was"
else
  fail "idle splice: after a second run"
fi
# The idle cell beside the syscall cell (which --splice cannot place) is refused, RESULTS.md untouched.
sys=$T/idle_sys
mkdir -p "$sys"
cp "$idl/meta.env" "$idl/raw.tsv" "$idl/idle.tsv" "$sys/"
{
  printf 'workload\tbackend\trequests\tsyscalls\tper_req\tthroughput\tstrace_requests\tstrace_syscalls\tstrace_per_req\ttop\n'
  printf 'echo_64B_c50_pipe16\tio_uring\t1000\t98\t0.098\t100000\t-\t-\t-\t-\n'
} >"$sys/syscalls.tsv"
cp "$R" "$T/idle_refused.md"
if "$PY" "$B/summarize.py" --out "$sys" --results "$T/idle_refused.md" --plot "$T/unused.png" --splice >"$T/refused_sys.log" 2>&1; then
  fail "splice: a run with the syscall cell was accepted"
elif grep -q "cannot splice: \['syscalls'\]" "$T/refused_sys.log" && cmp -s "$R" "$T/idle_refused.md"; then
  ok "splice: a run with the idle and syscall cells is refused, RESULTS.md untouched"
else
  fail "splice: refusal of the syscall cell: $(tail -2 "$T/refused_sys.log")"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

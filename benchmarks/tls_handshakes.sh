#!/usr/bin/env bash
# tls_handshakes.sh HOST:PORT SECONDS PARALLEL PATH: full TLS handshakes for
# the tls_full_handshake cell. PARALLEL `openssl s_time -new` clients, each
# opening one connection after another for SECONDS, every one with a new
# session (no resumption: s_time -new offers no ticket; checked against a
# server that logs SSL_session_reused), sending "GET PATH HTTP/1.0" and
# reading the answer to its end. wrk cannot do this cell: it resumes the
# session on every reconnection. Prints one line,
#   handshakes=N seconds=WALL per_s=N/WALL errors=E bytes_per_conn=B
# where E counts clients that failed or read nothing back.
set -u
[ $# = 4 ] || { echo "usage: $0 HOST:PORT SECONDS PARALLEL PATH" >&2; exit 2; }
target=$1 secs=$2 par=$3 path=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s.%N)
pids=()
for i in $(seq 1 "$par"); do
  openssl s_time -connect "$target" -new -www "$path" -time "$secs" >"$tmp/$i.out" 2>&1 </dev/null &
  pids+=($!)
done
errors=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}" || ! grep -q ' connections in .* real seconds' "$tmp/$((i + 1)).out"; then
    errors=$((errors + 1))
  fi
done
t1=$(date +%s.%N)
# s_time: "N connections in S real seconds, B bytes read per connection".
cat "$tmp"/*.out | awk -v t0="$t0" -v t1="$t1" -v e="$errors" '
  / connections in .* real seconds/ { n += $1; b += $(NF - 4); runs++ }
  END {
    w = t1 - t0
    printf "handshakes=%d seconds=%.3f per_s=%.1f errors=%d bytes_per_conn=%.0f\n", n, w, (w > 0 ? n / w : 0), e, (runs ? b / runs : 0)
    if (n == 0 || b == 0) exit 1 }'

#!/usr/bin/env bash
# peers_smoke_test: the benchmark peers and load tools work end to end, in a
# fraction of a second each: every echo peer is loaded by echo_load (which
# checks every echoed byte) and idle_conns, the asynchat HTTP peer answers two
# pipelined requests. Peers whose runtime is missing (io_uring disabled,
# Python without asyncore) are skipped with a note. Loopback only.
set -u
cd "${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-coronet}" 2>/dev/null || true
B=benchmarks
PY=$(command -v python3 || true)
passed=0 failed=0 skipped=0
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT

# start NAME CMD... : starts a server on a free port (PORT), retrying on a
# port someone else took meanwhile.
start() {
  local name=$1
  shift
  for _ in 1 2 3 4 5; do
    PORT=$((21000 + RANDOM % 11000))
    "$@" --port "$PORT" >"${TEST_TMPDIR:-/tmp}/$name.log" 2>&1 &
    SPID=$!
    for _ in $(seq 1 100); do
      kill -0 "$SPID" 2>/dev/null || break
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        pids+=("$SPID")
        return 0
      fi
      sleep 0.05
    done
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    grep -q "Address already in use" "${TEST_TMPDIR:-/tmp}/$name.log" || break
  done
  return 1
}

stop() {
  kill "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
}

check() { # NAME CMD...: run CMD, count it
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    echo "ok   $name: $out"
    passed=$((passed + 1))
  else
    echo "FAIL $name: $out"
    failed=$((failed + 1))
  fi
}

echo_peer() { # NAME CMD...
  local name=$1
  shift
  if ! start "$name" "$@"; then
    if grep -qiE "io_uring|Operation not permitted|Function not implemented" "${TEST_TMPDIR:-/tmp}/$name.log"; then
      echo "skip $name: $(head -1 "${TEST_TMPDIR:-/tmp}/$name.log")"
      skipped=$((skipped + 1))
      return
    fi
    echo "FAIL $name: did not start: $(head -3 "${TEST_TMPDIR:-/tmp}/$name.log")"
    failed=$((failed + 1))
    return
  fi
  check "$name echo_load 64B" "$B/echo_load" --host 127.0.0.1 --port "$PORT" --connections 4 --size 64 --pipeline 1 --duration 0.3
  check "$name echo_load 100000B x4" "$B/echo_load" --host 127.0.0.1 --port "$PORT" --connections 3 --size 100000 --pipeline 4 --duration 0.3
  check "$name idle_conns" "$B/idle_conns" --host 127.0.0.1 --port "$PORT" --connections 200 --hold 0.2 --ping \
    --fresh 3 --source-addrs 127.0.0.1,127.0.0.2
  stop
}

echo_peer epoll_echo "$B/epoll_echo"
echo_peer uring_echo "$B/uring_echo"
if [ -n "$PY" ] && "$PY" -c 'import warnings; warnings.simplefilter("ignore"); import asyncore, asynchat' 2>/dev/null; then
  echo_peer asyncore_echo "$PY" "$B/peers/asyncore_echo.py"
  if start asynchat_http "$PY" "$B/peers/asynchat_http.py"; then
    two_requests() {
      exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
      printf 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
      local resp n
      resp=$(timeout 5 cat <&3)
      exec 3<&-
      n=$(grep -o 'Hello, world!' <<<"$resp" | wc -l)
      [ "$n" = 2 ] && grep -q 'Content-Length: 13' <<<"$resp" && echo "2 pipelined responses"
    }
    check "asynchat_http pipelined GET /hello" two_requests
    stop
  else
    echo "FAIL asynchat_http: did not start"
    failed=$((failed + 1))
  fi
else
  echo "skip asyncore_echo, asynchat_http: no python3 with asyncore/asynchat"
  skipped=$((skipped + 2))
fi

# The tools refuse anything but loopback.
check "echo_load refuses a non-loopback host" bash -c \
  "! $B/echo_load --host 192.0.2.1 --port 9 --connections 1 --size 1 --pipeline 1 --duration 0.1 2>/dev/null"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

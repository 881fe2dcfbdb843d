#!/usr/bin/env bash
# peers_smoke_test: the benchmark peers and load tools work end to end, in a
# fraction of a second each: every echo peer is loaded by echo_load (which
# checks every echoed byte) and idle_conns, the asynchat HTTP peer answers two
# pipelined requests, nginx in TLS mode (peers/nginx_tls.conf, run.sh's TLS
# peer) serves /hello and a file over HTTPS with a certificate made here,
# tls_handshakes.sh counts full handshakes against it, and nginx as the file
# cells run it (peers/nginx_file.conf: sendfile, open_file_cache) serves
# their three files byte for byte. Peers whose runtime is
# missing (io_uring disabled, Python without asyncore, no nginx or openssl)
# are skipped with a note. Loopback only.
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

# nginx in TLS mode, as run.sh's tls cells start it (lib.sh's make_tls_assets
# and prep_nginx_tls, with a 1 MiB file instead of 10).
tls_peer() {
  local d=${TEST_TMPDIR:-/tmp}/nginx_tls.$$ np ok=0
  mkdir -p "$d/www" "$d/prefix"
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -keyout "$d/key.pem" \
    -out "$d/cert.pem" -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >"$d/openssl.log" 2>&1; then
    echo "FAIL nginx_tls: openssl could not make a certificate: $(tail -1 "$d/openssl.log")"
    failed=$((failed + 1))
    return
  fi
  chmod 755 "$d" "$d/www"
  head -c 1048576 /dev/urandom >"$d/www/10MiB.bin"
  chmod 644 "$d/www/10MiB.bin"
  for _ in 1 2 3 4 5; do
    PORT=$((21000 + RANDOM % 11000))
    sed -e "s|__PORT__|$PORT|" -e "s|__CERT__|$d/cert.pem|" -e "s|__KEY__|$d/key.pem|" -e "s|__ROOT__|$d/www|" \
      "$B/peers/nginx_tls.conf" >"$d/prefix/nginx.conf"
    # As root nginx hands its temp directories to "nobody", whom the test
    # sandbox's user namespace does not map (chown: EINVAL): keep root.
    [ "$(id -u)" = 0 ] && echo 'user root;' >>"$d/prefix/nginx.conf"
    /usr/sbin/nginx -p "$d/prefix/" -c "$d/prefix/nginx.conf" -e stderr >"$d/nginx.log" 2>&1 &
    SPID=$!
    for _ in $(seq 1 100); do
      kill -0 "$SPID" 2>/dev/null || break
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        ok=1
        break
      fi
      sleep 0.05
    done
    [ $ok = 1 ] && break
    stop
    grep -q "Address already in use" "$d/nginx.log" || break
  done
  if [ $ok != 1 ]; then
    echo "FAIL nginx_tls: did not start: $(head -3 "$d/nginx.log")"
    failed=$((failed + 1))
    return
  fi
  pids+=("$SPID")
  hello() { [ "$(curl -s --max-time 5 --cacert "$d/cert.pem" "https://127.0.0.1:$PORT/hello")" = "Hello, world!" ] && echo "Hello, world!"; }
  file() {
    np=$(curl -s --max-time 10 --cacert "$d/cert.pem" "https://127.0.0.1:$PORT/10MiB.bin" | wc -c)
    [ "$np" = 1048576 ] && echo "$np bytes"
  }
  check "nginx_tls GET /hello over TLS" hello
  check "nginx_tls GET a file over TLS" file
  check "nginx_tls tls_handshakes.sh" "$B/tls_handshakes.sh" "127.0.0.1:$PORT" 1 1 /hello
  stop
}
if [ -x /usr/sbin/nginx ] && command -v openssl >/dev/null && command -v curl >/dev/null; then
  tls_peer
else
  echo "skip nginx_tls: no /usr/sbin/nginx, openssl or curl"
  skipped=$((skipped + 1))
fi

# nginx as the file cells run it (lib.sh's make_file_assets and
# prep_nginx_file): the three files, each compared byte for byte, twice (the
# second from open_file_cache).
file_peer() {
  local d=${TEST_TMPDIR:-/tmp}/nginx_file.$$ ok=0 f
  mkdir -p "$d/www" "$d/prefix"
  chmod 755 "$d" "$d/www"
  for f in 1KiB:1024 64KiB:65536 10MiB:10485760; do
    head -c "${f#*:}" /dev/urandom >"$d/www/${f%%:*}.bin"
  done
  chmod 644 "$d"/www/*.bin
  for _ in 1 2 3 4 5; do
    PORT=$((21000 + RANDOM % 11000))
    sed -e "s|__PORT__|$PORT|" -e "s|__ROOT__|$d/www|" "$B/peers/nginx_file.conf" >"$d/prefix/nginx.conf"
    [ "$(id -u)" = 0 ] && echo 'user root;' >>"$d/prefix/nginx.conf" # as in tls_peer
    /usr/sbin/nginx -p "$d/prefix/" -c "$d/prefix/nginx.conf" -e stderr >"$d/nginx.log" 2>&1 &
    SPID=$!
    for _ in $(seq 1 100); do
      kill -0 "$SPID" 2>/dev/null || break
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        ok=1
        break
      fi
      sleep 0.05
    done
    [ $ok = 1 ] && break
    stop
    grep -q "Address already in use" "$d/nginx.log" || break
  done
  if [ $ok != 1 ]; then
    echo "FAIL nginx_file: did not start: $(head -3 "$d/nginx.log")"
    failed=$((failed + 1))
    return
  fi
  pids+=("$SPID")
  files() {
    local f
    for f in 1KiB 64KiB 10MiB 1KiB 64KiB 10MiB; do
      curl -s --max-time 10 "http://127.0.0.1:$PORT/$f.bin" | cmp -s - "$d/www/$f.bin" || { echo "$f.bin differs"; return 1; }
    done
    echo "3 files, twice each, byte for byte"
  }
  check "nginx_file GET the file cells' files" files
  stop
  rm -f "$d"/www/*.bin
}
if [ -x /usr/sbin/nginx ] && command -v curl >/dev/null; then
  file_peer
else
  echo "skip nginx_file: no /usr/sbin/nginx or curl"
  skipped=$((skipped + 1))
fi

# The tools refuse anything but loopback.
check "echo_load refuses a non-loopback host" bash -c \
  "! $B/echo_load --host 192.0.2.1 --port 9 --connections 1 --size 1 --pipeline 1 --duration 0.1 2>/dev/null"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

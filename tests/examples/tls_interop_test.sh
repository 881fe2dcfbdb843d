#!/usr/bin/env bash
# tests/examples/tls_interop_test.sh: the servers' TLS with real clients, on every backend.
#
# Certificates are made here with the openssl command (a CA, and a certificate it signed for
# localhost and 127.0.0.1); no key is committed. On io_uring, epoll and select:
#   http_server --tls-cert --tls-key: curl --cacert (GET, keep-alive: two URLs on one connection,
#     pipelined requests in one write); openssl s_client (SNI, ALPN http/1.1, forced TLS 1.2 and
#     1.3, resumption with -sess_out/-sess_in showing "Reused"); Python's ssl module; wrk over
#     https; hostile input (tls_bad_input.py: plaintext, random bytes, a cut ClientHello, a reset
#     mid-handshake, a 16 KiB record one byte at a time, 1,000 stalled handshakes), each ending
#     in a logged error and a close while the server keeps serving; SIGTERM exits 0.
#   echo_server --tls-cert --tls-key: 1 MiB through Python's ssl, echoed byte for byte.
#   http_client https://: against http_server, nginx in TLS mode and Python's http.server
#     wrapped in ssl (with --cacert); it refuses an untrusted certificate and a certificate for
#     another name with a clear error and a non-zero exit; --insecure accepts them.
# Only the servers started here are signalled, by PID; every wait and load run is bounded.
set -euo pipefail

bin="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-}/examples"
here="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-}/tests/examples"
[ -x "$bin/echo_server" ] || bin=bazel-bin/examples
[ -f "$here/tls_bad_input.py" ] || here=tests/examples
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/tls_interop.XXXXXX")"
pid=
trap 'cleanup' EXIT

failures=0
fail() { echo "FAIL [$backend]: $*" >&2; failures=$((failures + 1)); }

for tool in curl openssl python3 wrk nginx; do
    command -v "$tool" >/dev/null || { echo "$tool not found: install it (tools/install-deps.sh test)" >&2; exit 1; }
done

# A CA and a server certificate it signed (ECDSA P-256).
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 -subj /CN=coronet-test-ca 2>/dev/null
openssl req "${ec[@]}" -keyout "$work/key.pem" -out "$work/cert.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/cert.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/cert.pem" -days 2 -extfile "$work/ext.cnf" 2>/dev/null
tls=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
# Another certificate from the same CA, for a name no test connects to.
openssl req "${ec[@]}" -keyout "$work/other.key" -out "$work/other.csr" -subj /CN=other.test 2>/dev/null
printf 'subjectAltName=DNS:other.test\n' >"$work/other.cnf"
openssl x509 -req -in "$work/other.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/other.pem" -days 2 -extfile "$work/other.cnf" 2>/dev/null

# start NAME ARGS...: starts the server on port 0, sets $pid and $port (from its start line).
start() {
    local name=$1
    shift
    : >"$work/out"
    : >"$work/err"
    "$bin/$name" --port 0 --backend "$backend" "$@" >"$work/out" 2>"$work/err" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/out" | head -1)
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    fail "$name $*: no start line in 10 s; stderr: $(cat "$work/err")"
    return 1
}

# free_port: a TCP port nobody listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_peer NAME CMD...: a peer server in the background; waits until its port ($peer_port) answers.
peer_pids=()
start_peer() {
    local name=$1
    shift
    "$@" >"$work/$name.out" 2>&1 &
    peer_pids+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$peer_port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "FAIL: $name did not start: $(cat "$work/$name.out")" >&2
    failures=$((failures + 1))
}
stop_peers() { for p in "${peer_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; peer_pids=(); }
cleanup() { stop_peers; if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }

# stop NAME: SIGTERM, and exit 0 within 10 s.
stop() {
    local name=$1 status=0
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" || status=$?
    pid=
    [ "$status" = 0 ] || fail "$name: exit status $status after SIGTERM; stderr: $(tail -5 "$work/err")"
}

mkdir -p "$work/root"
printf 'tls page\n' >"$work/root/page.txt"
head -c 300000 /dev/urandom | base64 >"$work/root/big.txt"  # ~400 KiB: many records

# Stays connected for a moment: TLS 1.3 session tickets come after the handshake.
s_client() { sleep 0.5 | timeout 20 openssl s_client -connect "127.0.0.1:$port" -CAfile "$work/ca.pem" "$@" 2>&1; }

for backend in io_uring epoll select; do
    if ! start http_server --root "$work/root" --idle-timeout 3 "${tls[@]}"; then continue; fi
    grep -q "https://127.0.0.1:$port/" "$work/out" || fail "start line does not say https: $(cat "$work/out")"
    url="https://localhost:$port"
    curl_=(curl -sS --max-time 20 --cacert "$work/ca.pem")

    # curl: a file, a large file, keep-alive (the second URL reuses the connection).
    got=$("${curl_[@]}" "$url/page.txt") || true
    [ "$got" = "tls page" ] || fail "curl /page.txt gave '$got'"
    "${curl_[@]}" "$url/big.txt" -o "$work/big.got" || true
    cmp -s "$work/root/big.txt" "$work/big.got" || fail "curl /big.txt: the body differs"
    connects=$("${curl_[@]}" "$url/page.txt" "$url/page.txt" -o /dev/null -o /dev/null -w '%{num_connects} ') || true
    [ "$connects" = "1 0 " ] || fail "keep-alive: connections opened per request '$connects', expected '1 0 '"

    # Pipelined: three requests in one write, three responses in order.
    reqs='GET /page.txt HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n\r\nGET /page.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
    got=$( (printf "$reqs"; sleep 2) | timeout 20 openssl s_client -quiet -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$work/ca.pem" 2>/dev/null | grep -o 'HTTP/1.1 200' | wc -l) || true
    [ "$got" = 3 ] || fail "pipelined: $got responses of 3"

    # openssl s_client: SNI and ALPN, TLS 1.2 and 1.3, resumption.
    out=$(s_client -servername localhost -alpn http/1.1) || true
    grep -q 'ALPN protocol: http/1.1' <<<"$out" || fail "s_client: no ALPN http/1.1"
    grep -q 'Verify return code: 0 (ok)' <<<"$out" || fail "s_client: verification failed"
    for v in 1_2 1_3; do
        out=$(s_client -servername localhost "-tls$v") || true
        grep -q "Protocol *: TLSv${v/_/.}" <<<"$out" || fail "s_client -tls$v: $(grep -m1 Protocol <<<"$out")"
        rm -f "$work/sess"
        s_client -servername localhost "-tls$v" -sess_out "$work/sess" >/dev/null || true
        out=$(s_client -servername localhost "-tls$v" -sess_in "$work/sess") || true
        grep -q '^Reused' <<<"$out" || fail "s_client -tls$v: the session was not resumed"
    done

    # Python's ssl module.
    got=$(timeout 20 python3 -c '
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1])
print(urllib.request.urlopen(sys.argv[2], context=ctx).read().decode().strip())' "$work/ca.pem" "$url/page.txt") || true
    [ "$got" = "tls page" ] || fail "python ssl: got '$got'"

    # wrk over https, 2 s: every response a 200, no socket errors.
    out=$(timeout 20 wrk -t1 -c8 -d2s "$url/hello" 2>&1) || true
    requests=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' <<<"$out")
    [ "${requests:-0}" -gt 100 ] || fail "wrk: too few requests: $out"
    ! grep -q -E 'Socket errors|Non-2xx' <<<"$out" || fail "wrk: errors: $out"

    # Hostile input: each case is closed and logged, and the server goes on serving.
    if ! timeout 120 python3 "$here/tls_bad_input.py" "$port" "$work/ca.pem" "$pid"; then
        fail "bad input (above)"
    fi
    grep -q -E 'error.*(tls|http session)' "$work/err" || fail "no error was logged for the bad input: $(tail -3 "$work/err")"

    # http_client fetches from it over https, verifying the certificate with --cacert.
    out=$(CORONET_BACKEND=$backend timeout 30 "$bin/http_client" --cacert "$work/ca.pem" "$url/page.txt" "https://127.0.0.1:$port/hello" 2>&1) ||
        fail "http_client https: exit $?: $out"
    grep -q "==> $url/page.txt (200, 9 bytes)" <<<"$out" || fail "http_client https: $out"
    grep -q "==> https://127.0.0.1:$port/hello (200, 13 bytes)" <<<"$out" || fail "http_client https by IP: $out"
    # ... and refuses it without the CA: the system store does not know it.
    if out=$(CORONET_BACKEND=$backend timeout 30 "$bin/http_client" "$url/page.txt" 2>&1); then
        fail "http_client trusted an unknown CA: $out"
    fi
    grep -q 'certificate verify failed' <<<"$out" || fail "http_client untrusted: unclear error: $out"
    stop http_server
    echo "[$backend] http_server over TLS: ok ($requests requests from wrk in 2 s)"

    if start echo_server "${tls[@]}"; then
        got=$(timeout 20 python3 -c '
import os, socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
data = os.urandom(1 << 20)
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="localhost") as s:
    s.sendall(data)
    back = b""
    while len(back) < len(data):
        chunk = s.recv(65536)
        if not chunk: break
        back += chunk
print("same" if back == data else "differs: %d of %d bytes" % (len(back), len(data)))' "$work/ca.pem" "$port") || true
        [ "$got" = same ] || fail "echo_server over TLS: $got"
        stop echo_server
        echo "[$backend] echo_server over TLS: ok"
    fi
done

# http_client against other servers' TLS (any backend will do: the reactor is not the subject).
backend=peers
export CORONET_BACKEND=epoll
mkdir -p "$work/nginx"
peer_port=$(free_port)
cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
user $(id -un) $(id -gn);
pid nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path cbt; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;
    server {
        listen 127.0.0.1:$peer_port ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        root $work/root;
    }
}
CONF
start_peer nginx nginx -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e stderr
out=$(timeout 30 "$bin/http_client" --cacert "$work/ca.pem" "https://localhost:$peer_port/page.txt" 2>&1) ||
    fail "http_client against nginx: exit $?: $out"
grep -q "(200, 9 bytes)" <<<"$out" || fail "http_client against nginx: $out"
stop_peers

# Python's http.server wrapped in ssl: once with our certificate, once with other.test's.
py_https() {
    python3 -c '
import http.server, ssl, sys, os, functools
os.chdir(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()' "$peer_port" "$1" "$2" "$work/root"
}
peer_port=$(free_port)
start_peer python_https py_https "$work/cert.pem" "$work/key.pem"
out=$(timeout 30 "$bin/http_client" --cacert "$work/ca.pem" "https://localhost:$peer_port/page.txt" 2>&1) ||
    fail "http_client against Python: exit $?: $out"
grep -q "(200, 9 bytes)" <<<"$out" || fail "http_client against Python: $out"
stop_peers
peer_port=$(free_port)
start_peer python_https_other py_https "$work/other.pem" "$work/other.key"
if out=$(timeout 30 "$bin/http_client" --cacert "$work/ca.pem" "https://localhost:$peer_port/page.txt" 2>&1); then
    fail "http_client accepted a certificate for another name: $out"
fi
grep -q 'certificate verify failed (hostname mismatch)' <<<"$out" || fail "http_client wrong name: unclear error: $out"
out=$(timeout 30 "$bin/http_client" --insecure "https://localhost:$peer_port/page.txt" 2>&1) ||
    fail "http_client --insecure: exit $?: $out"
stop_peers
echo "[peers] http_client against nginx and Python over TLS: ok; refusals: ok"

if [ "$failures" != 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all TLS interop checks passed"

#!/usr/bin/env bash
# tests/docs/index_page_test.sh: the page `make run` opens is worth opening (issue 19).
#
# Serves a copy of docs/ with the real examples/http_server on a free loopback port, then fetches
# docs/index.html and every link and image on it with curl. Each must answer 200, none may come
# with `Content-Disposition: attachment` (a browser would download it), each must be a type
# browsers display (Markdown as text/plain or text/html, never text/markdown, which Firefox
# offers to download). The one exception: /status is the live page that the server facility adds
# to http_server; until it is on this branch, 404 is accepted for /status and only for it.
# Only the server started here is signalled, by PID; every wait is bounded.
set -euo pipefail

runfiles="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-}"
server="$runfiles/examples/http_server"
docs="$runfiles/docs"
[ -x "$server" ] || { server=bazel-bin/examples/http_server; docs=docs; }
command -v curl >/dev/null || { echo "curl not found: install it (tools/install-deps.sh test)" >&2; exit 1; }

work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/index_page.XXXXXX")"
pid=
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

# A real copy: runfiles are symlinks out of the tree, which http_server rightly refuses (403).
cp -rL "$docs" "$work/root"
rm -f "$work/root/BUILD.bazel"

"$server" --host 127.0.0.1 --port 0 --root "$work/root" >"$work/out" 2>"$work/err" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.* on \(http:\/\/\)\{0,1\}127\.0\.0\.1:\([0-9]*\).*/\2/p' "$work/out" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: http_server gave no start line; stderr: $(cat "$work/err")" >&2; exit 1; }
base="http://127.0.0.1:$port"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# fetch PATH: status in $code, headers in $work/h, body in $work/b.
fetch() {
    code=$(curl -sS --max-time 10 -o "$work/b" -D "$work/h" -w '%{http_code}' "$base$1") || code=000
}
header() { sed -n "s/^$1: *//Ip" "$work/h" | tr -d '\r' | head -1; }

fetch /
[ "$code" = 200 ] || fail "/: status $code"
[[ $(header Content-Type) == text/html* ]] || fail "/: Content-Type '$(header Content-Type)'"
cp "$work/b" "$work/page.html"
grep -q 'make run' "$work/page.html" || fail "/: no start commands"
grep -q '<table>' "$work/page.html" || fail "/: no goals table"
grep -q '<img src="bench/results.png"' "$work/page.html" || fail "/: no benchmark picture"
grep -q 'href="/status"' "$work/page.html" || fail "/: no link to /status"

# Every href and src on the page; relative ones resolve against "/".
mapfile -t links < <(grep -o -E '(href|src)="[^"]*"' "$work/page.html" | sed -E 's/^(href|src)="(.*)"$/\2/' | sort -u)
[ "${#links[@]}" -ge 5 ] || fail "/: only ${#links[@]} links: ${links[*]}"
for link in "${links[@]}"; do
    case "$link" in
        http://* | https://* | //*) fail "$link: an external link (the page must work offline)"; continue ;;
        '#'*) continue ;;
        /*) path=$link ;;
        *) path=/$link ;;
    esac
    fetch "$path"
    type=$(header Content-Type)
    if [ "$path" = /status ] && [ "$code" = 404 ]; then
        # The status page is being added to http_server by the server facility; tolerated as
        # 404 until it lands, and checked like every other link once it answers.
        echo "$path: 404 (not on this branch yet), tolerated"
        continue
    fi
    [ "$code" = 200 ] || { fail "$path: status $code"; continue; }
    if grep -qi '^Content-Disposition: *attachment' "$work/h"; then fail "$path: Content-Disposition: attachment"; fi
    case "$path" in
        *.md) [[ $type == text/plain* || $type == text/html* ]] || fail "$path: Markdown served as '$type'" ;;
        *.png) [ "$type" = image/png ] || fail "$path: served as '$type'" ;;
        *) [[ $type == text/* || $type == image/* || $type == application/json* ]] || fail "$path: served as '$type', which a browser may not display" ;;
    esac
    # Files come back byte for byte.
    if [ -f "$work/root/$path" ] && ! cmp -s "$work/b" "$work/root/$path"; then fail "$path: body differs from docs$path"; fi
    echo "$path: $code $type"
done

kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
status=0
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || fail "http_server: exit status $status after SIGTERM"

if [ "$failures" -ne 0 ]; then
    echo "index_page_test: $failures failure(s)" >&2
    exit 1
fi
echo "index_page_test: OK (${#links[@]} links)"

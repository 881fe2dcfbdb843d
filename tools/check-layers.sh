#!/usr/bin/env bash
# tools/check-layers.sh — coronet's one layering rule: lib/ (the reactor and its
# backends) never depends on coro/ (the coroutine layer built on top of it).
#
# Fails, listing the offending lines, if lib/ has
#   - any mention of coronet/coro/ (the include path of coro/ headers),
#   - an #include of "coro/...", <coro/...> or "../coro/...",
#   - a Bazel label pointing into //coro.
# Run from anywhere; it checks the repository it lives in.
set -euo pipefail

cd "$(dirname "$0")/.."

if [ ! -d lib ]; then
    echo "check-layers: no lib/ yet, nothing to check"
    exit 0
fi

status=0
report() {
    local what="$1" hits="$2"
    if [ -n "$hits" ]; then
        echo "check-layers: lib/ must not depend on coro/ ($what):" >&2
        echo "$hits" | sed 's/^/  /' >&2
        status=1
    fi
}

report "include path coronet/coro/" "$(grep -rn 'coronet/coro/' lib/ || true)"
report "#include of coro/" "$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](\.\./)*coro/' lib/ || true)"
report "Bazel dependency on //coro" "$(grep -rnE '"(@coronet)?//coro([:/"]|$)' lib/ --include=BUILD --include=BUILD.bazel --include='*.bzl' || true)"

if [ "$status" -eq 0 ]; then
    echo "check-layers: OK (lib/ does not depend on coro/)"
fi
exit "$status"

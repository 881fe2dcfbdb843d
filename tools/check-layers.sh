#!/usr/bin/env bash
# tools/check-layers.sh — coronet's layering rules: lib/ (the reactor and its
# backends) never depends on coro/ (the coroutine layer built on top of it), and
# proto/ (the protocol codecs, bytes in and out) depends on neither.
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
# (A visibility entry such as "//coro:__pkg__" lets coro/ see lib/: not a dependency.)
report "Bazel dependency on //coro" "$(grep -rnE '"(@coronet)?//coro([:/"]|$)' lib/ --include=BUILD --include=BUILD.bazel --include='*.bzl' | grep -vE ':__(pkg|subpackages)__"' || true)"

if [ -d proto ]; then
    proto_report() {
        if [ -n "$2" ]; then
            echo "check-layers: proto/ must not depend on lib/ or coro/ ($1):" >&2
            echo "$2" | sed 's/^/  /' >&2
            status=1
        fi
    }
    proto_report "include path coronet/lib/ or coronet/coro/" \
        "$(grep -rnE 'coronet/(lib|coro)/' proto/ || true)"
    proto_report "Bazel dependency on //lib or //coro" \
        "$(grep -rnE '"(@coronet)?//(lib|coro)([:/"]|$)' proto/ --include=BUILD.bazel || true)"
fi

if [ "$status" -eq 0 ]; then
    echo "check-layers: OK (lib/ does not depend on coro/; proto/ on neither)"
fi
exit "$status"

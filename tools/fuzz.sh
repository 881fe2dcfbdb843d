#!/usr/bin/env bash
# tools/fuzz.sh [--seconds N] [--build-only] [target...] — build and run the libFuzzer targets.
#
# Targets are tests/fuzz/<name>_fuzz.cpp (name with or without "_fuzz"; none = all of them).
# Each is compiled with clang++ -fsanitize=fuzzer,address,undefined against the coronet sources
# it needs (lib/, coro/, proto/, examples/http.cpp, examples/resp.cpp, compiled once into an archive
# with coverage instrumentation), then run for N seconds (default 30) on its seed corpus
# tests/fuzz/corpus/<target>/, with tests/fuzz/<target>.dict if there is one. New inputs go to
# a working corpus in the build directory (kept between runs), never into the checked-in seeds
# (tests/fuzz/seeds.py writes those). Prints, per target, the executions,
# the coverage (the cov: figure of libFuzzer's last line) and the exit status; exits 1 if any
# target crashed, leaked, hung or failed to build. A crashing input is saved under
# <build>/artifacts/<target>/: rerun it with `<build>/bin/<target> <file>`.
#
# Environment: FUZZ_BUILD_DIR (default $TMPDIR/coronet-fuzz-<hash of the repo path>),
# CXX (default clang++), FUZZ_FLAGS (more libFuzzer flags, e.g. "-jobs=2").
#
# -fno-sanitize=function: clang 14 cannot compile coroutines with UBSan's function check
# ("error: Cannot represent a difference across sections",
# https://github.com/llvm/llvm-project/issues/49689); the other UBSan checks stay on.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=30
build_only=
targets=()

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
        --seconds=*) seconds=${1#--seconds=}; shift ;;
        --build-only) build_only=1; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("${1%_fuzz}_fuzz"); shift ;;
    esac
done
case "$seconds" in '' | *[!0-9]*) echo "fuzz.sh: --seconds wants a whole number" >&2; exit 2 ;; esac

if [ "${#targets[@]}" -eq 0 ]; then
    for f in "$repo"/tests/fuzz/*_fuzz.cpp; do
        t=${f##*/}
        targets+=("${t%.cpp}")
    done
fi
for t in "${targets[@]}"; do
    if [ ! -f "$repo/tests/fuzz/$t.cpp" ]; then
        echo "fuzz.sh: no target $t (tests/fuzz/$t.cpp)" >&2
        exit 2
    fi
done

CXX=${CXX:-clang++}
if ! command -v "$CXX" >/dev/null 2>&1; then
    echo "fuzz.sh: $CXX not found (tools/install-deps.sh test installs clang)" >&2
    exit 1
fi

build=${FUZZ_BUILD_DIR:-${TMPDIR:-/tmp}/coronet-fuzz-$(printf %s "$repo" | cksum | cut -d' ' -f1)}
mkdir -p "$build/inc" "$build/obj" "$build/bin"
# <coronet/lib/x.hpp> is lib/x.hpp: an include directory whose coronet/ is the repository.
ln -sfn "$repo" "$build/inc/coronet"

flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize=function -fno-sanitize-recover=all -Wall -Wextra -Wno-unused-parameter
       -I"$build/inc" -I"$repo")
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# True when $1 (an object) is missing or older than a file its .d lists.
stale() {
    local obj=$1 dep=${1%.o}.d f
    [ -f "$obj" ] && [ -f "$dep" ] || return 0
    for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
        [ "$f" -nt "$obj" ] && return 0
    done
    return 1
}

# The library: every coronet source a target may need, instrumented for coverage.
lib_sources=("$repo"/lib/*.cpp "$repo"/coro/*.cpp "$repo"/proto/*.cpp "$repo/examples/http.cpp"
             "$repo/examples/resp.cpp")
objects=()
jobs=0
failed_build=
for src in "${lib_sources[@]}"; do
    rel=${src#"$repo"/}
    obj=$build/obj/${rel//\//_}
    obj=${obj%.cpp}.o
    objects+=("$obj")
    if stale "$obj"; then
        echo "fuzz.sh: compiling $rel"
        "$CXX" "${flags[@]}" -fsanitize=fuzzer-no-link -MMD -c "$src" -o "$obj" &
        jobs=$((jobs + 1))
        if [ "$jobs" -ge "$(nproc)" ]; then
            wait -n || failed_build=1
            jobs=$((jobs - 1))
        fi
    fi
done
while [ "$jobs" -gt 0 ]; do
    wait -n || failed_build=1
    jobs=$((jobs - 1))
done
if [ -n "$failed_build" ]; then
    echo "fuzz.sh: the coronet sources did not compile" >&2
    exit 1
fi
archive=$build/libcoronet_fuzz.a
for obj in "${objects[@]}"; do
    if [ ! -f "$archive" ] || [ "$obj" -nt "$archive" ]; then
        rm -f "$archive"
        ar rcs "$archive" "${objects[@]}"
        break
    fi
done

for t in "${targets[@]}"; do
    bin=$build/bin/$t
    if stale "$bin.o" || [ "$archive" -nt "$bin" ]; then
        echo "fuzz.sh: building $t"
        "$CXX" "${flags[@]}" -fsanitize=fuzzer -MMD -c "$repo/tests/fuzz/$t.cpp" -o "$bin.o"
        "$CXX" "${flags[@]}" -fsanitize=fuzzer "$bin.o" "$archive" -luring -lz -lssl -lcrypto -o "$bin"
    fi
done
[ -n "$build_only" ] && exit 0

printf '\n%-20s %8s %12s %8s  %s\n' target seconds executions cov status
rc=0
summary=()
for t in "${targets[@]}"; do
    seeds=$repo/tests/fuzz/corpus/$t
    work=$build/corpus/$t
    artifacts=$build/artifacts/$t
    log=$build/$t.log
    mkdir -p "$seeds" "$work" "$artifacts"
    dict=()
    [ -f "$repo/tests/fuzz/$t.dict" ] && dict=(-dict="$repo/tests/fuzz/$t.dict")
    status=0
    # shellcheck disable=SC2086
    "$build/bin/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" ${FUZZ_FLAGS:-} \
        "$work" "$seeds" >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$status" -eq 0 ]; then
        word=ok
    else
        word="FAILED (exit $status)"
        rc=1
    fi
    line=$(printf '%-20s %8s %12s %8s  %s' "$t" "$seconds" "${execs:-?}" "${cov:-?}" "$word")
    summary+=("$line")
    echo "$line"
    if [ "$status" -ne 0 ]; then
        echo "---- $t: the end of $log ----"
        tail -n 40 "$log"
        ls -t "$artifacts" 2>/dev/null | head -3 | sed "s|^|saved input: $artifacts/|"
        echo "----"
    fi
done
if [ "${#targets[@]}" -gt 1 ] && [ "$rc" -ne 0 ]; then
    printf '\nsummary:\n'
    printf '%s\n' "${summary[@]}"
fi
exit "$rc"

#!/usr/bin/env bash
# tools/install-deps.sh [group...] — install the Debian packages coronet needs.
#
# Groups (each includes the one before it):
#   build   what `bazel build` and `make run` need
#   test    build + what `bazel test //...` and the interop tests need
#   bench   test + what benchmarks/run.sh needs
#   format  clang-format, for `make format` (stand-alone)
# With no group, `build` is installed.
#
# Idempotent: it asks dpkg which packages are missing and installs only those,
# running `apt-get update` once first, and says nothing when none is missing.
# As root it installs; as anyone else it prints the `sudo apt-get install ...`
# command to run and exits 1. Never reads stdin (safe for CI).
#
# Every name below was checked with `apt-cache policy` on Debian 12 (bookworm).
set -euo pipefail

# Bazel 4.2.3 (Debian's bootstrap build; pulls in a headless JDK), its Java
# rules, the compiler, and the system libraries third_party/BUILD.bazel links.
PKGS_build=(
    bazel-bootstrap bazel-rules-java
    g++ make python3 git
    liburing-dev catch2 zlib1g-dev libssl-dev libc-ares-dev
)
# Peers for the interop tests (curl, redis, nginx, wrk, h2load/nghttp) and
# clang with its sanitizer runtimes, libFuzzer's among them
# (libclang-rt-14-dev: tools/fuzz.sh, `make fuzz`). `bazel test //...` also builds every
# target under benchmarks/, so the libraries those link are needed here
# already: Google Benchmark, and Boost for the Boost.Asio reference peers
# (benchmarks/peers/asio_*.cpp).
PKGS_test=(
    curl redis-server redis-tools nginx-light wrk nghttp2-client
    clang libclang-rt-14-dev
    libbenchmark-dev libboost-dev
    openssl dnsmasq-base socat cmake pkg-config
)
# Plots, syscall counts and traces, and callgrind profiles (PROFILE=1) for
# benchmarks/run.sh.
PKGS_bench=(
    gnuplot-nox linux-perf strace valgrind
)
PKGS_format=(
    clang-format
)

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

want=()
add_group() {
    case "$1" in
        build) want+=("${PKGS_build[@]}") ;;
        test) add_group build; want+=("${PKGS_test[@]}") ;;
        bench) add_group test; want+=("${PKGS_bench[@]}") ;;
        format) want+=("${PKGS_format[@]}") ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install-deps: unknown group '$1' (build, test, bench, format)" >&2; exit 2 ;;
    esac
}

if [ "$#" -eq 0 ]; then
    set -- build
fi
for g in "$@"; do
    add_group "$g"
done

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: dpkg-query not found; this script knows Debian/Ubuntu only." >&2
    echo "install-deps: packages wanted: $(printf '%s\n' "${want[@]}" | sort -u | tr '\n' ' ')" >&2
    exit 1
fi

# Which of the wanted packages are not installed (each once, in order).
missing=()
declare -A seen=()
for p in "${want[@]}"; do
    [ -n "${seen[$p]:-}" ] && continue
    seen[$p]=1
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: run this, then try again:" >&2
    echo "sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# Servers installed for the tests (redis-server, nginx) must not start as system
# services: the tests start their own on free loopback ports. A policy-rc.d
# that denies every start does that for the duration of the install only.
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install-deps: installing ${missing[*]}"
apt-get "${apt_opts[@]}" update -qq </dev/null
apt-get "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}" </dev/null
echo "install-deps: done"

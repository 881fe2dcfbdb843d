#!/usr/bin/env bash
# tools/install-deps.sh [--dry-run] [group...] — install the Debian packages coronet needs.
#
# Groups (each includes the one before it):
#   build   what `bazel build` and `make run` need
#   test    build + what `bazel test //...` and the interop tests need
#   bench   test + what benchmarks/run.sh needs
#   format  clang-format, for `make format` (stand-alone)
# With no group, `build` is installed.
#
# A need is met by any of its alternatives: an installed Boost 1.74 or newer
# (libboost1.81-dev, say) is Boost, and the script never asks for libboost-dev
# beside it. Idempotent: it installs only needs no alternative meets (running
# `apt-get update` once first), and says nothing when none is missing. Before
# installing it asks apt for a simulation; if that would remove or break an
# installed package it says which, changes nothing and exits 1.
# As root it installs; as anyone else it prints the `sudo apt-get install ...`
# command to run and exits 1. Never reads stdin (safe for CI).
#   --dry-run   print the apt-get line it would run (or "nothing to install"),
#               and the conflicts apt reports; install nothing (any user)
# Environment, for tests (tests/tools/install_deps_test.sh): DPKG_QUERY and
# APT_GET name the commands used in place of dpkg-query and apt-get.
#
# Every name below was checked with `apt-cache policy` / `apt-cache show` on
# Debian 12 (bookworm).
set -euo pipefail

# A need is "first|second|...": the first alternative is what gets installed when
# none is installed. "libboost1.{74+}-dev" stands for libboost1.N-dev, N >= 74.
# Where a need has one name, Debian 12 has one package for it (libssl-dev,
# liburing-dev, catch2 2.13, ...) or its versions install side by side (see
# clang below), so there is nothing to choose.

# Bazel 4.2.3 (Debian's bootstrap build; pulls in a headless JDK), its Java
# rules, the compiler, and the system libraries third_party/BUILD.bazel links.
# make-guile provides make (and conflicts with it).
PKGS_build=(
    bazel-bootstrap bazel-rules-java
    g++ 'make|make-guile' python3 git
    liburing-dev catch2 zlib1g-dev libssl-dev libc-ares-dev
)
# Peers for the interop tests (curl, redis, nginx, wrk, h2load/nghttp) and
# clang with its sanitizer runtimes, libFuzzer's among them
# (libclang-rt-14-dev: tools/fuzz.sh, `make fuzz`, runs `clang++`, Debian's
# default clang 14; other clang-N install beside it without conflict, so no
# alternative is taken for them). `bazel test //...` also builds every target
# under benchmarks/, so the libraries those link are needed here already:
# Google Benchmark, and Boost's Asio headers for the Boost.Asio reference peers
# (benchmarks/peers/asio_*.cpp): any libboost1.N-dev from 1.74 on has them, and
# two of those conflict with each other. Any nginx flavour brings the `nginx`
# binary; pkgconf provides pkg-config; dnsmasq-base-lua replaces dnsmasq-base;
# cmake and pkg-config build tests/consumer-cmake.
PKGS_test=(
    curl redis-server redis-tools 'nginx-light|nginx|nginx-full|nginx-core|nginx-extras'
    wrk nghttp2-client
    clang libclang-rt-14-dev
    libbenchmark-dev 'libboost-dev|libboost1.{74+}-dev'
    openssl 'dnsmasq-base|dnsmasq-base-lua' socat cmake 'pkg-config|pkgconf'
)
# Plots, syscall counts and traces, and callgrind profiles (PROFILE=1) for
# benchmarks/run.sh. The three gnuplot builds conflict with each other.
PKGS_bench=(
    'gnuplot-nox|gnuplot-qt|gnuplot-x11' linux-perf strace valgrind
)
# clang-format 14 exactly: .clang-format is written for it, and other versions
# format differently (clang-format-N installs beside it).
PKGS_format=(
    clang-format
)

usage() {
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
}

DPKG_QUERY=${DPKG_QUERY:-dpkg-query}
APT_GET=${APT_GET:-apt-get}
dry_run=
want=()
add_group() {
    case "$1" in
        build) want+=("${PKGS_build[@]}") ;;
        test) add_group build; want+=("${PKGS_test[@]}") ;;
        bench) add_group test; want+=("${PKGS_bench[@]}") ;;
        format) want+=("${PKGS_format[@]}") ;;
        *) echo "install-deps: unknown group '$1' (build, test, bench, format)" >&2; exit 2 ;;
    esac
}

groups=()
for a in "$@"; do
    case "$a" in
        --dry-run) dry_run=1 ;;
        -h | --help) usage; exit 0 ;;
        *) groups+=("$a") ;;
    esac
done
[ "${#groups[@]}" -gt 0 ] || groups=(build)
for g in "${groups[@]}"; do
    add_group "$g"
done

# Every name a need may be met by, readable ("libboost1.N-dev (N >= 74)").
describe() {
    local alt out=() IFS='|'
    for alt in $1; do
        if [[ $alt =~ ^(.*)\{([0-9]+)\+\}(.*)$ ]]; then
            out+=("${BASH_REMATCH[1]}N${BASH_REMATCH[3]} (N >= ${BASH_REMATCH[2]})")
        else
            out+=("$alt")
        fi
    done
    local s
    s=$(printf '%s or ' "${out[@]}")
    echo "${s% or }"
}

if ! command -v "$DPKG_QUERY" >/dev/null 2>&1; then
    echo "install-deps: dpkg-query not found; this script knows Debian/Ubuntu only." >&2
    echo "install-deps: packages wanted: $(for n in "${want[@]}"; do describe "$n"; done | sort -u | paste -sd';' | sed 's/;/; /g')" >&2
    exit 1
fi

# The installed packages, one query for all (name, then dpkg's status words).
declare -A installed=()
while IFS=$'\t' read -r name status; do
    # "install ok installed", or "hold ok installed" for a package the user pinned.
    [[ $status == *" ok installed" ]] && installed[${name%%:*}]=1
done < <("$DPKG_QUERY" -W -f='${Package}\t${Status}\n' 2>/dev/null || true)

# met NEED: is any alternative installed?
met() {
    local alt name IFS='|'
    for alt in $1; do
        if [[ $alt =~ ^(.*)\{([0-9]+)\+\}(.*)$ ]]; then
            local pre=${BASH_REMATCH[1]} min=${BASH_REMATCH[2]} post=${BASH_REMATCH[3]}
            for name in "${!installed[@]}"; do
                [[ $name == "$pre"* && $name == *"$post" ]] || continue
                local mid=${name#"$pre"}
                mid=${mid%"$post"}
                [[ $mid =~ ^[0-9]+$ ]] && [ "$mid" -ge "$min" ] && return 0
            done
        elif [ -n "${installed[$alt]:-}" ]; then
            return 0
        fi
    done
    return 1
}

# The needs no alternative meets (each once, in order), and what to install for each.
missing=()
missing_needs=()
declare -A seen=()
for need in "${want[@]}"; do
    [ -n "${seen[$need]:-}" ] && continue
    seen[$need]=1
    if ! met "$need"; then
        missing+=("${need%%|*}")
        missing_needs+=("$need")
    fi
done

apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
install_line="apt-get install -y --no-install-recommends ${missing[*]:-}"

# conflicts: ask apt what installing the missing packages would do. Prints what it
# would remove or why it cannot, and returns 1, when that is anything but additions.
conflicts() {
    local sim rc=0
    sim=$("$APT_GET" "${apt_opts[@]}" -s install --no-install-recommends "${missing[@]}" 2>&1 </dev/null) || rc=$?
    local removed
    removed=$(sed -n 's/^Remv \([^ ]*\).*/\1/p' <<<"$sim" | tr '\n' ' ')
    if [ "$rc" -eq 0 ] && [ -z "$removed" ]; then
        return 0
    fi
    echo "install-deps: CONFLICT: installing ${missing[*]} would not just add packages; nothing was changed." >&2
    if [ -n "$removed" ]; then
        echo "install-deps: apt would remove these installed packages: ${removed% }" >&2
    fi
    if [ "$rc" -ne 0 ]; then
        grep -E '^(E:| )' <<<"$sim" | sed 's/^/install-deps: apt: /' >&2 || true
    fi
    echo "install-deps: each of these needs is met by any one of its packages:" >&2
    local n
    for n in "${missing_needs[@]}"; do
        echo "install-deps:   $(describe "$n")" >&2
    done
    echo "install-deps: to go on, install an alternative that fits this machine, or resolve the" >&2
    echo "install-deps: conflict yourself (apt-get install ${missing[*]} shows it), then run this again." >&2
    return 1
}

if [ -n "$dry_run" ]; then
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "install-deps: nothing to install"
        exit 0
    fi
    echo "$install_line"
    if command -v "$APT_GET" >/dev/null 2>&1; then
        conflicts || exit 1
    fi
    exit 0
fi

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: run this, then try again:" >&2
    echo "sudo apt-get update && sudo $install_line"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

echo "install-deps: installing ${missing[*]}"
"$APT_GET" "${apt_opts[@]}" update -qq </dev/null
conflicts || exit 1

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

"$APT_GET" "${apt_opts[@]}" install -y -q --no-install-recommends "${missing[@]}" </dev/null
echo "install-deps: done"

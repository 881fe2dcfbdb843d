#!/usr/bin/env bash
# tests/tools/install_deps_test.sh: tools/install-deps.sh decides from the package state, not
# from one package name per need (issue 19). No real apt or dpkg call: DPKG_QUERY points at a
# fake that prints a recorded state (dpkg-state-boost1.81.txt: a Debian 12 machine whose Boost is
# libboost1.81-dev), APT_GET at a fake that logs its arguments and answers simulations, and
# every run is --dry-run, which prints the apt-get line it would run and changes nothing.
set -euo pipefail

here=$(dirname "$0")
script=${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/}tools/install-deps.sh
fixture=${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE/}tests/tools/dpkg-state-boost1.81.txt
[ -f "$script" ] || script=$here/../../tools/install-deps.sh
[ -f "$fixture" ] || fixture=$here/dpkg-state-boost1.81.txt
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/install-deps-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat >"$work/dpkg-query" <<'SH'
#!/bin/sh
grep -v '^#' "$STATE"
SH
# -s (simulate): prints $SIM_OUT (the lines apt would print) and exits $SIM_RC.
cat >"$work/apt-get" <<'SH'
#!/bin/sh
echo "$*" >>"$APT_LOG"
case " $* " in *" -s "*) [ -n "${SIM_OUT:-}" ] && printf '%s\n' "$SIM_OUT"; exit "${SIM_RC:-0}" ;; esac
echo "fake apt-get: a real install was attempted: $*" >&2
exit 99
SH
chmod +x "$work/dpkg-query" "$work/apt-get"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run STATE GROUP...: the script's stdout+stderr in $out, its status in $rc.
run() {
    local state=$1
    shift
    : >"$work/apt.log"
    rc=0
    out=$(STATE=$state APT_LOG=$work/apt.log DPKG_QUERY=$work/dpkg-query APT_GET=$work/apt-get \
        bash "$script" --dry-run "$@" 2>&1) || rc=$?
}

# state_with EDIT...: the fixture, with "-name" lines dropped and "+name" lines added.
n=0
state_with() {
    n=$((n + 1))
    local f=$work/state$n
    cp "$fixture" "$f"
    local e
    for e in "$@"; do
        case "$e" in
            -*) grep -v -P "^\Q${e#-}\E\t" "$f" >"$f.tmp" || true; mv "$f.tmp" "$f" ;;
            +*) printf '%s\tinstall ok installed\n' "${e#+}" >>"$f" ;;
        esac
    done
    echo "$f"
}

# 1. The issue's machine: libboost1.81-dev meets the Boost need; nothing to install, apt untouched.
for g in build test bench; do
    run "$fixture" "$g"
    [ "$rc" -eq 0 ] || fail "boost 1.81, group $g: exit $rc: $out"
    [ "$out" = "install-deps: nothing to install" ] || fail "boost 1.81, group $g: printed: $out"
    [ ! -s "$work/apt.log" ] || fail "boost 1.81, group $g: apt-get was called: $(cat "$work/apt.log")"
done

# 2. No Boost at all: libboost-dev (Debian's default, 1.74) is asked for, and only that.
run "$(state_with -libboost1.81-dev)" test
[ "$rc" -eq 0 ] || fail "no boost: exit $rc: $out"
grep -qx 'apt-get install -y --no-install-recommends libboost-dev' <<<"$out" || fail "no boost: $out"

# 3. A Boost older than 1.74 does not count.
run "$(state_with -libboost1.81-dev +libboost1.67-dev)" test
grep -qx 'apt-get install -y --no-install-recommends libboost-dev' <<<"$out" || fail "boost 1.67: $out"

# 4. Debian's default Boost (libboost-dev) and a newer one (libboost1.83-dev) both count.
for b in libboost-dev libboost1.83-dev; do
    run "$(state_with -libboost1.81-dev "+$b")" test
    [ "$out" = "install-deps: nothing to install" ] || fail "$b: $out"
done

# 4b. A Boost the user holds (apt-mark hold) is installed too; one removed but for its
#     configuration files is not.
f=$(state_with -libboost1.81-dev)
printf 'libboost1.81-dev\thold ok installed\n' >>"$f"
run "$f" test
[ "$out" = "install-deps: nothing to install" ] || fail "held boost 1.81: $out"
f=$(state_with -libboost1.81-dev)
printf 'libboost1.81-dev\tdeinstall ok config-files\n' >>"$f"
run "$f" test
grep -qx 'apt-get install -y --no-install-recommends libboost-dev' <<<"$out" || fail "removed boost 1.81: $out"

# 5. The other needs with alternatives: make-guile, pkgconf alone, dnsmasq-base-lua, gnuplot-qt
#    and nginx-full (with nginx) each meet theirs.
run "$(state_with -make +make-guile -pkg-config -dnsmasq-base +dnsmasq-base-lua \
    -gnuplot-nox +gnuplot-qt -nginx-light +nginx-full)" bench
[ "$out" = "install-deps: nothing to install" ] || fail "alternatives: $out"

# 6. A need with one name is still asked for by that name; several missing go in one line.
run "$(state_with -libssl-dev -socat)" test
grep -qx 'apt-get install -y --no-install-recommends libssl-dev socat' <<<"$out" || fail "libssl-dev socat: $out"

# 7. A conflict: apt's simulation would remove an installed package. The script says what, and
#    how to go on, exits 1, and only ever simulated.
SIM_OUT='Remv libboost1.81-dev [1.81.0-5+deb12u1]
Inst libboost1.74-dev (1.74.0+ds1-21 Debian:12/stable [amd64])' \
    run "$(state_with -libboost1.81-dev +libboost1.67-dev)" test
[ "$rc" -eq 1 ] || fail "conflict: exit $rc, expected 1: $out"
grep -q 'CONFLICT' <<<"$out" || fail "conflict: no CONFLICT line: $out"
grep -q 'apt would remove these installed packages: libboost1.81-dev' <<<"$out" || fail "conflict: no removal named: $out"
grep -q 'libboost1.N-dev (N >= 74)' <<<"$out" || fail "conflict: alternatives not listed: $out"
grep -q 'nothing was changed' <<<"$out" || fail "conflict: does not say nothing changed: $out"
if grep -qv -- ' -s install ' "$work/apt.log"; then fail "conflict: apt-get ran for real: $(cat "$work/apt.log")"; fi

# 8. apt refusing outright (held or broken packages) is a conflict too.
SIM_OUT='E: Unable to correct problems, you have held broken packages.' SIM_RC=100 \
    run "$(state_with -libssl-dev)" build
[ "$rc" -eq 1 ] && grep -q 'apt: E: Unable to correct problems' <<<"$out" || fail "apt refusal: exit $rc: $out"

# 9. An unknown group is an error.
run "$fixture" nonsense
[ "$rc" -eq 2 ] || fail "unknown group: exit $rc: $out"

if [ "$failures" -ne 0 ]; then
    echo "install_deps_test: $failures failure(s)" >&2
    exit 1
fi
echo "install_deps_test: OK"

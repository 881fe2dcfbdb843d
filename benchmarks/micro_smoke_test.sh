#!/usr/bin/env bash
# micro_smoke_test: every micro benchmark runs once, briefly, and reports no
# error (each checks its own result: the terminator found where it was put,
# every pushed byte received, every pipelined head read back whole).
set -u
cd "${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-coronet}" 2>/dev/null || true
out=${TEST_TMPDIR:-/tmp}/micro.json
if ! benchmarks/micro --benchmark_min_time=0.001 --benchmark_format=json >"$out"; then
  echo "FAIL: micro exited non-zero"
  exit 1
fi
n=$(grep -c '"run_type": "iteration"' "$out")
if grep -q '"error_occurred": true' "$out"; then
  echo "FAIL: a benchmark reported an error:"
  grep -B3 -A1 '"error_message"' "$out"
  exit 1
fi
if [ "$n" -lt 19 ]; then
  echo "FAIL: $n benchmarks ran, 19 expected"
  exit 1
fi
echo "PASS: $n micro benchmarks, no errors"

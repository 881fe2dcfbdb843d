# coronet — developer entry points (GNU make). Bazel does the building; this file
# only installs what is missing and strings the steps together. `make help` lists
# the targets.

# What `make run` starts.
RUN_TARGET ?= //examples:http_server
RUN_ARGS   ?= --host 127.0.0.1 --port 8080 --root $(CURDIR)/docs

# Passed to benchmarks/run.sh (1: a short run, for a smoke test).
QUICK ?= 0

# Seconds each libFuzzer target runs in `make fuzz` (and in `make test`).
FUZZ_SECONDS ?= 30

# Seconds of mixed load per backend in `make stress` (tools/stress.sh), and the
# seconds each libFuzzer target runs there.
SOAK_SECONDS        ?= 60
STRESS_FUZZ_SECONDS ?= 600

BAZEL       ?= bazel
# Extra flags for every bazel command below, e.g.
#   make test BAZEL_FLAGS='--test_arg=--success'
BAZEL_FLAGS ?=
# Targets that the test steps run.
TEST_TARGETS ?= //...
# The CMake build of `make cmake-check` (a step of `make test`), and its parallel jobs.
CMAKE_BUILD_DIR ?= build/cmake
CMAKE_JOBS      ?= 2

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# The steps share one Bazel server, which runs one command at a time anyway.
.NOTPARALLEL:

# Short, plain output when not on a terminal (CI=true, or stderr is a pipe or a
# file): no progress lines, no colours, no curses. On a terminal Bazel decides.
IS_TTY := $(shell test -t 2 && echo yes)
ifneq ($(filter true 1 yes,$(CI)),)
  BAZEL_UI := --noshow_progress --curses=no --color=no
else ifneq ($(IS_TTY),yes)
  BAZEL_UI := --noshow_progress --curses=no --color=no
else
  BAZEL_UI :=
endif

# --keep_going: one target that does not build does not hide the results of the
# others (it is reported as FAILED TO BUILD in the summary).
BAZEL_TEST := $(BAZEL) test --keep_going --test_output=errors $(BAZEL_UI) $(BAZEL_FLAGS)

step = @printf '\n==> [%s] %s\n' "$$(date +%T)" "$(1)"

.PHONY: help deps deps-test deps-bench build test bazel-test asan ubsan tsan \
        check-layers check-snippets check-docs check-build-lists consumer-check cmake-check fuzz run bench tsan-threads stress format format-check clean distclean

help:
	@echo 'coronet make targets:'
	@echo '  make run          build with --config=opt and start $(RUN_TARGET) $(RUN_ARGS)'
	@echo '  make test         make format-check, bazel test //..., then under --config=asan, then'
	@echo '                    tools/check-layers.sh, the snippet, docs and build-list checks, the'
	@echo '                    consumer workspace check, make cmake-check and make fuzz'
	@echo '  make build        bazel build //...'
	@echo '  make asan|ubsan|tsan   bazel test --config=X //...'
	@echo '  make tsan-threads the threaded tests (servers with --threads 2, the shared'
	@echo '                    keyspace) under --config=tsan (a step of make test)'
	@echo '  make stress       tools/stress.sh: a SOAK_SECONDS soak of the ASan-built servers'
	@echo '                    per backend, then tools/fuzz.sh for STRESS_FUZZ_SECONDS a target'
	@echo '  make bench        benchmarks/run.sh (QUICK=1 for a short run)'
	@echo '  make check-layers lib/ must not include coro/'
	@echo '  make check-snippets README/docs code blocks must match the examples'
	@echo '  make check-docs   docs/ copies of the README commands and benchmark results are current'
	@echo '  make check-build-lists  Bazel and CMake (cmake/sources.cmake) list the same files'
	@echo '  make cmake-check  the CMake build, ctest, and tests/consumer-cmake (find_package, pkg-config)'
	@echo '  make fuzz         tools/fuzz.sh: each libFuzzer target in tests/fuzz/ for FUZZ_SECONDS'
	@echo '  make format       clang-format lib/ coro/ examples/ tests/ benchmarks/ in place'
	@echo '  make format-check the same, changing nothing; fails if a file would change'
	@echo '  make clean        bazel clean (distclean: bazel clean --expunge)'
	@echo 'Each target first installs the Debian packages it needs (tools/install-deps.sh).'
	@echo 'Variables: RUN_TARGET RUN_ARGS QUICK BAZEL_FLAGS TEST_TARGETS FUZZ_SECONDS'
	@echo '           SOAK_SECONDS STRESS_FUZZ_SECONDS CMAKE_BUILD_DIR CMAKE_JOBS'

# --- Debian packages -------------------------------------------------------------

deps:
	@tools/install-deps.sh build

deps-test:
	@tools/install-deps.sh test

deps-bench:
	@tools/install-deps.sh bench

# --- build and test --------------------------------------------------------------

build: deps
	$(call step,bazel build //...)
	$(BAZEL) build --keep_going $(BAZEL_UI) $(BAZEL_FLAGS) //...

# `make -k test` goes on after a failing step, so that every step reports.
test: format-check bazel-test asan tsan-threads check-layers check-snippets check-docs check-build-lists \
      consumer-check cmake-check fuzz

bazel-test: deps-test
	$(call step,bazel test $(TEST_TARGETS))
	$(BAZEL_TEST) $(TEST_TARGETS)

asan ubsan tsan: deps-test
	$(call step,bazel test --config=$@ $(TEST_TARGETS))
	$(BAZEL_TEST) --config=$@ $(TEST_TARGETS)

# The tests where threads share memory: the servers' thread-per-core runs (--threads 2:
# SO_REUSEPORT listeners, one keyspace, a signal stopping every reactor), the keyspace shared
# by threads, reactor::stop() from another thread, coronet::runtime (post() from another
# thread, start-up errors, a signal stopping every thread, run_on), signal_set on two threads
# and http_server's /status gathering every thread's connections. The
# servers are data dependencies, so they are built with ThreadSanitizer too, and
# TSAN_OPTIONS=halt_on_error=1 reaches them.
TSAN_THREAD_TARGETS := //tests/examples:kv_server_test //tests/examples:echo_server_test \
    //tests/examples:http_server_test //tests/examples:resp_test //tests/lib:reactor_test \
    //tests/coro:runtime_test //tests/coro:signal_set_test
tsan_kv      := kv_server: with --threads 2 every connection sees one keyspace
tsan_kv_stop := kv_server: SIGTERM with 100 pipelined commands in flight*
tsan_echo    := echo_server: echoes every byte on every backend*
tsan_http    := http_server: SIGTERM lets a response in flight finish*
tsan_resp    := resp: a store shared by threads counts every increment
tsan_reactor := reactor: stop() from another thread ends run()
tsan_runtime := runtime: *
tsan_signals := signal_set: reactors on two threads*
tsan_status  := http_server: /status.json lists exactly the open connections*
# Catch2's test spec: names (or patterns) separated by commas.
TSAN_THREAD_TESTS := $(tsan_kv),$(tsan_kv_stop),$(tsan_echo),$(tsan_http),$(tsan_resp),$(tsan_reactor),$(tsan_runtime),$(tsan_signals),$(tsan_status)

tsan-threads: deps-test
	$(call step,bazel test --config=tsan: the threaded tests)
	$(BAZEL_TEST) --config=tsan --test_arg='$(TSAN_THREAD_TESTS)' $(TSAN_THREAD_TARGETS)

check-layers:
	$(call step,tools/check-layers.sh)
	@tools/check-layers.sh

# The README's and docs' code blocks must be code the examples build.
check-snippets:
	$(call step,tools/check-snippets.py)
	@python3 tools/check-snippets.py

# docs/ (what `make run` serves) holds copies of the README's start commands and the latest
# benchmark picture and goals table; `make bench` refreshes them (tools/sync-docs.py).
check-docs:
	$(call step,tools/sync-docs.py --check)
	@python3 tools/sync-docs.py --check

# A separate Bazel workspace that depends on coronet as an external repository.
consumer-check: deps-test
	$(call step,consumer workspace check)
	@if [ -f tests/consumer/run.sh ]; then \
	    BAZEL='$(BAZEL)' bash tests/consumer/run.sh; \
	else \
	    echo 'consumer-check: tests/consumer/run.sh is not there yet, skipped'; \
	fi

# Bazel and CMake build the same files: lib/, coro/, examples/ and the unit tests' BUILD files
# against cmake/sources.cmake; names each file missing from one build.
check-build-lists:
	$(call step,tools/check-build-lists.py)
	@python3 tools/check-build-lists.py

# The CMake build (libcoronet.so and .a, examples, unit tests), ctest, then tests/consumer-cmake:
# install into a scratch prefix, build an echo server with find_package(coronet) and one with
# pkg-config, and echo through each. (MAKEFLAGS unset: the inner make prints no directory lines.)
cmake-check: deps-test
	$(call step,cmake --build $(CMAKE_BUILD_DIR) then ctest then tests/consumer-cmake/run.sh)
	@cmake -S . -B $(CMAKE_BUILD_DIR) >/dev/null
	@env -u MAKELEVEL -u MAKEFLAGS -u MFLAGS cmake --build $(CMAKE_BUILD_DIR) -j $(CMAKE_JOBS)
	@ctest --test-dir $(CMAKE_BUILD_DIR) -j $(CMAKE_JOBS) --output-on-failure --timeout 600
	@CMAKE_JOBS=$(CMAKE_JOBS) bash tests/consumer-cmake/run.sh $(CMAKE_BUILD_DIR)

# clang's libFuzzer with ASan and UBSan over the parsers, the channel's input and
# the TLS server (tests/fuzz/); FUZZ_SECONDS per target, 6 targets: 3 minutes at the default.
fuzz: deps-test
	$(call step,tools/fuzz.sh --seconds $(FUZZ_SECONDS))
	@tools/fuzz.sh --seconds $(FUZZ_SECONDS)

# --- run and measure -------------------------------------------------------------

# A soak (tools/stress.sh: wrk, redis-benchmark and echo_load against the ASan-built servers on
# each backend: no client errors, clean exits, flat RSS), then each libFuzzer target for
# STRESS_FUZZ_SECONDS (10 minutes each at the default: about 50 minutes).
stress: deps-bench
	$(call step,tools/stress.sh SOAK_SECONDS=$(SOAK_SECONDS))
	@SOAK_SECONDS=$(SOAK_SECONDS) BAZEL='$(BAZEL)' BAZEL_FLAGS='$(BAZEL_FLAGS)' tools/stress.sh
	$(call step,tools/fuzz.sh --seconds $(STRESS_FUZZ_SECONDS))
	@tools/fuzz.sh --seconds $(STRESS_FUZZ_SECONDS)

run: deps
	$(call step,bazel run --config=opt $(RUN_TARGET) -- $(RUN_ARGS))
	$(BAZEL) run --config=opt $(BAZEL_UI) $(BAZEL_FLAGS) $(RUN_TARGET) -- $(RUN_ARGS)

bench: deps-bench
	$(call step,benchmarks/run.sh QUICK=$(QUICK))
	@if [ -f benchmarks/run.sh ]; then \
	    QUICK=$(QUICK) bash benchmarks/run.sh; \
	else \
	    echo 'bench: benchmarks/run.sh is not there yet'; exit 1; \
	fi
	@python3 tools/sync-docs.py

# --- formatting ------------------------------------------------------------------

FORMAT_DIRS := lib coro proto examples tests benchmarks
format_files = $$(find $(FORMAT_DIRS) -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' -o -name '*.cc' \) 2>/dev/null | sort)

format:
	@tools/install-deps.sh format
	@files="$(format_files)"; [ -z "$$files" ] || clang-format -i $$files

format-check:
	@tools/install-deps.sh format
	$(call step,clang-format --dry-run --Werror (make format-check))
	@files="$(format_files)"; [ -z "$$files" ] || clang-format --dry-run --Werror $$files

# --- clean -----------------------------------------------------------------------

clean:
	$(BAZEL) clean

distclean:
	$(BAZEL) clean --expunge

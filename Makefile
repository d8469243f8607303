# Sluice — the two commands a new machine needs are `make run` and `make test`.
# Both install what is missing first (Debian packages, idempotently).

SWIFT      ?= swift
APT_PKGS   := libhiredis-dev libsqlite3-dev redis-server postgresql
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps venv browser screenshots build release run test fuzz bench bench-chart bench-autoscale clean

VENV       := .build-py/venv
PY_PKGS    := openai anthropic standardwebhooks httpx httpx-sse

## deps: install the Debian packages Sluice needs, only those missing; apt-get update only if needed.
## postgresql: the tests start their own servers; a policy-rc.d (unless one exists) keeps the
## install from starting the package's system cluster, which nothing here needs.
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  policy=/usr/sbin/policy-rc.d; made=""; [ -e $$policy ] || { printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null && $(SUDO) chmod 755 $$policy && made=1; }; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; status=$$?; \
	  [ -z "$$made" ] || $(SUDO) rm -f $$policy; [ $$status = 0 ]; \
	else echo "deps: all present ($(APT_PKGS))"; fi

## venv: a Python venv with the official SDKs, the clients of the end-to-end tests (Tests/e2e).
## Debian's python3 needs python3-venv for it; installed when missing.
## Its stamp names the package list, so a venv made before a package was added is made again.
VENV_READY := $(VENV)/.ready-$(shell echo $(PY_PKGS) | md5sum | cut -c1-8)
venv: $(VENV_READY)
$(VENV_READY):
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3 python3-venv; }
	rm -rf $(VENV) && python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PY_PKGS)
	touch $@

## browser: headless Chromium (Debian's chromium) and the venv's `websockets` (its DevTools
## client), for the dashboard's browser tests (Tests/e2e/browser_*.py); each only when missing.
browser: venv
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; } || \
	  echo "browser: chromium could not be installed; BrowserTests will be skipped (and say so)"
	@$(VENV)/bin/python -c 'import websockets' 2>/dev/null || $(VENV)/bin/pip install -q --disable-pip-version-check websockets || \
	  echo "browser: websockets could not be installed; BrowserTests will be skipped (and say so)"

## screenshots: the dashboard's pages against a demo `sluice up` (a bulk through the mock
## provider), written to docs/screenshots/*.png.
screenshots: deps browser
	$(SWIFT) build --product sluice
	$(VENV)/bin/python Tests/e2e/browser_screenshots.py .build/debug/sluice docs/screenshots

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## run: a release build, then `sluice up`: the HTTP API and maintenance, with a private
## redis-server under var/ when redis.url is null (Ctrl-C stops both).
run: deps
	$(SWIFT) build -c release --product sluice
	.build/release/sluice up

## test: the whole suite, against real redis-server processes the harness starts itself. The
## multi-process tests run on their own afterwards, one group at a time: the official SDKs driving
## four `sluice up` processes; three `sluice work` processes for 66 s, kill -9 in a batch; the
## autoscaler running up to four workers through a burst. Alongside the parallel suite, a 2-core
## machine is too loaded for its timing checks (long-poll wake-up, adaptive concurrency). So are
## the suites that time a provider's pauses, probes and RPM spacing, idle connections, a kill -9
## of sluice up, pipeline runs through sluice serve and sluice work with kill -9 between steps,
## routing over three mock providers by their measured load and latency, the dashboard in headless
## Chromium, jobs through the mock's batch APIs with sluice work killed mid-batch, and a Redis
## Sentinel failover (the primary killed, its replica promoted) under sluice serve and sluice work.
HEAVY := SDKTests WorkerProcessTests AutoscaleTests HostileInputTests AdaptiveConcurrencyTests ResumeTests IdleConnectionTests UpCrashTests ProviderLimiterTests \
         PipelineProcessTests RoutingStrategyTests BrowserTests ProviderBatchProcessTests SentinelFailoverTests ReplicasProcessTests
## The parallel suite runs at most TEST_WIDTH tests at once: all 120 suites starting together (each
## with its redis-server) stalled processes for seconds on 2 cores, past the leases and timeouts
## some tests rely on; 8 at once takes about as long.
TEST_WIDTH ?= 8
## Each run's output also goes to .build/test-logs/; when one fails, its failing tests and their
## issues are printed again at the very end, so the tail of a CI log names them.
TEST_LOGS := .build/test-logs
RUN_TESTS  = run_tests() { log=$(TEST_LOGS)/$$1.log; shift; "$$@" 2>&1 | tee $$log; rc=$${PIPESTATUS[0]}; \
  if [ $$rc -ne 0 ]; then echo "=== FAILED ($$log): the failing tests and their issues ==="; \
  grep -E "✘|recorded an issue|error:|Fatal error|crashed|signal [0-9]" $$log | grep -vE "sluice.mock|^◇|^✔" | tail -80; fi; return $$rc; }
test: SHELL := /bin/bash
test: deps venv browser
	$(SWIFT) build --build-tests
	@mkdir -p $(TEST_LOGS); $(RUN_TESTS); \
	run_tests parallel env SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_WIDTH) $(SWIFT) test --skip-build $(foreach suite,$(HEAVY),--skip $(suite))
	@$(RUN_TESTS); $(foreach suite,$(HEAVY),run_tests $(suite) $(SWIFT) test --skip-build --filter $(suite) &&) true
	$(MAKE) fuzz FUZZ_TARGETS="$(FUZZ_TEST_TARGETS)" FUZZ_RUN="$(FUZZ_TEST_RUN)"

## fuzz: the parsers' libFuzzer targets (Tests/Fuzz), FUZZ_SECONDS each (default 60), one after
## another, in their own build folder (.build-fuzz: every module instrumented, FUZZING defined,
## the toolchain's libFuzzer linked). Each starts from its committed corpus, Tests/Fuzz/corpus/<target>
## (crash inputs found before among them, so a regression fails at once), adds what it finds
## to .build-fuzz/corpus/<target>, and writes a crashing input to .build-fuzz/crashes/. Fails if
## any target crashed. `make test` ends with a short, fixed-seed pass of each (FUZZ_TEST_RUN).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= json job bulk multipart ratelimit duration batchline config pipeline template condition mockbatch providerbatch eventid
FUZZ_TEST_TARGETS := $(FUZZ_TARGETS)
# make test's pass is deterministic (a fixed seed and count), so CI replays the corpus and the same
# 20,000 mutations every time rather than failing at random on a new find: exploring is make fuzz's job.
FUZZ_TEST_RUN := -seed=1 -runs=20000
FUZZ_RUN ?= -max_total_time=$(FUZZ_SECONDS)
FUZZ_BUILD   := .build-fuzz
# libFuzzer without its main: SwiftPM renames an executable's main, and SluiceFuzz's own main
# starts libFuzzer (Tests/Fuzz/Sources/SluiceFuzz/main.swift).
FUZZ_LIB      = $(firstword $(wildcard $(dir $(realpath $(shell command -v swiftc)))../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-$(shell uname -m).a))
fuzz: deps
	@test -n "$(FUZZ_LIB)" || { echo "fuzz: no libclang_rt.fuzzer_no_main in the Swift toolchain"; exit 1; }
	$(SWIFT) build --build-path $(FUZZ_BUILD) --product SluiceFuzz \
	  -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING -Xlinker $(FUZZ_LIB) -Xlinker -lstdc++
	@mkdir -p $(FUZZ_BUILD)/crashes; failed=""; passed=0; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "fuzz: $$t ($(FUZZ_RUN))"; \
	  SWIFT_BACKTRACE=enable=no $(FUZZ_BUILD)/debug/SluiceFuzz $$t $(FUZZ_RUN) -timeout=10 \
	    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- \
	    $(FUZZ_BUILD)/corpus/$$t Tests/Fuzz/corpus/$$t > $(FUZZ_BUILD)/$$t.log 2>&1 \
	    && passed=$$((passed + 1)) || { failed="$$failed $$t"; tail -40 $(FUZZ_BUILD)/$$t.log; }; \
	  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" $(FUZZ_BUILD)/$$t.log | tr '\n' ' '; echo; \
	done; \
	echo "fuzz: $$passed passed, $$(echo $$failed | wc -w) failed"; \
	if [ -n "$$failed" ]; then echo "fuzz: crashed:$$failed (inputs in $(FUZZ_BUILD)/crashes)"; exit 1; fi

## bench-autoscale: release build, then a spike against `sluice autoscale`; plots the queue depth
## and the desired and running workers to bench/autoscale.png.
bench-autoscale: deps
	bench/autoscale.sh

## bench: release build, then the queue, HTTP, workers and facade benchmarks (jobs/s, latency
## percentiles, memory, Redis CPU per job, and ratios to redis-benchmark, arq, nginx and LiteLLM
## measured in the same run); each script appends its RESULT lines to one file, and the last step
## prints them as one table (bench/summary.py).
BENCH_RESULTS := .build/bench-results.txt
bench: deps
	@command -v wrk >/dev/null || { $(SUDO) apt-get install -y -qq wrk; }
	@mkdir -p .build && : > $(BENCH_RESULTS)
	BENCH_RESULTS=$(CURDIR)/$(BENCH_RESULTS) bench/queue.sh
	BENCH_RESULTS=$(CURDIR)/$(BENCH_RESULTS) bench/http.sh
	BENCH_RESULTS=$(CURDIR)/$(BENCH_RESULTS) bench/workers.sh
	BENCH_RESULTS=$(CURDIR)/$(BENCH_RESULTS) bench/facade.sh
	@python3 bench/summary.py $(BENCH_RESULTS)

## bench-chart: release build, then completed jobs/s and p99 latency against open-loop offered
## load, Sluice and arq, to bench/throughput.png (and bench/throughput.csv).
bench-chart: deps
	bench/throughput.sh

clean:
	rm -rf .build .build-py .build-fuzz var

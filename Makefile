# Sluice — the two commands a new machine needs are `make run` and `make test`.
# Both install what is missing first (Debian packages, idempotently).

SWIFT      ?= swift
APT_PKGS   := libhiredis-dev libsqlite3-dev redis-server
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps venv build release run test bench bench-autoscale clean

VENV       := .build-py/venv
PY_PKGS    := openai anthropic standardwebhooks

## deps: install the Debian packages Sluice needs, only those missing; apt-get update only if needed.
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present ($(APT_PKGS))"; fi

## venv: a Python venv with the official SDKs, the clients of the end-to-end tests (Tests/e2e).
## Debian's python3 needs python3-venv for it; installed when missing.
venv: $(VENV)/.ready
$(VENV)/.ready:
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3 python3-venv; }
	rm -rf $(VENV) && python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PY_PKGS)
	touch $@

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
## machine is too loaded for its timing checks (long-poll wake-up, adaptive concurrency).
HEAVY := SDKTests WorkerProcessTests AutoscaleTests HostileInputTests
test: deps venv
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build $(foreach suite,$(HEAVY),--skip $(suite))
	$(foreach suite,$(HEAVY),$(SWIFT) test --skip-build --filter $(suite) &&) true

## bench-autoscale: release build, then a spike against `sluice autoscale`; plots the queue depth
## and the desired and running workers to bench/autoscale.png.
bench-autoscale: deps
	bench/autoscale.sh

## bench: release build, then the queue, HTTP and workers benchmarks (jobs/s, latency
## percentiles, memory, and ratios to redis-benchmark, arq and nginx measured in the same run).
bench: deps
	@command -v wrk >/dev/null || { $(SUDO) apt-get install -y -qq wrk; }
	bench/queue.sh
	bench/http.sh
	bench/workers.sh

clean:
	rm -rf .build .build-py var

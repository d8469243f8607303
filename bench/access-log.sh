#!/usr/bin/env bash
# What the access log costs on the submit path (docs/reverse-proxy.md): a release `sluice up`
# taking POST /v1/jobs under wrk (64 connections, 10 s), alternately with `server.access_log` off
# (the default: the middleware is not in the router) and on (a line per request to the process's
# output, a file here), ROUNDS times each (default 3). Prints each run, the medians and the ratio
# on / off. Run it under the build lock, on a quiet machine:
#   flock /tmp/sluice-build.lock bench/access-log.sh
# SLUICE_BENCH_NO_BUILD=1 uses the release binaries as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
need_wrk
bench_work accesslogbench

# run MODE: one sluice up with access_log MODE (false|true), one wrk run against it; prints its rps.
run() {
  local mode=$1 dir="$work/$1-$RANDOM"
  mkdir -p "$dir"
  printf 'server: { port: 0, access_log: %s, trusted_proxies: [127.0.0.1] }\ndatabase: %s/sluice.sqlite\nproviders:\n  bench-submit: { kind: external }\n' \
    "$mode" "$dir" > "$dir/sluice.yaml"
  start_sluice_up "$dir/sluice.yaml" "$dir" >/dev/null
  local result lines
  result=$(AUTH=$key wrk -t2 -c64 -d10s --timeout 10s -s bench/submit.lua -H "X-Forwarded-For: 203.0.113.9" "$url/v1/jobs" | grep '^RESULT')
  kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true; up_pid=
  lines=$(grep -c ' path=/v1/jobs status=202 ' "$dir/up.log" || true)
  echo "access_log $mode: $result (request lines logged: $lines)" >&2
  sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$result"
}

off_on access_log "what the access log costs" false true

#!/usr/bin/env bash
# The queue benchmark: a release build, a private redis-server, redis-benchmark as the ceiling,
# then Sluice's bulk enqueue and full lifecycle. Arguments go to sluice-bench (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SLUICE_BUILD_PATH:-.build}   # the build folder
swift build -c release --scratch-path "$build" --product sluice-bench
extra=()
# SLUICE_BENCH_PEERS=1 also measures arq end to end (../shared/peers), in the same run.
if [ "${SLUICE_BENCH_PEERS:-0}" = 1 ] && [ -x ../shared/peers/peers ]; then
  arq=$(../shared/peers/peers arq 20000 | grep '^RESULT' | tail -1 || true)
  echo "peer: $arq"
  rate=$(sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$arq")
  [ -n "$rate" ] && extra+=(--arq-jobs-per-second "$rate")
fi
out=$(mktemp /tmp/sluice-queuebench.XXXXXX)
trap 'rm -f "$out"' EXIT
"$build/release/sluice-bench" "${extra[@]}" "$@" | tee "$out"
# One RESULT line from the printed figures; BENCH_RESULTS=FILE appends it there (make bench gathers it).
result=$(python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def number(pattern):
    found = re.search(pattern, text)
    return found.group(1) if found else "0"
print("RESULT bench=queue"
      f" lpush_ops_per_s={number(r'LPUSH, 50 clients: +([0-9.]+)')}"
      f" bulk_jobs_per_s={number(r'bulk enqueue: +([0-9.]+)')}"
      f" lifecycle_jobs_per_s={number(r'full lifecycle .*?: +([0-9.]+) jobs/s')}"
      f" idle_p50_ms={number(r'one job at a time, enqueue.*?p50 ([0-9.]+) ms')}"
      f" idle_p99_ms={number(r'one job at a time, enqueue.*?p99 ([0-9.]+) ms')}")
PY
)
echo "$result"
if [ -n "${BENCH_RESULTS:-}" ]; then echo "$result" >> "$BENCH_RESULTS"; fi

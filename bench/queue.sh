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
exec "$build/release/sluice-bench" "${extra[@]}" "$@"

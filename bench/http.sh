#!/usr/bin/env bash
# The HTTP benchmark: a release `sluice up` (its own redis-server), then, in the same run:
#   1. POST /v1/jobs under wrk, 64 connections (and nginx's raw rate under the same wrk, for the ratio);
#   2. bulk JSONL ingestion, and 3. long-poll wake-up latency (sluice-bench --http-url);
#   4. the sluice process's peak RSS.
# BENCH_RESULTS=FILE appends the RESULT lines there. SLUICE_BUILD_PATH picks the build folder (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
peers=../shared/peers/peers
work=$(mktemp -d /tmp/sluice-httpbench.XXXXXX)
up_pid=
cleanup() {
  if [ -n "$up_pid" ]; then kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  [ -x "$peers" ] && "$peers" nginx stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The bench's lanes are declared (a job for a lane no provider serves is refused); kind external:
# Sluice's own workers leave them alone, so submit and bulk are measured without workers.
printf 'server: { port: 0 }\ndatabase: %s/sluice.sqlite\nproviders:\n' "$work" > "$work/sluice.yaml"
for lane in bench-submit bench-bulk bench-wake; do printf '  %s: { kind: external }\n' "$lane" >> "$work/sluice.yaml"; done
start_sluice_up "$work/sluice.yaml" "$work"
echo "sluice up (release) on $url, pid $up_pid; $(nproc) cores"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
submit=$(AUTH=$key wrk -t2 -c64 -d10s --timeout 10s -s bench/submit.lua "$url/v1/jobs" | grep '^RESULT')
echo "submit (wrk -t2 -c64 -d10s): $submit"
nginx_rps=
if [ -x "$peers" ]; then
  "$peers" nginx start >/dev/null
  nginx=$("$peers" wrk "http://127.0.0.1:${FAKE_PORT:-18080}/v1/chat/completions")
  "$peers" nginx stop >/dev/null
  echo "nginx fixed response (same wrk): $nginx"
  nginx_rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$nginx")
fi

"$bin/sluice-bench" --http-url "$url" --api-key "$key" --redis-url "unix://$work/redis/redis.sock" | tee "$work/http.log"

rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$up_pid/status")
submit_rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$submit")
echo
echo "== HTTP results =="
printf 'submit, 64 connections:              %8.0f jobs/s  (%s)\n' "$submit_rps" "$(sed 's/RESULT rps=[0-9.]* //' <<<"$submit")"
[ -n "$nginx_rps" ] && printf 'ratio submit / nginx raw rate:        %8.2fx  (nginx %.0f req/s, same run)\n' \
  "$(python3 -c "print($submit_rps / $nginx_rps)")" "$nginx_rps"
printf 'ratio submit / LiteLLM proxy anchor:  %8.0fx  (anchor 70-170 req/s; vs 170)\n' "$(python3 -c "print($submit_rps / 170)")"
echo "sluice up peak RSS: ${rss} MB"
# The RESULT lines; BENCH_RESULTS=FILE appends them there (make bench gathers them).
results="RESULT bench=submit $(sed 's/^RESULT //' <<<"$submit") nginx_rps=${nginx_rps:-0} rss_mb=$rss
RESULT bench=http $(sed -n 's/^RESULT //p' "$work/http.log")"
echo "$results"
if [ -n "${BENCH_RESULTS:-}" ]; then echo "$results" >> "$BENCH_RESULTS"; fi

#!/usr/bin/env bash
# Live events' cost to the queue (issue 16): the end-to-end benchmark (bench/workers.sh's run 1:
# jobs bulk-submitted over HTTP to a release `sluice up` whose workers call nginx) with no SSE
# stream open, then with SSE_SUBSCRIBERS (default 200) streams of GET /v1/events open and read
# all along, each run on a fresh `sluice up`; prints both rates and their ratio. The streams'
# keys are of tenant SSE_TENANT: `bench` (the default, the submitting tenant: every stream gets
# every job's events, the worst case) or another (each stream gets none: the hub's reading,
# tenant lookups and filtering only).
# BENCH_RESULTS=FILE appends the RESULT line there. SLUICE_BUILD_PATH picks the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
peers=../shared/peers/peers
[ -x "$peers" ] || { echo "../shared/peers/peers is missing" >&2; exit 1; }
subscribers=${SSE_SUBSCRIBERS:-200}
tenant=${SSE_TENANT:-bench}
jobs=${E2E_JOBS:-50000}
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$peers" nginx stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$peers" nginx start >/dev/null

# One run on a fresh `sluice up`: $1 streams; prints its e2e_jobs_per_s.
run() {
  local streams=$1 work
  work=$(mktemp -d /tmp/sluice-ssebench.XXXXXX)
  cat > "$work/sluice.yaml" <<YAML
server: { port: 0 }
database: $work/sluice.sqlite
providers:
  nginx: { kind: openai, base_url: "http://127.0.0.1:${FAKE_PORT:-18080}/v1" }
YAML
  start_sluice_up "$work/sluice.yaml" "$work" >&2
  pids+=("$up_pid")
  # A key holds 16 streams at most: keys of tenant $tenant for them all.
  local admin keys=""
  admin=$(grep -o 'sluice_[a-z0-9]\{8\}_[A-Za-z0-9_-]\{43\}' "$work/up.log" | head -1)
  for _ in $(seq $(( (streams + 15) / 16 ))); do
    keys+=$(curl -sf -X POST "$url/v1/keys" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
      -d "{\"tenant\":\"$tenant\",\"scopes\":[\"read\"]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'),
  done
  local up_before
  up_before=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$up_pid/stat")
  /usr/bin/time -f "sluice-bench (submitter and stream readers) CPU: %U s user, %S s system" \
    "$bin/sluice-bench" --http-url "$url" --api-key "$key" --redis-url "unix://$work/redis/redis.sock" \
    --e2e-lane nginx --e2e-jobs "$jobs" --sse-subscribers "$streams" --sse-keys "${keys%,}" > "$work/e2e.log" 2> "$work/time.log"
  grep -E '^(RESULT|end to end|[0-9]+ SSE)' "$work/e2e.log" >&2
  tail -1 "$work/time.log" >&2
  echo "sluice up (API, workers, hub) CPU over the run: $(( ($(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$up_pid/stat") - up_before) / $(getconf CLK_TCK) )) s" >&2
  kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true
  sed -n 's/^RESULT e2e_jobs_per_s=\([0-9]*\).*/\1/p' "$work/e2e.log"
  rm -rf "$work"
}

none=$(run 0)
with=$(run "$subscribers")
ratio=$(python3 -c "print(f'{$with / $none:.3f}')")
printf 'end to end, %s jobs, no SSE stream:      %8s jobs/s\n' "$jobs" "$none"
printf 'end to end, %s jobs, %s SSE streams (tenant %s):   %8s jobs/s   ratio %s\n' "$jobs" "$subscribers" "$tenant" "$with" "$ratio"
results="RESULT bench=sse e2e_jobs_per_s=$none e2e_with_sse_jobs_per_s=$with sse_subscribers=$subscribers sse_tenant=$tenant ratio=$ratio"
echo "$results"
[ -n "${BENCH_RESULTS:-}" ] && echo "$results" >> "$BENCH_RESULTS"
exit 0

#!/usr/bin/env bash
# The workers benchmark (the third part of `make bench`), release build, in one run:
#   1. end to end: 100,000 jobs bulk-submitted over HTTP to a release `sluice up` whose workers call
#      nginx answering a fixed chat completion (../shared/peers), until every one is recorded;
#      and arq end to end from ../shared/peers in the same run, for the ratio;
#   2. memory: the RSS of one `sluice work` holding 10,000 calls in flight to the mock provider at
#      2 s latency;
#   3. Redis CPU per job: the CPU seconds of `sluice up`'s redis-server (/proc/PID/stat) over run 1,
#      divided by its jobs.
# BENCH_RESULTS=FILE appends the RESULT lines there (make bench gathers them).
# SLUICE_BUILD_PATH picks the build folder (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
peers=../shared/peers/peers
[ -x "$peers" ] || { echo "../shared/peers/peers is missing" >&2; exit 1; }
work=$(mktemp -d /tmp/sluice-workerbench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$peers" nginx stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fake_port=${FAKE_PORT:-18080}
"$peers" nginx start >/dev/null

# 1. End to end through the workers, against nginx.
cat > "$work/sluice.yaml" <<YAML
server: { port: 0 }
database: $work/sluice.sqlite
providers:
  nginx: { kind: openai, base_url: "http://127.0.0.1:$fake_port/v1" }
YAML
start_sluice_up "$work/sluice.yaml" "$work"
pids+=("$up_pid")
echo "sluice up (release, workers calling nginx on :$fake_port), pid $up_pid; $(nproc) cores"
# Redis's CPU time over the run (utime + stime of `sluice up`'s own redis-server, /proc/PID/stat).
redis_pid=$(pgrep -P "$up_pid" -x redis-server | head -1 || true)
cpu_ticks() { [ -n "$redis_pid" ] && awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$redis_pid/stat" || echo 0; }
redis_before=$(cpu_ticks)
"$bin/sluice-bench" --http-url "$url" --api-key "$key" --redis-url "unix://$work/redis/redis.sock" \
  --e2e-lane nginx --e2e-jobs "${E2E_JOBS:-100000}" | tee "$work/e2e.log"
redis_after=$(cpu_ticks)
e2e_rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$up_pid/status")
kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true
arq=$("$peers" arq 20000 | grep '^RESULT' | tail -1 || true)
echo "arq, same run: $arq"

# 2. 10,000 calls in flight from one worker process.
"$bin/sluice" mock-provider --port 0 --latency 2s > "$work/mock.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do grep -q "mock provider on" "$work/mock.log" && break; sleep 0.1; done
mock_port=$(sed -n 's#.*127.0.0.1:\([0-9]*\).*#\1#p' "$work/mock.log" | head -1)
redis-server --port 0 --unixsocket "$work/r2.sock" --save '' --appendonly no --daemonize no > "$work/r2.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do [ -S "$work/r2.sock" ] && break; sleep 0.1; done
cat > "$work/work.yaml" <<YAML
redis: { url: "unix://$work/r2.sock" }
database: $work/w.sqlite
providers:
  mock: { kind: openai, base_url: "http://127.0.0.1:$mock_port/v1" }
YAML
"$bin/sluice-bench" --redis-url "unix://$work/r2.sock" --enqueue-only 20000 --enqueue-lane mock >/dev/null
"$bin/sluice" work --config "$work/work.yaml" --lanes mock --concurrency 10000 > "$work/work.log" 2>&1 &
work_pid=$!; pids+=("$work_pid")
peak=0
for _ in $(seq 40); do
  sleep 0.25
  inflight=$(curl -s "http://127.0.0.1:$mock_port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["in_flight"])')
  [ "$inflight" -gt "$peak" ] && peak=$inflight
done
work_rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$work_pid/status")

e2e=$(sed -n 's/RESULT e2e_jobs_per_s=\([0-9]*\).*/\1/p' "$work/e2e.log")
archive=$(sed -n 's/RESULT archive_jobs_per_s=\([0-9]*\).*/\1/p' "$work/e2e.log")
arq_rate=$(sed -n 's/.*e2e_jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$arq")
jobs=$(( ${E2E_JOBS:-100000} / 10000 * 10000 ))
# Redis CPU per job: its CPU seconds from the first submit until every job was archived, over the jobs.
redis_us=$(python3 -c "print(f'{($redis_after - $redis_before) / $(getconf CLK_TCK) / max(1, $jobs) * 1e6:.1f}')")
echo
echo "== workers results =="
printf 'end to end, 100k jobs via nginx:     %8s jobs/s   (sluice up peak RSS %s MB)\n' "$e2e" "$e2e_rss"
[ -n "$arq_rate" ] && printf 'arq end to end, same run:            %8.0f jobs/s   ratio %.1fx\n' "$arq_rate" "$(python3 -c "print($e2e / $arq_rate)")"
printf 'one worker, calls in flight (peak):  %8s          RSS %s MB (mock latency 2 s)\n' "$peak" "$work_rss"
printf 'redis-server CPU per job (e2e run):   %8s us       (%s jobs, until archived)\n' "$redis_us" "$jobs"
results="RESULT bench=workers e2e_jobs_per_s=${e2e:-0} archive_jobs_per_s=${archive:-0} arq_jobs_per_s=${arq_rate:-0} up_rss_mb=$e2e_rss redis_cpu_us_per_job=$redis_us
RESULT bench=memory in_flight=$peak rss_mb=$work_rss"
echo "$results"
if [ -n "${BENCH_RESULTS:-}" ]; then echo "$results" >> "$BENCH_RESULTS"; fi

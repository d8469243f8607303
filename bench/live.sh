#!/usr/bin/env bash
# The dashboard's and live events' cost to the queue (issue 16): the end-to-end benchmark
# (E2E_JOBS jobs, default 30,000, bulk-submitted over HTTP to a release `sluice up` whose workers
# call nginx, timed until every one has completed) three ways, alternating, ROUNDS times (default
# 3), each run on a fresh `sluice up`:
#   none       nothing open;
#   realistic  DASHBOARDS (20) dashboards on the overview + SUBSCRIBERS (200) SSE subscribers:
#              half apps following their own jobs (each reads GET /v1/jobs/{id}/events of a queued
#              job of the load to its end, then takes the next), half apps of as many other
#              tenants reading GET /v1/events of their own tenant (none of the load's jobs);
#   worst      DASHBOARDS dashboards + SUBSCRIBERS streams of GET /v1/events of the load's own
#              tenant: every stream carries every job.
# and, to see what costs what: dashboards (the dashboards alone), followers (the realistic case's
# job followers alone), tenants (its streams of other tenants alone).
# The clients are one Python process (bench/live_clients.py: asyncio, raw HTTP/1.1), on the same
# two cores as `sluice up` and the submitter; they count what they get and check it (no gap, order,
# every job seen), and a run whose checks fail stops the benchmark. LIVE_CASES picks the cases
# (default "none realistic worst"). Prints each case's median, spread and ratio to none, with
# sluice up's CPU seconds and peak RSS and the clients' CPU.
# Run it alone: flock /tmp/sluice-build.lock bench/live.sh (no build competes for the cores).
# BENCH_RESULTS=FILE appends the RESULT lines there. SLUICE_BUILD_PATH picks the build folder;
# SLUICE_BENCH_NO_BUILD=1 measures the release binaries already there.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
start_nginx
dashboards=${DASHBOARDS:-20}
subscribers=${SUBSCRIBERS:-200}
rounds=${ROUNDS:-3}
jobs=${E2E_JOBS:-30000}
cases=(${LIVE_CASES:-none realistic worst})
submitted=$(( (jobs / 10000 > 0 ? jobs / 10000 : 1) * 10000 ))  # sluice-bench submits bulks of 10,000
echo "$(nproc) cores; $submitted jobs a run; $rounds rounds of: ${cases[*]}"

# run CASE: one run on a fresh `sluice up`; prints "RATE UP_CPU UP_RSS_MB CLIENT_CPU".
run() {
  local case=$1 clients="" flags=()
  # This runs in a subshell ($(run ...)): its own processes are stopped here, whatever happens.
  work=$(mktemp -d /tmp/sluice-livebench.XXXXXX)
  mine=()
  trap 'for pid in "${mine[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
  e2e_config "$work"
  start_sluice_up "$work/sluice.yaml" "$work" >&2
  mine+=("$up_pid")
  case $case in
    none) ;;
    realistic) flags=(--dashboards "$dashboards" --followers $(( subscribers / 2 )) --tenant-streams $(( subscribers - subscribers / 2 ))) ;;
    worst) flags=(--dashboards "$dashboards" --firehoses "$subscribers") ;;
    dashboards) flags=(--dashboards "$dashboards") ;;
    followers) flags=(--followers $(( subscribers / 2 ))) ;;
    tenants) flags=(--tenant-streams $(( subscribers - subscribers / 2 ))) ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
  if [ "${#flags[@]}" -gt 0 ]; then
    python3 bench/live_clients.py --url "$url" --admin "$admin" --key "$key" --expect-jobs "$submitted" "${flags[@]}" \
      > "$work/clients.log" 2>&1 &
    clients=$!
    mine=("$clients" "${mine[@]}")
    for _ in $(seq 600); do grep -q '^ready' "$work/clients.log" && break; kill -0 "$clients" 2>/dev/null || break; sleep 0.1; done
    grep -q '^ready' "$work/clients.log" || { cat "$work/clients.log" >&2; exit 1; }
  fi
  local up_before client_cpu=0 redis_pid redis_before
  up_before=$(cpu_seconds "$up_pid")
  redis_pid=$(pgrep -P "$up_pid" -x redis-server | head -1)
  redis_before=$(cpu_seconds "$redis_pid")
  "$bin/sluice-bench" --http-url "$url" --api-key "$key" --redis-url "unix://$work/redis/redis.sock" \
    --e2e-lane nginx --e2e-jobs "$jobs" > "$work/e2e.log" 2>&1
  local rate up_cpu rss redis_cpu
  rate=$(sed -n 's/^RESULT e2e_jobs_per_s=\([0-9]*\).*/\1/p' "$work/e2e.log")
  up_cpu=$(python3 -c "print(f'{$(cpu_seconds "$up_pid") - $up_before:.1f}')")
  redis_cpu=$(python3 -c "print(f'{$(cpu_seconds "$redis_pid") - $redis_before:.1f}')")
  rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$up_pid/status")
  if [ -n "$clients" ]; then
    kill -TERM "$clients"
    wait "$clients" || { echo "the clients' checks failed:" >&2; cat "$work/clients.log" >&2; exit 1; }
    grep '^LIVE' "$work/clients.log" >&2
    client_cpu=$(sed -n 's/.* cpu_s=\([0-9.]*\).*/\1/p' "$work/clients.log")
  fi
  printf '  %-10s %6s jobs/s   sluice up: %5s s CPU, %4s MB peak RSS   its redis-server: %5s s CPU   clients: %5s s CPU\n' \
    "$case" "$rate" "$up_cpu" "$rss" "$redis_cpu" "$client_cpu" >&2
  kill -TERM "$up_pid"
  exited() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
  local waited=0
  while ! exited "$up_pid" && [ "$waited" -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
  if [ "$waited" -ge 100 ]; then
    echo "sluice up took $((waited / 10)) s or more to stop on SIGTERM; its log ends:" >&2
    tail -20 "$work/up.log" >&2
  fi
  exited "$up_pid" || { echo "sluice up did not stop within 30 s of SIGTERM" >&2; exit 1; }
  wait "$up_pid" 2>/dev/null || true
  echo "$rate $up_cpu $rss $client_cpu $redis_cpu"
}

declare -A rates cpus rsss clientcpus rediscpus
for round in $(seq "$rounds"); do
  echo "round $round" >&2
  for case in "${cases[@]}"; do
    read -r rate cpu rss client rediscpu <<< "$(run "$case")"
    [ -n "$rate" ] || { echo "the $case run failed" >&2; exit 1; }
    rates[$case]+="$rate "; cpus[$case]+="$cpu "; rsss[$case]+="$rss "; clientcpus[$case]+="$client "; rediscpus[$case]+="$rediscpu "
  done
done

base=""
printf '\n%-10s %9s %6s %22s %11s %12s %14s %11s\n' case "median/s" ratio "runs (jobs/s)" "up CPU (s)" "up RSS (MB)" "redis CPU (s)" "client CPU"
for case in "${cases[@]}"; do
  read -r -a r <<< "${rates[$case]}"
  m=$(median "${r[@]}")
  [ -z "$base" ] && [ "$case" = none ] && base=$m
  ratio=$([ -n "$base" ] && python3 -c "print(f'{$m / $base:.3f}')" || echo "-")
  spread=$(python3 -c "r=[${rates[$case]// /,}]; print(f'{(max(r)-min(r))/$m*100:.0f} %')")
  printf '%-10s %9s %6s %22s %11s %12s %14s %11s   spread %s\n' "$case" "$m" "$ratio" "${rates[$case]}" \
    "$(median ${cpus[$case]})" "$(median ${rsss[$case]})" "$(median ${rediscpus[$case]})" "$(median ${clientcpus[$case]})" "$spread"
  runs=$(echo ${rates[$case]} | tr ' ' ',')
  result="RESULT bench=live case=$case e2e_jobs_per_s=$m ratio=$ratio runs=$runs dashboards=$dashboards subscribers=$subscribers"
  echo "$result"
  [ -n "${BENCH_RESULTS:-}" ] && echo "$result" >> "$BENCH_RESULTS"
done
exit 0

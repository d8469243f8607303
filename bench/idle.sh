#!/usr/bin/env bash
# Idle cost and light-load latency of `sluice up` (issue 12, "wake, don't poll"):
#   1. idle: `sluice up` with a private config (its own redis-server, free ports, one provider
#      lane with a job done so its worker runs) sits idle IDLE_SECONDS; prints the CPU it used
#      (utime+stime from /proc/<pid>/stat over the interval, as % of one core) and its RSS, and
#      the same for its private redis-server (polling costs Redis CPU too);
#   2. light load: LAT_JOBS jobs submitted one at a time at LAT_RATE per second to a mock provider
#      answering at once; each job's time from the submit request to its long-poll seeing it
#      succeeded (client clock), p50 / p99 / max.
# SLUICE_BIN picks the binary (default: a release build, made here as the other benches do), e.g.
#   SLUICE_BIN=.build/debug/sluice IDLE_SECONDS=10 LAT_JOBS=50 bench/idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ -n "${SLUICE_BIN:-}" ]; then
  bin=$(cd "$(dirname "$SLUICE_BIN")" && pwd)
else
  build_release
fi
idle_seconds=${IDLE_SECONDS:-30}
lat_jobs=${LAT_JOBS:-200}
lat_rate=${LAT_RATE:-5}
work=$(mktemp -d /tmp/sluice-idlebench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/sluice" mock-provider --port 0 --latency 0 > "$work/mock.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do grep -q "mock provider on" "$work/mock.log" && break; sleep 0.1; done
mock_port=$(sed -n 's#.*127.0.0.1:\([0-9]*\).*#\1#p' "$work/mock.log" | head -1)
cat > "$work/sluice.yaml" <<YAML
server: { port: 0 }
database: $work/sluice.sqlite
providers:
  bench: { kind: openai, base_url: "http://127.0.0.1:$mock_port/v1" }
YAML
start_sluice_up "$work/sluice.yaml" "$work"
pids+=("$up_pid")
redis_pid=$(pgrep -P "$up_pid" redis-server | head -1 || true)
echo "sluice up ($bin/sluice), pid $up_pid, redis-server pid ${redis_pid:-?}; $(nproc) cores"

# One job first, so that the lane exists and its worker runs (the idle state measured is a
# worker waiting on an empty lane, the webhook sender, the stream consumers and maintenance).
job='{"lane": "bench", "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}}'
id=$(curl -s "$url/v1/jobs" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$job" |
  tee "$work/first.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || { cat "$work/first.json" "$work/up.log"; exit 1; }
curl -sf "$url/v1/jobs/$id?wait=10" -H "Authorization: Bearer $key" > /dev/null
sleep 2

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
start_up=$(ticks "$up_pid"); start_redis=$( [ -n "$redis_pid" ] && ticks "$redis_pid" || echo 0)
start_time=$(date +%s.%N)
sleep "$idle_seconds"
end_up=$(ticks "$up_pid"); end_redis=$( [ -n "$redis_pid" ] && ticks "$redis_pid" || echo 0)
end_time=$(date +%s.%N)
rss_up=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$up_pid/status")
python3 - "$start_up" "$end_up" "$start_redis" "$end_redis" "$start_time" "$end_time" "$hz" "$rss_up" <<'PY'
import sys
su, eu, sr, er, t0, t1, hz, rss = sys.argv[1:]
seconds = float(t1) - float(t0)
up = (float(eu) - float(su)) / float(hz) / seconds * 100
redis = (float(er) - float(sr)) / float(hz) / seconds * 100
print(f"idle {seconds:.1f} s: sluice up {up:.2f} % of a core, RSS {rss} MB; its redis-server {redis:.2f} % of a core")
PY

python3 - "$url" "$key" "$lat_jobs" "$lat_rate" <<'PY'
import http.client, json, sys, time
url, key, jobs, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
host, port = url.removeprefix("http://").split(":")
submit, poll = http.client.HTTPConnection(host, int(port)), http.client.HTTPConnection(host, int(port))
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
body = json.dumps({"lane": "bench", "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}})
times = []
for n in range(jobs):
    start = time.perf_counter()
    submit.request("POST", "/v1/jobs", body, headers)
    job = json.loads(submit.getresponse().read())
    poll.request("GET", "/v1/jobs/%s?wait=10" % job["id"], headers=headers)
    done = json.loads(poll.getresponse().read())
    elapsed = time.perf_counter() - start
    if done.get("status") != "succeeded":
        sys.exit("job %s ended %s" % (job["id"], done.get("status")))
    times.append(elapsed * 1000)
    time.sleep(max(0.0, 1 / rate - elapsed))
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"light load ({jobs} jobs at {rate:g}/s, mock provider at 0 latency): submit -> succeeded "
      f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {times[-1]:.2f} ms")
PY

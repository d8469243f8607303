#!/usr/bin/env bash
# The autoscaling picture (`make bench-autoscale`), release build: `sluice autoscale` runs the
# pool bench/autoscale-pool.yaml (25 calls per worker, 1–8 workers) against the mock provider at
# 200 ms a call, with a trickle of 5 jobs/s, and a spike of SPIKE jobs (default 6,000) at 15 s.
# Every half second it records the queue depth, the calls in flight, and the desired and running
# workers (as the scaler publishes them); then it plots them to bench/autoscale.png (matplotlib,
# in a venv of its own under .build-py) and prints when it scaled up, drained and scaled down.
# SLUICE_BUILD_PATH picks the build folder (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
work=$(mktemp -d /tmp/sluice-autoscale.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  redis-cli -s "$work/redis.sock" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
spike=${SPIKE:-6000}
duration=${DURATION:-150}

redis-server --port 0 --unixsocket "$work/redis.sock" --save '' --appendonly no --daemonize yes --logfile "$work/redis.log" >/dev/null
for _ in $(seq 50); do [ -S "$work/redis.sock" ] && break; sleep 0.1; done
"$bin/sluice" mock-provider --port 0 --latency 200ms > "$work/mock.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do grep -q "mock provider on" "$work/mock.log" && break; sleep 0.1; done
mock_port=$(sed -n 's#.*127.0.0.1:\([0-9]*\).*#\1#p' "$work/mock.log" | head -1)
cat > "$work/sluice.yaml" <<YAML
redis: { url: "unix://$work/redis.sock" }
database: $work/sluice.sqlite
providers:
  mock: { kind: openai, base_url: "http://127.0.0.1:$mock_port/v1", limits: { rpm: 60000 } }
YAML
"$bin/sluice" autoscale --config "$work/sluice.yaml" --pool bench/autoscale-pool.yaml --worker-log "$work/workers.log" > "$work/autoscale.log" 2>&1 &
scaler=$!
pids+=("$scaler")

python3 - "$work" "$bin" "$spike" "$duration" <<'PY'
import subprocess, sys, time
work, bin_, spike, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def enqueue(n):
    subprocess.Popen([f"{bin_}/sluice-bench", "--redis-url", f"unix://{work}/redis.sock", "--enqueue-only", str(n), "--enqueue-lane", "mock"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def published():
    out = subprocess.run(["redis-cli", "-s", f"{work}/redis.sock", "HMGET", "sluice:scaling:pool:autoscale-pool",
                          "desired", "workers", "ready", "leased"], capture_output=True, text=True).stdout.split()
    return [int(x) if x.lstrip("-").isdigit() else 0 for x in out] if len(out) == 4 else [0, 0, 0, 0]
start = time.time()
next_trickle = start
spiked = False
with open(f"{work}/series.csv", "w") as f:
    f.write("t,desired,workers,ready,leased\n")
    while time.time() - start < duration:
        now = time.time()
        if now >= next_trickle:
            enqueue(5)
            next_trickle += 1
        if not spiked and now - start >= 15:
            enqueue(spike)
            spiked = True
        desired, workers, ready, leased = published()
        f.write(f"{now - start:.2f},{desired},{workers},{ready},{leased}\n")
        f.flush()
        time.sleep(0.5)
PY
peak_rss=$(ps -o rss= --ppid "$scaler" 2>/dev/null | sort -n | tail -1 || echo 0)
kill -TERM "$scaler"; wait "$scaler" 2>/dev/null || true
cp "$work/series.csv" bench/autoscale.csv

# Plot, with matplotlib in a venv of its own.
venv=.build-py/plot-venv
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; }
"$venv/bin/python" - bench/autoscale.csv bench/autoscale.png "$spike" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
t = [float(r["t"]) for r in rows]
fig, depth = plt.subplots(figsize=(10, 5), dpi=110)
depth.fill_between(t, [int(r["ready"]) for r in rows], color="#9ecae1", label="queue depth (ready)")
depth.plot(t, [int(r["leased"]) for r in rows], color="#3182bd", linewidth=1, label="calls in flight")
depth.set_xlabel("seconds"); depth.set_ylabel("jobs")
workers = depth.twinx()
workers.step(t, [int(r["desired"]) for r in rows], where="post", color="#e6550d", linewidth=2, label="desired workers")
workers.step(t, [int(r["workers"]) for r in rows], where="post", color="#31a354", linewidth=2, linestyle="--", label="running workers")
workers.set_ylabel("worker processes"); workers.set_ylim(0, max(int(r["desired"]) for r in rows) + 1)
lines = depth.get_legend_handles_labels(); more = workers.get_legend_handles_labels()
depth.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
plt.title(f"sluice autoscale: a spike of {int(sys.argv[3]):,} jobs at 15 s over a trickle of 5 jobs/s (mock at 200 ms, 25 calls per worker)")
plt.tight_layout(); plt.savefig(sys.argv[2])
PY

python3 - bench/autoscale.csv "$peak_rss" <<'PY'
import csv, sys
rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1]))]
after = [r for r in rows if r["t"] >= 15]
peak = max(r["workers"] for r in rows)
up = next((r["t"] - 15 for r in after if r["workers"] == peak), None)
drained = next((r["t"] - 15 for r in after if r["t"] > 17 and r["ready"] == 0), None)
down = next((r["t"] - 15 for r in after if drained is not None and r["t"] - 15 > drained and r["workers"] <= 1), None)
print("== autoscale (bench/autoscale.sh) ==")
print(f"workers before the spike: {int(max(r['workers'] for r in rows if r['t'] < 15))}; peak {int(peak)}, reached {up:.1f} s after the spike")
print(f"backlog drained {drained:.1f} s after the spike" if drained is not None else "backlog not drained")
print(f"back to one worker {down:.1f} s after the spike" if down is not None else "not back to one worker within the run")
print(f"largest worker RSS: {int(sys.argv[2] or 0) // 1024} MB")
print("wrote bench/autoscale.png and bench/autoscale.csv")
PY

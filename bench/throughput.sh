#!/usr/bin/env bash
# Throughput against offered load (`make bench-chart`), release build, in one run:
#   Sluice: a release `sluice up` (its own redis-server, its workers) whose provider is nginx
#     answering a fixed chat completion (../shared/peers). At each offered load (LOADS, default
#     1000 2000 5000 10000 15000 20000 jobs/s) jobs are submitted open-loop for STEP_SECONDS
#     (default 6) with `POST /v1/jobs` (sluice-bench --load, up to 64 keep-alive connections); then
#     the lane is left to drain. Completed jobs/s and the submit → succeeded latency come from the
#     jobs' own timestamps (created, finished: milliseconds) in the SQLite archive: completed/s is
#     the step's succeeded jobs over (last finished − first created). Submitted/s is the rate of 2xx
#     answers the generator got (a submit it could not send within 5 s of the step's end is not
#     sent; one answered after that cut is a job but not counted as submitted).
#   arq (../shared/peers: its venv, its worker arq_tasks.py POSTing to the same nginx): the same
#     open-loop steps (ARQ_LOADS, default 500 1000 2000 4000) by bench/arq_rate.py, latency from
#     each job's enqueue_time to finish_time in its stored result.
#   And, as a line on the chart, the same sluice up's end-to-end rate for BULK_JOBS (default 50,000)
#   jobs submitted in bulk (sluice-bench --e2e-lane, as bench/workers.sh does).
# Writes bench/throughput.csv and draws bench/throughput.png (matplotlib, the venv of
# bench/autoscale.sh): completed jobs/s against offered, and p99 latency against offered.
# BENCH_RESULTS=FILE appends the RESULT lines there. SLUICE_BUILD_PATH picks the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
peers=../shared/peers/peers
[ -x "$peers" ] || { echo "../shared/peers/peers is missing" >&2; exit 1; }
peers_dir=${PEERS_DIR:-/tmp/sluice-peers}
work=$(mktemp -d /tmp/sluice-throughput.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$peers" nginx stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
loads=${LOADS:-"1000 2000 5000 10000 15000 20000"}
arq_loads=${ARQ_LOADS:-"500 1000 2000 4000"}
step=${STEP_SECONDS:-6}
fake_port=${FAKE_PORT:-18080}
results=$work/results.txt
: > "$results"
"$peers" nginx start >/dev/null

cat > "$work/sluice.yaml" <<YAML
server: { port: 0 }
database: $work/sluice.sqlite
providers:
  nginx: { kind: openai, base_url: "http://127.0.0.1:$fake_port/v1" }
YAML
start_sluice_up "$work/sluice.yaml" "$work"
pids+=("$up_pid")
echo "sluice up (release, workers calling nginx on :$fake_port), pid $up_pid; $(nproc) cores; $step s a step"

archived() {  # succeeded jobs archived so far
  python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM archived_jobs").fetchone()[0])' "$work/sluice.sqlite"
}
for load in $loads; do
  before=$(archived)
  from=$(date +%s%3N)
  out=$("$bin/sluice-bench" --load "$url/v1/jobs" --load-rate "$load" --load-seconds "$step" --load-warmup 0 \
    --load-drain 5 --load-label "submit-$load" --header "Authorization: Bearer $key" \
    --load-body '{"lane":"nginx","request":{"model":"fake-model","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}}')
  echo "$out" | grep -v '^RESULT'
  accepted=$(sed -n 's/^RESULT .* ok=\([0-9]*\) .*/\1/p' <<<"$out")
  achieved=$(sed -n 's/^RESULT .* achieved=\([0-9.]*\) .*/\1/p' <<<"$out")
  # Done when every accepted job is archived (a cap of 120 s, and it must keep moving).
  last=-1; still=0
  for _ in $(seq 1200); do
    now=$(archived)
    [ "$now" -ge $((before + accepted)) ] && break
    if [ "$now" = "$last" ]; then still=$((still + 1)); [ "$still" -ge 50 ] && break; else still=0; fi
    last=$now; sleep 0.1
  done
  to=$(date +%s%3N)
  python3 - "$work/sluice.sqlite" "$from" "$to" "$load" "$accepted" "$achieved" >> "$results" <<'PY'
import sqlite3, sys
db, since, until, offered, accepted, achieved = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
rows = sqlite3.connect(db).execute(
    "SELECT created_at, finished_at FROM archived_jobs WHERE state = 'succeeded' AND created_at >= ? AND created_at <= ?",
    (since, until)).fetchall()
lat = sorted(f - c for c, f in rows)
def pct(p): return lat[min(len(lat) - 1, max(0, int(p * len(lat) + 0.999999) - 1))] if lat else float("nan")
span = (max(f for _, f in rows) - min(c for c, _ in rows)) / 1000 if rows else 0
print(f"RESULT bench=throughput system=sluice offered={offered} submitted_per_s={achieved:.1f} completed={len(rows)} "
      f"of={accepted} completed_per_s={len(rows) / span if span else 0:.1f} p50_ms={pct(0.5):.1f} p99_ms={pct(0.99):.1f}")
PY
  tail -1 "$results"
done
# For comparison, the same sluice up's end-to-end rate when the jobs come in bulk (10,000 a
# request, as bench/workers.sh submits them): what the workers do once submitting costs little.
bulk_jobs=${BULK_JOBS:-50000}
bulk=$("$bin/sluice-bench" --http-url "$url" --api-key "$key" --redis-url "unix://$work/redis/redis.sock" \
  --e2e-lane nginx --e2e-jobs "$bulk_jobs" | sed -n 's/^RESULT e2e_jobs_per_s=\([0-9]*\).*/\1/p')
echo "RESULT bench=throughput system=sluice-bulk offered=0 submitted_per_s=0 completed=$bulk_jobs of=$bulk_jobs completed_per_s=${bulk:-0} p50_ms=nan p99_ms=nan" | tee -a "$results"
kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true

# arq, same steps, on a redis-server of its own.
arq_python=$peers_dir/venv-arq/bin/python
[ -x "$arq_python" ] || { python3 -m venv "$peers_dir/venv-arq" && "$peers_dir/venv-arq/bin/pip" install -q arq aiohttp; }
arq_port=${ARQ_REDIS_PORT:-16479}
redis-server --port "$arq_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no > "$work/arq-redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 50); do redis-cli -p "$arq_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "arq (../shared/peers/arq_tasks.py), open-loop, same steps"
REDIS_PORT=$arq_port PROVIDER_URL="http://127.0.0.1:$fake_port/v1/chat/completions" \
  "$arq_python" bench/arq_rate.py "$step" 60 $arq_loads | sed 's/^RESULT /RESULT bench=throughput /' | tee -a "$results"

if [ -n "${BENCH_RESULTS:-}" ]; then cat "$results" >> "$BENCH_RESULTS"; fi
python3 - "$results" bench/throughput.csv <<'PY'
import sys
rows = [dict(f.split("=", 1) for f in line.split()[1:]) for line in open(sys.argv[1]) if line.startswith("RESULT")]
columns = ["system", "offered", "submitted_per_s", "completed", "of", "completed_per_s", "p50_ms", "p99_ms"]
with open(sys.argv[2], "w") as out:
    out.write(",".join(columns) + "\n")
    for row in rows:
        out.write(",".join(row.get(c, "") for c in columns) + "\n")
print()
print("== throughput against offered load (bench/throughput.sh) ==")
print(f'{"system":<12}{"offered/s":>10}{"submitted/s":>13}{"completed/s":>13}{"p50 ms":>10}{"p99 ms":>10}  completed')
for r in rows:
    print(f'{r["system"]:<12}{int(r["offered"]):>10}{float(r["submitted_per_s"]):>13.0f}{float(r["completed_per_s"]):>13.0f}'
          f'{float(r["p50_ms"]):>10.1f}{float(r["p99_ms"]):>10.1f}  {r["completed"]} of {r["of"]}')
PY

venv=.build-py/plot-venv
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; }
"$venv/bin/python" - bench/throughput.csv bench/throughput.png "$(nproc)" "$step" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
fig, (rate, latency) = plt.subplots(1, 2, figsize=(12, 5), dpi=110)
styles = {"sluice": ("Sluice (sluice up, one process)", "#3182bd", "o"), "arq": ("arq (Python, asyncio)", "#e6550d", "s")}
top = max(int(r["offered"]) for r in rows)
rate.plot([0, top], [0, top], color="#bbbbbb", linestyle=":", label="completed = offered")
for r in rows:
    if r["system"] == "sluice-bulk" and float(r["completed_per_s"]) > 0:
        rate.axhline(float(r["completed_per_s"]), color="#3182bd", linestyle="--", linewidth=1,
                     label=f'Sluice, {int(r["completed"]):,} jobs submitted in bulk: {float(r["completed_per_s"]):,.0f}/s')
for system, (label, color, marker) in styles.items():
    mine = [r for r in rows if r["system"] == system]
    if not mine: continue
    offered = [int(r["offered"]) for r in mine]
    rate.plot(offered, [float(r["completed_per_s"]) for r in mine], color=color, marker=marker, label=label)
    latency.plot(offered, [float(r["p99_ms"]) for r in mine], color=color, marker=marker, label=label)
rate.set_xlabel("offered load (jobs/s, open-loop)"); rate.set_ylabel("completed jobs/s")
rate.set_title("throughput: submit → provider call (nginx) → result"); rate.legend(loc="upper left")
latency.set_xlabel("offered load (jobs/s, open-loop)"); latency.set_ylabel("p99 submit → succeeded (ms, log)")
latency.set_yscale("log"); latency.set_title("p99 latency (the job's own timestamps)"); latency.legend(loc="upper left")
for axis in (rate, latency): axis.grid(alpha=0.3)
fig.suptitle(f"Sluice vs arq against offered load, open-loop steps of {sys.argv[4]} s; {sys.argv[3]} cores shared by everything (past saturation, latency grows with the step's backlog)")
plt.tight_layout(); plt.savefig(sys.argv[2])
PY
echo "wrote bench/throughput.png and bench/throughput.csv"

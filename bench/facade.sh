#!/usr/bin/env bash
# The synchronous facade's overhead (issue 13), release build, in one run. At each constant rate
# (RATES, default 500 2000 5000 requests/s; MEASURE_SECONDS each, default 12, after 1 s of warm-up),
# open-loop (sluice-bench --load: latency from each request's scheduled send, wrk2-style):
#   1. nginx direct: the fixed-answer fake provider (../shared/peers), POST /v1/chat/completions;
#   2. Sluice's facade: POST /v1/chat/completions on a release `sluice up` whose provider is that
#      nginx (model nginx/fake-model: a job at priority 100, run by its workers, answered in place);
#   3. LiteLLM's proxy in front of the same nginx (../shared/peers litellm's venv and config), once
#      Sluice has stopped; a run it cannot keep up with is cut 5 s after its last request was due,
#      and ends its series (a higher rate would only queue longer).
# Prints a table: per rate, each one's p50/p99/p99.9 and the overhead over direct per percentile.
# BENCH_RESULTS=FILE appends the RESULT lines there (make bench gathers them). Up to LOAD_CONNECTIONS
# (default 64) keep-alive connections each. LITELLM=0 leaves LiteLLM out. SLUICE_BUILD_PATH picks
# the build folder (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
peers=../shared/peers/peers
[ -x "$peers" ] || { echo "../shared/peers/peers is missing" >&2; exit 1; }
peers_dir=${PEERS_DIR:-/tmp/sluice-peers}
work=$(mktemp -d /tmp/sluice-facadebench.XXXXXX)
up_pid=
litellm_pid=
cleanup() {
  if [ -n "$up_pid" ]; then kill -TERM "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  if [ -n "$litellm_pid" ]; then kill -TERM -- "-$litellm_pid" 2>/dev/null || true; wait "$litellm_pid" 2>/dev/null || true; fi
  "$peers" nginx stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
rates=${RATES:-"500 2000 5000"}
seconds=${MEASURE_SECONDS:-12}
connections=${LOAD_CONNECTIONS:-64}
fake_port=${FAKE_PORT:-18080}
litellm_port=${LITELLM_PORT:-14000}
results=$work/results.txt
: > "$results"

# load LABEL URL RATE MODEL AUTH [extra sluice-bench arguments]: one open-loop run; its RESULT line
# goes to $results.
load() {
  local label=$1 url=$2 rate=$3 model=$4 auth=$5; shift 5
  "$bin/sluice-bench" --load "$url" --load-rate "$rate" --load-seconds "$seconds" --load-connections "$connections" \
    --load-label "$label" --header "Authorization: Bearer $auth" \
    --load-body "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in five words.\"}],\"max_tokens\":16}" \
    "$@" | tee -a "$work/load.log" | { grep "^RESULT" || true; } | sed "s/^RESULT /RESULT bench=facade /" >> "$results" || true
  grep -v '^RESULT' "$work/load.log" | tail -3; : > "$work/load.log"
  sleep 2  # what the last run left behind (Sluice archiving its jobs) settles before the next
}

"$peers" nginx start >/dev/null
cat > "$work/sluice.yaml" <<YAML
server: { port: 0 }
database: $work/sluice.sqlite
providers:
  nginx: { kind: openai, base_url: "http://127.0.0.1:$fake_port/v1" }
YAML
start_sluice_up "$work/sluice.yaml" "$work"
echo "sluice up (release, provider nginx on :$fake_port), pid $up_pid; $(nproc) cores; $seconds s per run"
direct="http://127.0.0.1:$fake_port/v1/chat/completions"
# One facade call first: a wrong setup fails here, not as 12 s of errors.
curl -sf -o /dev/null -X POST "$url/v1/chat/completions" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"model":"nginx/fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":4}' \
  || { echo "the facade did not answer 2xx; sluice up's log:"; tail -20 "$work/up.log"; exit 1; }
for rate in $rates; do
  load "direct-$rate" "$direct" "$rate" fake-model sk-fake
  load "facade-$rate" "$url/v1/chat/completions" "$rate" nginx/fake-model "$key" --load-drain 10
done
kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true; up_pid=

# LiteLLM, as ../shared/peers/peers litellm starts it (its venv, config and flags), alone on the machine.
litellm_bin=$peers_dir/venv-litellm/bin/litellm
if [ "${LITELLM:-1}" != 0 ] && [ ! -x "$litellm_bin" ]; then
  python3 -m venv "$peers_dir/venv-litellm" && "$peers_dir/venv-litellm/bin/pip" install -q 'litellm[proxy]' >/dev/null 2>&1 || true
fi
if [ "${LITELLM:-1}" = 0 ]; then
  echo "LiteLLM skipped (LITELLM=0)"
elif [ -x "$litellm_bin" ]; then
  sed "s#127.0.0.1:18080#127.0.0.1:$fake_port#" ../shared/peers/litellm.yaml > "$work/litellm.yaml"
  litellm_key="sk-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY="$litellm_key" \
    setsid "$litellm_bin" --config "$work/litellm.yaml" --host 127.0.0.1 --port "$litellm_port" --num_workers 2 \
    > "$work/litellm.log" 2>&1 < /dev/null &
  litellm_pid=$!
  for _ in $(seq 240); do curl -sf -o /dev/null "http://127.0.0.1:$litellm_port/health/liveliness" && break; sleep 0.25; done
  if curl -sf -o /dev/null -X POST "http://127.0.0.1:$litellm_port/v1/chat/completions" -H "Authorization: Bearer $litellm_key" \
      -H 'Content-Type: application/json' -d '{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'; then
    echo "LiteLLM proxy (2 workers) on :$litellm_port"
    for rate in $rates; do
      load "litellm-$rate" "http://127.0.0.1:$litellm_port/v1/chat/completions" "$rate" fake-model "$litellm_key" --load-drain 5
      # A rate it did not reach ends its runs: a higher one would only queue longer.
      reached=$(sed -n "s/.*label=litellm-$rate achieved=\([0-9.]*\).*/\1/p" "$results")
      python3 -c "import sys; sys.exit(0 if float('${reached:-0}') >= 0.95 * $rate else 1)" \
        || { echo "LiteLLM did not reach $rate/s: higher rates not run"; break; }
    done
  else
    echo "LiteLLM did not start (see its log below); measured without it"; tail -5 "$work/litellm.log"
  fi
  kill -TERM -- "-$litellm_pid" 2>/dev/null || true; wait "$litellm_pid" 2>/dev/null || true; litellm_pid=
else
  echo "LiteLLM is not installed ($litellm_bin) and could not be: measured without it"
fi

if [ -n "${BENCH_RESULTS:-}" ]; then cat "$results" >> "$BENCH_RESULTS"; fi
echo
echo "== facade overhead (bench/facade.sh) =="
python3 - "$results" <<'PY'
import sys
runs = {}
for line in open(sys.argv[1]):
    fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    runs[fields["label"]] = fields
rates = sorted({int(label.rsplit("-", 1)[1]) for label in runs})
def cell(run):
    if run is None: return "not run"
    failed = int(run["unfinished"]) + int(run["errors"]) + int(run["non2xx"])
    text = f'{float(run["p50_ms"]):.2f} / {float(run["p99_ms"]):.2f} / {float(run["p999_ms"]):.2f}'
    if float(run["achieved"]) < 0.95 * float(run["rate"]): text += f' (reached {float(run["achieved"]):.0f}/s)'
    return text + (f' ({failed} unanswered or failed)' if failed else "")
def overhead(run, direct):
    if run is None or direct is None: return "-"
    return " / ".join(f'{float(run[k]) - float(direct[k]):+.2f}' for k in ("p50_ms", "p99_ms", "p999_ms"))
print("latencies in ms, p50 / p99 / p99.9, from each request's scheduled send; overhead = it − nginx direct")
print(f'{"rate/s":>7}  {"nginx direct":<22} {"Sluice facade":<22} {"facade overhead":<24} {"LiteLLM proxy":<22} {"LiteLLM overhead"}')
for rate in rates:
    d, f, l = (runs.get(f"{name}-{rate}") for name in ("direct", "facade", "litellm"))
    print(f'{rate:>7}  {cell(d):<22} {cell(f):<22} {overhead(f, d):<24} {cell(l):<22} {overhead(l, d)}')
    if f: print(f'RESULT bench=facade-overhead rate={rate} p50_ms={float(f["p50_ms"]) - float(d["p50_ms"]):.3f} p99_ms={float(f["p99_ms"]) - float(d["p99_ms"]):.3f} p999_ms={float(f["p999_ms"]) - float(d["p999_ms"]):.3f} achieved={f["achieved"]}')
print("goal (issue 13): facade overhead p50 <= 1 ms and p99 <= 3 ms at 2,000 requests/s")
PY

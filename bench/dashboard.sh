#!/usr/bin/env bash
# The dashboard's cost to the queue (issue 16): the end-to-end benchmark (bench/sse.sh's run:
# jobs bulk-submitted over HTTP to a release `sluice up` whose workers call nginx) with no
# dashboard open, then with DASHBOARDS (default 20) open on the overview: each logged in through
# the form with the admin key and reading /ui/overview.json every 2 s, as the page's script does.
# Runs alternate (none, with, none, with: ROUNDS pairs, default 2), each on a fresh `sluice up`;
# prints the median rates and their ratio. BENCH_RESULTS=FILE appends the RESULT line there.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
peers=../shared/peers/peers
[ -x "$peers" ] || { echo "../shared/peers/peers is missing" >&2; exit 1; }
dashboards=${DASHBOARDS:-20}
rounds=${ROUNDS:-2}
jobs=${E2E_JOBS:-30000}
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$peers" nginx stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$peers" nginx start >/dev/null

# One run on a fresh `sluice up` with $1 dashboards open; prints its e2e_jobs_per_s.
run() {
  local open=$1 work pollers=""
  work=$(mktemp -d /tmp/sluice-dashbench.XXXXXX)
  cat > "$work/sluice.yaml" <<YAML
server: { port: 0 }
database: $work/sluice.sqlite
providers:
  nginx: { kind: openai, base_url: "http://127.0.0.1:${FAKE_PORT:-18080}/v1" }
YAML
  start_sluice_up "$work/sluice.yaml" "$work" >&2
  pids+=("$up_pid")
  local admin
  admin=$(grep -o 'sluice_[a-z0-9]\{8\}_[A-Za-z0-9_-]\{43\}' "$work/up.log" | head -1)
  if [ "$open" -gt 0 ]; then
    python3 - "$url" "$admin" "$open" > "$work/pollers.log" 2>&1 <<'PY' &
import http.client, re, signal, sys, threading, time, urllib.parse
base, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
polls = [0] * count

def dashboard(n):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/ui/login"); r = c.getresponse(); html = r.read().decode()
    token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    cookie = [v for k, v in r.getheaders() if k.lower() == "set-cookie"][0].split(";")[0]
    c.request("POST", "/ui/login", urllib.parse.urlencode({"key": key, "csrf": token}),
              {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); r.read()
    session = [v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("sluice_session")][0].split(";")[0]
    c.request("GET", "/ui/overview", headers={"Cookie": session}); c.getresponse().read()
    time.sleep(2 * n / count)  # spread over the 2 s, as dashboards opened at different times are
    while True:
        c.request("GET", "/ui/overview.json", headers={"Cookie": session}); r = c.getresponse(); r.read()
        assert r.status == 200, r.status
        polls[n] += 1
        time.sleep(2)

def report(*_):
    print(f"{sum(1 for p in polls if p)} dashboards polled /ui/overview.json {sum(polls)} times", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, report)
for n in range(count):
    threading.Thread(target=dashboard, args=(n,), daemon=True).start()
time.sleep(600)
PY
    pollers=$!
    pids+=("$pollers")
    sleep 3  # every dashboard logged in and polling
  fi
  "$bin/sluice-bench" --http-url "$url" --api-key "$key" --redis-url "unix://$work/redis/redis.sock" \
    --e2e-lane nginx --e2e-jobs "$jobs" > "$work/e2e.log" 2>&1
  grep -E '^(RESULT|end to end)' "$work/e2e.log" >&2
  [ -n "$pollers" ] && { kill -TERM "$pollers" 2>/dev/null || true; wait "$pollers" 2>/dev/null || true; cat "$work/pollers.log" >&2; }
  kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true
  sed -n 's/^RESULT e2e_jobs_per_s=\([0-9]*\).*/\1/p' "$work/e2e.log"
  rm -rf "$work"
}

nones=(); withs=()
for _ in $(seq "$rounds"); do
  nones+=("$(run 0)")
  withs+=("$(run "$dashboards")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
none=$(median "${nones[@]}")
with=$(median "${withs[@]}")
ratio=$(python3 -c "print(f'{$with / $none:.3f}')")
printf 'end to end, %s jobs, no dashboard:        %8s jobs/s   (runs: %s)\n' "$jobs" "$none" "${nones[*]}"
printf 'end to end, %s jobs, %s dashboards open:  %8s jobs/s   (runs: %s)   ratio %s\n' "$jobs" "$dashboards" "$with" "${withs[*]}" "$ratio"
results="RESULT bench=dashboard e2e_jobs_per_s=$none e2e_with_dashboards_jobs_per_s=$with dashboards=$dashboards ratio=$ratio"
echo "$results"
[ -n "${BENCH_RESULTS:-}" ] && echo "$results" >> "$BENCH_RESULTS"
exit 0

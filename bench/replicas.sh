#!/usr/bin/env bash
# Submits through two `sluice serve` replicas against one, in the same run: a release build, one
# redis-server (AOF, everysec, as `sluice up` runs it), two `sluice serve` on two ports sharing it
# and one SQLite file (PostgreSQL is not needed for the measurement: the submit path reads the key
# from the cache and writes only Redis), and nginx in front (upstream of the two, or of one).
# wrk (-t2 -c64, bench/submit.lua) measures POST /v1/jobs:
#   direct   wrk -> replica A
#   one      wrk -> nginx -> replica A
#   two      wrk -> nginx -> replicas A and B (round robin, keep-alive)
# ROUNDS (default 2) repeats the three, interleaved; the median of each is reported, with the
# CPU seconds each process used in it. Run it under the build lock, as every benchmark here:
#   flock /tmp/sluice-build.lock bench/replicas.sh
# BENCH_RESULTS=FILE appends the RESULT lines there. SLUICE_BUILD_PATH picks the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "nginx is missing: apt-get install nginx-light (or nginx)" >&2; exit 1; }
rounds=${ROUNDS:-2}
seconds=${SECONDS_EACH:-10}

work=$(mktemp -d /tmp/sluice-replicas.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Redis, as `sluice up` starts its own.
redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --dir "$work" --save "" \
  --appendonly yes --appendfsync everysec --maxmemory-policy noeviction --hash-max-listpack-value 1024 \
  --logfile "$work/redis.log" --daemonize no &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do redis-cli -s "$work/redis.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done

printf 'server: { port: 0 }\nredis: { url: "unix://%s/redis.sock" }\ndatabase: %s/sluice.sqlite\nproviders:\n  bench-submit: { kind: external }\n' \
  "$work" "$work" > "$work/sluice.yaml"

# start_serve NAME: a `sluice serve`; sets serve_pid and serve_port.
start_serve() {
  "$bin/sluice" serve --config "$work/sluice.yaml" > "$work/$1.log" 2>&1 &
  serve_pid=$!
  pids+=("$serve_pid")
  for _ in $(seq 300); do grep -q "sluice: ready" "$work/$1.log" && break; sleep 0.1; done
  grep -q "sluice: ready" "$work/$1.log" || { cat "$work/$1.log"; exit 1; }
  serve_port=$(sed -n 's#.*HTTP API on http://[^:]*:\([0-9]*\).*#\1#p' "$work/$1.log" | head -1)
}
start_serve a; a_pid=$serve_pid; a_port=$serve_port
admin=$(grep -o 'sluice_[a-z0-9]\{8\}_[A-Za-z0-9_-]\{43\}' "$work/a.log" | head -1)
start_serve b; b_pid=$serve_pid; b_port=$serve_port
url="http://127.0.0.1:$a_port"
key=$(new_key bench '"submit","read"')
# The key works on B too (the same database): B reads it on its first request.
curl -s -o /dev/null "http://127.0.0.1:$b_port/v1/jobs?limit=1" -H "Authorization: Bearer $key" || true

one_port=$(free_port); two_port=$(free_port)
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
error_log $work/nginx/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  upstream one { server 127.0.0.1:$a_port; keepalive 64; }
  upstream two { server 127.0.0.1:$a_port; server 127.0.0.1:$b_port; keepalive 64; }
  server { listen 127.0.0.1:$one_port; location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$two_port; location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=("$!")
nginx_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$two_port/healthz" && break; sleep 0.1; done
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)
echo "redis pid $redis_pid; serve A :$a_port (pid $a_pid), B :$b_port (pid $b_pid); nginx :$one_port -> A, :$two_port -> A+B; $(nproc) cores"

# measure NAME URL: one wrk run; prints its RESULT and the CPU seconds each process used.
measure() {
  local before_a before_b before_r before_n result
  before_a=$(cpu_seconds "$a_pid"); before_b=$(cpu_seconds "$b_pid"); before_r=$(cpu_seconds "$redis_pid"); before_n=$(cpu_seconds "$nginx_worker")
  result=$(AUTH=$key wrk -t2 -c64 -d"${seconds}s" --timeout 10s -s bench/submit.lua "$2/v1/jobs" | grep '^RESULT')
  printf '%s %s cpu_a=%.1f cpu_b=%.1f cpu_redis=%.1f cpu_nginx=%.1f\n' "$1" "$(sed 's/^RESULT //' <<<"$result")" \
    "$(python3 -c "print($(cpu_seconds "$a_pid") - $before_a)")" "$(python3 -c "print($(cpu_seconds "$b_pid") - $before_b)")" \
    "$(python3 -c "print($(cpu_seconds "$redis_pid") - $before_r)")" "$(python3 -c "print($(cpu_seconds "$nginx_worker") - $before_n)")"
}

: > "$work/runs"
# A short warm-up through both (connections, key caches, scripts loaded), not counted.
AUTH=$key wrk -t2 -c64 -d2s -s bench/submit.lua "http://127.0.0.1:$two_port/v1/jobs" >/dev/null
for round in $(seq "$rounds"); do
  measure direct "$url" | tee -a "$work/runs"
  measure one "http://127.0.0.1:$one_port" | tee -a "$work/runs"
  measure two "http://127.0.0.1:$two_port" | tee -a "$work/runs"
done

# field NAME KEY: the median of KEY over NAME's runs.
field() { median $(awk -v n="$1" -v k="$2" '$1 == n { for (i = 2; i <= NF; i++) { split($i, p, "="); if (p[1] == k) print p[2] } }' "$work/runs"); }
echo
echo "== submits through replicas (wrk -t2 -c64 -d${seconds}s, median of $rounds) =="
printf '%-34s %10s %9s %9s   %s\n' "path" "submits/s" "p50 ms" "p99 ms" "CPU s: serve A, serve B, redis, nginx"
for name in direct one two; do
  case $name in direct) label="wrk -> replica A";; one) label="wrk -> nginx -> replica A";; two) label="wrk -> nginx -> replicas A+B";; esac
  printf '%-34s %10.0f %9.2f %9.2f   %s, %s, %s, %s\n' "$label" "$(field $name rps)" "$(field $name p50_ms)" "$(field $name p99_ms)" \
    "$(field $name cpu_a)" "$(field $name cpu_b)" "$(field $name cpu_redis)" "$(field $name cpu_nginx)"
done
ratio=$(python3 -c "print(round($(field two rps) / $(field one rps), 2))")
echo "ratio two replicas / one (both through nginx): ${ratio}x"
results="RESULT bench=replicas direct_rps=$(field direct rps) one_rps=$(field one rps) two_rps=$(field two rps) ratio=$ratio two_p50_ms=$(field two p50_ms) two_p99_ms=$(field two p99_ms) one_p50_ms=$(field one p50_ms) one_p99_ms=$(field one p99_ms) cores=$(nproc)"
echo "$results"
if [ -n "${BENCH_RESULTS:-}" ]; then echo "$results" >> "$BENCH_RESULTS"; fi

#!/usr/bin/env bash
# Submits through two `sluice serve` replicas against one, in the same run: a release build, one
# redis-server (AOF, everysec, as `sluice up` runs it), two `sluice serve` on two ports sharing it
# and one SQLite file (or PostgreSQL with DB=postgres, below: the submit path reads the key from
# the cache and writes only Redis), and nginx in front (upstream of the two, or of one).
# wrk (-t2 -c64, bench/submit.lua) measures POST /v1/jobs:
#   direct   wrk -> replica A
#   one      wrk -> nginx -> replica A
#   two      wrk -> nginx -> replicas A and B (round robin, keep-alive)
# ROUNDS (default 2) repeats the three, interleaved; the median of each is reported, with the
# CPU seconds each process used in it. Run it under the build lock, as every benchmark here:
#   flock /tmp/sluice-build.lock bench/replicas.sh
# DB=postgres: the replicas share a private PostgreSQL instead of the SQLite file (started as the
# tests start theirs: initdb into a temp dir, a unix socket only, as the `postgres` user when
# root; stopped at the end whatever happens), and PostgreSQL's own counters (pg_stat_database's
# transactions, pg_stat_statements' calls) are read before and after the timed runs and over an
# idle window as long as one run, to show what the submit path asks of it: per 1,000 submits.
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
db=${DB:-sqlite}
case $db in sqlite | postgres) ;; *) echo "DB is sqlite (the default) or postgres" >&2; exit 2 ;; esac

work=$(mktemp -d /tmp/sluice-replicas.XXXXXX)
pids=()
pg_pid=""; pg_dir=""
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # PostgreSQL last, once its clients are gone: SIGINT is its fast shutdown.
  if [ -n "$pg_pid" ]; then kill -INT "$pg_pid" 2>/dev/null || true; wait "$pg_pid" 2>/dev/null || true; fi
  [ -n "$pg_dir" ] && rm -rf "$pg_dir"
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

# psql_value SQL: one value from the private PostgreSQL (one transaction of its own).
psql_value() { psql -h "$pg_dir" -U sluice -d postgres -XAtq -c "$1"; }

database="$work/sluice.sqlite"
if [ "$db" = postgres ]; then
  # As Sources/SluiceProcess/PostgresServerProcess.swift starts the tests' server, with
  # pg_stat_statements loaded to count what the replicas send.
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$pg_bin" ] && [ -x "$pg_bin/postgres" ] || { echo "PostgreSQL is missing: apt-get install postgresql" >&2; exit 1; }
  command -v psql >/dev/null || { echo "psql is missing: apt-get install postgresql-client" >&2; exit 1; }
  pg_dir=$(mktemp -d /tmp/sluice-replicas-pg.XXXXXX)
  as_pg=()
  if [ "$(id -u)" = 0 ]; then   # PostgreSQL refuses to run as root
    chown postgres: "$pg_dir"
    as_pg=(setpriv --reuid postgres --regid postgres --clear-groups --)
  fi
  "${as_pg[@]}" "$pg_bin/initdb" --pgdata "$pg_dir/data" --username sluice --auth trust --encoding UTF8 \
    --locale C --no-sync > "$work/initdb.log" 2>&1 || { cat "$work/initdb.log"; exit 1; }
  "${as_pg[@]}" "$pg_bin/postgres" -D "$pg_dir/data" -c listen_addresses= -c unix_socket_directories="$pg_dir" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50 -c shared_buffers=32MB \
    -c shared_preload_libraries=pg_stat_statements > "$work/postgres.log" 2>&1 &
  pg_pid=$!
  for _ in $(seq 300); do psql_value 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
  psql_value 'create extension pg_stat_statements' >/dev/null || { cat "$work/postgres.log"; exit 1; }
  database="postgres://sluice@/postgres?host=$pg_dir"
fi
printf 'server: { port: 0 }\nredis: { url: "unix://%s/redis.sock" }\ndatabase: "%s"\nproviders:\n  bench-submit: { kind: external }\n' \
  "$work" "$database" > "$work/sluice.yaml"

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
echo "database: $db; redis pid $redis_pid; serve A :$a_port (pid $a_pid), B :$b_port (pid $b_pid); nginx :$one_port -> A, :$two_port -> A+B; $(nproc) cores"

# measure NAME URL: one wrk run; prints its RESULT and the CPU seconds each process used.
measure() {
  local before_a before_b before_r before_n result
  before_a=$(cpu_seconds "$a_pid"); before_b=$(cpu_seconds "$b_pid"); before_r=$(cpu_seconds "$redis_pid"); before_n=$(cpu_seconds "$nginx_worker")
  result=$(AUTH=$key wrk -t2 -c64 -d"${seconds}s" --timeout 10s -s bench/submit.lua "$2/v1/jobs" | grep '^RESULT')
  # submits: the 202s of the run (codes=202=N,...).
  printf '%s %s submits=%s cpu_a=%.1f cpu_b=%.1f cpu_redis=%.1f cpu_nginx=%.1f\n' "$1" "$(sed 's/^RESULT //' <<<"$result")" \
    "$(grep -o '202=[0-9]*' <<<"$result" | cut -d= -f2 || echo 0)" \
    "$(python3 -c "print($(cpu_seconds "$a_pid") - $before_a)")" "$(python3 -c "print($(cpu_seconds "$b_pid") - $before_b)")" \
    "$(python3 -c "print($(cpu_seconds "$redis_pid") - $before_r)")" "$(python3 -c "print($(cpu_seconds "$nginx_worker") - $before_n)")"
}

: > "$work/runs"
# A short warm-up through both (connections, key caches, scripts loaded), not counted.
AUTH=$key wrk -t2 -c64 -d2s -s bench/submit.lua "http://127.0.0.1:$two_port/v1/jobs" >/dev/null

# pg_counts NAME: "transactions statements" so far in the database the replicas use; each
# statement's calls so far go to $work/pg.NAME. A backend reports its transactions to
# pg_stat_database when idle, at most 10 s late (PGSTAT_IDLE_INTERVAL), so each read waits 11 s
# first; pg_stat_statements counts at once. Each read is itself one transaction and one
# statement, which the next read sees: pg_delta subtracts it.
pg_counts() {
  sleep 11
  psql_value "select 'total', d.xact_commit + d.xact_rollback, coalesce((select sum(calls) from pg_stat_statements s where s.dbid = d.datid), 0)::text from pg_stat_database d where d.datname = 'postgres'
    union all select queryid::text, calls, regexp_replace(left(query, 110), '\s+', ' ', 'g') from pg_stat_statements
    where dbid = (select oid from pg_database where datname = 'postgres') and query not like '%pg_stat%'" > "$work/pg.$1"
  awk -F'|' '$1 == "total" { print $2, $3 }' "$work/pg.$1"
}
pg_delta() { python3 -c "a = '$1'.split(); b = '$2'.split(); print(int(b[0]) - int(a[0]) - 1, int(b[1]) - int(a[1]) - 1)"; }
# pg_statements FROM TO: "calls x query" of each statement run between two reads, most first.
pg_statements() {
  python3 - "$work/pg.$1" "$work/pg.$2" <<'PY'
import sys
def read(path):
    rows = {}
    for line in open(path):
        queryid, calls, text = line.rstrip("\n").split("|", 2)
        if queryid != "total": rows[queryid] = (int(calls), text)
    return rows
before, after = read(sys.argv[1]), read(sys.argv[2])
rows = sorted(((calls - before.get(q, (0,))[0], text) for q, (calls, text) in after.items()), reverse=True)
for calls, text in rows:
    if calls > 0: print(f"{calls} x {text}")
PY
}
if [ "$db" = postgres ]; then
  pg_start=$(pg_counts start)
  pg_idle_start=$(date +%s.%N)
  pg_before=$(pg_counts before)   # an idle window: 11 s and the read, no submits
  pg_idle=$(pg_delta "$pg_start" "$pg_before")
  pg_idle_seconds=$(python3 -c "print(round($(date +%s.%N) - $pg_idle_start, 1))")
  pg_idle_statements=$(pg_statements start before)
  pg_timed_start=$(date +%s.%N)
fi
for round in $(seq "$rounds"); do
  measure direct "$url" | tee -a "$work/runs"
  measure one "http://127.0.0.1:$one_port" | tee -a "$work/runs"
  measure two "http://127.0.0.1:$two_port" | tee -a "$work/runs"
done
if [ "$db" = postgres ]; then
  pg_after=$(pg_counts after)   # the timed runs and the 11 s wait for the counters
  pg_timed=$(pg_delta "$pg_before" "$pg_after")
  pg_timed_seconds=$(python3 -c "print(round($(date +%s.%N) - $pg_timed_start, 1))")
  pg_timed_statements=$(pg_statements before after)
fi

# field NAME KEY: the median of KEY over NAME's runs.
field() { median $(awk -v n="$1" -v k="$2" '$1 == n { for (i = 2; i <= NF; i++) { split($i, p, "="); if (p[1] == k) print p[2] } }' "$work/runs"); }
echo
echo "== submits through replicas, database $db (wrk -t2 -c64 -d${seconds}s, median of $rounds) =="
printf '%-34s %10s %9s %9s   %s\n' "path" "submits/s" "p50 ms" "p99 ms" "CPU s: serve A, serve B, redis, nginx"
for name in direct one two; do
  case $name in direct) label="wrk -> replica A";; one) label="wrk -> nginx -> replica A";; two) label="wrk -> nginx -> replicas A+B";; esac
  printf '%-34s %10.0f %9.2f %9.2f   %s, %s, %s, %s\n' "$label" "$(field $name rps)" "$(field $name p50_ms)" "$(field $name p99_ms)" \
    "$(field $name cpu_a)" "$(field $name cpu_b)" "$(field $name cpu_redis)" "$(field $name cpu_nginx)"
done
ratio=$(python3 -c "print(round($(field two rps) / $(field one rps), 2))")
echo "ratio two replicas / one (both through nginx): ${ratio}x"
extra=""
if [ "$db" = postgres ]; then
  submits=$(awk '{ for (i = 2; i <= NF; i++) { split($i, p, "="); if (p[1] == "submits") s += p[2] } } END { print s + 0 }' "$work/runs")
  read -r timed_xacts timed_statements <<<"$pg_timed"
  read -r idle_xacts idle_statements <<<"$pg_idle"
  per_1000=$(python3 -c "print(round(1000 * $timed_xacts / max($submits, 1), 3))")
  echo "PostgreSQL over the timed runs ($submits submits, ${pg_timed_seconds} s with the counters' wait): $timed_xacts transactions, $timed_statements statements: $per_1000 transactions per 1,000 submits"
  echo "PostgreSQL idle, no submits (${pg_idle_seconds} s): $idle_xacts transactions, $idle_statements statements"
  echo "statements in the timed runs (calls x query):"
  sed 's/^/  /' <<<"$pg_timed_statements"
  echo "statements in the idle window:"
  sed 's/^/  /' <<<"$pg_idle_statements"
  extra=" db=postgres submits=$submits pg_xacts=$timed_xacts pg_statements=$timed_statements pg_xacts_per_1000=$per_1000 pg_idle_xacts=$idle_xacts pg_idle_seconds=$pg_idle_seconds"
fi
results="RESULT bench=replicas direct_rps=$(field direct rps) one_rps=$(field one rps) two_rps=$(field two rps) ratio=$ratio two_p50_ms=$(field two p50_ms) two_p99_ms=$(field two p99_ms) one_p50_ms=$(field one p50_ms) one_p99_ms=$(field one p99_ms) cores=$(nproc)$extra"
echo "$results"
if [ -n "${BENCH_RESULTS:-}" ]; then echo "$results" >> "$BENCH_RESULTS"; fi

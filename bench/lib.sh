# Shared by the bench scripts (sourced, not run): the release build, and a `sluice up` to measure.
# After `build_release`: $bin holds the binaries. After `start_sluice_up CONFIG WORK`: $up_pid,
# $url, $admin (the admin key the first start printed) and $key (an API key of tenant `bench`
# with submit and read, created with it).

build_release() {
  build=${SLUICE_BUILD_PATH:-.build}   # the build folder
  bin="$build/release"
  [ "${SLUICE_BENCH_NO_BUILD:-}" = 1 ] && return 0   # the binaries already built, as they are
  swift build -c release --scratch-path "$build" --product sluice >/dev/null
  swift build -c release --scratch-path "$build" --product sluice-bench >/dev/null
}

start_sluice_up() {
  local config=$1 work=$2
  "$bin/sluice" up --config "$config" --data-directory "$work/redis" > "$work/up.log" 2>&1 &
  up_pid=$!
  for _ in $(seq 200); do grep -q "sluice: ready" "$work/up.log" && break; sleep 0.1; done
  grep -q "sluice: ready" "$work/up.log" || { cat "$work/up.log"; return 1; }
  local port
  port=$(sed -n 's#.*HTTP API on http://[^:]*:\([0-9]*\).*#\1#p' "$work/up.log" | head -1)
  admin=$(grep -o 'sluice_[a-z0-9]\{8\}_[A-Za-z0-9_-]\{43\}' "$work/up.log" | head -1)
  url="http://127.0.0.1:$port"
  key=$(new_key bench '"submit","read"')
}

# new_key TENANT SCOPES: a new key of TENANT with SCOPES (JSON strings, comma-separated), made
# with $admin on $url.
new_key() {
  curl -sf -X POST "$url/v1/keys" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"tenant\":\"$1\",\"scopes\":[$2]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

# e2e_config WORK: a sluice.yaml in WORK whose provider `nginx` is the peers' nginx answering a
# fixed chat completion (start it with `start_nginx`).
e2e_config() {
  cat > "$1/sluice.yaml" <<YAML
server: { port: 0 }
database: $1/sluice.sqlite
providers:
  nginx: { kind: openai, base_url: "http://127.0.0.1:${FAKE_PORT:-18080}/v1" }
YAML
}

# start_nginx: the peers' nginx (../shared/peers), and a trap that stops it and every pid in
# $pids (append the processes you start) on exit.
start_nginx() {
  peers=../shared/peers/peers
  [ -x "$peers" ] || { echo "../shared/peers/peers is missing" >&2; exit 1; }
  pids=()
  trap 'for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
        "$peers" nginx stop >/dev/null 2>&1 || true' EXIT
  "$peers" nginx start >/dev/null
}

# cpu_seconds PID: the user + system CPU seconds PID has used so far (/proc/PID/stat).
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.1f", ($12 + $13) / tck }' "/proc/$1/stat"
}

# median N...: the median of the numbers given.
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

## off_on NAME WHAT OFF ON [OFF_LABEL ON_LABEL]: ROUNDS (default 3) alternating runs of the
## caller's `run OFF` and `run ON` (each prints its jobs/s), then both medians, the ratio on / off
## and a RESULT line.
off_on() {
  local name=$1 what=$2 off_arg=$3 on_arg=$4 off_label=${5:-"$1 off (default):"} on_label=${6:-"$1 on:"}
  local off=() on=() off_median on_median
  for _ in $(seq "${ROUNDS:-3}"); do
    off+=("$(run "$off_arg")")
    on+=("$(run "$on_arg")")
  done
  off_median=$(median "${off[@]}")
  on_median=$(median "${on[@]}")
  echo
  echo "== $what on POST /v1/jobs (wrk -t2 -c64 -d10s, $(nproc) cores, ${ROUNDS:-3} rounds) =="
  printf '%-26s %8.0f jobs/s (median of %s)\n' "$off_label" "$off_median" "${off[*]}"
  printf '%-26s %8.0f jobs/s (median of %s)\n' "$on_label" "$on_median" "${on[*]}"
  printf '%-26s %8.2f\n' "ratio on / off:" "$(python3 -c "print($on_median / $off_median)")"
  echo "RESULT bench=$name off_rps=$off_median on_rps=$on_median"
}

## bench_work NAME: a new folder $work (/tmp/sluice-NAME.XXXXXX); at exit the `sluice up` in
## $up_pid and every process in $helper_pids (the script's own, e.g. a sink) are stopped and
## the folder removed.
bench_work() {
  work=$(mktemp -d "/tmp/sluice-$1.XXXXXX")
  up_pid=
  helper_pids=
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local pid
  for pid in $up_pid $helper_pids; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}

## need_wrk: wrk on the PATH, or a message saying how to get it and exit 1.
need_wrk() { command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }; }

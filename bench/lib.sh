# Shared by the bench scripts (sourced, not run): the release build, and a `sluice up` to measure.
# After `build_release`: $bin holds the binaries. After `start_sluice_up CONFIG WORK`: $up_pid,
# $url, and $key (an API key of tenant `bench` with submit and read, created with the admin key
# the first start printed).

build_release() {
  build=${SLUICE_BUILD_PATH:-.build}   # the build folder
  swift build -c release --scratch-path "$build" --product sluice >/dev/null
  swift build -c release --scratch-path "$build" --product sluice-bench >/dev/null
  bin="$build/release"
}

start_sluice_up() {
  local config=$1 work=$2
  "$bin/sluice" up --config "$config" --data-directory "$work/redis" > "$work/up.log" 2>&1 &
  up_pid=$!
  for _ in $(seq 200); do grep -q "sluice: ready" "$work/up.log" && break; sleep 0.1; done
  grep -q "sluice: ready" "$work/up.log" || { cat "$work/up.log"; return 1; }
  local port admin
  port=$(sed -n 's#.*HTTP API on http://[^:]*:\([0-9]*\).*#\1#p' "$work/up.log" | head -1)
  admin=$(grep -o 'sluice_[a-z0-9]\{8\}_[A-Za-z0-9_-]\{43\}' "$work/up.log" | head -1)
  url="http://127.0.0.1:$port"
  key=$(curl -sf -X POST "$url/v1/keys" -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d '{"tenant":"bench","scopes":["submit","read"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
}

#!/usr/bin/env bash
# What traces cost on the submit path (docs/tracing.md): a release `sluice up` taking POST /v1/jobs
# under wrk (64 connections, 10 s), alternately with `tracing` off (the default) and on (every
# submit a sampled span, its traceparent carried on the job, exported as OTLP/HTTP protobuf to a
# sink on loopback that answers 200), ROUNDS times each (default 3). Prints each run, the medians
# and the ratio on / off. Run it under the build lock, on a quiet machine:
#   flock /tmp/sluice-build.lock bench/tracing.sh
# SLUICE_BENCH_NO_BUILD=1 uses the release binaries as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
build_release
need_wrk
bench_work tracebench

# The collector stand-in: takes every export, counts its bytes, answers an empty protobuf response.
cat > "$work/sink.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = 0
    def do_POST(self):
        Sink.received += int(self.headers.get("Content-Length", "0"))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
        with open(sys.argv[2], "w") as f: f.write(str(Sink.received))
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
open(sys.argv[1], "w").write(str(server.server_address[1]))
server.serve_forever()
PY
python3 "$work/sink.py" "$work/sink.port" "$work/sink.bytes" &
helper_pids=$!
for _ in $(seq 50); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
sink="http://127.0.0.1:$(cat "$work/sink.port")"

# run MODE: one sluice up with tracing MODE (off|on; before: BASELINE_BIN's sluice, built before
# tracing existed, with no tracing section), one wrk run against it; prints its rps.
run() {
  local mode=$1 dir="$work/$1-$RANDOM" built=$bin
  mkdir -p "$dir"
  if [ "$mode" = before ]; then bin=$BASELINE_BIN; fi
  printf 'server: { port: 0 }\ndatabase: %s/sluice.sqlite\nproviders:\n  bench-submit: { kind: external }\n' "$dir" > "$dir/sluice.yaml"
  if [ "$mode" = on ]; then printf 'tracing: { enabled: true, endpoint: "%s", sample_ratio: 1 }\n' "$sink" >> "$dir/sluice.yaml"; fi
  start_sluice_up "$dir/sluice.yaml" "$dir" >/dev/null
  bin=$built
  local result
  result=$(AUTH=$key wrk -t2 -c64 -d10s --timeout 10s -s bench/submit.lua "$url/v1/jobs" | grep '^RESULT')
  kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true; up_pid=
  echo "tracing $mode: $result" >&2
  sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$result"
}

off_on tracing "what traces cost" off on
# BASELINE_BIN=<folder>: also "off" against a release sluice built before tracing existed (e.g.
# `git worktree add /tmp/base 110ac89 && (cd /tmp/base && swift build -c release --product sluice)`,
# then BASELINE_BIN=/tmp/base/.build/release): what tracing costs when it is off.
if [ -n "${BASELINE_BIN:-}" ]; then
  off_on tracing_off_vs_before "tracing off against the build before tracing" before off "the build before tracing:" "this build, tracing off:"
fi
echo "OTLP bytes the sink took: $(cat "$work/sink.bytes" 2>/dev/null || echo 0)"

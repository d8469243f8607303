#!/usr/bin/env bash
# What the response cache and the providers' batch APIs save (issue 15), in one run: a `sluice up`
# on the shipped config with free ports, its mock provider standing in for OpenAI, and
# `batch_api: {window: 5s, poll: 2s}` on the `demo` provider. Then, with the official openai SDK
# (the venv `make test` builds):
#   1. a client batch of BATCH_REQUESTS (default 2,000) support tickets through /v1/files +
#      /v1/batches, which Sluice sends on as one provider batch (bench/cost/provider_batch.py);
#   2. 1,000 cached jobs of 100 distinct requests, 32 submitting at once (bench/cost/cache.py).
# Prints what the usage ledger booked and saved, and the provider calls the mock saw. The dollars
# do not depend on the build; BUILD=debug skips the release build (docs/benchmarks.md's figures).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ "${BUILD:-release}" = debug ]; then swift build --product sluice >/dev/null 2>&1 || swift build --product sluice; bin=.build/debug; else build_release; fi
python=.build-py/venv/bin/python
[ -x "$python" ] || make venv
bench_work costbench
read -r port mock_port < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
python3 - "$work" "$port" "$mock_port" <<'PY'
import sys
work, port, mock = sys.argv[1:]
s = open("config/sluice.yaml").read()
s = s.replace("  port: 8080\n", f"  port: {port}\n", 1)
s = s.replace("mock_provider:\n  port: 9100", f"mock_provider:\n  port: {mock}")
s = s.replace("http://127.0.0.1:9100", f"http://127.0.0.1:{mock}")
s = s.replace("database: var/sluice.sqlite", f"database: {work}/sluice.sqlite")
anchor = "    models: [gpt-4o-mini, text-embedding-3-small]\n    limits: { rpm: 6000, concurrency: 64 }\n"
assert anchor in s
s = s.replace(anchor, anchor + "    batch_api: { window: 5s, poll: 2s }\n", 1)
open(f"{work}/sluice.yaml", "w").write(s)
PY
start_sluice_up "$work/sluice.yaml" "$work"
mock="http://127.0.0.1:$mock_port"
echo "== a client batch through the provider's batch API"
(cd "$work" && "$OLDPWD/$python" "$OLDPWD/bench/cost/provider_batch.py" "$url" "$mock" "$key" "${BATCH_REQUESTS:-2000}")
echo "== 1,000 cached jobs, 100 distinct requests"
"$python" bench/cost/cache.py "$url" "$mock" "$key"

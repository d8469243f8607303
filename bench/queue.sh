#!/usr/bin/env bash
# The queue benchmark: a release build, a private redis-server, redis-benchmark as the ceiling,
# then Sluice's bulk enqueue and full lifecycle. Arguments go to sluice-bench (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product sluice-bench
exec .build/release/sluice-bench "$@"

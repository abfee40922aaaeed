#!/usr/bin/env bash
# How fast a client's disconnect reaches the provider (issue: durability, target 100 ms).
# Runs the end-to-end test that hangs up mid-stream N times (default 20) and reports the delay
# between the client's close and FakeLLM seeing its connection closed, as the test prints it.
#   bench/cancel-latency.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
swift build --build-tests >/dev/null
for _ in $(seq 1 "$runs"); do
  swift test --skip-build --filter clientDisconnectCancels 2>&1 | grep -o 'reached FakeLLM after [0-9]* µs' | grep -o '[0-9]*'
done | sort -n | awk -v target=100000 '
  { v[NR] = $1 }
  END {
    if (NR == 0) { print "no measurement"; exit 1 }
    printf "client hang-up -> provider sees the close, %d runs: min %d µs, median %d µs, max %d µs (target %d µs): %s\n",
      NR, v[1], v[int((NR + 1) / 2)], v[NR], target, (v[NR] <= target ? "met" : "NOT met")
    exit (v[NR] <= target ? 0 : 1)
  }'

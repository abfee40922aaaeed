#!/usr/bin/env bash
# A first, rough figure of the latency tokenctl adds per call: non-streaming chat against an
# instant FakeLLM, 1 connection, direct vs through tokenctl (auth, routing, metering and the
# SQLite ledger all on), interleaved in rounds. The full benchmark rig is a later piece of work.
#
# Two layouts: `split` pins tokenctl to core 0 and FakeLLM + wrk to core 1 (the rig of the
# benchmark issue; every call then crosses cores four times, and a cross-core wake-up costs tens
# of microseconds on this VM, while the direct arm crosses none); `shared` runs everything on
# core 0, which leaves the proxy's own added work.
# Usage: bench/quick-latency.sh [seconds per run, default 10] [rounds, default 3] [layouts, default "split shared"]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
layouts=${3:-split shared}
command -v wrk >/dev/null || scripts/install-deps.sh wrk
scripts/install-deps.sh
swift build -c release --product tokenctl >/dev/null
swift build -c release --product fakellm >/dev/null
bin=.build/release

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
. scripts/lib.sh

run_layout() {
  local layout=$1 sut_core=0 load_core=1
  [ "$layout" = shared ] && load_core=0
  pids=()
  taskset -c "$load_core" "$bin/fakellm" --port 0 >"$work/fake.log" 2>&1 &
  pids+=($!)
  fake=$(listening_url "$work/fake.log")
  mkdir -p "$work/policies"
  rm -f "$work/ledger.sqlite"*
  cp policies/prices.yaml "$work/policies/"
  cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai: { dialect: openai, base_url: "$fake/v1" }
models:
  - { match: "gpt-*", provider: openai }
YAML
  key=$("$bin/tokenctl" keys create --user bench --db "$work/ledger.sqlite" | tail -1)
  taskset -c "$sut_core" "$bin/tokenctl" serve --policies "$work/policies" --db "$work/ledger.sqlite" --port 0 --threads 1 \
    >"$work/proxy.log" 2>&1 &
  pids+=($!)
  proxy=$(listening_url "$work/proxy.log")

  echo "load before: $(uptime)"
  for round in $(seq 1 "$rounds"); do
    for arm in direct proxy; do
      if [ "$arm" = direct ]; then url="$fake/v1/chat/completions"; k=""; else url="$proxy/v1/chat/completions"; k="$key"; fi
      result=$(TOKENCTL_KEY="$k" taskset -c "$load_core" wrk -t1 -c1 -d"${secs}s" -s bench/chat.lua "$url" | grep RESULT)
      echo "round $round $arm $result"
    done
  done | tee "$work/results-$layout.txt"
  echo "load after: $(uptime)"

  echo "layout $layout:"
  python3 - "$work/results-$layout.txt" <<'PY'
import re, sys, statistics
runs = {"direct": [], "proxy": []}
for line in open(sys.argv[1]):
    arm = line.split()[2]
    runs[arm].append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)})
def med(arm, key): return statistics.median(r[key] for r in runs[arm])
for key in ("p50_us", "p99_us"):
    print(f"{key}: direct {med('direct', key):.0f} us, proxy {med('proxy', key):.0f} us, added {med('proxy', key) - med('direct', key):.0f} us (median of rounds)")
print(f"rps at 1 connection: direct {med('direct', 'rps'):.0f}, proxy {med('proxy', 'rps'):.0f}")
errors = sum(r["errors"] + r["non2xx"] for rs in runs.values() for r in rs)
print(f"errors and non-2xx responses: {errors:.0f}")
print(f"proxied calls wrk completed: {sum(r['requests'] for r in runs['proxy']):.0f}")
PY
  rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from calls').fetchone()[0])" "$work/ledger.sqlite")
  echo "ledger rows written: $rows (a call in flight when wrk stops is recorded but not counted by wrk)"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

for layout in $layouts; do run_layout "$layout"; done

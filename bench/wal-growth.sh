#!/usr/bin/env bash
# WAL growth under sustained load (issue 7: "no unbounded WAL growth"): tokenctl (release,
# SQLite ledger on) under wrk at 64 connections for SECONDS (default 60), printing the ledger's
# WAL and database sizes every 5 s, then the WAL after the load, the rows written, and the
# checkpoints by kind with the time the writer's ones held every commit (sum and count).
# The writer asks for a background checkpoint every checkpointPages of WAL, finishes one that
# ended a few frames behind itself (catch_up), and checkpoints at 4 x checkpointPages whatever is left.
# Usage: bench/wal-growth.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v wrk >/dev/null || scripts/install-deps.sh wrk
command -v sqlite3 >/dev/null || scripts/install-deps.sh sqlite3
swift build -c release --product tokenctl >/dev/null
swift build -c release --product fakellm >/dev/null
bin=.build/release
. scripts/lib.sh
start_work_dir
"$bin/fakellm" --port 0 >"$work/fake.log" 2>&1 &
pids+=($!)
fake=$(listening_url "$work/fake.log")
mkdir -p "$work/policies"
cp policies/prices.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai: { dialect: openai, base_url: "$fake/v1" }
models:
  - { match: "gpt-*", provider: openai }
YAML
db="$work/ledger.sqlite"
key=$("$bin/tokenctl" keys create --user bench --db "$db" | tail -1)
"$bin/tokenctl" serve --policies "$work/policies" --db "$db" --port 0 --threads 1 >"$work/proxy.log" 2>&1 &
pids+=($!)
proxy=$(listening_url "$work/proxy.log")
echo "load before: $(uptime)"
TOKENCTL_KEY="$key" wrk -t1 -c64 -d"${secs}s" -s bench/chat.lua "$proxy/v1/chat/completions" | grep RESULT &
load=$!
for i in $(seq 1 $((secs / 5))); do
  sleep 5
  echo "t=$((i * 5))s wal $(stat -c %s "$db-wal" 2>/dev/null || echo 0) bytes, db $(stat -c %s "$db") bytes"
done
wait "$load"
sleep 2
echo "after the load: wal $(stat -c %s "$db-wal" 2>/dev/null || echo 0) bytes, rows $(sqlite3 "$db" 'SELECT COUNT(*) FROM calls')"
curl -s "$proxy/metrics" | grep -E "^tokenctl_ledger_checkpoint(s_total|_hold_seconds_(sum|count))" || true
echo "load after: $(uptime)"

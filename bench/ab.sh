#!/usr/bin/env bash
# Two builds of tokenctl side by side, interleaved run by run: CPU µs per request, req/s and
# latency at a connection count (a shared machine's drift hits both alike), and per thread its
# CPU µs, waits and preemptions per request (bench/threads.sh).
# Usage: bench/ab.sh DIR_A DIR_B [connections=16] [seconds=6] [rounds=4]
#   CHAT_STREAM=1: streamed calls (FakeLLM's default chunks) instead of plain ones.
#   AB_PROVIDER_KEY=KEY: the provider is given a key (api_key_env), as in production: the
#   upstream Authorization header and the scrub of the key from what comes back are measured.
#   AB_COUNTS=1: instead of timing, each run counts per call and thread its mallocs, system
#   calls, context switches and retains + releases (bench/counts.sh; root): exact where CPU
#   time on a shared host is not, so one round tells two builds apart.
#   DIR_A, DIR_B: folders holding a `tokenctl` and a `fakellm` binary (release builds), e.g. one
#   built from an older commit and one from HEAD; and a `prices.yaml` if that build needs its own
#   (an older build refuses keys added since), else the repository's is used.
# Pinning as in bench/run: tokenctl (--threads 1) on core 0, FakeLLM and wrk on core 1.
# Each run also says how much of core 0's time the hypervisor stole meanwhile (bench/steal.sh).
set -euo pipefail
a=$1 b=$2 conns=${3:-16} secs=${4:-6} rounds=${5:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
script=$root/bench/chat.lua
key_field=""
if [ -n "${AB_PROVIDER_KEY:-}" ]; then key_field=", api_key_env: AB_PROVIDER_KEY"; export AB_PROVIDER_KEY; fi
command -v wrk >/dev/null || "$root/scripts/install-deps.sh" wrk

. "$root/scripts/lib.sh"  # listening_url

run() {  # dir
  local bin=$1 work pids=()
  work=$(mktemp -d)
  taskset -c 1 "$bin/fakellm" --port 0 >"$work/fake.log" 2>&1 & pids+=($!)
  local fake; fake=$(listening_url "$work/fake.log")
  mkdir -p "$work/policies"
  if [ -f "$bin/prices.yaml" ]; then cp "$bin/prices.yaml" "$work/policies/"; else cp "$root/policies/prices.yaml" "$work/policies/"; fi
  printf 'providers:\n  instant: { dialect: openai, base_url: "%s/v1"%s }\nmodels:\n  - { match: "gpt-4o-mini", provider: instant }\n' \
    "$fake" "$key_field" >"$work/policies/providers.yaml"
  local key; key=$("$bin/tokenctl" keys create --user bench --db "$work/ledger.sqlite" | tail -1)
  taskset -c 0 "$bin/tokenctl" serve --policies "$work/policies" --db "$work/ledger.sqlite" --port 0 --threads 1 \
    >"$work/tokenctl.log" 2>&1 & local pid=$!; pids+=($pid)
  local url; url=$(listening_url "$work/tokenctl.log")/v1/chat/completions
  TOKENCTL_KEY=$key taskset -c 1 wrk -t1 -c"$conns" -d2s -s "$script" "$url" >/dev/null  # warm-up
  if [ -n "${AB_COUNTS:-}" ]; then
    TOKENCTL_KEY=$key taskset -c 1 wrk -t1 -c"$conns" -d"$((secs + 2))s" -s "$script" "$url" >/dev/null & local load=$!
    sleep 1
    local counted; counted=$("$root/bench/counts.sh" measure "$pid" "$secs" "${url%/v1/chat/completions}/metrics")
    wait $load
    echo "counted per call: $("$root/bench/counts.sh" per-request "$counted")"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    rm -rf "$work"
    return
  fi
  local t0; t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local threads; threads=$("$root/bench/threads.sh" snapshot "$pid")
  local stolen; stolen=$("$root/bench/steal.sh" snapshot 0)
  local result; result=$(TOKENCTL_KEY=$key taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" -s "$script" "$url" | grep RESULT)
  local t1; t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  stolen=$("$root/bench/steal.sh" since "$stolen" 0 | sed 's/core 0: \([0-9.]*\) %.*/\1/')
  local requests; requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$result")
  local hz; hz=$(getconf CLK_TCK)
  echo "${result#RESULT } cpu_us_per_req=$(( (t1 - t0) * 1000000 / hz / requests )) stolen_core0_pct=$stolen"
  echo "    per request: $("$root/bench/threads.sh" per-request "$threads" "$pid" "$requests")"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"
}

[ -z "${AB_COUNTS:-}" ] || "$root/bench/counts.sh" probe
echo "# $(date -u '+%F %T UTC'), $conns connections, ${secs}s per run${CHAT_STREAM:+, streamed calls}${key_field:+, provider key set}; load: $(uptime | sed 's/.*load/load/')"
for round in $(seq "$rounds"); do
  echo "A round $round: $(run "$a")"
  echo "B round $round: $(run "$b")"
done
echo "# load after: $(uptime | sed 's/.*load/load/')"

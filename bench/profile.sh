#!/usr/bin/env bash
# Where a plain call's CPU goes in tokenctl: a `perf` profile with call stacks of the event loop
# and the curl thread under load, and a second window that records where the event loop's
# mallocs are made. What the rig's figures do not say: the rig measures, this explains.
# Usage: bench/profile.sh [connections=16] [seconds=5]   (root: perf, uprobes)
#   Builds (release) and starts FakeLLM and `tokenctl serve --threads 1` as bench/ab.sh does
#   (tokenctl on core 0, FakeLLM and wrk on core 1; the provider given a 164-character key),
#   runs wrk, and prints a markdown report (bench/profile.py), also written to
#   bench/results/<date>-<commit>-profile.md.
# Stacks are unwound from a copy of each sample's stack (`--call-graph dwarf`), which costs the
# process time while recording: the shares compare, the µs are those of a slowed process.
set -euo pipefail
conns=${1:-16} secs=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v wrk >/dev/null || scripts/install-deps.sh wrk
command -v perf >/dev/null || { echo "bench/profile.sh: perf is needed (apt-get install linux-perf)" >&2; exit 1; }
swift build -c release --product tokenctl >/dev/null
swift build -c release --product fakellm >/dev/null
bin=$root/.build/release

. scripts/lib.sh  # listening_url
work=$(mktemp -d) pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
taskset -c 1 "$bin/fakellm" --port 0 >"$work/fake.log" 2>&1 & pids+=($!)
fake=$(listening_url "$work/fake.log")
mkdir -p "$work/policies"
cp policies/prices.yaml "$work/policies/"
PROFILE_PROVIDER_KEY=$(head -c 512 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 164)
export PROFILE_PROVIDER_KEY
printf 'providers:\n  instant: { dialect: openai, base_url: "%s/v1", api_key_env: PROFILE_PROVIDER_KEY }\nmodels:\n  - { match: "gpt-4o-mini", provider: instant }\n' \
  "$fake" >"$work/policies/providers.yaml"
key=$("$bin/tokenctl" keys create --user bench --db "$work/ledger.sqlite" 2>/dev/null | tail -1)
taskset -c 0 "$bin/tokenctl" serve --policies "$work/policies" --db "$work/ledger.sqlite" --port 0 --threads 1 \
  >"$work/tokenctl.log" 2>&1 & pid=$!; pids+=($pid)
base=$(listening_url "$work/tokenctl.log")
url=$base/v1/chat/completions

# The first thread whose name starts with $1.
thread() { for t in /proc/"$pid"/task/*; do case $(cat "$t/comm") in "$1"*) basename "$t" ;; esac; done | head -1; }
# Calls answered over `seconds`, read inside perf's command so that both cover the same window
# (perf takes a while to attach, a uprobe longest).
served() { curl -s "$base/metrics" | awk '/^tokenctl_requests_total/ {n += $NF} END {print n + 0}'; }
window() { local a; a=$(served); sleep "$secs"; echo $(($(served) - a)); }
export -f served window; export base secs
load() { TOKENCTL_KEY=$key taskset -c 1 wrk -t1 -c"$conns" -d"$1"s -s bench/chat.lua "$url" >/dev/null; }

load 3  # warm-up: connections made, caches and the ledger's first pages
loop=$(thread NIO-ELT-) curl=$(thread tokenctl-curl)
[ -n "$loop" ] && [ -n "$curl" ] || { echo "bench/profile.sh: threads not found" >&2; exit 1; }

# Window 1: CPU, every thread of interest, ~1 ms of CPU per sample.
load $((secs + 4)) & wrk_pid=$!
sleep 2
perf record -q -F 999 -e cpu-clock --call-graph dwarf,16384 -t "$loop,$curl" -o "$work/cpu.data" -- bash -c window \
  >"$work/calls" 2>/dev/null
calls=$(cat "$work/calls")
wait $wrk_pid
perf script -i "$work/cpu.data" -F tid,ip,sym,dso 2>/dev/null >"$work/cpu.txt"

# Window 2: the event loop's mallocs (a uprobe: each one traps, so a window of its own).
malloc_args=()
if bench/counts.sh probe 2>/dev/null; then
  probe=$(grep -q libmimalloc "/proc/$pid/maps" && echo probe_libmimalloc:mimalloc || echo probe_libc:malloc)
  load $((secs + 4)) & wrk_pid=$!
  sleep 2
  perf record -q -e "$probe" --call-graph dwarf,8192 -t "$loop" -o "$work/malloc.data" -- bash -c window \
    >"$work/calls" 2>/dev/null
  malloc_calls=$(cat "$work/calls")
  wait $wrk_pid
  perf script -i "$work/malloc.data" -F tid,ip,sym,dso 2>/dev/null >"$work/malloc.txt"
  malloc_args=(--mallocs "$work/malloc.txt" --malloc-calls "$malloc_calls")
fi

out=bench/results/$(date -u +%F)-$(git rev-parse --short HEAD)-profile.md
{
  echo "# Where a call's CPU goes in tokenctl"
  echo
  echo "- $(date -u '+%F %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources || echo ' (with uncommitted changes)'); $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "- load: $(uptime | sed 's/.*load average: //') (after); $conns connections, plain calls, the provider given a key; \`tokenctl serve --threads 1\` on core 0, FakeLLM and wrk on core 1"
  echo
  python3 bench/profile.py --cpu "$work/cpu.txt" --calls "$calls" --loop "$loop" --curl "$curl" "${malloc_args[@]}"
} | tee "$out"
echo "written to $out" >&2

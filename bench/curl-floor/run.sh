#!/usr/bin/env bash
# The libcurl floor under the proxy's curl thread (floor.c): the rig's POST through one curl multi
# handle from C and nothing else, at 1, 16 and 64 transfers in flight, against a FakeLLM of its
# own (instant) or URL. Pinned as bench/run pins the system under test (CORE, default 0) and
# FakeLLM (the other core). Compare with the curl thread's µs per request in bench/run's table.
# Usage: bench/curl-floor/run.sh [transfers per level; default 100,000] [URL]
# Env: LEVELS (transfers in flight, default "1 16 64"), CORE.
set -euo pipefail
transfers=${1:-100000}
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/scripts/install-deps.sh" $(command -v gcc >/dev/null || echo gcc)
core=${CORE:-0}
other=$(( core == 0 ? 1 : 0 ))
work=$(mktemp -d)
fake=
trap '[ -n "$fake" ] && kill $fake 2>/dev/null; rm -rf "$work"' EXIT
gcc -O2 -o "$work/floor" "$root/bench/curl-floor/floor.c" -lcurl
url=${2:-}
if [ -z "$url" ]; then
    (cd "$root" && swift build -c release --product fakellm >/dev/null)
    taskset -c $other "$root/.build/release/fakellm" --port 0 >"$work/fake.log" 2>&1 &
    fake=$!
    . "$root/scripts/lib.sh"
    url="$(listening_url "$work/fake.log")/v1/chat/completions"
fi
for n in ${LEVELS:-1 16 64}; do
    taskset -c $core "$work/floor" "$url" "$n" "$transfers"
done

#!/usr/bin/env bash
# Crash test (issue: durability): kill -9 tokenctl under concurrent streaming and non-streaming
# load against FakeLLM, restart it, and check that every response a client received complete
# has its committed row and that all rows are consistent. Three rounds with different seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
use_debug_binaries

start_work_dir

# Streams of 8 deltas 3 ms apart: the kill lands in the middle of many of them.
start_fakellm --threads 2 --chunks 8 --chunk-gap-ms 3

mkdir -p "$work/policies"
cp policies/prices.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai:    { dialect: openai,    base_url: "$fake/v1", api_key_env: CRASH_TEST_PROVIDER_KEY }
  anthropic: { dialect: anthropic, base_url: "$fake",    api_key_env: CRASH_TEST_PROVIDER_KEY }
  # The same fake, 3 s to the first byte: calls certainly in flight when the server is killed.
  openai-slow: { dialect: openai, base_url: "$fake/v1", api_key_env: CRASH_TEST_PROVIDER_KEY,
                 headers: { x-fake-first-byte-delay-ms: "3000" } }
models:
  - { match: "gpt-4.1-*", provider: openai-slow }
  - { match: "gpt-*", provider: openai }
  - { match: "claude-*", provider: anthropic }
YAML

db="$work/ledger.sqlite"
key=$("$bin/tokenctl" keys create --user crash-load --db "$db" | tail -1)
CRASH_TEST_PROVIDER_KEY="$provider_key" python3 Tests/crash/crash_test.py --tokenctl "$bin/tokenctl" \
  --policies "$work/policies" --db "$db" --key "$key" --logs "$work/tokenctl.log" --seeds "${CRASH_SEEDS:-1,2,3}" \
  || { echo "--- tokenctl log (tail)"; tail -30 "$work/tokenctl.log"; exit 1; }

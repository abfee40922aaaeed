#!/usr/bin/env bash
# Compatibility test with the official `openai` and `anthropic` Python SDKs: starts FakeLLM and
# tokenctl on free loopback ports with a throwaway policy and ledger, runs Tests/sdk/sdk_compat.py.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/.build/debug"
if [ ! -x "$bin/tokenctl" ] || [ ! -x "$bin/fakellm" ]; then
  swift build --product tokenctl
  swift build --product fakellm
fi

python3 -m venv --help >/dev/null 2>&1 || scripts/install-deps.sh python3-venv
venv="$root/.build/sdk-venv"
if ! "$venv/bin/python" -c "import openai, anthropic" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check openai anthropic
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

. scripts/lib.sh

provider_key="fake-provider-key-$$"
"$bin/fakellm" --port 0 --api-key "$provider_key" >"$work/fakellm.log" 2>&1 &
pids+=($!)
fake=$(listening_url "$work/fakellm.log")

mkdir -p "$work/policies"
cp policies/prices.yaml "$work/policies/"
[ -f policies/gateway.yaml ] && cp policies/gateway.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai:    { dialect: openai,    base_url: "$fake/v1", api_key_env: SDK_TEST_PROVIDER_KEY }
  anthropic: { dialect: anthropic, base_url: "$fake",    api_key_env: SDK_TEST_PROVIDER_KEY }
  # The same fake, answering after 0.8 s: keeps a call in flight for the concurrency test.
  openai-slow: { dialect: openai, base_url: "$fake/v1", api_key_env: SDK_TEST_PROVIDER_KEY,
                 headers: { x-fake-first-byte-delay-ms: "800" } }
models:
  - { match: "gpt-4.1-*", provider: openai-slow }
  - { match: "gpt-*", provider: openai }
  - { match: "text-embedding-*", provider: openai }
  - { match: "claude-*", provider: anthropic }
YAML

cat >"$work/policies/plans.yaml" <<YAML
defaults: { plan: open }
plans:
  open: {}
  one-at-a-time: { max_concurrent: 1 }
  broke: { budget: { monthly_usd: "0" } }
users:
  sdk-paced: { plan: one-at-a-time }
  sdk-broke: { plan: broke }
YAML

db="$work/ledger.sqlite"
key=$("$bin/tokenctl" keys create --user sdk-alice --team sdk --db "$db" | tail -1)
paced_key=$("$bin/tokenctl" keys create --user sdk-paced --db "$db" | tail -1)
broke_key=$("$bin/tokenctl" keys create --user sdk-broke --db "$db" | tail -1)
SDK_TEST_PROVIDER_KEY="$provider_key" "$bin/tokenctl" serve --policies "$work/policies" --db "$db" --port 0 \
  >"$work/tokenctl.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
proxy=$(listening_url "$work/tokenctl.log")

"$venv/bin/python" Tests/sdk/sdk_compat.py --base-url "$proxy" --key "$key" --db "$db" \
  --paced-key "$paced_key" --broke-key "$broke_key" \
  --tokenctl "$bin/tokenctl" || { echo "--- tokenctl log"; tail -50 "$work/tokenctl.log"; exit 1; }

# Shutdown: a call in flight at SIGTERM is recorded (as interrupted) and serve exits 0.
curl -s -o /dev/null -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -H 'x-request-id: sdk-sigterm' -d '{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"hi"}]}' \
  "$proxy/v1/chat/completions" &
sleep 0.3
kill -TERM "$serve_pid"
code=0; wait "$serve_pid" || code=$?
outcome=$(python3 -c "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(\"select outcome from calls where request_id='sdk-sigterm'\").fetchone(); print(r[0] if r else 'none')" "$db")
if [ "$code" = 0 ] && [ "$outcome" = interrupted ]; then
  echo "ok   serve: SIGTERM records the call in flight (interrupted) and exits 0"
else
  echo "FAIL serve: SIGTERM exit code $code, in-flight call recorded as '$outcome'"; tail -20 "$work/tokenctl.log"; exit 1
fi

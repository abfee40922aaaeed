#!/usr/bin/env bash
# Compatibility test with the official `openai` and `anthropic` Python SDKs: starts FakeLLM and
# tokenctl on free loopback ports with a throwaway policy and ledger, runs Tests/sdk/sdk_compat.py.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
use_debug_binaries

python3 -m venv --help >/dev/null 2>&1 || scripts/install-deps.sh python3-venv
venv="$root/.build/sdk-venv"
if ! "$venv/bin/python" -c "import openai, anthropic" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check openai anthropic
fi

start_work_dir

start_fakellm

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
  # The same fake, its answers making two web searches and one file search (streams show each).
  openai-search:    { dialect: openai, base_url: "$fake/v1", api_key_env: SDK_TEST_PROVIDER_KEY,
                      headers: { x-fake-web-searches: "2", x-fake-file-searches: "1" } }
  anthropic-search: { dialect: anthropic, base_url: "$fake", api_key_env: SDK_TEST_PROVIDER_KEY,
                      headers: { x-fake-web-searches: "2" } }
models:
  - { match: "gpt-4o", provider: openai-search }
  - { match: "claude-sonnet-4-5", provider: anthropic-search }
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

# Shutdown (SIGTERM): the server stops accepting, lets the call in flight finish (default drain
# 30 s), records it, and exits 0; the client gets the whole answer.
outcome_of() {
  python3 -c "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(\"select outcome from calls where request_id=?\", (sys.argv[2],)).fetchone(); print(r[0] if r else 'none')" "$db" "$1"
}
sigterm_call() {  # request id, proxy url; prints the HTTP status curl got
  curl -s -o "$work/$1.body" -w '%{http_code}' -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -H "x-request-id: $1" -d '{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"hi"}]}' \
    "$2/v1/chat/completions" > "$work/$1.status" || true
}
sigterm_call sdk-drained "$proxy" &
curl_pid=$!
sleep 0.3
kill -TERM "$serve_pid"
code=0; wait "$serve_pid" || code=$?
wait "$curl_pid"
outcome=$(outcome_of sdk-drained)
if [ "$code" = 0 ] && [ "$outcome" = ok ] && [ "$(cat "$work/sdk-drained.status")" = 200 ]; then
  echo "ok   serve: SIGTERM drains: the call in flight finishes (200, recorded ok) and serve exits 0"
else
  echo "FAIL serve: SIGTERM exit code $code, in-flight call got $(cat "$work/sdk-drained.status") and was recorded as '$outcome'"; tail -20 "$work/tokenctl.log"; exit 1
fi

# Past --drain-timeout the call still in flight is cancelled and recorded as interrupted.
SDK_TEST_PROVIDER_KEY="$provider_key" "$bin/tokenctl" serve --policies "$work/policies" --db "$db" --port 0 \
  --drain-timeout 0.2 >"$work/tokenctl2.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
proxy=$(listening_url "$work/tokenctl2.log")
sigterm_call sdk-interrupted "$proxy" &
curl_pid=$!
sleep 0.3
kill -TERM "$serve_pid"
code=0; wait "$serve_pid" || code=$?
wait "$curl_pid"
outcome=$(outcome_of sdk-interrupted)
if [ "$code" = 0 ] && [ "$outcome" = interrupted ]; then
  echo "ok   serve: past --drain-timeout the call in flight is cancelled, recorded as interrupted, exit 0"
else
  echo "FAIL serve: drain timeout: exit code $code, in-flight call recorded as '$outcome'"; tail -20 "$work/tokenctl2.log"; exit 1
fi

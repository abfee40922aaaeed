#!/usr/bin/env bash
# Screenshot of the built-in dashboard with real data: starts FakeLLM and tokenctl on free loopback
# ports with a throwaway policy and ledger, creates keys, sends real traffic (several users, teams
# and models, streaming and not, some refusals and provider errors), then renders /dashboard in
# headless Chromium with an admin key and saves a PNG.
#
#   scripts/dashboard-screenshot.sh [OUT.png]      (default /tmp/tokenctl-shots/dashboard.png)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
out=${1:-/tmp/tokenctl-shots/dashboard.png}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
use_debug_binaries
command -v chromium >/dev/null || scripts/install-deps.sh chromium
command -v curl >/dev/null || scripts/install-deps.sh curl

start_work_dir

start_fakellm --chunks 120

mkdir -p "$work/policies"
cp policies/prices.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai:    { dialect: openai,    base_url: "$fake/v1", api_key_env: SHOT_PROVIDER_KEY }
  anthropic: { dialect: anthropic, base_url: "$fake",    api_key_env: SHOT_PROVIDER_KEY }
  # The same fake with longer answers after a pause, and one that fails: real latency and errors.
  openai-long: { dialect: openai, base_url: "$fake/v1", api_key_env: SHOT_PROVIDER_KEY,
                 headers: { x-fake-chunks: "900", x-fake-first-byte-delay-ms: "150", x-fake-reasoning-tokens: "300" } }
  openai-flaky: { dialect: openai, base_url: "$fake/v1", api_key_env: SHOT_PROVIDER_KEY,
                  headers: { x-fake-fail: "http-500" } }
models:
  - { match: "o3", provider: openai-long }
  - { match: "gpt-5-nano", provider: openai-flaky }
  - { match: "gpt-*", provider: openai }
  - { match: "claude-*", provider: anthropic }
YAML
cat >"$work/policies/plans.yaml" <<YAML
defaults: { plan: standard }
plans:
  standard: { budget: { daily_usd: "1.00" } }
  broke: { budget: { monthly_usd: "0" } }
users:
  mallory: { plan: broke }
teams:
  research: { budget: { monthly_usd: "0.25" } }
YAML

db="$work/ledger.sqlite"
declare -A keys
for spec in alice:research bob:research carol:design dave:design erin: mallory:; do
  user=${spec%%:*}; team=${spec#*:}
  keys[$user]=$("$bin/tokenctl" keys create --user "$user" ${team:+--team "$team"} --db "$db" | tail -1)
done
admin_key=$("$bin/tokenctl" keys create --admin --user ops --db "$db" | tail -1)
"$bin/tokenctl" keys list --db "$db"

SHOT_PROVIDER_KEY="$provider_key" "$bin/tokenctl" serve --policies "$work/policies" --db "$db" --port 0 \
  >"$work/tokenctl.log" 2>&1 &
pids+=($!)
proxy=$(listening_url "$work/tokenctl.log")

# One call; prints the status. $1 user (or a raw key with --raw), $2 path, $3 JSON body.
call() {
  local key=${keys[$1]:-$1} path=$2 body=$3 auth
  if [ "$path" = /v1/messages ]; then
    auth=(-H "x-api-key: $key" -H "anthropic-version: 2023-06-01")
  else
    auth=(-H "authorization: Bearer $key")
  fi
  curl -s -o /dev/null -w '%{http_code}\n' "${auth[@]}" -H 'content-type: application/json' -d "$body" "$proxy$path"
}
prompt() { printf 'Summarise the quarterly figures for team %s, item %s. %.0s' "$1" "$2" $(seq 1 "$3"); }
chat() { echo "{\"model\":\"$1\",\"stream\":$2,\"messages\":[{\"role\":\"user\",\"content\":\"$(prompt "$3" "$4" "$5")\"}]}"; }
messages() { echo "{\"model\":\"$1\",\"max_tokens\":1024,\"stream\":$2,\"messages\":[{\"role\":\"user\",\"content\":\"$(prompt "$3" "$4" "$5")\"}]}"; }

statuses="$work/statuses"
send_traffic() {
  for i in $(seq 1 "$2"); do
    case $1 in
      alice) call alice /v1/chat/completions "$(chat o3 false research "$i" 40)"
             call alice /v1/messages "$(messages claude-sonnet-4-20250514 true research "$i" 30)" ;;
      bob)   call bob /v1/chat/completions "$(chat gpt-4.1 true research "$i" 60)"
             call bob /v1/chat/completions "$(chat gpt-4o-mini false research "$i" 10)" ;;
      carol) call carol /v1/messages "$(messages claude-3-5-haiku-20241022 false design "$i" 50)"
             call carol /v1/chat/completions "$(chat gpt-5-nano false design "$i" 5)" ;;
      dave)  call dave /v1/chat/completions "$(chat gpt-4o true design "$i" 25)" ;;
      erin)  call erin /v1/chat/completions "$(chat gpt-4.1-mini false none "$i" 15)" ;;
    esac
  done >>"$statuses"
}
# Users in parallel (so calls overlap), each sequentially.
senders=()
for spec in alice:12 bob:15 carol:10 dave:12 erin:8; do
  send_traffic "${spec%%:*}" "${spec#*:}" &
  senders+=($!)
done
wait "${senders[@]}"
# Regenerations: alice and bob send the same prompt again within seconds (the retry share).
{
  call alice /v1/chat/completions "$(chat o3 false research 1 40)"
  call alice /v1/chat/completions "$(chat o3 false research 1 40)"
  call bob /v1/chat/completions "$(chat gpt-4.1 true research 2 60)"
} >>"$statuses"
# Refusals: an unknown key, an unknown model, a user with no budget left, the admin key on a model route.
{
  call tk-not-a-key /v1/chat/completions "$(chat gpt-4o-mini false x 1 1)"
  call erin /v1/chat/completions "$(chat gpt-9-imaginary false x 1 1)"
  call mallory /v1/chat/completions "$(chat gpt-4o-mini false x 1 1)"
  call mallory /v1/chat/completions "$(chat gpt-4o-mini false x 2 1)"
  call "$admin_key" /v1/chat/completions "$(chat gpt-4o-mini false x 1 1)"
} >>"$statuses"
echo "traffic: $(wc -l <"$statuses") calls, by status: $(sort "$statuses" | uniq -c | awk '{printf "%s×%s ", $1, $2}')"

# The API the page reads, as a check that it answers (and for the record).
curl -sf -H "authorization: Bearer $admin_key" "$proxy/admin/api/health" >"$work/health.json"
curl -sf -H "authorization: Bearer $admin_key" "$proxy/admin/api/report?since=1d&by=user" >"$work/report.json"
python3 - "$work/health.json" "$work/report.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
last = h["last_hour"]
print(f"health: {last['requests']} calls in the last hour, {last['errors']} errors, {last['refused']} refused, "
      f"p95 {last['latency_p95_ms']} ms, {len(h['budgets'])} budgets")
print("report: " + ", ".join(f"{row['user']} ${row['cost_usd']}" for row in r["rows"]) + f"; total ${r['totals']['cost_usd']}")
PY

# The key goes in the URL fragment: never sent to the server; the page stores it for the tab and
# removes it from the address bar. The virtual time budget lets the page's fetches finish.
profile="$work/chromium"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
  --window-size=1280,1800 --virtual-time-budget=10000 --screenshot="$out" \
  "$proxy/dashboard#key=$admin_key" >"$work/chromium.log" 2>&1 || { cat "$work/chromium.log"; exit 1; }
[ -s "$out" ] || { echo "no screenshot written"; cat "$work/chromium.log"; exit 1; }
echo "screenshot: $out"

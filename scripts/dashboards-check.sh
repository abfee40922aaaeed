#!/usr/bin/env bash
# The dashboards' and alert rules' PromQL against a real Prometheus scraping a live tokenctl:
# starts FakeLLM, tokenctl (throwaway policy and ledger) and Prometheus (Debian's `prometheus`,
# our own instance with a temporary config and storage) on free loopback ports, sends mixed
# traffic, then Tests/dashboards/dashboards_check.py evaluates every expression of
# dashboards/*.json and dashboards/alerts.yaml through Prometheus' query API: each must parse
# and return at least one series. Finally `promtool check rules dashboards/alerts.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
use_debug_binaries
command -v prometheus >/dev/null && command -v promtool >/dev/null || scripts/install-deps.sh prometheus

start_work_dir
fail() { echo "FAIL $*"; for f in "$work"/*.log; do echo "--- $f"; tail -30 "$f"; done; exit 1; }

echo "promtool check rules dashboards/alerts.yaml"
promtool check rules dashboards/alerts.yaml || fail "promtool check rules"

start_fakellm

mkdir -p "$work/policies"
cp policies/prices.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai:    { dialect: openai,    base_url: "$fake/v1", api_key_env: DASH_PROVIDER_KEY }
  anthropic: { dialect: anthropic, base_url: "$fake",    api_key_env: DASH_PROVIDER_KEY }
  # The same fake answering 500: the upstream errors the error panels and alerts read.
  flaky:     { dialect: openai,    base_url: "$fake/v1", api_key_env: DASH_PROVIDER_KEY,
               headers: { x-fake-fail: http-500 } }
  # The same fake making searches: the search panel's series.
  searching: { dialect: openai,    base_url: "$fake/v1", api_key_env: DASH_PROVIDER_KEY,
               headers: { x-fake-web-searches: "2", x-fake-file-searches: "1" } }
models:
  - { match: "gpt-4.1-mini*", provider: flaky }
  - { match: "gpt-4.1", provider: searching }
  - { match: "gpt-*", provider: openai }
  - { match: "claude-*", provider: anthropic }
YAML
cat >"$work/policies/plans.yaml" <<YAML
defaults: { plan: pro }
plans:
  pro: { budget: { daily_usd: "5", monthly_usd: "50" }, tokens: { daily: 1000000 } }
  slow: { requests_per_minute: 3, budget: { daily_usd: "1" } }
  broke: { budget: { monthly_usd: "0" } }
users:
  dash-carol: { plan: slow }
  dash-bob: { plan: broke }
teams:
  research: { budget: { monthly_usd: "100" } }
  support: { budget: { daily_usd: "10" } }
org:
  budget: { monthly_usd: "1000" }
  spend_rate: { usd_per_hour: "50" }
keys:
  attribute_end_users: ["dash-svc"]
YAML
# Top-N user labels on, so the "Top users" panel has series too.
printf 'metrics: { user_labels: top, top_users: 5 }\n' >"$work/policies/gateway.yaml"

db="$work/ledger.sqlite"
newkey() { "$bin/tokenctl" keys create --db "$db" "$@" | tail -1; }
keys="alice=$(newkey --user dash-alice --team research)"
keys="$keys,carol=$(newkey --user dash-carol --team research)"
keys="$keys,dave=$(newkey --user dash-dave --team support)"
keys="$keys,bob=$(newkey --user dash-bob)"
keys="$keys,svc=$(newkey --user dash-svc --team support)"
DASH_PROVIDER_KEY="$provider_key" "$bin/tokenctl" serve --policies "$work/policies" --db "$db" --port 0 \
  >"$work/tokenctl.log" 2>&1 &
pids+=($!)
proxy=$(listening_url "$work/tokenctl.log")

prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp dashboards/alerts.yaml "$work/alerts.yaml"
cat >"$work/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: ["$work/alerts.yaml"]
scrape_configs:
  - job_name: tokenctl
    static_configs: [{ targets: ["${proxy#http://}"] }]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus-data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)

python3 Tests/dashboards/dashboards_check.py --proxy "$proxy" --prometheus "http://127.0.0.1:$prom_port" \
  --keys "$keys" --dashboards dashboards || fail "dashboard queries"

#!/usr/bin/env bash
# Service test: tokenctl run as a service would run it: as an unprivileged user that owns only
# its data directory and reads policies it cannot write. It must answer health checks and calls
# and record them; a second `serve` on the same SQLite ledger must be refused (each would count
# the budgets apart). Run as root it drops to `nobody`; otherwise it runs as the caller.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
use_debug_binaries
start_work_dir
chmod 755 "$work"
start_fakellm
# The service's own copy of the binary: the checkout may not be readable by another user.
install -m 755 "$bin/tokenctl" "$work/tokenctl"
mkdir -p "$work/policies" "$work/data"
cp policies/prices.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai: { dialect: openai, base_url: "$fake/v1", api_key_env: SERVICE_TEST_PROVIDER_KEY }
  # Streams of 10 s: still running when the service is stopped.
  slow: { dialect: openai, base_url: "$fake/v1", api_key_env: SERVICE_TEST_PROVIDER_KEY,
          headers: { x-fake-chunk-gap-ms: "500", x-fake-chunks: "20" } }
models:
  - { match: "gpt-4.1-*", provider: slow }
  - { match: "gpt-*", provider: openai }
YAML
chmod -R a+rX,go-w "$work/policies"
as_service=()
if [ "$(id -u)" = 0 ]; then
  chown nobody "$work/data"
  as_service=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all)
fi
fail() { echo "FAIL $*"; echo "--- tokenctl log"; cat "$work/tokenctl.log"; exit 1; }
db="$work/data/ledger.sqlite"
cd "$work"
key=$("${as_service[@]}" "$work/tokenctl" keys create --user service-user --db "$db" | tail -1)
SERVICE_TEST_PROVIDER_KEY="$provider_key" "${as_service[@]}" "$work/tokenctl" serve \
  --policies "$work/policies" --db "$db" --port 0 --drain-timeout 1 >"$work/tokenctl.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
proxy=$(listening_url "$work/tokenctl.log")
[ "$(stat -c %U /proc/$serve_pid)" = "$(id -un "${as_service:+nobody}")" ] || fail "serve does not run as the service user"

health=$(curl -sS -o /dev/null -w '%{http_code}' "$proxy/healthz") || fail "/healthz: no answer"
[ "$health" = 200 ] || fail "/healthz answered $health"
answer=$(curl -sS "$proxy/v1/chat/completions" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -H 'x-request-id: service-1' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}') \
  || fail "a call: no answer"
grep -q '"usage"' <<<"$answer" || fail "a call answered: $answer"
stream=$(curl -sS -N "$proxy/v1/chat/completions" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -H 'x-request-id: service-2' -d '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}') \
  || fail "a stream: no answer"
grep -q 'data: \[DONE\]' <<<"$stream" || fail "a stream answered: $stream"

# A backup while it serves (as the service user): both calls in it, without the WAL beside it.
for attempt in $(seq 1 20); do
  rm -f "$work/data/backup.sqlite"
  "${as_service[@]}" "$work/tokenctl" ledger backup --db "$db" --to "$work/data/backup.sqlite" >"$work/backup.log" 2>&1 \
    || fail "ledger backup: $(cat "$work/backup.log")"
  grep -q "backed up 2 calls and 1 API keys" "$work/backup.log" && break
  sleep 0.1
done
grep -q "backed up 2 calls and 1 API keys" "$work/backup.log" || fail "the backup said: $(cat "$work/backup.log")"
[ ! -e "$work/data/backup.sqlite-wal" ] || fail "the backup left a WAL beside it"

# A second server on the same ledger: refused at once, naming the first.
if SERVICE_TEST_PROVIDER_KEY="$provider_key" "${as_service[@]}" timeout 20 "$work/tokenctl" serve \
    --policies "$work/policies" --db "$db" --port 0 >"$work/second.log" 2>&1; then
  fail "a second serve on the same ledger started: $(cat "$work/second.log")"
fi
grep -q "already serves the SQLite ledger" "$work/second.log" || fail "the second serve said: $(cat "$work/second.log")"
grep -q "pid $serve_pid" "$work/second.log" || fail "the second serve did not name the first's pid: $(cat "$work/second.log")"

# What the service user is told when its set-up is wrong (exit 1, the cause named).
refused() {  # refused EXPECTED-TEXT ARGS…: serve must exit 1 saying EXPECTED-TEXT
  local expected=$1; shift
  if "${as_service[@]}" timeout 20 "$work/tokenctl" serve "$@" >"$work/wrong.log" 2>&1; then
    fail "serve $* started"
  fi
  grep -qF "$expected" "$work/wrong.log" || fail "serve $* said: $(cat "$work/wrong.log")"
}
if [ ${#as_service[@]} -gt 0 ]; then
  mkdir -p "$work/private-policies" "$work/root-only"
  cp "$work/policies/"* "$work/private-policies/"
  chmod 700 "$work/private-policies" "$work/root-only"
  refused "policy directory cannot be read (Permission denied)" --policies "$work/private-policies" --db "$work/data/other.sqlite" --port 0
  refused "needs write access to the ledger" --policies "$work/policies" --db "$work/root-only/ledger.sqlite" --port 0
  refused "cannot create the ledger's directory $work/root-only/new (permission denied)" --policies "$work/policies" --db "$work/root-only/new/ledger.sqlite" --port 0
  refused "cannot listen on 127.0.0.1:80: permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE" --policies "$work/policies" --db "$work/data/other.sqlite" --port 80
fi
refused "cannot listen on 192.0.2.1:0: no interface of this host has that address" --policies "$work/policies" --db "$work/data/other2.sqlite" --host 192.0.2.1 --port 0

# Stopped with a 10 s stream in flight and a 1 s drain: the stream is cut, recorded, and the log says so.
curl -sS -N "$proxy/v1/chat/completions" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -H 'x-request-id: service-3' -d '{"model":"gpt-4.1-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
  >"$work/cut-stream.txt" 2>&1 &
for _ in $(seq 1 100); do grep -q 'data:' "$work/cut-stream.txt" && break; sleep 0.05; done
kill -TERM "$serve_pid"
wait "$serve_pid" || fail "serve exited $?"
grep -q 'calls=1 .*the drain timeout cut calls still in flight' "$work/tokenctl.log" || fail "the log does not say the drain cut a call"
rows=$("$work/tokenctl" export --db "$db" --format jsonl)
row_with() { grep "\"request_id\":\"$1\"" <<<"$rows" | grep -q "\"outcome\":\"$2\""; }
row_with service-1 ok && row_with service-2 ok || fail "no ok rows for the calls: $rows"
row_with service-3 interrupted || fail "the cut stream is not recorded as interrupted: $rows"
echo "service test passed: served and recorded as $(id -un "${as_service:+nobody}"), backed up while serving, a second serve on the ledger refused, wrong set-ups named"

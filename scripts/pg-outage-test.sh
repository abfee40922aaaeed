#!/usr/bin/env bash
# PostgreSQL outage test: tokenctl on a PostgreSQL ledger with shared budgets while PostgreSQL
# stops. Run under scripts/with-postgres.sh (as `make test` does), which lends the script its
# server's stop and start; without a server it skips loudly.
#
# 1. PostgreSQL stops while tokenctl serves: a budgeted call is refused at once (503 in the
#    OpenAI dialect), not held; /healthz turns 503 "degraded" within the heartbeat's bound; once
#    PostgreSQL is back, /healthz is 200 again and calls are served, without a restart.
# 2. A stream whose provider finishes during the outage: its last event waits for its row (the
#    final bytes go out only once the row commits), and goes out when PostgreSQL is back.
# 3. PostgreSQL stops while a stream is in flight, then tokenctl gets SIGTERM: after its drain
#    the client's connection is cut (its row never committed), tokenctl exits 1 saying the call
#    waits in its in-flight journal, and the next start (PostgreSQL back) records the call with
#    its usage and cost and charges it to the user's shared daily budget: the counter equals
#    the ledger, nothing stays reserved.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ -z "${TOKENCTL_TEST_POSTGRES:-}" ] || [ -z "${TOKENCTL_TEST_POSTGRES_CTL:-}" ]; then
  echo "################################################################"
  echo "### SKIPPED: PostgreSQL outage test needs scripts/with-postgres.sh"
  echo "################################################################"
  exit 0
fi
use_debug_binaries
start_work_dir
start_fakellm
pgctl=$TOKENCTL_TEST_POSTGRES_CTL
base=${TOKENCTL_TEST_POSTGRES%/*}
psql "$base/postgres" -qc "DROP DATABASE IF EXISTS outage_test" -c "CREATE DATABASE outage_test"
pg="$base/outage_test"
sql() { psql "$pg" -Atq -c "$1"; }
# PostgreSQL is started again whatever happens, for the tests after this one.
trap 'stop_work_dir; "$pgctl" start 2>/dev/null || true' EXIT

mkdir -p "$work/policies" "$work/journal"
cp policies/prices.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  instant: { dialect: openai, base_url: "$fake/v1", api_key_env: OUTAGE_PROVIDER_KEY }
  # 20 deltas 200 ms apart: a stream still in flight 1 s after it starts.
  slow: { dialect: openai, base_url: "$fake/v1", api_key_env: OUTAGE_PROVIDER_KEY,
          headers: { x-fake-chunks: "20", x-fake-chunk-gap-ms: "200" } }
models:
  - { match: "gpt-4o-mini", provider: instant }
  - { match: "gpt-4o", provider: slow }
YAML
cat >"$work/policies/plans.yaml" <<YAML
defaults: { plan: metered }
plans: { metered: { budget: { daily_usd: "100" } } }
YAML
export OUTAGE_PROVIDER_KEY="$provider_key"
key=$("$bin/tokenctl" keys create --user bob --db "$pg" | tail -1)

serve() {  # log name, extra options: starts tokenctl on the ledger and journal, sets $tpid and $url
  local log=$1; shift
  "$bin/tokenctl" serve --policies "$work/policies" --db "$pg" --journal "$work/journal" --port 0 "$@" >"$work/$log.log" 2>&1 &
  tpid=$!
  pids+=($tpid)
  url=$(listening_url "$work/$log.log")
}
call() {  # model, request id: prints "status seconds" and leaves the body in $work/body
  curl -s -m 30 -o "$work/body" -w '%{http_code} %{time_total}\n' -H "authorization: Bearer $key" \
    -H 'content-type: application/json' -H "x-request-id: $2" \
    -d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$url/v1/chat/completions"
}
healthz() { curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/healthz" || true; }
wait_healthz() {  # status, within seconds: prints the seconds it took
  local start=$SECONDS
  for _ in $(seq 1 $(($2 * 10))); do
    [ "$(healthz)" = "$1" ] && { echo $((SECONDS - start)); return 0; }
    sleep 0.1
  done
  echo "/healthz did not answer $1 within $2 s (last: $(healthz))" >&2
  curl -s "$url/healthz" >&2 || true
  return 1
}

stream() {  # request id: streams 20 deltas 200 ms apart into $work/$1 in the background, sets $client
  curl -s -N -m 40 -o "$work/$1" -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -H "x-request-id: $1" \
    -d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}' "$url/v1/chat/completions" &
  client=$!
}
row() { sql "SELECT outcome, usage_source, output_tokens > 0, cost_pd > 0 FROM calls WHERE request_id = '$1'"; }

echo "== 1. PostgreSQL stops and comes back while tokenctl serves"
serve serve1
read -r status _ < <(call gpt-4o-mini outage-before)
[ "$status" = 200 ] || { echo "call before the outage: $status"; cat "$work/body"; exit 1; }
"$pgctl" stop
read -r status took < <(call gpt-4o-mini outage-during)
[ "$status" = 503 ] || { echo "budgeted call during the outage: $status, expected 503"; cat "$work/body"; exit 1; }
python3 - "$work/body" <<'PY'
import json, sys
error = json.load(open(sys.argv[1]))["error"]
assert error["code"] in ("quota_state_unavailable", "ledger_unavailable"), error
assert error["type"] and error["message"] and "postgres://" not in error["message"], error
PY
python3 -c "import sys; t = float(sys.argv[1]); assert t < 5, f'refusal took {t} s'" "$took"
echo "ok: a budgeted call during the outage is refused 503 in ${took} s ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"]["code"])' "$work/body"))"
s=$(wait_healthz 503 15)
grep -q '"status":"degraded"' <<<"$(curl -s "$url/healthz")" || { echo "/healthz body is not degraded"; exit 1; }
echo "ok: /healthz 503 degraded ${s} s after the refusal"
"$pgctl" start
s=$(wait_healthz 200 20)
read -r status _ < <(call gpt-4o-mini outage-after)
[ "$status" = 200 ] || { echo "call after PostgreSQL came back: $status"; cat "$work/body"; exit 1; }
echo "ok: PostgreSQL back: /healthz 200 within ${s} s, calls served again"
kill -TERM "$tpid"
wait "$tpid" || { echo "serve exited $? after a clean run"; cat "$work/serve1.log"; exit 1; }

echo "== 2. A stream that ends during the outage: its last event waits for its row"
serve serve2
stream outage-wait
sleep 1
"$pgctl" stop
# Role, 20 deltas 200 ms apart and the final chunk, then [DONE]: the last delta and the end come
# in the provider's last write. Once 20 events are relayed, the provider is 200 ms from its end.
for _ in $(seq 1 150); do
  [ "$(grep -c '^data: {' "$work/outage-wait" 2>/dev/null)" -ge 20 ] && break
  sleep 0.1
done
sleep 1
kill -0 "$client" 2>/dev/null || { echo "the client's stream ended while its row could not be recorded"; exit 1; }
! grep -q 'data: \[DONE\]' "$work/outage-wait" || { echo "the stream's end went out before its row was recorded"; exit 1; }
"$pgctl" start
rc=0
wait "$client" || rc=$?
[ "$rc" = 0 ] && grep -q 'data: \[DONE\]' "$work/outage-wait" \
  || { echo "the stream did not end once PostgreSQL was back (curl $rc)"; tail -c 300 "$work/outage-wait"; exit 1; }
[ "$(row outage-wait)" = "ok|provider|t|t" ] || { echo "the stream's row: '$(row outage-wait)'"; exit 1; }
echo "ok: the stream's last event waited for PostgreSQL, then went out with its row recorded"
kill -TERM "$tpid"
wait "$tpid" || { echo "serve exited $? after PostgreSQL came back"; cat "$work/serve2.log"; exit 1; }

echo "== 3. SIGTERM while PostgreSQL is down and a stream is in flight"
serve serve3 --drain-timeout 3
stream outage-stop
sleep 1
"$pgctl" stop
kill -TERM "$tpid"
rc=0
wait "$tpid" || rc=$?
crc=0
wait "$client" || crc=$?
# Its row never committed, so the client never got the stream's end: the connection is cut.
[ "$crc" != 0 ] && [ "$crc" != 28 ] && ! grep -q 'data: \[DONE\]' "$work/outage-stop" \
  || { echo "the client's stream: curl $crc, expected a cut connection without [DONE]"; exit 1; }
[ "$rc" = 1 ] || { echo "serve exited $rc, expected 1"; cat "$work/serve3.log"; exit 1; }
grep -q '1 call could not be recorded before stopping (1 with their usage, 0 as interrupted)' "$work/serve3.log" \
  || { echo "serve did not say the call waits in the journal"; cat "$work/serve3.log"; exit 1; }
echo "ok: serve exited 1 after its drain, the call kept in the in-flight journal with its usage; the client's stream was cut"
"$pgctl" start
serve serve4
kill -TERM "$tpid"
wait "$tpid" || { echo "the next start exited $?"; cat "$work/serve4.log"; exit 1; }
[ "$(row outage-stop)" = "ok|provider|t|t" ] || { echo "the stream's row: got '$(row outage-stop)', want ok|provider|t|t"; exit 1; }
[ "$(sql "SELECT count(*) FROM quota_holds")" = 0 ] || { echo "reservations left"; sql "SELECT * FROM quota_holds"; exit 1; }
drift=$(sql "SELECT q.spent, (SELECT sum(cost_pd) FROM calls WHERE \"user\" = 'bob'), q.reserved FROM quota_counters q
             WHERE q.scope = 'user:bob' AND q.period = 'day'")
python3 -c "import sys; spent, ledger, reserved = map(int, sys.argv[1].split('|')); assert spent == ledger and reserved == 0, sys.argv[1]" "$drift" \
  || { echo "bob's daily counter (spent|ledger|reserved) = $drift"; exit 1; }
echo "ok: the next start recorded the stream with its usage and charged it: bob's daily counter = the ledger ($drift)"
echo "PostgreSQL outage test passed"

#!/usr/bin/env bash
# Multi-replica test (issue 6): three tokenctl processes share one PostgreSQL ledger and quota
# state. Run under scripts/with-postgres.sh (as `make test` does); without a server it skips loudly.
#
# 1. 600 concurrent calls spread over the replicas from 20 users whose daily budget fits exactly
#    10 calls each (gpt-exact: each call costs exactly what it reserves, 50 µ$): exactly 200 are
#    admitted, every user spends exactly the budget, nothing stays reserved, every call has a row,
#    and `tokenctl report` on PostgreSQL gives the same per-user figures as the same calls on a
#    single SQLite tokenctl.
# 2. kill -9 one replica while it holds reservations for slow calls: the other replicas release
#    them within the stated bound (replica timeout + reaper interval), and every response a
#    client received complete has its row.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
if [ -z "${TOKENCTL_TEST_POSTGRES:-}" ]; then
  echo "################################################################"
  echo "### SKIPPED: replicas test needs PostgreSQL (scripts/with-postgres.sh)"
  echo "################################################################"
  exit 0
fi
use_debug_binaries
start_work_dir
start_fakellm --threads 2

base=${TOKENCTL_TEST_POSTGRES%/*}
psql "$base/postgres" -qc "DROP DATABASE IF EXISTS replicas_test" -c "CREATE DATABASE replicas_test"
pg="$base/replicas_test"
sql() { psql "$pg" -Atq -c "$1"; }

users=20 per_user=10 calls=600 call_pd=50000000
budget_usd=$(python3 -c "print(f'{$per_user * $call_pd / 1e12:.6f}')")
mkdir -p "$work/policies"
cat >"$work/policies/prices.yaml" <<YAML
- { model: "gpt-exact", effective_from: "2024-01-01", input: "0", output: "1", source: "output only: worst case = actual" }
YAML
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai: { dialect: openai, base_url: "$fake/v1", api_key_env: REPLICAS_PROVIDER_KEY,
            headers: { x-fake-chunks: "50", x-fake-first-byte-delay-ms: "200" } }
  # 4 s to the first byte: calls certainly in flight when a replica is killed.
  openai-slow: { dialect: openai, base_url: "$fake/v1", api_key_env: REPLICAS_PROVIDER_KEY,
                 headers: { x-fake-chunks: "50", x-fake-first-byte-delay-ms: "4000" } }
models:
  - { match: "gpt-exact", provider: openai }
YAML
cat >"$work/policies/plans.yaml" <<YAML
defaults: { plan: metered }
plans: { metered: { budget: { daily_usd: "$budget_usd" } } }
YAML
export REPLICAS_PROVIDER_KEY="$provider_key"

keys=""
for i in $(seq -w 0 $((users - 1))); do
  k=$("$bin/tokenctl" keys create --user "u$i" --db "$pg" | tail -1)
  keys="$keys${keys:+,}u$i=$k"
done

declare -a replica_pid replica_url
start_replica() {  # index, policies dir
  local n=$1
  mkdir -p "$work/r$n"
  "$bin/tokenctl" serve --policies "$2" --db "$pg" --journal "$work/r$n" --port 0 \
    --replica-timeout 3 >"$work/r$n.log" 2>&1 &
  replica_pid[$n]=$!
  pids+=($!)
  replica_url[$n]=$(listening_url "$work/r$n.log")
}
for n in 0 1 2; do start_replica $n "$work/policies"; done
urls="${replica_url[0]},${replica_url[1]},${replica_url[2]}"

echo "== 1. $calls concurrent calls over 3 replicas, $users users x budget of $per_user calls"
python3 Tests/replicas/replicas_load.py --replicas "$urls" --keys "$keys" --calls $calls --prefix p1 --out "$work/p1.jsonl"
python3 - "$work/p1.jsonl" "$users" "$per_user" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
users, per_user = int(sys.argv[2]), int(sys.argv[3])
ok = [r for r in rows if r["status"] == 200]
assert len(ok) == users * per_user, f"admitted {len(ok)}, expected {users * per_user}"
per = {}
for r in ok: per[r["user"]] = per.get(r["user"], 0) + 1
assert all(v == per_user for v in per.values()) and len(per) == users, per
assert all(r["status"] in (200, 429) for r in rows), {r["status"] for r in rows}
assert all(r["complete"] for r in ok)
print(f"ok: {len(ok)} admitted ({per_user} per user), {len(rows) - len(ok)} refused with 429")
PY
got=$(sql "SELECT count(*), count(*) FILTER (WHERE outcome = 'ok'), count(*) FILTER (WHERE outcome = 'refused_quota'),
                  coalesce(sum(cost_pd), 0) FROM calls WHERE request_id LIKE 'p1-%'")
want="$calls|$((users * per_user))|$((calls - users * per_user))|$((users * per_user * call_pd))"
[ "$got" = "$want" ] || { echo "ledger rows/outcomes/spend: got $got, want $want"; exit 1; }
echo "ok: ledger has $calls rows, spend exactly $users budgets"
left=$(sql "SELECT count(*) FROM quota_holds")
[ "$left" = 0 ] || { echo "holds left after the load: $left"; exit 1; }
over=$(sql "SELECT count(*) FROM quota_counters WHERE reserved <> 0 OR (spent > $((per_user * call_pd)) AND scope LIKE 'user:%')")
[ "$over" = 0 ] || { echo "counters reserved or over budget: $over"; sql "SELECT * FROM quota_counters"; exit 1; }

# The same calls on one SQLite tokenctl: the report's per-user figures must be identical.
"$bin/tokenctl" report --db "$pg" --by user --format json --since 1d >"$work/report-pg.json"
sqlite_db="$work/single.sqlite"
skeys=""
for i in $(seq -w 0 $((users - 1))); do
  k=$("$bin/tokenctl" keys create --user "u$i" --db "$sqlite_db" | tail -1)
  skeys="$skeys${skeys:+,}u$i=$k"
done
"$bin/tokenctl" serve --policies "$work/policies" --db "$sqlite_db" --port 0 >"$work/single.log" 2>&1 &
single=$!
pids+=($single)
python3 Tests/replicas/replicas_load.py --replicas "$(listening_url "$work/single.log")" --keys "$skeys" --calls $calls \
  --prefix p1 --out "$work/single.jsonl"
kill "$single"; wait "$single" 2>/dev/null || true
"$bin/tokenctl" report --db "$sqlite_db" --by user --format json --since 1d >"$work/report-sqlite.json"
# Everything but timing (latencies differ from run to run) must be equal, user by user. So must
# the retry cost, but for one call: a user's 30 calls are the same request, sent at once, so
# each after the first is a retry, and which came first (admitted or refused) is the race's.
python3 - "$work/report-pg.json" "$work/report-sqlite.json" <<'PY'
import json, sys
def figures(path):
    timing = ("latency", "ttft")
    report = json.load(open(path))
    rows = report["rows"] + [dict(report["totals"], user="(totals)")]
    return {r["user"]: {k: v for k, v in r.items() if not any(t in k for t in timing)} for r in rows}
def retry_costs(fig, name):
    costs = {u: int(r.pop("retry_cost_picodollars")) for u, r in fig.items()}
    for r in fig.values(): r.pop("retry_cost_usd")
    for u, r in fig.items():
        if u == "(totals)": continue
        cost, admitted = int(r["cost_picodollars"]), r["requests"] - r["refused"] - r["errors"]
        # The first call admitted: the other admitted ones are retries; refused: all of them are.
        assert admitted > 0 and costs[u] in (cost, cost - cost // admitted), f"{name} {u}: retry cost {costs[u]} of {cost}"
    assert costs["(totals)"] == sum(v for u, v in costs.items() if u != "(totals)"), f"{name}: retry cost totals"
pg, single = figures(sys.argv[1]), figures(sys.argv[2])
retry_costs(pg, "PostgreSQL"), retry_costs(single, "SQLite")
assert pg == single, f"reports differ:\n{pg}\n{single}"
print(f"ok: report by user on PostgreSQL (3 replicas) = on SQLite (1 process), {len(pg)} users, timing aside, the retry cost within its race")
PY

echo "== 2. kill -9 a replica holding reservations"
# Replicas on the slow provider, new users with a fresh budget.
mkdir -p "$work/slow"
cp "$work/policies/prices.yaml" "$work/policies/plans.yaml" "$work/slow/"
sed 's/- { match: "gpt-exact", provider: openai }/- { match: "gpt-exact", provider: openai-slow }/' \
  "$work/policies/providers.yaml" >"$work/slow/providers.yaml"
vkeys=""
for i in 0 1 2 3 4 5; do
  k=$("$bin/tokenctl" keys create --user "v$i" --db "$pg" | tail -1)
  vkeys="$vkeys${vkeys:+,}v$i=$k"
done
for n in 0 1 2; do kill "${replica_pid[$n]}"; wait "${replica_pid[$n]}" 2>/dev/null || true; done
for n in 0 1 2; do start_replica $n "$work/slow"; done
urls="${replica_url[0]},${replica_url[1]},${replica_url[2]}"
python3 Tests/replicas/replicas_load.py --replicas "$urls" --keys "$vkeys" --calls 60 --prefix p2 --out "$work/p2.jsonl" &
load=$!
sleep 1.5
victim="replica LIKE '%:${replica_pid[1]}:%'"  # replica names are host:pid:random
victim_holds=$(sql "SELECT count(*) FROM quota_holds WHERE $victim")
[ "$victim_holds" -gt 0 ] || { echo "the replica to kill holds no reservation"; exit 1; }
kill -9 "${replica_pid[1]}"
killed_at=$(date +%s.%N)
echo "killed replica 1 holding $victim_holds reservations"
released=""
for _ in $(seq 1 300); do
  if [ "$(sql "SELECT count(*) FROM quota_holds WHERE $victim")" = 0 ]; then
    released=$(python3 -c "import time; print(f'{time.time() - $killed_at:.1f}')"); break
  fi
  sleep 0.1
done
wait "$load" || true
[ -n "$released" ] || { echo "the dead replica's reservations were not released within 30 s"; sql "SELECT * FROM quota_holds"; exit 1; }
echo "ok: the dead replica's reservations released $released s after the kill (bound: 3 s replica timeout + 5 s reaper interval)"
python3 - "$work/p2.jsonl" <<'PY' >"$work/p2-complete.txt"
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["status"] == 200 and r["complete"]: print(r["rid"])
PY
complete=$(wc -l <"$work/p2-complete.txt")
missing=0
while read -r rid; do
  [ "$(sql "SELECT count(*) FROM calls WHERE request_id = '$rid' AND outcome = 'ok'")" = 1 ] || { echo "no row for $rid"; missing=$((missing + 1)); }
done <"$work/p2-complete.txt"
[ "$missing" = 0 ] || exit 1
[ "$complete" -gt 0 ] || { echo "no call completed on the live replicas"; exit 1; }
bad=$(sql "SELECT count(*) FROM quota_counters WHERE reserved <> 0")
[ "$bad" = 0 ] || { echo "counters still reserved: $bad"; exit 1; }
# Each user's daily counter holds exactly what the ledger says they spent.
[ "$(sql "SELECT count(*) FROM quota_counters WHERE scope LIKE 'user:v%' AND period = 'day'")" = 6 ] \
  || { echo "expected a daily counter for each of the 6 users"; exit 1; }
drift=$(sql "SELECT count(*) FROM quota_counters q WHERE q.scope LIKE 'user:v%' AND q.period = 'day' AND q.spent <>
               (SELECT coalesce(sum(cost_pd), 0) FROM calls c WHERE 'user:' || c.\"user\" = q.scope)")
[ "$drift" = 0 ] || { echo "counters differ from the ledger: $drift"; sql "SELECT * FROM quota_counters"; exit 1; }
echo "ok: all $complete complete responses have their rows; nothing left reserved"
echo "replicas test passed"

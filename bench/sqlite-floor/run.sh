#!/bin/sh
# The SQLite floor under the ledger writer (floor.c): the writer's INSERT on a fresh ledger's
# real `calls` table, from C and nothing else, at 1, 4, 100 and 1,000 rows per commit, then with
# the three secondary indexes dropped. Compare with bench/report-speed (WRITER_ONLY=1, and
# ONE_PER_COMMIT=1 for one row per commit).
# Usage: bench/sqlite-floor/run.sh [rows at 1,000 per commit; default 400,000]
# Env: BATCHES (rows per commit, default "1 4 100 1000"), DROPS ("0 1": all indexes, then the id
# index only; "0" keeps them all).
set -eu
rows=${1:-400000}
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/scripts/install-deps.sh" $(command -v gcc >/dev/null || echo gcc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/floor" "$root/bench/sqlite-floor/floor.c" -lsqlite3
(cd "$root" && swift build -c release --product tokenctl >/dev/null)
for drop in ${DROPS:-0 1}; do
    for per in ${BATCHES:-1 4 100 1000}; do
        n=$((per == 1 ? rows / 20 : per == 4 ? rows / 10 : rows))
        rm -f "$work/ledger.sqlite"*
        "$root/.build/release/tokenctl" keys create --user floor --db "$work/ledger.sqlite" >/dev/null
        "$work/floor" "$work/ledger.sqlite" "$n" "$per" "$drop"
    done
done

#!/bin/sh
# Report speed benchmark: generates a month of calls through the real LedgerWriter (rollups and
# retry flags included), then times `tokenctl report --period 2025-11 --by user` on it.
# Usage: bench/report-speed/run.sh [rows]   (default 10,000,000)
# Env: LEDGER=path (default $TMPDIR/tokenctl-report-bench.sqlite; reused if it has the rows),
#      LEDGER_SOURCES=dir of Ledger sources to build the generator with (default Sources/Ledger),
#      WRITER_ONLY=1 to measure only the writer (a fresh ledger each run); with ONE_PER_COMMIT=1,
#      one call per transaction: written to the ledger's journal as an event loop does, then
#      committed by the writer thread (as at one connection).
set -eu
rows=${1:-10000000}
root=$(cd "$(dirname "$0")/../.." && pwd)
scratch=${TMPDIR:-/tmp}/tokenctl-report-bench
ledger=${LEDGER:-${TMPDIR:-/tmp}/tokenctl-report-bench-$rows.sqlite}
sources=${LEDGER_SOURCES:-$root/Sources/Ledger}

# The generator: Ledger (and the NIO-free part of Metering) linked in a scratch release package
# (its .build is kept between runs, so only what changed is rebuilt).
rm -rf "$scratch/Sources" "$scratch/Package.swift"
mkdir -p "$scratch/Sources/Metering" "$scratch/Sources/Ledger" "$scratch/Sources/ReportSpeedBench"
for f in Money ModelPattern Day PriceBook PriceMultiplier SharedFields TokenKinds Usage Dialect; do ln -s "$root/Sources/Metering/$f.swift" "$scratch/Sources/Metering/"; done
for f in "$sources"/*.swift; do ln -s "$f" "$scratch/Sources/Ledger/"; done
ln -s "$root/Sources/CSQLite" "$scratch/Sources/CSQLite"
ln -s "$root/Sources/CWalFrames" "$scratch/Sources/CWalFrames"
ln -s "$root/Sources/CThreadName" "$scratch/Sources/CThreadName"
ln -s "$root/bench/report-speed/main.swift" "$scratch/Sources/ReportSpeedBench/main.swift"
cat > "$scratch/Package.swift" <<'SWIFT'
// swift-tools-version: 6.0
import PackageDescription
let package = Package(
    name: "ReportSpeedBench", platforms: [.macOS(.v15)],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3"),
        .target(name: "Metering"),
        .target(name: "CWalFrames", dependencies: ["CSQLite"]),
        .target(name: "CThreadName"),
        .target(name: "Ledger", dependencies: ["CSQLite", "CWalFrames", "CThreadName", "Metering"]),
        .executableTarget(name: "ReportSpeedBench", dependencies: ["Ledger", "Metering"]),
    ])
SWIFT
(cd "$scratch" && swift build -c release >&2)

if [ "${WRITER_ONLY:-0}" = 1 ]; then
    rm -f "$ledger" "$ledger-wal" "$ledger-shm"
    "$scratch/.build/release/ReportSpeedBench" "$ledger" "$rows"
    rm -f "$ledger" "$ledger-wal" "$ledger-shm"
    exit 0
fi
have=$( [ -f "$ledger" ] && sqlite3 "$ledger" "SELECT COUNT(*) FROM calls" 2>/dev/null || echo 0)
if [ "$have" != "$rows" ]; then
    rm -f "$ledger" "$ledger-wal" "$ledger-shm"
    "$scratch/.build/release/ReportSpeedBench" "$ledger" "$rows"
fi
echo "ledger: $ledger ($(du -h "$ledger" | cut -f1), $rows calls, $(sqlite3 "$ledger" 'SELECT COUNT(*) FROM rollup_days') day cells, $(sqlite3 "$ledger" 'SELECT COUNT(*) FROM rollup_hours') hour cells)"

(cd "$root" && swift build -c release --product tokenctl >&2)
tokenctl="$root/.build/release/tokenctl"
"$tokenctl" report --db "$ledger" --period 2025-11 --by user --top 3
if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --warmup 1 --runs 5 "$tokenctl report --db $ledger --period 2025-11 --by user"
else
    for i in 1 2 3 4 5; do
        /usr/bin/time -f "run $i: %e s wall, %M KB max RSS" "$tokenctl" report --db "$ledger" --period 2025-11 --by user >/dev/null
    done
fi

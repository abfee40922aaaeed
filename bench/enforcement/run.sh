#!/bin/sh
# Builds bench/enforcement/main.swift in release mode in a scratch package that links the
# enforcement sources of Policy (and Money from Metering) without their YAML, crypto and NIO
# dependencies, then runs it. Usage: bench/enforcement/run.sh [cycles]   (default 1,000,000)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
scratch=${TMPDIR:-/tmp}/tokenctl-enforcement-bench
rm -rf "$scratch"
mkdir -p "$scratch/Sources/Metering" "$scratch/Sources/Policy" "$scratch/Sources/EnforcementBench"
for f in Money ModelPattern; do ln -s "$root/Sources/Metering/$f.swift" "$scratch/Sources/Metering/"; done
for f in Limits CalendarPeriod ConcurrencyGate "QuotaBook" "QuotaBook+StateMachine" QuotaReservation QuotaRefusal QuotaStanding \
         RateLimiter "RateLimiter+Cell" "RateLimiter+StateMachine" SpendRateBreaker "SpendRateBreaker+StateMachine"; do
    ln -s "$root/Sources/Policy/$f.swift" "$scratch/Sources/Policy/"
done
ln -s "$root/bench/enforcement/main.swift" "$scratch/Sources/EnforcementBench/main.swift"
cat > "$scratch/Package.swift" <<'SWIFT'
// swift-tools-version: 6.0
import PackageDescription
let package = Package(
    name: "EnforcementBench", platforms: [.macOS(.v15)],
    targets: [
        .target(name: "Metering"),
        .target(name: "Policy", dependencies: ["Metering"]),
        .executableTarget(name: "EnforcementBench", dependencies: ["Policy", "Metering"]),
    ])
SWIFT
cd "$scratch"
swift build -c release >&2
exec .build/release/EnforcementBench "$@"

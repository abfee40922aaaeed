#!/usr/bin/env bash
# Runs the libFuzzer targets, each for a bounded time (default 60 s):
#   scripts/fuzz.sh [seconds] [target...]      targets: sse response-usage policy pem
# Builds them with -sanitize=fuzzer,address into .build-fuzz (a separate scratch path: the
# instrumented build never mixes with the normal one). Each target starts from its seeds in
# Tests/FuzzRegressionTests/Corpus/<target>/ and keeps what it learns in .build-fuzz/corpus/.
# A crash is saved in .build-fuzz/crashes/<target>/ and fails the script; copy the file into
# Tests/FuzzRegressionTests/Corpus/<target>/ so `swift test` replays it from then on (and
# `.build/debug/Fuzz<Name> FILE` replays one input with a readable message).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sse response-usage policy pem)

product() {
    case "$1" in
        sse) echo FuzzSSE ;;
        response-usage) echo FuzzResponseUsage ;;
        policy) echo FuzzPolicy ;;
        pem) echo FuzzPEM ;;
        *) echo "unknown fuzz target '$1' (sse, response-usage, policy, pem)" >&2; exit 2 ;;
    esac
}

scratch=.build-fuzz
# Swift's own crash handler trips over ASan; libFuzzer reports the crash itself.
export SWIFT_BACKTRACE=enable=no
failed=0
for target in "${targets[@]}"; do
    name=$(product "$target")
    echo "== $target ($name): building with -sanitize=fuzzer,address"
    swift build --scratch-path "$scratch" --product "$name" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 | grep -E "error|Compiling|Build" | grep -v warning || true
    binary="$scratch/debug/$name"
    [ -x "$binary" ] || { echo "build of $name failed" >&2; exit 1; }

    corpus="$scratch/corpus/$target"
    crashes="$scratch/crashes/$target"
    mkdir -p "$corpus" "$crashes"
    cp -n Tests/FuzzRegressionTests/Corpus/"$target"/* "$corpus"/ 2>/dev/null || true

    echo "== $target: fuzzing for ${seconds}s"
    log="$scratch/$target.log"
    if "$binary" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$crashes/" -print_final_stats=1 > "$log" 2>&1; then
        grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
        echo "   corpus: $(ls "$corpus" | wc -l) inputs; no crash"
    else
        failed=1
        echo "!! $target found a failure; the input is in $crashes/:" >&2
        grep -E "Fatal error|ERROR|SUMMARY" "$log" | head -5 >&2 || true
        ls "$crashes" >&2
    fi
done
exit $failed

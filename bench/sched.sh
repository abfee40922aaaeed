#!/usr/bin/env bash
# What the scheduler did to one process's threads while load runs: how long each ran at a time,
# how long it waited to run once woken (and who ran meanwhile), and its uninterruptible sleeps.
# The rig says how slow; this helps say why (e.g. a p99 tail: a thread of our own that holds the
# core for milliseconds, or waits on the disk). Records every CPU, so that wake-ups made on the
# other core count. Needs root and perf (bench/run installs linux-perf).
#   bench/sched.sh PID SECONDS          run it while load runs; prints bench/sched.py's report
#                                       for every thread of PID
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/sched.sh PID SECONDS" >&2; exit 2; }
pid=$1
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
data=$(mktemp)
trap 'rm -f "$data"' EXIT
tids=$(ls "/proc/$pid/task")
perf record -q -o "$data" -a -e sched:sched_switch -e sched:sched_wakeup -- sleep "$secs" >/dev/null 2>&1
# shellcheck disable=SC2086
perf script -i "$data" -F comm,tid,cpu,time,event,trace 2>/dev/null | python3 "$here/sched.py" $tids

#!/usr/bin/env bash
# Per-request event counts of one process's threads, by thread name: calls to malloc (a uprobe on
# the malloc the process calls: mimalloc's or libc's), system calls, context switches and Swift
# reference-count operations (uprobes on swift_retain, swift_release and their String twins,
# swift_bridgeObjectRetain/Release, in the toolchain's libswiftCore), counted by `perf stat`. Unlike CPU time they do not grow when the hypervisor steals time, so they compare
# two builds on a noisy host (the issue asked for instruction counts; callgrind cannot run
# tokenctl here).
#   bench/counts.sh probe                  (re)makes the malloc uprobes (root); exit 1 if
#                                          it cannot (then `measure` counts no mallocs)
#   bench/counts.sh measure PID SECONDS URL
#                                          counts for SECONDS (run it while load runs) and prints
#                                          "window_requests=N counts=name=mallocs:syscalls:switches:refops,…"
#                                          (event loops summed as NIO-ELT); N: the calls tokenctl
#                                          (its /metrics at URL) answered inside the counted window
#   bench/counts.sh per-request "MEASURED" prints, from what `measure` printed, per thread its
#                                          counts per request, e.g. "NIO-ELT 80.2 mallocs 6.10
#                                          syscalls 0.52 switches 2940 refops; tokenctl-curl …"
# A uprobe costs each malloc a trap: throughput falls while counting, so counts come from runs of
# their own, never from the runs timed for latency or CPU.
set -euo pipefail
# The malloc counted is the one the process calls: the tokenctl executable links mimalloc, which
# takes malloc for the whole process; a process without it (nginx, an older build) calls libc's.
# (awk reads to the end: leaving early would fail the pipe under pipefail.)
library() { ldconfig -p | awk -v l="$1" '$1 == l && /x86-64/ && !found {print $NF; found = 1}'; }
probe_of() { grep -q libmimalloc "/proc/$1/maps" 2>/dev/null && echo probe_libmimalloc:mimalloc || echo probe_libc:malloc; }
# The Swift runtime the toolchain's executables link (not in ldconfig's cache).
swift_core() { local s; s=$(command -v swift) && echo "$(dirname "$(readlink -f "$s")")/../lib/swift/linux/libswiftCore.so"; }
refops="swift_retain swift_release swift_bridgeObjectRetain swift_bridgeObjectRelease"
case $1 in
  probe)
    # perf wants event names unique across groups: mimalloc's malloc is "mimalloc".
    made=0
    for spec in "libc.so.6 probe_libc:malloc" "libmimalloc.so.2 probe_libmimalloc:mimalloc"; do
      set -- $spec
      lib=$(library "$1")
      [ -n "$lib" ] || continue
      # Made afresh each time: a uprobe holds the file it was made on, so one made before the
      # library was reinstalled (a new file at the same path) would count nothing, silently.
      perf probe -q -d "$2" >/dev/null 2>&1 || true
      perf probe -q -x "$lib" -a "$2=malloc" >/dev/null 2>&1 && made=$((made + 1))
    done
    core=$(swift_core || true)
    if [ -n "$core" ] && [ -f "$core" ]; then
      for f in $refops; do
        perf probe -q -d "probe_libswiftCore:$f" >/dev/null 2>&1 || true
        perf probe -q -x "$core" -a "$f" >/dev/null 2>&1 || true
      done
    fi
    [ $made -gt 0 ] && exit 0
    echo "bench/counts.sh: cannot make the malloc uprobes (root and uprobes needed); mallocs not counted" >&2
    exit 1 ;;
  measure)
    pid=$2 secs=$3 url=$4 events=raw_syscalls:sys_enter,context-switches
    probe=$(probe_of "$pid")
    probes=$(perf probe -l 2>/dev/null)
    grep -q "$probe" <<<"$probes" && events=$probe,$events
    # Swift's reference counting, if the process links the runtime the probes were made on.
    for f in $refops; do
      grep -q "probe_libswiftCore:$f " <<<"$probes" && grep -q libswiftCore "/proc/$pid/maps" && events=$events,probe_libswiftCore:$f
    done
    stat=$(mktemp) served=$(mktemp)
    # The calls are read inside perf's command, so both count the same window (perf takes a
    # while to attach a uprobe to every thread).
    perf stat --per-thread -x, -e "$events" -p "$pid" -o "$stat" -- bash -c '
      served() { curl -s "$1" | awk "/^tokenctl_requests_total/ {n += \$NF} END {print n + 0}"; }
      a=$(served "$1"); sleep "$2"; echo $(($(served "$1") - a))' _ "$url" "$secs" >"$served" 2>/dev/null
    printf 'window_requests=%s counts=' "$(cat "$served")"
    # Lines: "comm-tid,count,,event,…"; names with spaces or commas do not occur (tokenctl's own).
    awk -F, -v p="$probe" '/^#/ || NF < 4 {next} {
        name = $1; sub(/-[0-9]+$/, "", name); sub(/-[0-9]+-#[0-9]+$/, "", name); gsub(/[^A-Za-z0-9.-]/, "_", name)
        n = ($2 ~ /^[0-9]+$/) ? $2 : 0
        if ($4 == p) m[name] += n; else if ($4 ~ /sys_enter/) s[name] += n; else if ($4 ~ /libswiftCore/) r[name] += n
        else c[name] += n
        seen[name] = 1
      } END {for (k in seen) printf "%s%s=%d:%d:%d:%d", (i++ ? "," : ""), k, m[k], s[k], c[k], r[k]}' "$stat"
    rm -f "$stat" "$served" ;;
  per-request)
    awk -v m="$2" 'BEGIN {
      split(m, parts, " "); r = substr(parts[1], length("window_requests=") + 1)
      n = split(substr(parts[2], length("counts=") + 1), x, ",")
      for (i = 1; i <= n; i++) {
        split(x[i], kv, "="); split(kv[2], v, ":")
        if (v[1] + v[2] + v[3] < r / 100) continue  # idle threads
        out = out sprintf("%s%s %.1f mallocs %.2f syscalls %.2f switches %.0f refops", (out == "" ? "" : "; "), kv[1],
                          v[1] / r, v[2] / r, v[3] / r, v[4] / r)
      }
      print out
    }' ;;
  *) echo "usage: bench/counts.sh probe | measure PID SECONDS URL | per-request MEASURED" >&2; exit 2 ;;
esac

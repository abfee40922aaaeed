#!/usr/bin/env bash
# CPU time and context switches of one process's threads, by thread name (tokenctl names its
# threads: NIO-ELT-1-#N event loops, summed as NIO-ELT; tokenctl-curl, tokenctl-ledger, …).
#   bench/threads.sh snapshot PID                    prints "name=ticks:waits:preempted,…" to keep
#                                                    (waits: voluntary switches, preempted:
#                                                    involuntary ones)
#   bench/threads.sh per-request "SNAPSHOT" PID N    prints, per thread that used CPU since the
#                                                    snapshot, its µs and switches per request for
#                                                    N requests, e.g. "NIO-ELT 148.2 µs 0.05 waits
#                                                    0.45 preempted; tokenctl-curl 60.4 µs …"
set -euo pipefail
snapshot() {
  for t in /proc/"$1"/task/*; do
    echo "$(tr -c 'A-Za-z0-9.\n-' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat") $(awk '/^voluntary_ctxt/ {v = $2} /^nonvoluntary_ctxt/ {n = $2} END {print v, n}' "$t/status")"
  done 2>/dev/null | awk '{name = $1; sub(/-[0-9]+-_[0-9]+$/, "", name); c[name] += $2; v[name] += $3; n[name] += $4}
    END {for (k in c) printf "%s%s=%d:%d:%d", (i++ ? "," : ""), k, c[k], v[k], n[k]}'
}
case $1 in
  snapshot) snapshot "$2" ;;
  per-request)
    awk -v a="$2" -v b="$(snapshot "$3")" -v r="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      n = split(a, x, ","); for (i = 1; i <= n; i++) { split(x[i], kv, "="); before[kv[1]] = kv[2] }
      n = split(b, y, ","); for (i = 1; i <= n; i++) {
        split(y[i], kv, "="); split(kv[2], now, ":"); split(before[kv[1]] == "" ? "0:0:0" : before[kv[1]], was, ":")
        us = (now[1] - was[1]) * 1e6 / hz / r
        if (us > 0) out = out sprintf("%s%s %.1f µs %.2f waits %.2f preempted", (out == "" ? "" : "; "), kv[1], us,
                                      (now[2] - was[2]) / r, (now[3] - was[3]) / r)
      }
      print out
    }' ;;
  *) echo "usage: bench/threads.sh snapshot PID | per-request SNAPSHOT PID REQUESTS" >&2; exit 2 ;;
esac

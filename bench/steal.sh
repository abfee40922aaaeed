#!/usr/bin/env bash
# Time the hypervisor stole from this virtual machine's CPUs (the `steal` column of /proc/stat).
#   bench/steal.sh snapshot CORE        prints the counters of cpuN and of all CPUs, to keep
#   bench/steal.sh since "SNAPSHOT" CORE prints the stolen share of each since the snapshot,
#                                        e.g. "core 0: 31.2 %, all cores: 28.4 %"
set -euo pipefail
counters() { awk -v core="cpu$1" '$1 == core || $1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; printf "%s %d %d ", $1, t, $9 }' /proc/stat; }
case $1 in
  snapshot) counters "$2" ;;
  since)
    # shellcheck disable=SC2086
    set -- $2 $(counters "$3")
    # Six fields each: name total steal for "cpu" and "cpuN", before then after.
    awk -v a="$1 $2 $3 $4 $5 $6" -v b="$7 $8 $9 ${10} ${11} ${12}" 'BEGIN {
      split(a, x); split(b, y)
      for (i = 1; i <= 4; i += 3) {
        name = x[i]; dt = y[i + 1] - x[i + 1]; ds = y[i + 2] - x[i + 2]
        share[name] = dt > 0 ? 100 * ds / dt : 0
      }
      for (n in share) if (n != "cpu") core = n
      printf "core %s: %.1f %%, all cores: %.1f %%\n", substr(core, 4), share[core], share["cpu"]
    }' ;;
  *) echo "usage: $0 snapshot CORE | since SNAPSHOT CORE" >&2; exit 2 ;;
esac

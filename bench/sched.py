#!/usr/bin/env python3
"""What the scheduler did to one process's threads, from `perf script` of sched_switch and
sched_wakeup recorded on every CPU (bench/sched.sh records it and calls this).

  perf script -F comm,tid,cpu,time,event,trace | sched.py TID [TID ...]

Per thread given (by its id), in microseconds:
  runs       how often it ran, for how long in all, its longest run and how many ran over 0.5 ms;
  to run     from a wake-up (or a preemption) to running again: p50, p99, longest, over 0.5 ms and
             over 1 ms; for those over 0.5 ms, who ran meanwhile on the CPU where it then ran;
  blocked    uninterruptible sleeps (disk, page faults on file pages): count, total, longest.
Wake-ups made on another CPU count: the recording covers every CPU.
"""
import bisect
import collections
import re
import sys

SWITCH = re.compile(r'\[(\d+)\]\s+(\d+\.\d+): +sched:sched_switch: prev_comm=(.*?) prev_pid=(\d+) '
                    r'prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)')
WAKEUP = re.compile(r'\s(\d+\.\d+): +sched:sched_wakeup: comm=(.*?) pid=(\d+)')


def percentile(values, share):
    return values[min(len(values) - 1, int(len(values) * share))]


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: perf script -F comm,tid,cpu,time,event,trace | sched.py TID [TID ...]")
    threads = set(sys.argv[1:])
    names = {}
    running = {}                                  # cpu -> (tid, comm, since)
    runs_by_cpu = collections.defaultdict(list)   # cpu -> [(start, end, comm)]
    runs = collections.defaultdict(list)          # tid -> [duration]
    waiting_since = {}                            # tid -> when it became runnable
    waits = collections.defaultdict(list)         # tid -> [(delay, cpu, start, end)]
    blocked_since = {}
    blocked = collections.defaultdict(list)
    for line in sys.stdin:
        m = WAKEUP.search(line)
        if m:
            t, tid = float(m.group(1)), m.group(3)
            if tid in blocked_since:
                blocked[tid].append(t - blocked_since.pop(tid))
            waiting_since.setdefault(tid, t)
            continue
        m = SWITCH.search(line)
        if not m:
            continue
        cpu, t = m.group(1), float(m.group(2))
        prev, state, nxt = m.group(4), m.group(5), m.group(7)
        names.setdefault(prev, m.group(3))
        names.setdefault(nxt, m.group(6))
        if cpu in running:
            tid, comm, since = running[cpu]
            runs_by_cpu[cpu].append((since, t, comm))
            runs[tid].append(t - since)
        if state.startswith('R'):
            waiting_since.setdefault(prev, t)     # preempted: runnable from now on
        elif state.startswith('D'):
            blocked_since[prev] = t
        if nxt in waiting_since:
            start = waiting_since.pop(nxt)
            waits[nxt].append((t - start, cpu, start, t))
        running[cpu] = (nxt, m.group(6), t)

    starts = {cpu: [r[0] for r in rs] for cpu, rs in runs_by_cpu.items()}

    def who_ran(cpu, start, end):
        ran = collections.Counter()
        rs = runs_by_cpu.get(cpu, [])
        i = max(0, bisect.bisect_right(starts.get(cpu, []), start) - 1)
        while i < len(rs) and rs[i][0] < end:
            overlap = min(end, rs[i][1]) - max(start, rs[i][0])
            if overlap > 0:
                ran[rs[i][2]] += overlap
            i += 1
        return ran

    for tid in sorted(threads, key=lambda x: -sum(runs.get(x, [0]))):
        name = names.get(tid, '?')
        r = sorted(runs.get(tid, []))
        if not r:
            continue
        print(f"{name} ({tid}): runs {len(r)}, {sum(r) * 1e3:.1f} ms in all, longest {r[-1] * 1e6:.0f} us, "
              f"{sum(1 for x in r if x > 5e-4)} over 0.5 ms")
        w = waits.get(tid, [])
        if w:
            d = sorted(x[0] for x in w)
            print(f"  to run: p50 {percentile(d, .5) * 1e6:.0f} us, p99 {percentile(d, .99) * 1e6:.0f} us, "
                  f"longest {d[-1] * 1e6:.0f} us, {sum(1 for x in d if x > 5e-4)} over 0.5 ms, "
                  f"{sum(1 for x in d if x > 1e-3)} over 1 ms")
            meanwhile = collections.Counter()
            for delay, cpu, start, end in w:
                if delay > 5e-4:
                    meanwhile.update(who_ran(cpu, start, end))
            if meanwhile:
                print("  ran meanwhile (waits over 0.5 ms): " +
                      ", ".join(f"{c} {v * 1e3:.1f} ms" for c, v in meanwhile.most_common(6)))
        b = sorted(blocked.get(tid, []))
        if b:
            print(f"  blocked: {len(b)}, {sum(b) * 1e3:.1f} ms in all, longest {b[-1] * 1e3:.2f} ms")


if __name__ == '__main__':
    main()

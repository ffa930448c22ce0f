#!/usr/bin/env python3
"""Who preempts a program's threads: from a scheduler trace, per thread of PROGRAM its run time,
how often it was preempted (switched out while runnable) and which threads ran instead.

    perf record -e sched:sched_switch -a -o sched.data -- \\
        mpirun -np 2 --mca pml ob1 --mca btl self,vader evomerge evolve bench.yml --run r
    perf script -i sched.data -F comm,tid,cpu,time,event,trace > sched.txt
    tools/dist/preemptions.py sched.txt evomerge

A preemptor of the same program is shown as PROGRAM:TID (e.g. a rank's main thread preempting its
scoring thread); others by their command name. docs/benchmarks.md (dist, session 5) has a reading.
"""
import collections
import re
import sys

SWITCH = re.compile(r'prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> '
                    r'next_comm=(.*?) next_pid=(\d+)')
STAMP = re.compile(r'(\d+\.\d+):')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, prog = sys.argv[1], sys.argv[2][:15]  # the kernel keeps 15 characters of a name
    run = collections.Counter()
    since, comm = {}, {}
    by = collections.defaultdict(collections.Counter)
    with open(path) as f:
        for line in f:
            m, t = SWITCH.search(line), STAMP.search(line)
            if not m or not t:
                continue
            now = float(t.group(1))
            prev_comm, prev, state, next_comm, nxt = m.groups()
            prev, nxt = int(prev), int(nxt)
            comm[prev], comm[nxt] = prev_comm, next_comm
            if prev in since:
                run[prev] += now - since.pop(prev)
            since[nxt] = now
            if prev_comm == prog and state.startswith('R'):
                by[prev][next_comm if next_comm != prog else f'{prog}:{nxt}'] += 1
    for tid, seconds in run.most_common():
        if comm[tid] != prog or seconds < 0.01:
            continue
        top = ', '.join(f'{who} {n}' for who, n in by[tid].most_common(5))
        print(f'{tid:8} run {seconds:8.3f} s  preempted {sum(by[tid].values()):6}  by: {top}')


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""Event simulation of evomerge's MPI coordinator (src/dist/mpi_evolve.cpp) at many ranks.

Model: a generation is `candidates` candidates, each cut into `pieces` jobs; a candidate takes
`job_s` seconds times a factor drawn uniformly from [1 - spread, 1 + spread] (generate_until
candidates differ: a broken model runs every item to max_gen_toks), split evenly over its jobs.
CMA-ES needs the whole generation before the next one (a barrier). Each job costs rank 0 `msg_us`
microseconds of messaging (encode, send, receive, decode). Every worker holds up to 2 jobs (one
running, one queued; 1 once no more than `ranks` jobs are left) and asks for more by sending a
result. Two designs of rank 0:
  --design answer (the code since 2026-12-01 14:52, 85c48e6): rank 0 scores on a second thread, its main
      thread answers each result when it arrives;
  --design between (before): rank 0 scores jobs itself and answers only between its own jobs.
Prints the mean generation time over `--trials` generations and the speed-up over one rank.

  python3 tools/dist/coordinator_sim.py --candidates 8 --pieces 1 --spread 0.3 --ranks 1 2 8
"""
import argparse
import heapq
import random


def generation_time(ranks, jobs, msg_us, design, depth=2):
    """jobs: the job durations in hand-out order. Returns when the last result is in."""
    msg = msg_us * 1e-6
    nxt = 0  # next job to hand out
    left = len(jobs)
    m0 = 0.0  # rank 0's main thread: when it is free to send or receive
    events = []  # (time a worker's result arrives, worker)
    held = [0] * ranks
    busy_until = [0.0] * ranks

    def give(r):
        nonlocal nxt, m0
        while nxt < len(jobs) and held[r] < (depth if len(jobs) - nxt > ranks else 1):
            m0 += msg
            held[r] += 1
            busy_until[r] = max(busy_until[r], m0) + jobs[nxt]
            nxt += 1
            heapq.heappush(events, (busy_until[r], r))

    for r in range(1, ranks):
        give(r)
    if design == "answer":
        # Rank 0 is one more scoring slot (depth 1) whose work never delays the main thread.
        while left > 0:
            if held[0] == 0 and nxt < len(jobs):
                held[0] = 1
                busy_until[0] = max(busy_until[0], m0) + jobs[nxt]
                nxt += 1
                heapq.heappush(events, (busy_until[0], 0))
            t, r = heapq.heappop(events)
            left -= 1
            held[r] -= 1
            if r != 0:
                m0 = max(m0, t) + msg
                give(r)
            else:
                m0 = max(m0, t)
        return max(m0, max(busy_until))
    while left > 0:  # "between"
        while events and events[0][0] <= m0:
            _, r = heapq.heappop(events)
            m0 += msg
            held[r] -= 1
            left -= 1
            give(r)
        if nxt < len(jobs):
            m0 += jobs[nxt]
            nxt += 1
            left -= 1
        elif events:
            m0 = max(m0, events[0][0])  # idle until the next result
    return m0


def mean_generation(ranks, a, design):
    rng = random.Random(a.seed)
    total = 0.0
    for _ in range(a.trials):
        jobs = []
        for _ in range(a.candidates):
            c = a.job_s * rng.uniform(1 - a.spread, 1 + a.spread)
            jobs += [c / a.pieces] * a.pieces
        total += generation_time(ranks, jobs, a.msg_us, design)
    return total / a.trials


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--candidates", type=int, default=8, help="candidates per generation")
    p.add_argument("--pieces", type=int, default=1, help="jobs per candidate")
    p.add_argument("--job-s", type=float, default=0.5, help="mean seconds per candidate")
    p.add_argument("--spread", type=float, default=0.0, help="candidate time factor 1 +- spread")
    p.add_argument("--msg-us", type=float, default=200.0, help="rank 0 messaging per job (us)")
    p.add_argument("--design", choices=["answer", "between"], default="answer")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 8, 64, 512])
    a = p.parse_args()
    base = mean_generation(1, a, a.design)
    print(f"{a.candidates} candidates x {a.pieces} jobs, {a.job_s} s +- {a.spread * 100:.0f}% per "
          f"candidate, {a.msg_us} us messaging/job, rank 0 design '{a.design}'")
    print("ranks  generation_s  speed-up  efficiency")
    for n in a.ranks:
        t = mean_generation(n, a, a.design)
        print(f"{n:5d}  {t:12.3f}  {base / t:8.2f}  {base / t / n:10.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Event simulation of evomerge's MPI coordinator (src/dist/mpi_evolve.cpp) at many ranks.

Model (what the code does): a generation is `jobs` scoring jobs of `job_s` seconds each; CMA-ES
needs the whole generation before the next one (a barrier). Rank 0 scores jobs itself and only
answers messages between its own jobs; each job costs it `msg_us` microseconds of messaging
(encode, send, receive, decode). Every worker holds up to 2 jobs (one running, one queued) and asks
for more by sending a result. Prints the generation time and the parallel efficiency for N ranks.

  python3 tools/dist/coordinator_sim.py --jobs 64 --job-s 0.5 --msg-us 200 --ranks 1 2 8 64 512
"""
import argparse
import heapq


def generation_time(ranks, jobs, job_s, msg_us, depth=2, rank0_works=True):
    msg = msg_us * 1e-6
    pending = jobs
    t0 = 0.0  # rank 0's clock
    events = []  # (time a worker finishes a job, worker)
    queued = [0] * ranks  # jobs held by each worker (running + queued)
    busy_until = [0.0] * ranks
    done = 0

    def give(r, now):
        nonlocal pending, t0
        while pending > 0 and queued[r] < (depth if pending > ranks else 1):
            pending -= 1
            t0 += msg  # rank 0 sends it
            queued[r] += 1
            start = max(busy_until[r], t0)
            busy_until[r] = start + job_s
            heapq.heappush(events, (busy_until[r], r))

    for r in range(1, ranks):
        give(r, 0.0)
    while done < jobs:
        # Results that arrived while rank 0 was busy: handled now, in arrival order.
        while events and events[0][0] <= t0:
            _, r = heapq.heappop(events)
            t0 += msg
            queued[r] -= 1
            done += 1
            give(r, t0)
        if pending > 0 and (rank0_works or ranks == 1):
            pending -= 1
            t0 += job_s
            done += 1
        elif events:
            t0 = max(t0, events[0][0])  # idle until the next result
    return t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=64, help="jobs per generation")
    p.add_argument("--job-s", type=float, default=0.5, help="seconds per job")
    p.add_argument("--msg-us", type=float, default=200.0, help="rank 0 messaging per job (us)")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 8, 64, 512])
    a = p.parse_args()
    base = generation_time(1, a.jobs, a.job_s, a.msg_us)
    print(f"jobs/generation {a.jobs}, {a.job_s} s/job, {a.msg_us} us messaging/job")
    print("ranks  generation_s  speed-up  efficiency")
    for n in a.ranks:
        t = generation_time(n, a.jobs, a.job_s, a.msg_us)
        print(f"{n:5d}  {t:12.3f}  {base / t:8.2f}  {base / t / n:10.2f}")


if __name__ == "__main__":
    main()

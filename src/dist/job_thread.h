// One rank's scoring thread (dist/): runs the jobs it is given in order on one long-lived thread
// while the rank's main thread keeps MPI progressing. One thread for the whole run, not one per
// job, so the engine's per-thread state (oneDNN stream, OpenMP settings, allocator arena) is built
// once (its cost per job was within the noise of the loaded machine, docs/benchmarks.md, but it is
// work a single process never does). The main thread waits on this thread instead of polling it:
// wait() returns as soon as a job finishes, or at the timeout, so MPI is polled only as often as
// the caller needs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "evolve/work.h"

namespace evomerge {

class JobThread {
 public:
  using Score = std::function<JobResult(const ScoreJob&)>;
  explicit JobThread(Score score);
  ~JobThread();  // lets the job in progress finish, drops the queued ones, joins
  JobThread(const JobThread&) = delete;
  JobThread& operator=(const JobThread&) = delete;

  void submit(uint64_t id, ScoreJob job);
  // Jobs submitted and not yet returned by wait() (queued, running or finished).
  size_t pending() const;
  struct Done {
    uint64_t id;
    JobResult result;
    std::exception_ptr error;  // what the scoring function threw (wait() rethrows it)
  };
  // The next finished job, in submission order; nullopt when none finished within `timeout`.
  // Rethrows what the scoring function threw for that job.
  std::optional<Done> wait(std::chrono::microseconds timeout);
  // What this thread's jobs cost so far: CPU seconds (its own thread clock), the times the kernel
  // preempted it (involuntary context switches: another thread took its core, e.g. its rank's
  // main thread waking to poll MPI) and its minor page faults, from getrusage(RUSAGE_THREAD).
  struct Usage {
    double cpu_seconds = 0;
    uint64_t preempted = 0, minor_faults = 0;
  };
  Usage usage() const;
  double cpu_seconds() const { return usage().cpu_seconds; }

 private:
  void loop();

  Score score_;
  mutable std::mutex mu_;
  std::condition_variable work_, finished_;
  std::deque<std::pair<uint64_t, ScoreJob> > queue_;
  std::deque<Done> done_;
  size_t pending_ = 0;
  Usage usage_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

// CPU seconds of the calling thread so far (CLOCK_THREAD_CPUTIME_ID).
double thread_cpu_seconds();
// The calling thread's context switches so far, voluntary (it slept or blocked) and involuntary
// (preempted), and its minor page faults, from getrusage(RUSAGE_THREAD).
struct ThreadCounters {
  uint64_t voluntary = 0, involuntary = 0, minor_faults = 0;
};
ThreadCounters thread_counters();
// CPU seconds (user + system) of this process so far.
double process_cpu_seconds();

}  // namespace evomerge

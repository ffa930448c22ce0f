#include "dist/job_thread.h"

#include <sys/resource.h>
#include <time.h>

namespace evomerge {

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

ThreadCounters thread_counters() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return {static_cast<uint64_t>(u.ru_nvcsw), static_cast<uint64_t>(u.ru_nivcsw),
          static_cast<uint64_t>(u.ru_minflt)};
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

JobThread::JobThread(Score score) : score_(std::move(score)), thread_([this] { loop(); }) {}

JobThread::~JobThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_.notify_one();
  thread_.join();
}

void JobThread::submit(uint64_t id, ScoreJob job) {
  {
    std::lock_guard lock(mu_);
    queue_.emplace_back(id, std::move(job));
    ++pending_;
  }
  work_.notify_one();
}

size_t JobThread::pending() const {
  std::lock_guard lock(mu_);
  return pending_;
}

std::optional<JobThread::Done> JobThread::wait(std::chrono::microseconds timeout) {
  std::unique_lock lock(mu_);
  if (!finished_.wait_for(lock, timeout, [&] { return !done_.empty(); })) return std::nullopt;
  Done d = std::move(done_.front());
  done_.pop_front();
  --pending_;
  if (d.error) std::rethrow_exception(d.error);
  return d;
}

JobThread::Usage JobThread::usage() const {
  std::lock_guard lock(mu_);
  return usage_;
}

void JobThread::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;  // the queued jobs are dropped (the run is ending or failed)
    auto [id, job] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const double cpu0 = thread_cpu_seconds();
    const ThreadCounters sw0 = thread_counters();
    Done d{id, {}, nullptr};
    try {
      d.result = score_(job);
    } catch (...) {  // not a job's own failure (that is JobResult::ok): rethrown by wait()
      d.error = std::current_exception();
    }
    const double cpu = thread_cpu_seconds() - cpu0;
    const ThreadCounters sw = thread_counters();
    lock.lock();
    usage_.cpu_seconds += cpu;
    usage_.preempted += sw.involuntary - sw0.involuntary;
    usage_.minor_faults += sw.minor_faults - sw0.minor_faults;
    done_.push_back(std::move(d));
    finished_.notify_one();
  }
}

}  // namespace evomerge

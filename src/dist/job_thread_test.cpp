#include "dist/job_thread.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>

namespace evomerge {
namespace {

ScoreJob job_with_items(std::vector<size_t> items) {
  return {CandidateRef::ps({1.0}), SplitKind::Opt, 0, std::move(items)};
}

// A stand-in for LocalRunner::run_one: the result's `requested` is the sum of the job's items, so
// each result says which job it came from.
JobResult sum_items(const ScoreJob& job) {
  JobResult r;
  for (size_t i : job.items) r.score.requested += i;
  return r;
}

TEST(JobThread, ReturnsEveryJobInSubmissionOrderOnOneThread) {
  std::set<std::thread::id> threads;
  JobThread t([&](const ScoreJob& job) {
    threads.insert(std::this_thread::get_id());  // only the job thread writes it
    return sum_items(job);
  });
  t.submit(7, job_with_items({1, 2}));
  t.submit(3, job_with_items({10}));
  t.submit(9, job_with_items({}));
  EXPECT_EQ(t.pending(), 3u);
  const std::pair<uint64_t, size_t> want[] = {{7, 3}, {3, 10}, {9, 0}};
  for (const auto& [id, sum] : want) {
    auto d = t.wait(std::chrono::seconds(10));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->id, id);
    EXPECT_EQ(d->result.score.requested, sum);
  }
  EXPECT_EQ(t.pending(), 0u);
  EXPECT_EQ(threads.size(), 1u);  // one long-lived thread, not one per job
  EXPECT_NE(*threads.begin(), std::this_thread::get_id());
}

TEST(JobThread, WaitTimesOutWhenNoJobHasFinished) {
  JobThread t(sum_items);
  EXPECT_FALSE(t.wait(std::chrono::milliseconds(1)).has_value());  // nothing submitted
  EXPECT_EQ(t.pending(), 0u);
}

TEST(JobThread, WaitRethrowsWhatTheScoringFunctionThrewAndKeepsServing) {
  JobThread t([](const ScoreJob& job) -> JobResult {
    if (job.items.empty()) throw std::runtime_error("out of memory");
    return sum_items(job);
  });
  t.submit(1, job_with_items({}));
  t.submit(2, job_with_items({4}));
  EXPECT_THROW(
      {
        try {
          t.wait(std::chrono::seconds(10));
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "out of memory");
          throw;
        }
      },
      std::runtime_error);
  auto d = t.wait(std::chrono::seconds(10));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->id, 2u);
  EXPECT_EQ(d->result.score.requested, 4u);
}

TEST(JobThread, CountsTheCpuTimeOfItsJobs) {
  JobThread t([](const ScoreJob& job) {
    // Spin until this thread has used 20 ms of CPU.
    const double until = thread_cpu_seconds() + 0.02;
    volatile double x = 0;
    while (thread_cpu_seconds() < until) x = x + 1;
    return sum_items(job);
  });
  EXPECT_EQ(t.cpu_seconds(), 0.0);
  t.submit(1, job_with_items({1}));
  ASSERT_TRUE(t.wait(std::chrono::seconds(30)).has_value());
  EXPECT_GE(t.cpu_seconds(), 0.02);
  EXPECT_GE(process_cpu_seconds(), t.cpu_seconds());
}

TEST(JobThread, CountsTheMinorFaultsOfItsJobsOnly) {
  // Fresh anonymous memory faults in on first touch: at least one fault per 2 MB (one per 4 KB
  // page, or one per huge page where transparent huge pages are always on).
  constexpr size_t kBytes = 8 << 20;
  auto touch = [] {
    void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    for (size_t i = 0; i < kBytes; i += 4096) static_cast<volatile char*>(p)[i] = 1;
    munmap(p, kBytes);
  };
  JobThread t([&](const ScoreJob& job) {
    touch();
    return sum_items(job);
  });
  touch();  // on this thread: not the job thread's
  EXPECT_EQ(t.usage().minor_faults, 0u);
  t.submit(1, job_with_items({1}));
  ASSERT_TRUE(t.wait(std::chrono::seconds(30)).has_value());
  EXPECT_GE(t.usage().minor_faults, kBytes >> 21);
  EXPECT_LT(t.usage().minor_faults, 2 * (kBytes >> 12) + 100);  // this job's, nobody else's
}

TEST(JobThread, DestructionLetsTheRunningJobFinishAndDropsTheQueuedOnes) {
  std::atomic<int> started{0}, finished{0};
  {
    JobThread t([&](const ScoreJob& job) {
      ++started;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++finished;
      return sum_items(job);
    });
    t.submit(1, job_with_items({1}));
    t.submit(2, job_with_items({2}));
    while (started.load() == 0) std::this_thread::yield();  // job 1 runs, job 2 is queued
  }
  EXPECT_EQ(started.load(), 1);
  EXPECT_EQ(finished.load(), 1);
}

}  // namespace
}  // namespace evomerge

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <optional>
#include <thread>

#include "common/error.h"
#include "dist/distributed.h"
#include "dist/job_queue.h"
#include "dist/wire.h"
#include "evolve/search_context.h"
#include "evolve/work.h"

#if EVOMERGE_HAVE_MPI
#include <mpi.h>
#endif

namespace evomerge {

int launcher_world_size() {
  // OpenMPI's mpirun, MPICH/Intel (PMI), and srun steps (SLURM_STEP_NUM_TASKS is only set inside
  // a step, not for a plain command in an sbatch allocation).
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  return 1;
}

#if !EVOMERGE_HAVE_MPI

bool mpi_available() {
  return false;
}

DistributedResult run_evolve_mpi(const EvolveConfig&, const EvolveRunOptions&) {
  fail("evolve",
       "started by an MPI launcher with {} ranks, but this evomerge was built without MPI "
       "(install libopenmpi-dev and rebuild with -DEVOMERGE_MPI=ON; docs/distributed.md)",
       launcher_world_size());
}

#else

bool mpi_available() {
  return true;
}

namespace {

enum Tag : int { kReady = 1, kGo = 2, kJob = 3, kResult = 4, kStop = 5 };
constexpr size_t kJobsInFlight = 2;  // per worker: one to score, one queued while rank 0 is busy

void send_bytes(const std::string& b, int dest, int tag) {
  MPI_Send(b.data(), static_cast<int>(b.size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD);
}

std::string recv_bytes(const MPI_Status& probed) {
  int n = 0;
  MPI_Get_count(&probed, MPI_BYTE, &n);
  std::string b(static_cast<size_t>(n), '\0');
  MPI_Recv(b.data(), n, MPI_BYTE, probed.MPI_SOURCE, probed.MPI_TAG, MPI_COMM_WORLD,
           MPI_STATUS_IGNORE);
  return b;
}

bool poll(int source, int tag, MPI_Status& st) {
  int flag = 0;
  MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, &st);
  return flag != 0;
}

// Waits for a message without spinning a core (MPI's blocking receive busy-polls): probes with
// sleeps growing from 20 us to 1 ms, small next to a job's seconds.
void wait_message(int source, int tag, MPI_Status& st) {
  auto pause = std::chrono::microseconds(20);
  while (!poll(source, tag, st)) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Per rank, what it did in the scoring batches, for the [dist] summary: where the ranks idle,
// independent of how loaded the machine is (shares, not absolute times).
struct RankLoad {
  uint64_t jobs = 0, loads = 0;  // loads: jobs that had to build (merge) their candidate first
  double scoring_seconds = 0;    // the jobs' merge + eval seconds, as the rank measured them
};

// Rank 0's runner: jobs go to whichever rank has room (at most kJobsInFlight per worker, one
// near the end of a batch), in the order dist/job_queue.h gives. Rank 0 scores jobs too, on a
// second thread, while this thread keeps answering the workers: a worker that finishes is sent
// its next job at once, not after rank 0's own job.
class MpiRunner : public WorkRunner {
 public:
  // `capacity`: the candidates each rank keeps loaded (SearchContext::cached_candidates).
  MpiRunner(LocalRunner& local, int ranks, size_t capacity)
      : load(ranks), local_(local), ranks_(ranks), capacity_(std::max<size_t>(1, capacity)) {}

  size_t slots() const override { return static_cast<size_t>(ranks_); }

  std::vector<JobResult> run(const std::vector<ScoreJob>& jobs) override {
    const auto t0 = std::chrono::steady_clock::now();
    Batch b{jobs, std::vector<JobResult>(jobs.size()), JobQueue(jobs, held_, capacity_),
            std::vector<size_t>(ranks_, 0), jobs.size()};
    for (int r = 1; r < ranks_; ++r) feed(b, r);
    std::future<JobResult> local;  // rank 0's job in progress
    size_t local_job = 0;
    auto pause = std::chrono::microseconds(20);
    while (b.left > 0) {
      bool active = receive_results(b);
      if (local.valid() && local.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        record(b, 0, local_job, local.get());
        active = true;
      }
      if (!local.valid() && !b.queue.empty()) {
        local_job = take(b, 0);
        local = std::async(std::launch::async,
                           [this, job = &jobs[local_job]] { return local_.run_one(*job); });
        active = true;
      }
      if (active) {
        pause = std::chrono::microseconds(20);
      } else {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(1000));
      }
    }
    stats.jobs += jobs.size();
    batch_seconds += seconds_since(t0);
    return std::move(b.results);
  }

  struct Stats {
    uint64_t jobs = 0, messages = 0, bytes = 0;
    double seconds = 0;  // rank 0's time encoding, sending, receiving and decoding
  } stats;
  std::vector<RankLoad> load;  // per rank
  double batch_seconds = 0;    // wall time inside run(): every rank could be scoring

 private:
  struct Batch {
    const std::vector<ScoreJob>& jobs;
    std::vector<JobResult> results;
    JobQueue queue;
    std::vector<size_t> in_flight;  // per rank
    size_t left;                    // jobs without a result yet
  };

  size_t take(Batch& b, int r) {
    const size_t j = b.queue.take(r);
    // Rank r's candidates as its LocalRunner keeps them: the most recently used first.
    auto& mine = held_[static_cast<size_t>(r)];
    const CandidateRef& c = b.jobs[j].candidate;
    const auto it = std::find(mine.begin(), mine.end(), c);
    if (it != mine.begin()) {
      if (it != mine.end()) mine.erase(it);
      mine.insert(mine.begin(), c);
      if (mine.size() > capacity_) mine.pop_back();
    }
    ++b.in_flight[r];
    return j;
  }

  // A second job queued per worker only while there is work for every rank: near the end of a
  // batch it would leave ranks idle.
  void feed(Batch& b, int r) {
    while (!b.queue.empty() &&
           b.in_flight[r] < (b.queue.size() > static_cast<size_t>(ranks_) ? kJobsInFlight : 1)) {
      const auto t0 = std::chrono::steady_clock::now();
      const size_t j = take(b, r);
      const std::string bytes = wire::encode_job(j, b.jobs[j]);
      send_bytes(bytes, r, kJob);
      stats.seconds += seconds_since(t0);
      stats.messages += 1, stats.bytes += bytes.size();
    }
  }

  // Every result that has arrived; each frees room on its rank for the next job.
  bool receive_results(Batch& b) {
    bool got = false;
    MPI_Status st;
    while (poll(MPI_ANY_SOURCE, kResult, st)) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::string bytes = recv_bytes(st);
      auto [id, res] = wire::decode_result(bytes);
      stats.seconds += seconds_since(t0);
      stats.messages += 1, stats.bytes += bytes.size();
      if (id >= b.results.size())
        fail("dist", "rank {} answered job {} of {}", st.MPI_SOURCE, id, b.results.size());
      record(b, st.MPI_SOURCE, id, std::move(res));
      feed(b, st.MPI_SOURCE);
      got = true;
    }
    return got;
  }

  void record(Batch& b, int r, size_t j, JobResult&& res) {
    auto& l = load[static_cast<size_t>(r)];
    l.jobs += 1;
    l.loads += res.merge_seconds > 0 ? 1 : 0;
    l.scoring_seconds += res.merge_seconds + res.eval_seconds;
    b.results[j] = std::move(res);
    --b.left, --b.in_flight[r];
  }

  LocalRunner& local_;
  int ranks_;
  size_t capacity_;
  // Per rank, the candidates it was last given (it keeps them loaded), the most recent first.
  std::vector<std::vector<CandidateRef> > held_ = std::vector<std::vector<CandidateRef> >(ranks_);
};

// A worker: scores the jobs rank 0 sends until it says stop. Jobs run on a second thread while
// this one keeps calling MPI (only this thread does: MPI_THREAD_FUNNELED), so a result larger than
// MPI's eager limit moves to rank 0 as soon as rank 0 asks for it, not after the next job.
void serve(LocalRunner& local) {
  std::deque<std::pair<uint64_t, ScoreJob> > queue;
  std::future<std::string> running;  // the encoded result of the job in progress
  std::list<std::pair<MPI_Request, std::string> > sends;
  auto progress_sends = [&] {
    for (auto it = sends.begin(); it != sends.end();) {
      int done = 0;
      MPI_Test(&it->first, &done, MPI_STATUS_IGNORE);
      it = done ? sends.erase(it) : std::next(it);
    }
  };
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    bool active = false;
    MPI_Status st;
    while (poll(0, MPI_ANY_TAG, st)) {
      const std::string b = recv_bytes(st);
      if (st.MPI_TAG == kStop) {
        if (running.valid()) running.wait();
        for (auto& [req, buf] : sends) MPI_Wait(&req, MPI_STATUS_IGNORE);
        return;
      }
      if (st.MPI_TAG == kJob) queue.push_back(wire::decode_job(b));
      active = true;
    }
    if (running.valid() && running.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      sends.emplace_back(MPI_Request{}, running.get());
      auto& [req, buf] = sends.back();
      MPI_Isend(buf.data(), static_cast<int>(buf.size()), MPI_BYTE, 0, kResult, MPI_COMM_WORLD,
                &req);
      active = true;
    }
    if (!running.valid() && !queue.empty()) {
      auto job = std::move(queue.front());
      queue.pop_front();
      running = std::async(std::launch::async, [&local, job = std::move(job)] {
        return wire::encode_result(job.first, local.run_one(job.second));
      });
      active = true;
    }
    progress_sends();
    if (active) {
      pause = std::chrono::microseconds(20);
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
}

// Every rank reports whether it built the context; rank 0 tells all to go on or stop. Returns
// the reports of failed ranks (rank 0 only).
std::vector<std::string> handshake(int rank, int ranks, const std::string& error) {
  std::vector<std::string> failures;
  if (rank != 0) {
    send_bytes(host_name() + "\n" + error, 0, kReady);
    MPI_Status st;
    wait_message(0, kGo, st);
    if (recv_bytes(st) != "go") failures.push_back("stop");
    return failures;
  }
  if (!error.empty()) failures.push_back(fmt::format("rank 0 ({}): {}", host_name(), error));
  for (int r = 1; r < ranks; ++r) {
    MPI_Status st;
    wait_message(r, kReady, st);
    const std::string b = recv_bytes(st);
    const auto nl = b.find('\n');
    if (nl + 1 < b.size())
      failures.push_back(fmt::format("rank {} ({}): {}", r, b.substr(0, nl), b.substr(nl + 1)));
  }
  for (int r = 1; r < ranks; ++r) send_bytes(failures.empty() ? "go" : "stop", r, kGo);
  return failures;
}

// Rank 0's account of the run after the start-up: messaging, where the time went (inside the
// scoring batches every rank can work; outside them rank 0 runs the optimiser and writes the
// store and outputs while the workers wait), and per rank its jobs, candidate loads and the share
// of the batches it spent scoring. Shares, not seconds, are what says where ranks idle on a
// loaded machine.
void log_summary(const MpiRunner& runner, double startup_seconds, double run_seconds,
                 const std::function<void(const std::string&)>& log) {
  const auto& s = runner.stats;
  log(
      fmt::format("[dist] {} ranks: {} jobs, {} messages, {} bytes, {:.0f} us of rank 0 "
                  "messaging ({:.1f} us per job)",
                  runner.slots(), s.jobs, s.messages, s.bytes, s.seconds * 1e6,
                  s.jobs ? s.seconds * 1e6 / static_cast<double>(s.jobs) : 0.0));
  const double in = runner.batch_seconds;
  log(
      fmt::format("[dist] {:.2f} s start-up (MPI, tasks, models, handshake), {:.2f} s in scoring "
                  "batches, {:.2f} s outside them ({:.1f}% of the run after start-up: rank 0 "
                  "alone, optimiser, store, outputs)",
                  startup_seconds, in, run_seconds - in,
                  run_seconds > 0 ? 100 * (run_seconds - in) / run_seconds : 0.0));
  for (size_t r = 0; r < runner.load.size(); ++r) {
    const RankLoad& l = runner.load[r];
    log(
        fmt::format("[dist] rank {}: {} jobs, {} candidate loads, {:.2f} s scoring, {:.2f} s "
                    "waiting in batches ({:.1f}% busy)",
                    r, l.jobs, l.loads, l.scoring_seconds, std::max(0.0, in - l.scoring_seconds),
                    in > 0 ? 100 * l.scoring_seconds / in : 0.0));
  }
}

struct MpiSession {
  MpiSession() {
    int inited = 0;
    MPI_Initialized(&inited);
    int provided = 0;
    if (!inited) MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  ~MpiSession() { MPI_Finalize(); }
  int rank = 0, size = 1;
};

}  // namespace

DistributedResult run_evolve_mpi(const EvolveConfig& cfg, const EvolveRunOptions& opts) {
  const auto t_start = std::chrono::steady_clock::now();
  MpiSession mpi;
  DistributedResult out;
  out.rank = mpi.rank;
  out.ranks = mpi.size;
  // Every rank loads the tasks and checks the models itself: a rank that cannot read a file says
  // which and why, and nothing is scored.
  std::optional<SearchContext> ctx;
  std::string error;
  try {
    ctx.emplace(build_search_context(cfg));
  } catch (const std::exception& e) {  // Error, and a parser's exception the CLI would report
    error = e.what();
  }
  const auto failures = handshake(mpi.rank, mpi.size, error);
  if (!failures.empty()) {
    // Rank 0 reports for all, one line per failed rank; the others stop without a word.
    if (mpi.rank != 0) {
      out.stopped = true;
      return out;
    }
    fail("dist", "{} of {} ranks cannot start the run (nothing was scored):\n  {}", failures.size(),
         mpi.size, fmt::join(failures, "\n  "));
  }
  LocalRunner local(*ctx);
  if (mpi.rank != 0) {
    serve(local);
    return out;
  }
  MpiRunner runner(local, mpi.size, ctx->cached_candidates);
  struct StopWorkers {  // also when rank 0 fails: the workers must not wait forever
    int ranks;
    ~StopWorkers() {
      for (int r = 1; r < ranks; ++r) send_bytes("", r, kStop);
    }
  } stop{mpi.size};
  const auto t_run = std::chrono::steady_clock::now();
  out.summary = run_evolve_with(*ctx, runner, opts);
  const auto log =
      opts.log ? opts.log : [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  log_summary(runner, std::chrono::duration<double>(t_run - t_start).count(), seconds_since(t_run),
              log);
  return out;
}

#endif

}  // namespace evomerge

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <optional>
#include <thread>

#include "common/error.h"
#include "dist/distributed.h"
#include "dist/job_queue.h"
#include "dist/job_thread.h"
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

enum Tag : int { kReady = 1, kGo = 2, kJob = 3, kResult = 4, kStop = 5, kAccount = 6 };
// Per rank: one to score, one queued behind it, so that a scoring thread never waits for its
// main thread or for rank 0 (one only near the end of a batch, where it would leave ranks idle).
constexpr size_t kJobsInFlight = 2;

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

// The pause between polls while something is urgent: sleeps growing from 20 us to 1 ms (MPI's
// blocking receive would spin a core), small next to a job's tenths of a second.
class Backoff {
 public:
  std::chrono::microseconds next() {
    const auto p = pause_;
    pause_ = std::min(pause_ * 2, std::chrono::microseconds(1000));
    return p;
  }
  void reset() { pause_ = std::chrono::microseconds(20); }

 private:
  std::chrono::microseconds pause_{20};
};

// A moving average of the jobs' seconds, which sets how long a rank's main thread sleeps between
// MPI polls while nothing is urgent. Each poll wakes a thread on a core a scoring thread is using,
// and each such wake-up preempts the scoring thread, which then refills its caches: ~45 us of its
// CPU per preemption on this 2-core VM (docs/benchmarks.md, a 1 ms waker on the core of a single
// process), so polls are spaced by fractions of a job, not by a fixed millisecond.
class JobClock {
 public:
  void saw_job(double seconds) {
    average_ = jobs_++ == 0 ? seconds : 0.8 * average_ + 0.2 * seconds;
  }
  double average() const { return average_; }
  // `fraction` of a typical job (1 ms before any job has ended), between 20 us and `cap`.
  std::chrono::microseconds part(double fraction, std::chrono::microseconds cap) const {
    using us = std::chrono::microseconds;
    if (jobs_ == 0) return us(1000);
    return std::clamp(us(static_cast<int64_t>(average_ * fraction * 1e6)), us(20), cap);
  }

 private:
  uint64_t jobs_ = 0;
  double average_ = 0;
};

// Waits for a message without spinning a core.
void wait_message(int source, int tag, MPI_Status& st) {
  Backoff backoff;
  while (!poll(source, tag, st)) std::this_thread::sleep_for(backoff.next());
}

// Messages up to this size are sent eagerly by every MPI transport we know (OpenMPI's shared
// memory: 4 KB, TCP: 64 KB; UCX and MPICH similar or larger): the data reaches the receiver
// without the sender calling MPI again, so such a send in transit needs no prompt polling (its
// request may stay incomplete until the receiver takes it; OpenMPI's shared memory returns the
// fragment then). A larger message goes by rendezvous, which needs the sender's progress.
constexpr size_t kEagerBytes = 4096;

// Messages sent without blocking the main thread (MPI_Isend), each buffer kept until MPI is done
// with it: a message above MPI's eager limit completes only when the receiver takes it.
class Sends {
 public:
  Sends() = default;
  Sends(const Sends&) = delete;
  Sends& operator=(const Sends&) = delete;
  ~Sends() { wait_all(); }
  void post(std::string bytes, int dest, int tag) {
    auto& [req, buf] = sends_.emplace_back(MPI_Request{}, std::move(bytes));
    MPI_Isend(buf.data(), static_cast<int>(buf.size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD, &req);
  }
  void progress() {
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      MPI_Test(&it->first, &done, MPI_STATUS_IGNORE);
      it = done ? sends_.erase(it) : std::next(it);
    }
  }
  bool empty() const { return sends_.empty(); }
  // Whether a send in transit needs this rank's progress to arrive (above kEagerBytes).
  bool need_progress() const {
    return std::any_of(sends_.begin(), sends_.end(),
                       [](const auto& s) { return s.second.size() > kEagerBytes; });
  }
  void wait_all() {
    for (auto& [req, buf] : sends_) MPI_Wait(&req, MPI_STATUS_IGNORE);
    sends_.clear();
  }

 private:
  std::list<std::pair<MPI_Request, std::string> > sends_;
};

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
  double load_seconds = 0;       // of which building (merging, loading) candidates
};

// Per rank, where its CPU time went (seconds of CPU, user + system): a rank's CPU beyond its
// jobs' is what N ranks pay that one process does not. Workers send theirs to rank 0 at the end.
struct RankCpu {
  double total = 0;      // the whole process (every thread, MPI's own included)
  double startup = 0;    // before the first job could be sent: MPI, tasks, models, handshake
  double jobs = 0;       // the scoring thread, in jobs
  double messaging = 0;  // the main thread while jobs ran: polling, sending, receiving
  // Counts (kept as doubles for the message): the scoring thread's preemptions and minor page
  // faults in jobs, the main thread's sleeps (each a wake-up later) and preemptions meanwhile.
  double job_preempted = 0, job_faults = 0, main_sleeps = 0, main_preempted = 0;
  void set_jobs(const JobThread::Usage& u) {
    jobs = u.cpu_seconds;
    job_preempted = static_cast<double>(u.preempted);
    job_faults = static_cast<double>(u.minor_faults);
  }
  std::string encode() const {
    const double v[8] = {total,         startup,    jobs,        messaging,
                         job_preempted, job_faults, main_sleeps, main_preempted};
    return std::string(reinterpret_cast<const char*>(v), sizeof v);
  }
  static RankCpu decode(const std::string& b, int rank) {
    double v[8];
    if (b.size() != sizeof v)
      fail("dist", "rank {} sent a CPU account of {} bytes", rank, b.size());
    std::memcpy(v, b.data(), sizeof v);
    return {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
  }
};

// Rank 0's runner: jobs go to whichever rank has room (at most kJobsInFlight per worker, one
// near the end of a batch), in the order dist/job_queue.h gives. Rank 0 scores jobs too, on its
// scoring thread, while this thread keeps answering the workers: a worker that finishes is sent
// its next job at once, not after rank 0's own job.
class MpiRunner : public WorkRunner {
 public:
  // `capacity`: the candidates each rank keeps loaded (SearchContext::cached_candidates).
  MpiRunner(JobThread& scorer, int ranks, size_t capacity)
      : load(ranks), scorer_(scorer), ranks_(ranks), capacity_(std::max<size_t>(1, capacity)) {}

  size_t slots() const override { return static_cast<size_t>(ranks_); }

  std::vector<JobResult> run(const std::vector<ScoreJob>& jobs) override {
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = thread_cpu_seconds();
    Batch b{jobs, std::vector<JobResult>(jobs.size()), JobQueue(jobs, held_, capacity_),
            std::vector<size_t>(ranks_, 0), jobs.size()};
    const ThreadCounters sw0 = thread_counters();
    for (int r = 1; r < ranks_; ++r) feed(b, r);
    Backoff backoff;
    while (b.left > 0) {
      bool active = receive_results(b);
      sends_.progress();
      feed(b, 0);
      if (active) backoff.reset();
      const auto timeout = active ? std::chrono::microseconds(0) : pause(b, backoff);
      if (auto done = scorer_.wait(timeout)) {
        record(b, 0, done->id, std::move(done->result));
        backoff.reset();
      }
    }
    stats.jobs += jobs.size();
    batch_seconds += seconds_since(t0);
    messaging_cpu += thread_cpu_seconds() - cpu0;
    const ThreadCounters sw = thread_counters();
    sleeps += sw.voluntary - sw0.voluntary;
    preempted += sw.involuntary - sw0.involuntary;
    return std::move(b.results);
  }

  struct Stats {
    uint64_t jobs = 0, messages = 0, bytes = 0;
    double seconds = 0;  // rank 0's time encoding, sending, receiving and decoding
  } stats;
  std::vector<RankLoad> load;          // per rank
  double batch_seconds = 0;            // wall time inside run(): every rank could be scoring
  double messaging_cpu = 0;            // this thread's CPU inside run()
  uint64_t sleeps = 0, preempted = 0;  // this thread's context switches inside run()

 private:
  struct Batch {
    const std::vector<ScoreJob>& jobs;
    std::vector<JobResult> results;
    JobQueue queue;
    std::vector<size_t> in_flight;  // per rank
    size_t left;                    // jobs without a result yet
  };

  // How long this thread may sleep before it next polls MPI (its own scoring thread wakes it at
  // once when a job ends). A large send in transit: the backoff. A worker scoring its only job (the
  // batch's tail): its result is wanted at once, but not before the job can end, so the first
  // half of a typical job is slept through and the backoff starts then (20 us growing to 1 ms).
  // Otherwise every worker has a job queued behind the one it scores, a whole job of slack:
  // a quarter of a typical job (at most 100 ms).
  std::chrono::microseconds pause(const Batch& b, Backoff& backoff) const {
    using us = std::chrono::microseconds;
    if (sends_.need_progress()) return backoff.next();
    std::optional<std::chrono::steady_clock::time_point> look;  // the earliest tail worth a look
    for (int r = 1; r < ranks_; ++r)
      if (b.in_flight[r] == 1) {
        const auto t = since_[r] + std::chrono::duration_cast<us>(
                                       std::chrono::duration<double>(0.5 * jobs_.average()));
        look = look ? std::min(*look, t) : t;
      }
    if (!look) return jobs_.part(0.25, us(100000));
    const auto now = std::chrono::steady_clock::now();
    if (now >= *look) return backoff.next();
    return std::max(us(20), std::chrono::duration_cast<us>(*look - now));
  }

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
    if (b.in_flight[r]++ == 0) since_[r] = std::chrono::steady_clock::now();
    return j;
  }

  // Jobs for rank r up to kJobsInFlight (rank 0's go to its scoring thread): a second one only
  // while there is work for every rank, since near the end of a batch it would leave ranks idle.
  void feed(Batch& b, int r) {
    while (!b.queue.empty() &&
           b.in_flight[r] < (b.queue.size() > static_cast<size_t>(ranks_) ? kJobsInFlight : 1)) {
      if (r == 0) {
        const size_t j = take(b, 0);
        scorer_.submit(j, b.jobs[j]);
        continue;
      }
      const auto t0 = std::chrono::steady_clock::now();
      const size_t j = take(b, r);
      std::string bytes = wire::encode_job(j, b.jobs[j]);
      stats.messages += 1, stats.bytes += bytes.size();
      sends_.post(std::move(bytes), r, kJob);
      stats.seconds += seconds_since(t0);
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
    l.load_seconds += res.merge_seconds;
    jobs_.saw_job(res.merge_seconds + res.eval_seconds);
    b.results[j] = std::move(res);
    --b.left, --b.in_flight[r];
    since_[r] = std::chrono::steady_clock::now();  // its queued job (if any) starts about now
  }

  JobThread& scorer_;
  int ranks_;
  size_t capacity_;
  Sends sends_;  // jobs in transit to the workers
  JobClock jobs_;
  // Per rank, about when the job it is scoring started (its last result's arrival, or the send
  // of a job to it while it had none).
  std::vector<std::chrono::steady_clock::time_point> since_ =
      std::vector<std::chrono::steady_clock::time_point>(ranks_);
  // Per rank, the candidates it was last given (it keeps them loaded), the most recent first.
  std::vector<std::vector<CandidateRef> > held_ = std::vector<std::vector<CandidateRef> >(ranks_);
};

// A worker: scores the jobs rank 0 sends until it says stop, then sends its CPU account. Jobs
// run on the scoring thread while this one keeps calling MPI (only this thread does:
// MPI_THREAD_FUNNELED), so a result larger than MPI's eager limit moves to rank 0 as soon as
// rank 0 asks for it, not after the next job. While the scoring thread has a job queued behind
// the running one and no large result is in transit, nothing here is urgent: this thread sleeps
// until a job ends (or a typical job's time passes). A job rank 0 sends meanwhile waits in MPI's
// buffers (jobs are far below the eager limit) and is taken when the running job ends, a few tens
// of microseconds before the scoring thread needs it; polling for it sooner woke this thread 16
// times a job, each time preempting the scoring thread on its core.
void serve(JobThread& scorer, RankCpu cpu) {
  Sends sends;  // results in transit to rank 0
  Backoff backoff;
  JobClock jobs;
  const double cpu0 = thread_cpu_seconds();
  const ThreadCounters sw0 = thread_counters();
  for (;;) {
    bool active = false;
    MPI_Status st;
    while (poll(0, MPI_ANY_TAG, st)) {
      const std::string b = recv_bytes(st);
      if (st.MPI_TAG == kStop) {
        sends.wait_all();
        cpu.set_jobs(scorer.usage());
        cpu.messaging = thread_cpu_seconds() - cpu0;
        const ThreadCounters sw = thread_counters();
        cpu.main_sleeps = static_cast<double>(sw.voluntary - sw0.voluntary);
        cpu.main_preempted = static_cast<double>(sw.involuntary - sw0.involuntary);
        cpu.total = process_cpu_seconds();
        send_bytes(cpu.encode(), 0, kAccount);
        return;
      }
      if (st.MPI_TAG == kJob) {
        auto [id, job] = wire::decode_job(b);
        scorer.submit(id, std::move(job));
      }
      active = true;
    }
    sends.progress();
    if (active) backoff.reset();
    const bool urgent = scorer.pending() == 0 || sends.need_progress();
    const auto timeout = active   ? std::chrono::microseconds(0)
                         : urgent ? backoff.next()
                                  : jobs.part(1.0, std::chrono::seconds(1));
    if (auto done = scorer.wait(timeout)) {
      jobs.saw_job(done->result.merge_seconds + done->result.eval_seconds);
      sends.post(wire::encode_result(done->id, done->result), 0, kResult);
      backoff.reset();
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
// store and outputs while the workers wait), and per rank its jobs, candidate loads, the share
// of the batches it spent scoring and where its CPU went. Shares, not seconds, are what says where
// ranks idle on a loaded machine; CPU beyond the jobs' is what N ranks cost over one process.
void log_summary(const MpiRunner& runner, const std::vector<RankCpu>& cpu, double startup_seconds,
                 double run_seconds, const std::function<void(const std::string&)>& log) {
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
  double total = 0, jobs = 0;
  for (size_t r = 0; r < runner.load.size(); ++r) {
    const RankLoad& l = runner.load[r];
    const RankCpu& c = cpu[r];
    log(fmt::format(
        "[dist] rank {}: {} jobs, {} candidate loads ({:.2f} s), {:.2f} s scoring, "
        "{:.2f} s waiting in batches ({:.1f}% busy); CPU {:.2f} s: {:.2f} s in jobs, "
        "{:.2f} s messaging, {:.2f} s start-up, {:.2f} s other{}; scoring thread preempted {:.0f} "
        "times, {:.0f} minor faults; main thread {:.0f} sleeps, preempted {:.0f} times",
        r, l.jobs, l.loads, l.load_seconds, l.scoring_seconds,
        std::max(0.0, in - l.scoring_seconds), in > 0 ? 100 * l.scoring_seconds / in : 0.0, c.total,
        c.jobs, c.messaging, c.startup, c.total - c.jobs - c.messaging - c.startup,
        r == 0 ? " (optimiser, store, outputs, MPI's threads)" : " (MPI's threads)",
        c.job_preempted, c.job_faults, c.main_sleeps, c.main_preempted));
    total += c.total, jobs += c.jobs;
  }
  log(fmt::format("[dist] CPU of all ranks: {:.2f} s, {:.2f} s of it in jobs ({:.1f}%)", total,
                  jobs, total > 0 ? 100 * jobs / total : 0.0));
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
  JobThread scorer([&local](const ScoreJob& job) { return local.run_one(job); });
  RankCpu cpu;
  cpu.startup = process_cpu_seconds();
  if (mpi.rank != 0) {
    serve(scorer, cpu);
    return out;
  }
  MpiRunner runner(scorer, mpi.size, ctx->cached_candidates);
  struct StopWorkers {  // also when rank 0 fails: the workers must not wait forever
    int ranks;
    bool sent = false;
    void send() {
      if (!sent)
        for (int r = 1; r < ranks; ++r) send_bytes("", r, kStop);
      sent = true;
    }
    ~StopWorkers() { send(); }
  } stop{mpi.size};
  const auto t_run = std::chrono::steady_clock::now();
  out.summary = run_evolve_with(*ctx, runner, opts);
  const double run_seconds = seconds_since(t_run);
  stop.send();
  std::vector<RankCpu> cpus(static_cast<size_t>(mpi.size));
  for (int r = 1; r < mpi.size; ++r) {
    MPI_Status st;
    wait_message(r, kAccount, st);
    cpus[static_cast<size_t>(r)] = RankCpu::decode(recv_bytes(st), r);
  }
  cpu.set_jobs(scorer.usage());
  cpu.messaging = runner.messaging_cpu;
  cpu.main_sleeps = static_cast<double>(runner.sleeps);
  cpu.main_preempted = static_cast<double>(runner.preempted);
  cpu.total = process_cpu_seconds();
  cpus[0] = cpu;
  const auto log =
      opts.log ? opts.log : [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  log_summary(runner, cpus, std::chrono::duration<double>(t_run - t_start).count(), run_seconds,
              log);
  return out;
}

#endif

}  // namespace evomerge

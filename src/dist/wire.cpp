#include "dist/wire.h"

#include <cstring>
#include <type_traits>

#include "common/error.h"

namespace evomerge::wire {

namespace {

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_.append(s);
  }
  template <typename T>
  void put_vector(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    for (const auto& x : v) put<T>(x);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string get_string() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  template <typename T>
  std::vector<T> get_vector() {
    const uint64_t n = get<uint64_t>();
    if (n > (in_.size() - pos_) / sizeof(T)) bad(n * sizeof(T));
    std::vector<T> v(n);
    for (auto& x : v) x = get<T>();
    return v;
  }
  void finish() const {
    if (pos_ != in_.size())
      fail("dist", "message has {} bytes after its end (a rank of another build?)",
           in_.size() - pos_);
  }

 private:
  void need(uint64_t n) const {
    if (n > in_.size() - pos_) bad(n);
  }
  [[noreturn]] void bad(uint64_t n) const {
    fail("dist", "message truncated: {} bytes wanted at offset {} of {}", n, pos_, in_.size());
  }
  std::string_view in_;
  size_t pos_ = 0;
};

void put_item(Writer& w, const eval::ItemResult& it) {
  w.put<uint64_t>(it.index);
  w.put(it.score);
  w.put(it.correct);
  w.put_string(it.prompt);
  w.put_string(it.output);
  w.put_string(it.extracted);
  w.put_string(it.target);
  w.put(it.answer_matches);
  w.put(it.script_share);
  w.put(it.script_ok);
  w.put(it.logprob);
  w.put(it.greedy);
  w.put(it.tokens);
  w.put(it.bytes);
  w.put(it.words);
  w.put_vector(it.choice_logprobs);
  w.put(it.pred);
  w.put(it.pred_norm);
  w.put(it.gold_logprob);
  w.put(it.gold_tokens);
}

eval::ItemResult get_item(Reader& r) {
  eval::ItemResult it;
  it.index = r.get<uint64_t>();
  it.score = r.get<double>();
  it.correct = r.get<bool>();
  it.prompt = r.get_string();
  it.output = r.get_string();
  it.extracted = r.get_string();
  it.target = r.get_string();
  it.answer_matches = r.get<bool>();
  it.script_share = r.get<double>();
  it.script_ok = r.get<bool>();
  it.logprob = r.get<double>();
  it.greedy = r.get<bool>();
  it.tokens = r.get<int64_t>();
  it.bytes = r.get<int64_t>();
  it.words = r.get<int64_t>();
  it.choice_logprobs = r.get_vector<double>();
  it.pred = r.get<int>();
  it.pred_norm = r.get<int>();
  it.gold_logprob = r.get<double>();
  it.gold_tokens = r.get<int64_t>();
  return it;
}

}  // namespace

std::string encode_job(uint64_t id, const ScoreJob& job) {
  Writer w;
  w.put(id);
  w.put(static_cast<uint8_t>(job.candidate.kind));
  w.put_vector(job.candidate.x);
  w.put_string(job.candidate.model);
  w.put_vector(job.candidate.ps_winner);
  w.put(static_cast<uint8_t>(job.split));
  w.put(job.task);
  std::vector<uint64_t> items(job.items.begin(), job.items.end());
  w.put_vector(items);
  return w.take();
}

std::pair<uint64_t, ScoreJob> decode_job(std::string_view bytes) {
  Reader r(bytes);
  const auto id = r.get<uint64_t>();
  ScoreJob job;
  const auto kind = r.get<uint8_t>();
  if (kind > static_cast<uint8_t>(CandidateKind::Parent))
    fail("dist", "job: candidate kind {}", kind);
  job.candidate.kind = static_cast<CandidateKind>(kind);
  job.candidate.x = r.get_vector<double>();
  job.candidate.model = r.get_string();
  job.candidate.ps_winner = r.get_vector<double>();
  const auto split = r.get<uint8_t>();
  if (split > static_cast<uint8_t>(SplitKind::Test)) fail("dist", "job: split {}", split);
  job.split = static_cast<SplitKind>(split);
  job.task = r.get<uint32_t>();
  const auto items = r.get_vector<uint64_t>();
  job.items.assign(items.begin(), items.end());
  r.finish();
  return {id, std::move(job)};
}

std::string encode_result(uint64_t id, const JobResult& res) {
  Writer w;
  w.put(id);
  w.put(res.ok);
  w.put_string(res.error);
  w.put(res.merge_seconds);
  w.put(res.eval_seconds);
  const eval::TaskScore& s = res.score;
  w.put_string(s.task);
  w.put_string(s.split);
  w.put_string(s.metric);
  w.put(s.higher_is_better);
  w.put(s.score);
  w.put(s.ci);
  w.put(s.variance);
  w.put<uint64_t>(s.metrics.size());
  for (const auto& [k, v] : s.metrics) {
    w.put_string(k);
    w.put(v);
  }
  w.put<uint64_t>(s.requested);
  w.put<uint64_t>(s.scored);
  w.put(s.stopped_early);
  w.put(s.failed);
  w.put_string(s.error);
  w.put_string(s.note);
  w.put<uint64_t>(s.items.size());
  for (const auto& it : s.items) put_item(w, it);
  return w.take();
}

std::pair<uint64_t, JobResult> decode_result(std::string_view bytes) {
  Reader r(bytes);
  const auto id = r.get<uint64_t>();
  JobResult res;
  res.ok = r.get<bool>();
  res.error = r.get_string();
  res.merge_seconds = r.get<double>();
  res.eval_seconds = r.get<double>();
  eval::TaskScore& s = res.score;
  s.task = r.get_string();
  s.split = r.get_string();
  s.metric = r.get_string();
  s.higher_is_better = r.get<bool>();
  s.score = r.get<double>();
  s.ci = r.get<eval::Interval>();
  s.variance = r.get<double>();
  const auto n_metrics = r.get<uint64_t>();
  if (n_metrics > bytes.size())
    fail("dist", "result: {} metrics in {} bytes", n_metrics, bytes.size());
  for (uint64_t i = 0; i < n_metrics; ++i) {
    auto k = r.get_string();
    s.metrics[k] = r.get<double>();
  }
  s.requested = r.get<uint64_t>();
  s.scored = r.get<uint64_t>();
  s.stopped_early = r.get<bool>();
  s.failed = r.get<bool>();
  s.error = r.get_string();
  s.note = r.get_string();
  const auto n_items = r.get<uint64_t>();
  if (n_items > bytes.size()) fail("dist", "result: {} items in {} bytes", n_items, bytes.size());
  s.items.reserve(n_items);
  for (uint64_t i = 0; i < n_items; ++i) s.items.push_back(get_item(r));
  r.finish();
  return {id, std::move(res)};
}

}  // namespace evomerge::wire

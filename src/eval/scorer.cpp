#include "eval/scorer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "common/error.h"
#include "common/progress.h"
#include "eval/extract.h"
#include "eval/external.h"
#include "eval/script.h"
#include "infer/engine.h"
#include "io/files.h"
#include "tokenize/tokenizer.h"

namespace evomerge::eval {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Per-task state compiled once per score_task call (cheap: one filter, script ids).
struct Prepared {
  const Task& task;
  const TaskSpec& spec;
  AnswerFilter filter;
  std::vector<int> script_ids;
  mutable std::string note;  // the tokenizer's account of the chat template, from the first item
  Prepared(const Task& t)
      : task(t), spec(t.spec()), filter(t.spec().filter, t.spec().file.string()) {
    if (spec.answer_script) script_ids = resolve_scripts(spec.answer_script->scripts, spec.file.string());
  }
};

// The text given to the model: the task's context, or the chat-template rendering of it as one user
// turn (few-shot examples included in that turn) with the generation prompt appended.
std::string model_prompt(const Prepared& p, const TaskItem& item, const Tokenizer& tok) {
  if (!p.spec.chat_template) return item.context;
  std::vector<ChatMessage> msgs{{"user", item.context}};
  std::string note;
  std::string text = tok.apply_chat_template(msgs, /*add_generation_prompt=*/true, &note);
  if (p.note.empty()) p.note = note;
  return text;
}

// Chat-rendered prompts carry their own special tokens (as HF apply_chat_template(tokenize=True)).
std::vector<int32_t> encode_prompt(const Prepared& p, const Tokenizer& tok, const std::string& text) {
  return tok.encode(text, /*add_special_tokens=*/!p.spec.chat_template);
}

// lm-eval's context/continuation split: trailing spaces of the context move to the continuation, the
// whole string is encoded, and the continuation is what follows the context's tokens.
Engine::LoglikRequest encode_pair(const Prepared& p, const Tokenizer& tok, std::string context, std::string continuation) {
  size_t n = context.size();
  while (n > 0 && context[n - 1] == ' ') --n;
  continuation = context.substr(n) + continuation;
  context.resize(n);
  std::vector<int32_t> whole = encode_prompt(p, tok, context + continuation);
  std::vector<int32_t> ctx = encode_prompt(p, tok, context);
  Engine::LoglikRequest r;
  size_t k = std::min(ctx.size(), whole.size());
  r.context.assign(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(k));
  r.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(k), whole.end());
  if (r.context.empty()) {  // an empty context: condition on BOS (or EOS) as lm-eval's prefix token
    if (auto b = tok.bos_id()) r.context.push_back(*b);
    else if (!tok.eos_ids().empty()) r.context.push_back(tok.eos_ids()[0]);
  }
  return r;
}

// Positions the engine can hold (the model's max_position_embeddings).
size_t max_positions(const Engine& e) {
  const int64_t m = e.config().max_position_embeddings;
  return m > 0 ? static_cast<size_t>(m) : size_t{2048};
}

// Long contexts lose their oldest tokens (as lm-eval truncates from the left) so that context plus
// `reserve` tokens fit the model's positions. A continuation that cannot fit at all is an error.
void fit_context(std::vector<int32_t>& context, size_t reserve, size_t max_pos, const Task& task, size_t index) {
  if (reserve + 1 > max_pos)
    fail("eval", "{}: item {}: {} continuation/generation tokens do not fit the model's {} positions",
         task.spec().file.string(), index, reserve, max_pos);
  if (context.size() + reserve > max_pos)
    context.erase(context.begin(), context.end() - static_cast<std::ptrdiff_t>(max_pos - reserve));
}

int64_t count_words(std::string_view s) {  // len(re.split(r"\s+", s)), as lm-eval counts words
  int64_t n = 1;
  bool in_space = false;
  for (char c : s) {
    bool sp = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (sp && !in_space) ++n;
    in_space = sp;
  }
  return n;
}

void score_generate(const Prepared& p, const Candidate& c, std::span<const size_t> idx, std::span<ItemResult> out,
                    const ScoreOptions& o, const std::string& split) {
  std::vector<Engine::GenerateRequest> reqs;
  std::vector<std::string> prompts;
  for (size_t k = 0; k < idx.size(); ++k) {
    const TaskItem& it = p.task.item(split, idx[k]);
    prompts.push_back(model_prompt(p, it, *c.tokenizer));
    Engine::GenerateRequest r;
    r.prompt = encode_prompt(p, *c.tokenizer, prompts.back());
    // Keep room for the answer (at most half the positions: a long prompt still keeps its end).
    const size_t pos = max_positions(*c.engine);
    fit_context(r.prompt, std::min(static_cast<size_t>(p.spec.max_gen_toks), pos / 2), pos, p.task, idx[k]);
    r.max_new_tokens = p.spec.max_gen_toks;
    r.stop_strings = p.spec.until;
    reqs.push_back(std::move(r));
  }
  auto gens = c.engine->generate(reqs, c.tokenizer);
  EM_ASSERT(gens.size() == reqs.size());
  if (o.gold_logprob) {
    // The gold answer as a continuation of the same prompt (as a loglikelihood task would score it).
    std::vector<Engine::LoglikRequest> gold;
    for (size_t k = 0; k < idx.size(); ++k) {
      const TaskItem& it = p.task.item(split, idx[k]);
      gold.push_back(encode_pair(p, *c.tokenizer, prompts[k], p.spec.target_delimiter + it.target));
      fit_context(gold.back().context, gold.back().continuation.size(), max_positions(*c.engine), p.task, idx[k]);
    }
    const auto res = c.engine->loglikelihood(gold);
    EM_ASSERT(res.size() == gold.size());
    for (size_t k = 0; k < idx.size(); ++k) {
      out[k].gold_logprob = res[k].logprob;
      out[k].gold_tokens = static_cast<int64_t>(gold[k].continuation.size());
    }
  }
  const MetricSpec& m = p.spec.metrics.at(0);
  for (size_t k = 0; k < idx.size(); ++k) {
    const TaskItem& it = p.task.item(split, idx[k]);
    ItemResult& r = out[k];
    r.index = idx[k];
    r.extracted = p.filter.apply(gens[k].text);
    r.answer_matches = answers_match(r.extracted, it.target, m);
    if (p.spec.answer_script) {
      ScriptShare sh = script_share(gens[k].text, p.script_ids);
      r.script_share = sh.share();
      r.script_ok = sh.letters >= p.spec.answer_script->min_letters && sh.share() >= p.spec.answer_script->threshold;
    }
    r.correct = r.answer_matches && r.script_ok;
    r.score = r.correct ? 1.0 : 0.0;
    r.tokens = static_cast<int64_t>(gens[k].tokens.size());
    if (o.keep_text) {
      r.prompt = prompts[k];
      r.output = gens[k].text;
      r.target = it.target;
    }
  }
}

void score_loglik(const Prepared& p, const Candidate& c, std::span<const size_t> idx, std::span<ItemResult> out,
                  const ScoreOptions& o, const std::string& split) {
  const Tokenizer& tok = *c.tokenizer;
  std::vector<Engine::LoglikRequest> reqs;
  std::vector<size_t> first(idx.size() + 1, 0);  // requests of item k: [first[k], first[k+1])
  std::vector<std::string> prompts(idx.size());
  const OutputType type = p.spec.output_type;
  const int max_len = c.engine->config().max_position_embeddings > 0
                          ? static_cast<int>(c.engine->config().max_position_embeddings) : 2048;
  for (size_t k = 0; k < idx.size(); ++k) {
    const TaskItem& it = p.task.item(split, idx[k]);
    first[k] = reqs.size();
    if (type == OutputType::LoglikelihoodRolling) {
      // Windows of at most max_len tokens: the first conditions on BOS, later ones on the tokens
      // before them (up to the window size); each token is predicted exactly once.
      std::vector<int32_t> ids = tok.encode(it.target, /*add_special_tokens=*/false);
      int32_t prefix = tok.bos_id() ? *tok.bos_id() : (tok.eos_ids().empty() ? 0 : tok.eos_ids()[0]);
      size_t pred = static_cast<size_t>(std::max(1, max_len - 1));
      for (size_t s = 0; s < ids.size(); s += pred) {
        size_t e = std::min(ids.size(), s + pred);
        Engine::LoglikRequest r;
        if (s == 0) {
          r.context = {prefix};
        } else {
          size_t cs = e > static_cast<size_t>(max_len) ? e - static_cast<size_t>(max_len) : 0;
          r.context.assign(ids.begin() + static_cast<std::ptrdiff_t>(cs), ids.begin() + static_cast<std::ptrdiff_t>(s));
        }
        r.continuation.assign(ids.begin() + static_cast<std::ptrdiff_t>(s), ids.begin() + static_cast<std::ptrdiff_t>(e));
        reqs.push_back(std::move(r));
      }
      prompts[k] = it.target;
    } else {
      prompts[k] = model_prompt(p, it, tok);
      if (type == OutputType::MultipleChoice) {
        for (const auto& ch : it.choices) reqs.push_back(encode_pair(p, tok, prompts[k], p.spec.target_delimiter + ch));
      } else {
        reqs.push_back(encode_pair(p, tok, prompts[k], p.spec.target_delimiter + it.target));
      }
      for (size_t j = first[k]; j < reqs.size(); ++j)
        fit_context(reqs[j].context, reqs[j].continuation.size(), static_cast<size_t>(max_len), p.task, idx[k]);
    }
  }
  first[idx.size()] = reqs.size();
  std::vector<Engine::LoglikResult> res;
  if (!reqs.empty()) res = c.engine->loglikelihood(reqs);
  EM_ASSERT(res.size() == reqs.size());
  for (size_t k = 0; k < idx.size(); ++k) {
    const TaskItem& it = p.task.item(split, idx[k]);
    ItemResult& r = out[k];
    r.index = idx[k];
    if (o.keep_text) {
      r.prompt = prompts[k];
      r.target = it.target;
    }
    if (type == OutputType::MultipleChoice) {
      int best = 0, best_norm = 0;
      double bn = -INFINITY;
      for (size_t j = first[k]; j < first[k + 1]; ++j) {
        size_t ci = j - first[k];
        r.choice_logprobs.push_back(res[j].logprob);
        double bytes = std::max<double>(1.0, static_cast<double>(it.choices[ci].size()));
        double norm = res[j].logprob / bytes;
        if (res[j].logprob > r.choice_logprobs[best]) best = static_cast<int>(ci);
        if (norm > bn) bn = norm, best_norm = static_cast<int>(ci);
      }
      r.pred = best;
      r.pred_norm = best_norm;
      if (it.gold >= 0 && static_cast<size_t>(it.gold) < it.choices.size()) {
        r.gold_logprob = r.choice_logprobs[static_cast<size_t>(it.gold)];
        r.gold_tokens = static_cast<int64_t>(reqs[first[k] + static_cast<size_t>(it.gold)].continuation.size());
      }
      bool primary_norm = p.spec.metrics.at(0).kind == MetricKind::AccNorm;
      int chosen = primary_norm ? best_norm : best;
      r.correct = chosen == it.gold;
      r.answer_matches = r.correct;
      r.score = r.correct ? 1.0 : 0.0;
      r.logprob = r.choice_logprobs[chosen];
      r.greedy = res[first[k] + chosen].greedy;
      r.tokens = static_cast<int64_t>(reqs[first[k] + chosen].continuation.size());
      if (o.keep_text) r.output = it.choices[chosen], r.extracted = it.choices[chosen];
    } else {
      r.greedy = true;
      for (size_t j = first[k]; j < first[k + 1]; ++j) {
        r.logprob += res[j].logprob;
        r.greedy = r.greedy && res[j].greedy;
        r.tokens += static_cast<int64_t>(reqs[j].continuation.size());
      }
      if (type == OutputType::Loglikelihood) {
        r.correct = r.greedy;
        r.answer_matches = r.greedy;
        // Accuracy-primary tasks race on correctness; perplexity-primary ones on log-probability.
        r.score = p.spec.metrics.at(0).kind == MetricKind::Acc ? (r.correct ? 1.0 : 0.0) : r.logprob;
      } else {
        r.score = r.logprob;
      }
      r.gold_logprob = r.logprob;
      r.gold_tokens = r.tokens;
      const std::string& text = it.target;
      r.bytes = static_cast<int64_t>(text.size() + (type == OutputType::Loglikelihood ? p.spec.target_delimiter.size() : 0));
      r.words = count_words(text);
    }
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------

void aggregate_task_score(const Task& task, TaskScore& s) {
  const TaskSpec& spec = task.spec();
  s.metrics.clear();
  s.scored = s.items.size();
  if (s.failed) {
    s.score = kNaN;
    return;
  }
  if (s.items.empty()) {
    s.score = kNaN;
    s.ci = {kNaN, kNaN};
    return;
  }
  const size_t n = s.items.size();
  auto accuracy = [&](auto pred) {
    double k = 0;
    for (const auto& it : s.items) k += pred(it) ? 1.0 : 0.0;
    return k;
  };
  std::vector<double> nll, tokens, bytes, words;
  for (const auto& it : s.items) {
    nll.push_back(-it.logprob);
    tokens.push_back(static_cast<double>(std::max<int64_t>(1, it.tokens)));
    bytes.push_back(static_cast<double>(std::max<int64_t>(1, it.bytes)));
    words.push_back(static_cast<double>(std::max<int64_t>(1, it.words)));
  }
  bool first = true;
  for (const MetricSpec& m : spec.metrics) {
    double value = 0, var = 0;
    Interval ci;
    switch (m.kind) {
      case MetricKind::ExactMatch:
      case MetricKind::Acc:
      case MetricKind::AccNorm: {
        double k = 0;
        if (spec.output_type == OutputType::MultipleChoice) {
          // acc: argmax of log-likelihood; acc_norm: argmax of log-likelihood per UTF-8 byte.
          for (const auto& it : s.items) {
            int pred = m.kind == MetricKind::AccNorm ? it.pred_norm : it.pred;
            k += pred == task.item(s.split, it.index).gold ? 1.0 : 0.0;
          }
        } else if (spec.output_type == OutputType::Loglikelihood) {
          k = accuracy([](const ItemResult& it) { return it.greedy; });
        } else {
          k = accuracy([](const ItemResult& it) { return it.correct; });
        }
        value = k / static_cast<double>(n);
        ci = wilson_interval(k, n);
        var = value * (1 - value) / static_cast<double>(n);
        break;
      }
      case MetricKind::Perplexity:
      case MetricKind::WordPerplexity:
      case MetricKind::BytePerplexity: {
        const auto& den = m.kind == MetricKind::Perplexity ? tokens : m.kind == MetricKind::WordPerplexity ? words : bytes;
        RatioEstimate r = perplexity_estimate(nll, den);
        value = r.value;
        ci = r.ci;
        var = std::pow((ci.hi - ci.lo) / (2 * kZ95), 2);
        break;
      }
      case MetricKind::BitsPerByte: {
        RatioEstimate r = ratio_estimate(nll, bytes);
        value = r.value / std::log(2.0);
        ci = {r.ci.lo / std::log(2.0), r.ci.hi / std::log(2.0)};
        var = std::pow((ci.hi - ci.lo) / (2 * kZ95), 2);
        break;
      }
    }
    s.metrics[std::string(metric_name(m.kind))] = value;
    if (first) {
      s.metric = metric_name(m.kind);
      s.higher_is_better = higher_is_better(m.kind);
      s.score = value;
      s.ci = ci;
      s.variance = var;
      first = false;
    }
  }
  if (spec.answer_script) {
    s.metrics["answer_match"] = accuracy([](const ItemResult& it) { return it.answer_matches; }) / static_cast<double>(n);
    s.metrics["script_ok"] = accuracy([](const ItemResult& it) { return it.script_ok; }) / static_cast<double>(n);
  }
}

void aggregate_report(ScoreReport& rep, std::span<const double> weights) {
  EM_ASSERT(weights.size() == rep.tasks.size());
  rep.failed = false;
  std::vector<WeightedPart> parts;
  for (size_t t = 0; t < rep.tasks.size(); ++t) {
    const TaskScore& s = rep.tasks[t];
    if (s.failed || std::isnan(s.score)) {
      rep.failed = rep.failed || s.failed;
      continue;
    }
    if (!s.higher_is_better) continue;  // perplexities do not average with accuracies
    parts.push_back({s.score, s.variance, weights[t]});
  }
  if (rep.failed || parts.empty()) {
    rep.total = kNaN;
    rep.total_ci = {kNaN, kNaN};
    return;
  }
  RatioEstimate r = weighted_total(parts);
  rep.total = r.value;
  rep.total_ci = {std::max(0.0, r.ci.lo), std::min(1.0, r.ci.hi)};
  if (parts.size() == 1 && rep.tasks.size() == 1) rep.total_ci = rep.tasks[0].ci;  // keep Wilson for one task
}

// ------------------------------------------------------------------------------------------------

Scorer::Scorer(std::span<const TaskEntry> tasks, std::string split) {
  for (const auto& e : tasks) {
    if (!(e.weight > 0) || !std::isfinite(e.weight))
      fail("eval", "{}: task weight {} must be a positive number", e.file.string(), e.weight);
    tasks_.push_back(std::make_shared<const Task>(Task::load(e.file)));
    weights_.push_back(e.weight);
  }
  for (const auto& t : tasks_) {
    std::string sp = split.empty() ? t->spec().test_split : split;
    if (!t->spec().external) t->split_size(sp);  // errors name the task and its splits
    splits_.push_back(sp);
  }
}

Scorer::Scorer(std::initializer_list<TaskEntry> tasks, std::string split)
    : Scorer(std::span<const TaskEntry>(tasks.begin(), tasks.size()), std::move(split)) {}

Scorer::Scorer(std::vector<std::shared_ptr<const Task>> tasks, std::vector<double> weights, std::string split)
    : tasks_(std::move(tasks)), weights_(std::move(weights)) {
  EM_ASSERT(tasks_.size() == weights_.size());
  for (const auto& t : tasks_) {
    std::string sp = split.empty() ? t->spec().test_split : split;
    if (!t->spec().external) t->split_size(sp);
    splits_.push_back(sp);
  }
}

size_t Scorer::split_size(size_t t) const {
  const Task& task = *tasks_.at(t);
  return task.spec().external ? 0 : task.split_size(splits_[t]);
}

std::vector<size_t> Scorer::all_items(size_t t, size_t limit) const {
  size_t n = split_size(t);
  if (limit > 0) n = std::min(n, limit);
  std::vector<size_t> v(n);
  std::iota(v.begin(), v.end(), size_t{0});
  return v;
}

std::vector<size_t> sample_indices(size_t n, size_t count, uint64_t seed) {
  std::vector<size_t> v(n);
  std::iota(v.begin(), v.end(), size_t{0});
  if (count >= n) return v;
  // Partial Fisher-Yates with mt19937_64 (bit-exact across standard libraries; the modulo is ours).
  std::mt19937_64 rng(seed);
  for (size_t k = 0; k < count; ++k) std::swap(v[k], v[k + static_cast<size_t>(rng() % (n - k))]);
  v.resize(count);
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<size_t> Scorer::sample_items(size_t t, size_t count, uint64_t seed) const {
  return sample_indices(split_size(t), count, seed ^ (0x9E3779B97F4A7C15ULL * (t + 1)));
}

TaskScore Scorer::score_task(size_t t, const Candidate& c, std::span<const size_t> items, const ScoreOptions& o) const {
  const Task& task = *tasks_.at(t);
  const TaskSpec& spec = task.spec();
  TaskScore s;
  s.task = task.name();
  s.split = splits_[t];

  if (spec.external) {
    s.metric = spec.external->score_key;
    s.requested = s.scored = 0;
    auto run = [&](const fs::path& dir) {
      ExternalResult r = run_external(*spec.external, dir, spec.file.parent_path());
      if (!r.ok) {
        s.failed = true;
        s.error = r.error;
        s.score = kNaN;
        s.ci = {kNaN, kNaN};
        return;
      }
      s.score = r.score;
      s.ci = {r.score, r.score};  // the command reports no interval
      s.metrics[spec.external->score_key] = r.score;
      for (auto it = r.output.begin(); it != r.output.end(); ++it)
        if (it->is_number()) s.metrics[it.key()] = it->get<double>();
    };
    if (!c.folder.empty() && fs::is_directory(c.folder)) {
      run(c.folder);
    } else if (c.write_folder) {
      // A temporary folder for this candidate, removed afterwards whatever happens.
      fs::path base = fs::temp_directory_path() / fmt::format("evomerge-eval-{}-{}", ::getpid(), t);
      fs::remove_all(base);
      fs::create_directories(base);
      struct Cleanup {
        fs::path p;
        ~Cleanup() {
          std::error_code ec;
          fs::remove_all(p, ec);
        }
      } cleanup{base};
      try {
        c.write_folder(base / "model");
      } catch (const Error& e) {
        s.failed = true;
        s.error = fmt::format("writing the candidate for the external evaluator failed: {}", e.what());
        s.score = kNaN;
        return s;
      }
      run(base / "model");
    } else {
      fail("eval", "{}: task '{}' uses an external evaluator, which needs a model folder; this candidate has none",
           spec.file.string(), task.name());
    }
    return s;
  }

  if (!c.engine || !c.tokenizer) fail("eval", "task '{}': scoring with the engine needs an engine and a tokenizer", task.name());
  const size_t n_split = task.split_size(s.split);
  for (size_t i : items)
    if (i >= n_split)
      fail("eval", "{}: item {} is out of range (split '{}' has {} items)", spec.file.string(), i, s.split, n_split);
  Prepared p(task);
  s.requested = items.size();
  s.items.resize(items.size());
  const size_t mb = std::max<size_t>(1, o.micro_batch);
  Progress progress(task.name(), items.size(), "items", o.progress);
  size_t done = 0;
  double correct = 0;
  while (done < items.size()) {
    size_t m = std::min(mb, items.size() - done);
    auto idx = items.subspan(done, m);
    auto out = std::span<ItemResult>(s.items).subspan(done, m);
    if (spec.output_type == OutputType::GenerateUntil)
      score_generate(p, c, idx, out, o, s.split);
    else
      score_loglik(p, c, idx, out, o, s.split);
    for (const auto& r : out) correct += r.score;
    done += m;
    progress.add(m);
    if (spec.output_type == OutputType::GenerateUntil)
      progress.set_note(fmt::format("acc {:.1f}%", 100.0 * correct / static_cast<double>(done)));
    if (o.race && done < items.size()) {
      RaceUpdate u{t, done, items.size(), correct, std::span<const ItemResult>(s.items.data(), done)};
      if (!o.race(u)) {
        s.stopped_early = true;
        s.items.resize(done);
        break;
      }
    }
  }
  progress.finish();
  s.note = p.note;
  aggregate_task_score(task, s);
  return s;
}

ScoreReport Scorer::score(const Candidate& c, const std::vector<std::vector<size_t>>& items, const ScoreOptions& o) const {
  if (!items.empty() && items.size() != tasks_.size())
    fail("eval", "score(): {} item lists for {} tasks", items.size(), tasks_.size());
  ScoreReport rep;
  for (size_t t = 0; t < tasks_.size(); ++t) {
    std::vector<size_t> all;
    std::span<const size_t> sel;
    if (items.empty() || items[t].empty()) {
      all = all_items(t);
      sel = all;
    } else {
      sel = items[t];
    }
    rep.tasks.push_back(score_task(t, c, sel, o));
  }
  aggregate_report(rep, weights_);
  return rep;
}

}  // namespace evomerge::eval

// The scorer against independent computations on a small random model: choice log-likelihoods from
// forward_logits, generations from Engine::generate, perplexity from per-token log-softmax, plus the
// race hook, item sampling and the external-evaluator path. (Scores of the bundled models against the
// PyTorch reference are in reference_test.cpp.)
#include "eval/scorer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "eval/extract.h"
#include "infer/engine.h"
#include "infer/random_model.h"
#include "tokenize/tokenizer.h"
#include "tokenize/test_support.h"

namespace evomerge::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kVocab = testing_util::kCharTokenizerVocab;
using testing_util::char_tokenizer;

double log_softmax_at(const float* row, int vocab, int id) {
  double mx = row[0];
  for (int v = 1; v < vocab; ++v) mx = std::max<double>(mx, row[v]);
  double z = 0;
  for (int v = 0; v < vocab; ++v) z += std::exp(row[v] - mx);
  return row[id] - mx - std::log(z);
}

// Sum of log p(seq[i] | seq[<i]) for i in [from, seq.size()), from full-sequence logits.
double seq_logprob(Engine& e, const std::vector<int32_t>& seq, size_t from) {
  auto logits = e.forward_logits({seq});
  const int V = static_cast<int>(e.config().vocab_size);
  double s = 0;
  for (size_t i = from; i < seq.size(); ++i) s += log_softmax_at(logits[0].data() + (i - 1) * V, V, seq[i]);
  return s;
}

class ScorerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / fmt::format("evomerge_scorer_test_{}", ::getpid()));
    fs::create_directories(*dir_);
    RandomModelSpec spec;
    spec.config = small_model_config("llama", kVocab, 32, 64, 2, 4, 2);
    spec.config["max_position_embeddings"] = 64;
    spec.config["bos_token_id"] = 97;
    spec.config["eos_token_id"] = 98;
    spec.seed = 7;
    spec.stddev = 0.3f;  // peaky enough that greedy outputs differ between prompts
    write_random_model(*dir_ / "model", spec);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    tok_ = std::make_unique<Tokenizer>(char_tokenizer());
    EngineOptions eo;
    eo.threads = 1;
    engine_ = std::make_unique<Engine>(open_folder_weights((*dir_ / "model").string()), eo);
  }
  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(*dir_ / name, std::ios::binary) << text;
    return *dir_ / name;
  }
  Candidate candidate() { return {engine_.get(), tok_.get(), {}, {}}; }

  static fs::path* dir_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<Engine> engine_;
};
fs::path* ScorerTest::dir_ = nullptr;

TEST_F(ScorerTest, MultipleChoiceMatchesForwardLogits) {
  std::string data;
  const char* qs[] = {"sky is", "fire is", "ice is", "grass is", "sun is", "snow is"};
  for (int i = 0; i < 6; ++i)
    data += fmt::format("{{\"q\": \"{}\", \"choices\": [\"blue\", \"hot\", \"cold\", \"green\"], \"label\": {}}}\n", qs[i], i % 4);
  write("mc.jsonl", data);
  auto path = write("mc.yaml",
                    "task: mc\ndataset_path: json\ndataset_kwargs: {data_files: {test: mc.jsonl}}\n"
                    "output_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: \"{{label}}\"\n"
                    "doc_to_choice: \"{{choices}}\"\nmetric_list: [{metric: acc}, {metric: acc_norm}]\n");
  Scorer scorer({{path, 1.0}});
  ScoreOptions o;
  o.micro_batch = 4;  // two engine calls
  TaskScore s = scorer.score_task(0, candidate(), scorer.all_items(0), o);
  ASSERT_EQ(s.items.size(), 6u);
  double acc = 0, acc_norm = 0;
  const Task& task = scorer.task(0);
  for (size_t i = 0; i < 6; ++i) {
    const TaskItem& it = task.item("test", i);
    std::vector<int32_t> ctx = tok_->encode(it.context);
    std::vector<double> lp;
    for (const auto& ch : it.choices) {
      std::vector<int32_t> whole = tok_->encode(it.context + " " + ch);
      lp.push_back(seq_logprob(*engine_, whole, ctx.size()));
    }
    ASSERT_EQ(s.items[i].choice_logprobs.size(), lp.size());
    for (size_t c = 0; c < lp.size(); ++c) EXPECT_NEAR(s.items[i].choice_logprobs[c], lp[c], 2e-3 * (1 + std::fabs(lp[c])));
    int best = static_cast<int>(std::max_element(lp.begin(), lp.end()) - lp.begin());
    int best_norm = 0;
    for (size_t c = 1; c < lp.size(); ++c)
      if (lp[c] / it.choices[c].size() > lp[best_norm] / it.choices[best_norm].size()) best_norm = static_cast<int>(c);
    EXPECT_EQ(s.items[i].pred, best);
    EXPECT_EQ(s.items[i].pred_norm, best_norm);
    EXPECT_EQ(s.items[i].gold_logprob, s.items[i].choice_logprobs[static_cast<size_t>(it.gold)]);
    acc += best == it.gold;
    acc_norm += best_norm == it.gold;
  }
  EXPECT_EQ(s.metric, "acc");
  EXPECT_DOUBLE_EQ(s.score, acc / 6);
  EXPECT_DOUBLE_EQ(s.metrics["acc_norm"], acc_norm / 6);
  Interval w = wilson_interval(acc, 6);
  EXPECT_DOUBLE_EQ(s.ci.lo, w.lo);
  EXPECT_DOUBLE_EQ(s.ci.hi, w.hi);
}

TEST_F(ScorerTest, GenerationMatchesEngineAndRaceStops) {
  std::string data;
  for (int i = 0; i < 8; ++i) data += fmt::format("{{\"q\": \"{} plus {}\", \"a\": \"{}\"}}\n", i, i + 3, 2 * i + 3);
  write("gen.jsonl", data);
  auto path = write("gen.yaml",
                    "task: gen\ndataset_path: json\ndataset_kwargs: {data_files: {test: gen.jsonl}}\n"
                    "output_type: generate_until\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: \"{{a}}\"\n"
                    "generation_kwargs: {until: [\"\\n\"], max_gen_toks: 6}\n");
  Scorer scorer({{path, 1.0}});
  ScoreOptions o;
  o.micro_batch = 3;
  TaskScore s = scorer.score_task(0, candidate(), scorer.all_items(0), o);
  ASSERT_EQ(s.items.size(), 8u);
  std::vector<Engine::GenerateRequest> reqs;
  for (size_t i = 0; i < 8; ++i) {
    Engine::GenerateRequest r;
    r.prompt = tok_->encode(scorer.task(0).item("test", i).context);
    r.max_new_tokens = 6;
    r.stop_strings = {"\n"};
    reqs.push_back(r);
  }
  auto gens = engine_->generate(reqs, tok_.get());
  double correct = 0;
  std::set<std::string> distinct;
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(s.items[i].output, gens[i].text);
    EXPECT_EQ(s.items[i].prompt, scorer.task(0).item("test", i).context);
    EXPECT_EQ(s.items[i].target, std::to_string(2 * i + 3));
    std::string ex = last_number(gens[i].text).value_or("[invalid]");
    EXPECT_EQ(s.items[i].extracted, ex);
    bool ok = parse_number(ex) && *parse_number(ex) == 2.0 * i + 3;
    EXPECT_EQ(s.items[i].correct, ok);
    correct += ok;
    distinct.insert(gens[i].text);
  }
  EXPECT_GT(distinct.size(), 1u);  // the prompts reached the model
  EXPECT_DOUBLE_EQ(s.score, correct / 8);
  EXPECT_EQ(s.metric, "exact_match");

  // The race hook sees every micro-batch and can stop the task.
  std::vector<size_t> seen;
  o.race = [&](const RaceUpdate& u) {
    seen.push_back(u.done);
    EXPECT_EQ(u.total, 5u);
    EXPECT_EQ(u.items.size(), u.done);
    return u.done < 3;
  };
  std::vector<size_t> subset{1, 3, 4, 6, 7};
  TaskScore r = scorer.score_task(0, candidate(), subset, o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(seen, (std::vector<size_t>{3}));
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.requested, 5u);
  EXPECT_EQ(r.scored, 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(r.items[k].index, subset[k]);
    EXPECT_EQ(r.items[k].output, s.items[subset[k]].output);  // same item, same greedy answer
  }
}

TEST_F(ScorerTest, GoldAnswerLogprobMatchesForwardLogits) {
  std::string data;
  for (int i = 0; i < 5; ++i) data += fmt::format("{{\"q\": \"{} plus {}\", \"a\": \"{}\"}}\n", i, i + 3, 2 * i + 3);
  write("gold.jsonl", data);
  auto path = write("gold.yaml",
                    "task: gold\ndataset_path: json\ndataset_kwargs: {data_files: {test: gold.jsonl}}\n"
                    "output_type: generate_until\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: \"{{a}}\"\n"
                    "generation_kwargs: {until: [\"\\n\"], max_gen_toks: 4}\n");
  Scorer scorer({{path, 1.0}});
  ScoreOptions o;
  o.micro_batch = 2;
  const TaskScore plain = scorer.score_task(0, candidate(), scorer.all_items(0), o);
  EXPECT_TRUE(std::isnan(plain.items[0].gold_logprob));  // not asked for: no extra pass
  o.gold_logprob = true;
  const TaskScore s = scorer.score_task(0, candidate(), scorer.all_items(0), o);
  ASSERT_EQ(s.items.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const TaskItem& it = scorer.task(0).item("test", i);
    // The gold answer after the default target delimiter " ", as a loglikelihood task scores it.
    const std::vector<int32_t> ctx = tok_->encode(it.context);
    const double want = seq_logprob(*engine_, tok_->encode(it.context + " " + it.target), ctx.size());
    EXPECT_NEAR(s.items[i].gold_logprob, want, 2e-3 * (1 + std::fabs(want))) << i;
    EXPECT_EQ(s.items[i].gold_tokens, static_cast<int64_t>(1 + it.target.size()));  // one token a char
    EXPECT_EQ(s.items[i].output, plain.items[i].output);  // the verdicts do not change
  }
}

TEST_F(ScorerTest, ScriptRequirementGatesCorrectness) {
  // Targets are whatever the model says, so every answer matches; the script check decides.
  std::string data;
  for (int i = 0; i < 4; ++i) data += fmt::format("{{\"q\": \"x{}\"}}\n", i);
  write("s.jsonl", data);
  auto base = "task: s\ndataset_path: json\ndataset_kwargs: {data_files: {test: s.jsonl}}\n"
              "output_type: generate_until\ndoc_to_text: \"{{q}}\"\ndoc_to_target: \"{{q}}\"\n"
              "generation_kwargs: {max_gen_toks: 8}\n"
              "filter_list: [{name: all, filter: [{function: regex, regex_pattern: \"NEVER\", fallback: \"x\"}]}]\n"
              "metric_list: [{metric: exact_match, regexes_to_ignore: [\"[0-9]\"]}]\n";
  auto latin = write("s1.yaml", std::string(base) + "answer_script: {scripts: [Latin], threshold: 0.0, min_letters: 0}\n");
  auto hira = write("s2.yaml", std::string(base) + "answer_script: {scripts: [Hiragana], threshold: 0.5}\n");
  Scorer a({{latin, 1.0}}), b({{hira, 1.0}});
  TaskScore sa = a.score_task(0, candidate(), a.all_items(0));
  TaskScore sb = b.score_task(0, candidate(), b.all_items(0));
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(sa.items[i].answer_matches);  // "x" == "x{i}" with digits ignored
    EXPECT_TRUE(sa.items[i].correct);
    EXPECT_TRUE(sb.items[i].answer_matches);
    EXPECT_FALSE(sb.items[i].script_ok);  // ASCII output has no Hiragana
    EXPECT_FALSE(sb.items[i].correct);
  }
  EXPECT_DOUBLE_EQ(sa.score, 1.0);
  EXPECT_DOUBLE_EQ(sb.score, 0.0);
  EXPECT_DOUBLE_EQ(sb.metrics["answer_match"], 1.0);
  EXPECT_DOUBLE_EQ(sb.metrics["script_ok"], 0.0);
}

TEST_F(ScorerTest, RollingPerplexityCoversEveryTokenOnce) {
  // 40-character texts with a 64-token context: windows of 63 predicted tokens -> one window; a
  // 150-character text needs three windows.
  std::string long_text;
  for (int i = 0; i < 15; ++i) long_text += "abcdefghi ";
  write("ppl.jsonl", "{\"text\": \"the quick brown fox jumps over the dog\"}\n{\"text\": \"" + long_text + "\"}\n");
  auto path = write("ppl.yaml",
                    "task: ppl\ndataset_path: json\ndataset_kwargs: {data_files: {test: ppl.jsonl}}\n"
                    "output_type: loglikelihood_rolling\ndoc_to_target: \"{{text}}\"\n");
  Scorer scorer({{path, 1.0}});
  TaskScore s = scorer.score_task(0, candidate(), scorer.all_items(0));
  ASSERT_EQ(s.items.size(), 2u);
  // Item 0 by hand: BOS + text in one forward pass.
  std::string t0 = "the quick brown fox jumps over the dog";
  std::vector<int32_t> seq{97};
  for (int32_t id : tok_->encode(t0, false)) seq.push_back(id);
  double lp0 = seq_logprob(*engine_, seq, 1);
  EXPECT_NEAR(s.items[0].logprob, lp0, 2e-3 * std::fabs(lp0));
  EXPECT_EQ(s.items[0].tokens, static_cast<int64_t>(t0.size()));
  EXPECT_EQ(s.items[0].words, 8);
  EXPECT_EQ(s.items[0].bytes, static_cast<int64_t>(t0.size()));
  EXPECT_EQ(s.items[1].tokens, 150);
  // Item 1 as lm-eval's disjoint rolling windows: [BOS] -> ids[0:63], then ids[62] -> ids[63:126],
  // then the last, shorter window takes as much context as fits: ids[86:126] -> ids[126:150]. Every
  // request (context + continuation) fits the 64 positions.
  std::vector<int32_t> ids = tok_->encode(long_text, false);
  ASSERT_EQ(ids.size(), 150u);
  auto window = [&](std::vector<int32_t> ctx, size_t b, size_t e) {
    size_t from = ctx.size();
    ctx.insert(ctx.end(), ids.begin() + b, ids.begin() + e);
    return seq_logprob(*engine_, ctx, from);
  };
  double lp1 = window({97}, 0, 63) + window({ids[62]}, 63, 126) + window(std::vector<int32_t>(ids.begin() + 86, ids.begin() + 126), 126, 150);
  EXPECT_NEAR(s.items[1].logprob, lp1, 2e-3 * std::fabs(lp1));
  EXPECT_EQ(s.items[1].words, 16);  // re.split(r"\s+") of a text ending in a space: 15 words + ""
  double nll = -(s.items[0].logprob + s.items[1].logprob);
  EXPECT_EQ(s.metric, "perplexity");
  EXPECT_NEAR(s.score, std::exp(nll / (t0.size() + 150)), 1e-9 * s.score);
  EXPECT_NEAR(s.metrics["byte_perplexity"], std::exp(nll / (t0.size() + 150)), 1e-9 * s.score);
  EXPECT_NEAR(s.metrics["word_perplexity"], std::exp(nll / (8 + 16)), 1e-6 * s.metrics["word_perplexity"]);
  EXPECT_NEAR(s.metrics["bits_per_byte"], nll / (t0.size() + 150) / std::log(2.0), 1e-9);
  EXPECT_FALSE(s.higher_is_better);
}

TEST_F(ScorerTest, LoglikelihoodAccIsGreedyMatch) {
  write("ll.jsonl", "{\"c\": \"ab\", \"t\": \"cd\"}\n{\"c\": \"xy\", \"t\": \"z\"}\n");
  auto path = write("ll.yaml",
                    "task: ll\ndataset_path: json\ndataset_kwargs: {data_files: {test: ll.jsonl}}\n"
                    "output_type: loglikelihood\ndoc_to_text: \"{{c}}\"\ndoc_to_target: \"{{t}}\"\ntarget_delimiter: \"\"\n");
  Scorer scorer({{path, 1.0}});
  TaskScore s = scorer.score_task(0, candidate(), scorer.all_items(0));
  std::vector<Engine::LoglikRequest> reqs{{tok_->encode("ab"), tok_->encode("cd", false)},
                                          {tok_->encode("xy"), tok_->encode("z", false)}};
  auto ref = engine_->loglikelihood(reqs);
  double greedy = 0;
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(s.items[i].logprob, ref[i].logprob, 1e-9);
    EXPECT_EQ(s.items[i].greedy, ref[i].greedy);
    greedy += ref[i].greedy;
  }
  EXPECT_DOUBLE_EQ(s.metrics["acc"], greedy / 2);
  EXPECT_NEAR(s.metrics["perplexity"], std::exp(-(ref[0].logprob + ref[1].logprob) / 3), 1e-9 * s.metrics["perplexity"]);
}

TEST_F(ScorerTest, ChatTemplateWrapsTheContext) {
  write("chat.jsonl", "{\"q\": \"2 plus 2\", \"a\": \"4\"}\n");
  auto path = write("chat.yaml",
                    "task: chat\ndataset_path: json\ndataset_kwargs: {data_files: {test: chat.jsonl}}\n"
                    "output_type: generate_until\ndoc_to_text: \"{{q}}?\"\ndoc_to_target: \"{{a}}\"\n"
                    "generation_kwargs: {max_gen_toks: 5}\nchat_template: true\n");
  Scorer scorer({{path, 1.0}});
  TaskScore s = scorer.score_task(0, candidate(), scorer.all_items(0));
  std::vector<ChatMessage> msgs{{"user", "2 plus 2?"}};
  std::string note;
  const std::string expect = tok_->apply_chat_template(msgs, true, &note);
  EXPECT_EQ(s.items[0].prompt, expect);
  EXPECT_NE(expect, "2 plus 2?");
  EXPECT_EQ(s.note, note);
  EXPECT_FALSE(s.note.empty());
  // The rendered prompt carries its own special tokens: encoded without adding BOS.
  Engine::GenerateRequest r;
  r.prompt = tok_->encode(expect, false);
  r.max_new_tokens = 5;
  EXPECT_EQ(s.items[0].output, engine_->generate({r}, tok_.get())[0].text);
}

TEST_F(ScorerTest, LongContextsLoseTheirOldestTokens) {
  // 100 characters of context + " cd" (3 tokens) on a 64-position model: the context keeps its last
  // 61 tokens, as lm-eval truncates from the left.
  std::string ctx;
  for (int i = 0; i < 10; ++i) ctx += "0123456789";
  write("long.jsonl", "{\"c\": \"" + ctx + "\", \"t\": \"cd\"}\n");
  auto path = write("long.yaml",
                    "task: long\ndataset_path: json\ndataset_kwargs: {data_files: {test: long.jsonl}}\n"
                    "output_type: loglikelihood\ndoc_to_text: \"{{c}}\"\ndoc_to_target: \"{{t}}\"\n");
  Scorer scorer({{path, 1.0}});
  TaskScore s = scorer.score_task(0, candidate(), scorer.all_items(0));
  std::vector<int32_t> whole = tok_->encode(ctx + " cd");  // BOS + 103 tokens
  ASSERT_EQ(whole.size(), 104u);
  std::vector<int32_t> kept(whole.end() - 64, whole.end());
  double ref = seq_logprob(*engine_, kept, 61);
  EXPECT_NEAR(s.items[0].logprob, ref, 2e-3 * std::fabs(ref));
  EXPECT_EQ(s.items[0].tokens, 3);
}

TEST_F(ScorerTest, ExternalTaskAndWeightedTotals) {
  write("ext.sh", "test -f \"$1/config.json\" || { echo 'no model' >&2; exit 1; }\necho '{\"score\": 0.75}'\n");
  auto ext = write("ext.yaml", "task: ext\nexternal: {command: [sh, ext.sh], timeout_s: 20}\n");
  write("bad.sh", "echo 'not json'\n");
  auto bad = write("bad.yaml", "task: bad\nexternal: {command: [sh, bad.sh], timeout_s: 20}\n");
  Scorer scorer({{ext, 3.0}});
  Candidate c = candidate();
  c.folder = *dir_ / "model";
  ScoreReport r = scorer.score(c);
  ASSERT_EQ(r.tasks.size(), 1u);
  EXPECT_FALSE(r.failed);
  EXPECT_DOUBLE_EQ(r.tasks[0].score, 0.75);
  EXPECT_DOUBLE_EQ(r.total, 0.75);
  // A candidate that exists only in memory is written to a temporary folder for the command.
  Candidate mem = candidate();
  fs::path written;
  mem.write_folder = [&](const fs::path& d) {
    fs::copy(*dir_ / "model", d, fs::copy_options::recursive);
    written = d;
  };
  EXPECT_DOUBLE_EQ(scorer.score(mem).total, 0.75);
  EXPECT_FALSE(fs::exists(written));  // removed afterwards
  // A failing evaluator is a failure, never a score.
  Scorer both({{ext, 1.0}, {bad, 1.0}});
  ScoreReport rb = both.score(c);
  EXPECT_TRUE(rb.failed);
  EXPECT_TRUE(rb.tasks[1].failed);
  EXPECT_TRUE(std::isnan(rb.tasks[1].score));
  EXPECT_TRUE(std::isnan(rb.total));
  EXPECT_NE(rb.tasks[1].error.find("no JSON"), std::string::npos);
}

TEST_F(ScorerTest, SampleItemsIsDeterministic) {
  std::string data;
  for (int i = 0; i < 50; ++i) data += fmt::format("{{\"q\": \"{}\", \"a\": \"{}\"}}\n", i, i);
  write("many.jsonl", data);
  auto path = write("many.yaml", "task: many\ndataset_path: json\ndataset_kwargs: {data_files: {test: many.jsonl}}\n"
                                 "output_type: generate_until\ndoc_to_text: \"{{q}}\"\ndoc_to_target: \"{{a}}\"\n");
  Scorer scorer({{path, 1.0}});
  auto a = scorer.sample_items(0, 10, 42), b = scorer.sample_items(0, 10, 42), c = scorer.sample_items(0, 10, 43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.size(), 10u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<size_t>(a.begin(), a.end()).size(), 10u);
  EXPECT_EQ(scorer.sample_items(0, 80, 1).size(), 50u);
  EXPECT_EQ(scorer.all_items(0, 5), (std::vector<size_t>{0, 1, 2, 3, 4}));
  std::vector<size_t> out_of_range{50};
  EXPECT_THROW(scorer.score_task(0, candidate(), out_of_range), Error);
  EXPECT_THROW(Scorer({{path, 1.0}}, "validation"), Error);
}

}  // namespace
}  // namespace evomerge::eval

// The bundled tiny models (examples/models/<name>/) against the PyTorch reference outputs stored
// beside them (reference.json, written by tools/fixtures/reference.py from the bf16 weights upcast
// to f32, f32 compute): last-position logits, per-token log-probs, and 16-token greedy generations.
// This is the independent oracle for both the reference path and the fast engine.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "infer/engine.h"
#include "infer/reference_forward.h"
#include "tokenize/tokenizer.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> fixture_models() {
  std::vector<fs::path> out;
  fs::path root = fs::path(EVOMERGE_SOURCE_DIR) / "examples" / "models";
  if (!fs::is_directory(root)) return out;
  // examples/models/<family>/<model>/ (or examples/models/<model>/)
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_directory() && fs::exists(e.path() / "reference.json") &&
        fs::exists(e.path() / "config.json"))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json load_reference(const fs::path& dir) {
  std::ifstream in(dir / "reference.json");
  return nlohmann::json::parse(in);
}

std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

TEST(Fixtures, LogitsMatchPyTorch) {
  auto models = fixture_models();
  if (models.empty()) GTEST_SKIP() << "no examples/models/*/reference.json (fixtures not built)";
  for (const auto& dir : models) {
    auto ref = load_reference(dir);
    auto w = open_folder_weights(dir.string());
    EngineOptions opt;
    opt.threads = 2;
    Engine engine(w, opt);
    const int64_t V = w->config().vocab_size;
    for (const auto& c : ref.at("logits")) {
      auto ids = ids_of(c.at("ids"));
      auto want = c.at("last_logits").get<std::vector<double>>();
      ASSERT_EQ(static_cast<int64_t>(want.size()), V);
      auto fast = engine.forward_logits({ids})[0];
      auto plain = reference_forward(*w, ids);
      double d_fast = 0, d_plain = 0;
      int64_t argmax = 0;
      for (int64_t i = 0; i < V; ++i) {
        const int64_t at = (static_cast<int64_t>(ids.size()) - 1) * V + i;
        d_fast = std::max(d_fast, std::fabs(fast[at] - want[i]));
        d_plain = std::max(d_plain, std::fabs(plain[at] - want[i]));
        if (fast[at] > fast[(ids.size() - 1) * V + argmax]) argmax = i;
      }
      ::testing::Test::RecordProperty(dir.filename().string() + "_max_abs_diff_fast",
                                      std::to_string(d_fast));
      ::testing::Test::RecordProperty(dir.filename().string() + "_max_abs_diff_reference",
                                      std::to_string(d_plain));
      EXPECT_LE(d_fast, 1e-4) << dir.filename() << ": " << c.at("text");
      EXPECT_LE(d_plain, 1e-4) << dir.filename() << ": " << c.at("text");
      EXPECT_EQ(argmax, c.at("argmax").get<int64_t>()) << dir.filename();
    }
  }
}

TEST(Fixtures, LogprobsMatchPyTorch) {
  auto models = fixture_models();
  if (models.empty()) GTEST_SKIP() << "no examples/models/*/reference.json (fixtures not built)";
  for (const auto& dir : models) {
    auto ref = load_reference(dir);
    EngineOptions opt;
    opt.threads = 2;
    Engine engine(open_folder_weights(dir.string()), opt);
    for (const auto& c : ref.at("logprobs")) {
      auto ids = ids_of(c.at("ids"));
      const auto& tl = c.at("token_logprobs");
      auto res =
          engine.loglikelihood({{{ids[0]}, std::vector<int32_t>(ids.begin() + 1, ids.end())}})[0];
      ASSERT_EQ(res.token_logprobs.size() + 1, tl.size());
      for (size_t i = 1; i < tl.size(); ++i)
        EXPECT_NEAR(res.token_logprobs[i - 1], tl[i].get<double>(), 1e-4)
            << dir.filename() << " token " << i;
      EXPECT_NEAR(res.logprob, c.at("sum_logprob").get<double>(), 1e-3) << dir.filename();
    }
  }
}

TEST(Fixtures, GreedyGenerationsMatchPyTorch) {
  auto models = fixture_models();
  if (models.empty()) GTEST_SKIP() << "no examples/models/*/reference.json (fixtures not built)";
  for (const auto& dir : models) {
    auto ref = load_reference(dir);
    EngineOptions opt;
    opt.threads = 2;
    Engine engine(open_folder_weights(dir.string()), opt);
    std::vector<Engine::GenerateRequest> reqs;
    std::vector<std::vector<int32_t>> want;
    for (const auto& g : ref.at("greedy")) {
      auto expect = ids_of(g.at("new_ids"));
      reqs.push_back({ids_of(g.at("ids")), static_cast<int>(expect.size()), {}});
      want.push_back(expect);
    }
    // All prompts in one batch; the reference did not stop at EOS (greedy_note), so no EOS here.
    auto res = engine.generate_with(reqs, {}, {-1});
    for (size_t i = 0; i < reqs.size(); ++i)
      EXPECT_EQ(res[i].tokens, want[i]) << dir.filename() << " prompt " << i;
  }
}

// generate() with the model's own tokenizer: stops at its EOS (the reference generation shows where
// the model emits it) and at stop strings, with the text decoded and cut.
TEST(Fixtures, GenerateWithTokenizerStopsAtEosAndStopStrings) {
  auto models = fixture_models();
  if (models.empty()) GTEST_SKIP() << "no examples/models/*/reference.json (fixtures not built)";
  for (const auto& dir : models) {
    auto ref = load_reference(dir);
    Tokenizer tok = Tokenizer::load(dir);
    EngineOptions opt;
    opt.threads = 2;
    Engine engine(open_folder_weights(dir.string()), opt);
    const auto eos = ref.at("eos_token_id").get<int32_t>();
    for (const auto& g : ref.at("greedy")) {
      auto prompt = ids_of(g.at("ids"));
      auto expect = ids_of(g.at("new_ids"));
      auto res = engine.generate({{prompt, static_cast<int>(expect.size()), {}}}, &tok)[0];
      auto at = std::find(expect.begin(), expect.end(), eos);
      std::vector<int32_t> until_eos(expect.begin(), at);
      EXPECT_EQ(res.tokens, until_eos) << dir.filename();
      EXPECT_EQ(res.stop,
                at == expect.end() ? Engine::StopReason::MaxTokens : Engine::StopReason::Eos);
      EXPECT_EQ(res.text, tok.decode(until_eos)) << dir.filename();
      // A stop string taken from the middle of that text: cut before it.
      if (res.text.size() >= 4) {
        const std::string stop = res.text.substr(res.text.size() / 2, 2);
        auto cut = engine.generate({{prompt, static_cast<int>(expect.size()), {stop}}}, &tok)[0];
        EXPECT_EQ(cut.stop, Engine::StopReason::StopString);
        EXPECT_EQ(cut.text, res.text.substr(0, res.text.find(stop)))
            << dir.filename() << " stop '" << stop << "'";
      }
    }
  }
}

}  // namespace
}  // namespace evomerge

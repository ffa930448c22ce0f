// EngineOptions::precision = bf16 against the plain reference run with the same rounding
// (reference_forward(..., Precision::Bf16)), on random models. ctest also runs this file's
// Bf16Engine tests once per GEMM kernel with EVOMERGE_GEMM forcing it (src/infer/CMakeLists.txt),
// so every ISA path is held to the reference; a kernel this CPU cannot run is skipped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "common/error.h"
#include "infer/engine.h"
#include "infer/gemm.h"
#include "infer/reference_forward.h"
#include "infer/testing.h"

namespace evomerge {
namespace {

using testing::max_abs_diff;
using testing::random_model;
using testing::some_tokens;
using testing::TempDir;

constexpr int kVocab = 97;

TEST(Precision, NamesRoundTripAndUnknownIsAnError) {
  for (Precision p : {Precision::Exact, Precision::Bf16})
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  EXPECT_EQ(precision_name(Precision::Bf16), "bf16");
  EXPECT_FALSE(parse_precision("fp16"));
  EXPECT_EQ(EngineOptions{}.precision, Precision::Exact);
  try {
    parse_precision_or_fail("f32", "--precision");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[infer] --precision 'f32' is not one of exact, bf16");
  }
}

class Bf16Engine : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* env = std::getenv("EVOMERGE_GEMM");
    if (!env || !*env) return;
    const auto k = infer_detail::parse_gemm_kernel(env);
    if (!k) GTEST_SKIP() << "EVOMERGE_GEMM=" << env << " is not a kernel";
    if (std::string why = infer_detail::gemm_kernel_unavailable(*k); !why.empty())
      GTEST_SKIP() << env << ": " << why;
  }
};

// The tolerance. Both sides multiply the same bf16-rounded activations with the same weights; the
// engine sums in f32 in its kernel's order, the reference in double: within k·2^-24 of each sum's
// magnitude, as in exact mode (kTol = 1e-4 on these logits, engine_test.cpp), and that is what
// most positions show (~1e-7). But an activation that lies within that distance of a midpoint
// between two bf16 values can round to the other neighbour on the two sides; that element then
// differs by one bf16 ulp (2^-8 of itself) and the difference travels on to the logits of its
// position and (through the KV cache) of later ones. Its size is a few times one element's
// rounding, i.e. a fraction ~1/sqrt(elements) of the whole rounding's effect (~1e-2 here):
// measured up to 3.5e-3 (scalar kernel, qwen3). So: every position within kFlipTol, and most
// (kMostPositions) within the accumulation tolerance kTol. Every position's rounding effect is
// checked to exceed kTol, so a kernel that skipped or changed the rounding fails the second.
constexpr float kTol = 1e-4f, kFlipTol = 5e-3f;
constexpr double kMostPositions = 0.75;

// Largest |a - b| over each position's logits row.
std::vector<float> row_diffs(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size() / kVocab, 0.0f);
  for (size_t i = 0; i < a.size(); ++i)
    d[i / kVocab] = std::max(d[i / kVocab], std::fabs(a[i] - b[i]));
  return d;
}

TEST_F(Bf16Engine, LogitsMatchTheBf16Reference) {
  TempDir dir("bf16engine");
  auto qwen3 = small_model_config("qwen3", kVocab, 64, 96, 2, 4, 2);
  qwen3["tie_word_embeddings"] = true;
  const struct {
    const char* name;
    nlohmann::json config;
    DType dtype;
  } models[] = {{"llama_bf16", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), DType::BF16},
                {"qwen3_tied_bf16", qwen3, DType::BF16},
                {"llama_f32", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), DType::F32}};
  std::vector<std::vector<int32_t>> seqs = {some_tokens(13, kVocab, 1), some_tokens(7, kVocab, 2)};
  size_t positions = 0, close = 0;
  float least_moved = INFINITY;  // the smallest effect of the rounding on a position's logits
  for (const auto& m : models) {
    auto w = random_model(dir, m.name, m.config, 7, m.dtype);
    std::vector<std::vector<float>> ref;
    for (const auto& seq : seqs) {
      ref.push_back(reference_forward(*w, seq, Precision::Bf16));
      for (float d : row_diffs(ref.back(), reference_forward(*w, seq)))
        least_moved = std::min(least_moved, d);
    }
    // Micro-batches of 20 rows (the bf16 kernels) and of 4 (decode-sized: the f32-FMA kernel
    // unless forced), weights as stored and as an f32 copy.
    for (int batch : {4096, 4})
      for (bool cache : {false, true}) {
        EngineOptions opt;
        opt.threads = 2;
        opt.max_batch_tokens = batch;
        opt.cache_f32_weights = cache;
        opt.precision = Precision::Bf16;
        Engine engine(w, opt);
        const auto out = engine.forward_logits(seqs);
        for (size_t b = 0; b < seqs.size(); ++b)
          for (float d : row_diffs(out[b], ref[b])) {
            EXPECT_LE(d, kFlipTol)
                << m.name << " seq " << b << " batch " << batch << " cache " << cache;
            ++positions;
            close += d <= kTol;
          }
      }
  }
  EXPECT_GE(static_cast<double>(close), kMostPositions * static_cast<double>(positions))
      << close << " of " << positions << " positions within " << kTol;
  EXPECT_GT(least_moved, 2 * kTol);
}

// Decode: generation (one-row steps after the prompt's prefill) gives the tokens of the reference
// run greedily, token by token, with the same rounding.
TEST_F(Bf16Engine, GreedyDecodeFollowsTheBf16Reference) {
  TempDir dir("bf16decode");
  auto w = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), 5);
  EngineOptions opt;
  opt.threads = 2;
  opt.precision = Precision::Bf16;
  Engine engine(w, opt);
  std::vector<Engine::GenerateRequest> reqs;
  for (uint32_t s = 0; s < 3; ++s) reqs.push_back({some_tokens(5 + 3 * s, kVocab, 40 + s), 6, {}});
  const auto res = engine.generate_with(reqs, {}, {-1});
  for (size_t r = 0; r < reqs.size(); ++r) {
    std::vector<int32_t> seq = reqs[r].prompt;
    ASSERT_EQ(res[r].tokens.size(), 6u);
    for (int32_t got : res[r].tokens) {
      const auto ref = reference_forward(*w, seq, Precision::Bf16);
      const float* last = &ref[(seq.size() - 1) * kVocab];
      // The reference's best, unless the engine's pick is within the tolerance of it (a near-tie).
      const int32_t best = static_cast<int32_t>(std::max_element(last, last + kVocab) - last);
      EXPECT_LE(last[best] - last[got], kFlipTol) << "request " << r << " at " << seq.size();
      seq.push_back(got);
    }
  }
}

}  // namespace
}  // namespace evomerge

// The fast Engine against the plain reference path, on random models of every supported variant.
#include "infer/engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>

#include "common/error.h"
#include "infer/backend.h"
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
constexpr float kTol = 1e-4f;  // f32 GEMM vs double-accumulated reference, logits of size ~1

// The folder's tensors copied into buffers the test owns (`owned`, in expected_tensors order; it
// must outlive the result), as a merged candidate is held: memory weights, not mapped from a file.
std::shared_ptr<WeightSource> copy_into_memory(const WeightSource& folder,
                                               std::vector<Tensor>& owned,
                                               std::map<std::string, TensorView>& views) {
  const auto specs = expected_tensors(folder.config(), DType::BF16);
  for (const auto& spec : specs) {
    TensorView v = folder.tensor(spec.name);
    Tensor t(v.dtype, v.shape);
    std::copy(v.data, v.data + v.nbytes, t.storage.begin());
    owned.push_back(std::move(t));
  }
  for (size_t i = 0; i < specs.size(); ++i) views[specs[i].name] = owned[i].view();
  return make_memory_weights(folder.config(), views);
}

struct Variant {
  std::string name;
  nlohmann::json config;
  DType dtype = DType::BF16;
};

std::vector<Variant> variants() {
  std::vector<Variant> v;
  auto base = [](const std::string& fam, int heads, int kv) {
    return small_model_config(fam, kVocab, 64, 96, 2, heads, kv);
  };
  v.push_back({"llama_gqa", base("llama", 4, 2)});
  {
    auto c = base("llama", 4, 4);
    c["head_dim"] = 24;  // q_proj outputs 96 != hidden 64
    c["attention_bias"] = true;
    c["mlp_bias"] = true;
    v.push_back({"llama_headdim_bias", c});
  }
  v.push_back({"qwen2_bias_mqa", base("qwen2", 4, 1)});
  {
    auto c = base("qwen3", 4, 2);
    c["head_dim"] = 32;
    c["tie_word_embeddings"] = true;
    c["rms_norm_eps"] = 1e-6;
    v.push_back({"qwen3_qknorm_tied", c});
  }
  {
    auto c = base("llama", 4, 2);
    c["rope_theta"] = 500000.0;
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 64}};
    v.push_back({"llama3_rope", c});
  }
  {
    auto c = base("mistral", 4, 2);
    c["sliding_window"] = 5;
    v.push_back({"mistral_window5", c});
  }
  v.push_back({"llama_f16", base("llama", 4, 2), DType::F16});
  v.push_back({"llama_f32", base("llama", 4, 2), DType::F32});
  return v;
}

class EngineVsReference : public ::testing::TestWithParam<Variant> {};

TEST_P(EngineVsReference, LogitsMatchReference) {
  const Variant& var = GetParam();
  TempDir dir(var.name);
  auto w = random_model(dir, "m", var.config, 7, var.dtype);
  std::vector<std::vector<int32_t>> seqs = {some_tokens(13, kVocab, 1), some_tokens(7, kVocab, 2)};
  for (bool cache : {false, true}) {
    EngineOptions opt;
    opt.threads = 2;
    opt.cache_f32_weights = cache;
    Engine engine(w, opt);
    auto out = engine.forward_logits(seqs);
    ASSERT_EQ(out.size(), 2u);
    for (size_t b = 0; b < seqs.size(); ++b) {
      auto ref = reference_forward(*w, seqs[b]);
      ASSERT_EQ(out[b].size(), seqs[b].size() * kVocab);
      EXPECT_LE(max_abs_diff(out[b], ref), kTol) << var.name << " seq " << b << " cache " << cache;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, EngineVsReference, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

// Decode-sized products (few rows) run the exact f32 kernel, larger ones the CPU's bf16 kernel
// (gemm_kernel_for_rows). Both agree with the reference, and a batch of sequences equals running
// them one at a time.
TEST(Engine, BatchedEqualsOneAtATime) {
  TempDir dir("batched");
  auto w = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), 11);
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 5; ++i) seqs.push_back(some_tokens(3 + 4 * i, kVocab, 20 + i));
  EngineOptions opt;
  opt.threads = 2;
  opt.max_batch_tokens = 16;  // forces micro-batches that split sequences
  Engine engine(w, opt);
  auto batched = engine.forward_logits(seqs);
  for (size_t b = 0; b < seqs.size(); ++b) {
    auto single = engine.forward_logits({seqs[b]});
    EXPECT_LE(max_abs_diff(batched[b], single[0]), 1e-5f) << b;
    EXPECT_LE(max_abs_diff(batched[b], reference_forward(*w, seqs[b])), kTol) << b;
  }
}

// Sequences longer than one attention block (64 rows) and a continuation longer than one block
// on top of a shared context: the sgemm attention over parent and own cache, block by block.
TEST(Engine, LongSequencesAcrossAttentionBlocks) {
  TempDir dir("long");
  for (const char* family : {"llama", "mistral"}) {
    auto cfg = small_model_config(family, kVocab, 64, 96, 1, 4, 2);
    if (std::string(family) == "mistral") cfg["sliding_window"] = 37;
    auto w = random_model(dir, family, cfg, 29);
    EngineOptions opt;
    opt.threads = 2;
    opt.max_batch_tokens = 100;  // micro-batches split the sequence too
    Engine engine(w, opt);
    auto seq = some_tokens(150, kVocab, 77);
    auto ref = reference_forward(*w, seq);
    EXPECT_LE(max_abs_diff(engine.forward_logits({seq})[0], ref), kTol) << family;
    // Context 70, continuation 80 (79 rows fed as a child of the context's cache).
    Engine::LoglikRequest req{std::vector<int32_t>(seq.begin(), seq.begin() + 70),
                              std::vector<int32_t>(seq.begin() + 70, seq.end())};
    auto res = engine.loglikelihood({req, req})[0];
    double expect = 0;
    for (size_t t = 70; t < seq.size(); ++t) {
      const float* row = &ref[(t - 1) * kVocab];
      double mx = *std::max_element(row, row + kVocab), sum = 0;
      for (int j = 0; j < kVocab; ++j) sum += std::exp(row[j] - mx);
      expect += row[seq[t]] - mx - std::log(sum);
    }
    EXPECT_NEAR(res.logprob, expect, 1e-3) << family;
  }
}

TEST(Engine, ThreadCountDoesNotChangeResults) {
  TempDir dir("threads");
  auto w = random_model(dir, "m", small_model_config("qwen2", kVocab, 64, 96, 2, 4, 2), 3);
  auto seq = some_tokens(20, kVocab, 5);
  EngineOptions one;
  one.threads = 1;
  EngineOptions two;
  two.threads = 2;
  auto a = Engine(w, one).forward_logits({seq});
  auto b = Engine(w, two).forward_logits({seq});
  EXPECT_LE(max_abs_diff(a[0], b[0]), 1e-5f);
}

// Memory weights (caller buffers) give bit-identical logits to the same bytes mapped from a folder.
TEST(Engine, MemoryWeightsEqualFolderWeights) {
  TempDir dir("memory");
  auto folder = random_model(dir, "m", small_model_config("qwen3", kVocab, 64, 96, 2, 4, 2), 5);
  std::vector<Tensor> owned;
  std::map<std::string, TensorView> views;
  auto mem = copy_into_memory(*folder, owned, views);
  auto seq = some_tokens(9, kVocab, 8);
  EngineOptions opt;
  opt.threads = 1;
  auto a = Engine(folder, opt).forward_logits({seq});
  Engine engine(mem, opt);
  auto b = engine.forward_logits({seq});
  EXPECT_EQ(a[0], b[0]);

  // A new candidate written into the same buffers: weights_changed() makes the engine see it.
  EngineOptions cached = opt;
  cached.cache_f32_weights = true;
  Engine cengine(mem, cached);
  auto before = cengine.forward_logits({seq});
  EXPECT_LE(max_abs_diff(before[0], a[0]), 1e-5f);
  Tensor& down =
      owned[std::distance(views.begin(), views.find("model.layers.1.mlp.down_proj.weight"))];
  std::vector<float> vals = to_f32(down.view());
  for (float& x : vals) x *= -3.0f;
  Tensor changed = Tensor::from_f32(down.shape, vals, DType::BF16);
  down.storage = changed.storage;  // same size: the view's pointer stays valid
  cengine.weights_changed();
  auto after = cengine.forward_logits({seq});
  EXPECT_LE(max_abs_diff(after[0], reference_forward(*mem, seq)), kTol);
  EXPECT_GT(max_abs_diff(after[0], before[0]), 1e-3f);
  // Likewise for the copies an uncached engine keeps (the amx kernel's tile-packed weights).
  engine.weights_changed();
  EXPECT_LE(max_abs_diff(engine.forward_logits({seq})[0], after[0]), 1e-5f);
}

// Weights held in memory (a merged candidate) are held twice once packed (amx tiles, avx512, avx2),
// so the packed copies keep to EngineOptions::max_packed_bytes: the head first, then layers in the
// order they run; the rest multiply over the plain bytes (oneDNN, the avx2 dot-product kernel),
// with the same logits to f32 rounding.
TEST(Engine, PackedCopiesOfMemoryWeightsKeepToTheirBudget) {
  if (!infer_detail::gemm_kernel_packs_bf16(infer_detail::selected_gemm_kernel()))
    GTEST_SKIP() << "the engine's kernel here (not amx, avx512 or avx2) does not pack weights";
  TempDir dir("budget");
  auto folder = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), 21);
  std::vector<Tensor> owned;
  std::map<std::string, TensorView> views;
  auto mem = copy_into_memory(*folder, owned, views);
  const auto seq = some_tokens(11, kVocab, 4);
  const auto reference = reference_forward(*mem, seq);
  auto run = [&](int64_t budget) {
    EngineOptions opt;
    opt.threads = 2;
    opt.max_packed_bytes = budget;
    Engine engine(mem, opt);
    EXPECT_LE(max_abs_diff(engine.forward_logits({seq})[0], reference), kTol) << budget;
    return static_cast<int64_t>(engine.stats().packed_memory_weight_bytes);
  };
  int64_t last_layer = 0;  // its seven bf16 matrices (q, k, v, o, gate, up, down), tile-padded
  for (const auto& [name, view] : views)
    if (name.rfind("model.layers.1.", 0) == 0 && name.ends_with("_proj.weight"))
      last_layer += static_cast<int64_t>(
          infer_detail::PackedBf16::bytes_for(view.shape.at(0), view.shape.at(1)));
  const int64_t all = run(std::numeric_limits<int64_t>::max());
  EXPECT_GT(all, 2 * last_layer);  // the head and both layers
  EXPECT_EQ(run(all - 1), all - last_layer);
  EXPECT_EQ(run(0), 0);
}

// log P(continuation | context) equals the sum of log-softmax values read off forward_logits, with
// shared contexts computed once.
class Loglikelihood : public ::testing::TestWithParam<int> {};

// Parameter: max_batch_tokens. 2 makes every context its own group and splits the continuations
// into several batches (cache slots reused); 4096 runs everything together.
TEST_P(Loglikelihood, MatchesLogits) {
  TempDir dir("loglik");
  auto w = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), 13);
  EngineOptions opt;
  opt.threads = 2;
  opt.max_batch_tokens = GetParam();
  Engine engine(w, opt);
  auto ctx_a = some_tokens(10, kVocab, 1), ctx_b = some_tokens(6, kVocab, 2);
  std::vector<Engine::LoglikRequest> reqs = {{ctx_a, some_tokens(9, kVocab, 3)},
                                             {ctx_b, some_tokens(1, kVocab, 4)},
                                             {ctx_a, some_tokens(3, kVocab, 5)},
                                             {ctx_a, some_tokens(1, kVocab, 6)}};
  auto before = engine.stats().prefill_tokens;
  auto res = engine.loglikelihood(reqs);
  // Context a (10) and b (6) once each, plus continuation tokens but the last: 8 + 0 + 2 + 0.
  EXPECT_EQ(engine.stats().prefill_tokens - before, 10u + 6u + 8u + 2u);
  ASSERT_EQ(res.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    std::vector<int32_t> full = reqs[i].context;
    full.insert(full.end(), reqs[i].continuation.begin(), reqs[i].continuation.end());
    auto logits = reference_forward(*w, full);
    double total = 0;
    bool greedy = true;
    for (size_t t = 0; t < reqs[i].continuation.size(); ++t) {
      const float* row = &logits[(reqs[i].context.size() - 1 + t) * kVocab];
      double mx = *std::max_element(row, row + kVocab), sum = 0;
      for (int j = 0; j < kVocab; ++j) sum += std::exp(row[j] - mx);
      double lp = row[reqs[i].continuation[t]] - mx - std::log(sum);
      EXPECT_NEAR(res[i].token_logprobs[t], lp, 1e-4) << i << " " << t;
      total += lp;
      greedy = greedy && std::max_element(row, row + kVocab) - row == reqs[i].continuation[t];
    }
    EXPECT_NEAR(res[i].logprob, total, 1e-4) << i;
    EXPECT_EQ(res[i].greedy, greedy) << i;
  }
  // A continuation that is the greedy argmax path is reported greedy.
  auto logits = reference_forward(*w, ctx_b);
  const float* last = &logits[(ctx_b.size() - 1) * kVocab];
  int32_t best = static_cast<int32_t>(std::max_element(last, last + kVocab) - last);
  auto g = engine.loglikelihood({{ctx_b, {best}}});
  EXPECT_TRUE(g[0].greedy);
}

INSTANTIATE_TEST_SUITE_P(BatchSizes, Loglikelihood, ::testing::Values(4096, 2));

TEST(Engine, ScoreVocabMasksPaddedRows) {
  TempDir dir("scorevocab");
  auto w = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 1, 4, 2), 17);
  auto ctx = some_tokens(5, kVocab, 1);
  EngineOptions opt;
  opt.threads = 1;
  opt.score_vocab = 50;
  Engine engine(w, opt);
  auto res = engine.loglikelihood({{ctx, {3}}});
  auto logits = reference_forward(*w, ctx);
  const float* row = &logits[4 * kVocab];
  double mx = *std::max_element(row, row + 50), sum = 0;
  for (int j = 0; j < 50; ++j) sum += std::exp(row[j] - mx);
  EXPECT_NEAR(res[0].logprob, row[3] - mx - std::log(sum), 1e-4);
}

// Greedy decoding via the reference path: argmax of the last row, appended, repeated.
std::vector<int32_t> reference_greedy(const WeightSource& w, std::vector<int32_t> ids, int n) {
  std::vector<int32_t> out;
  const int64_t V = w.config().vocab_size;
  for (int i = 0; i < n; ++i) {
    auto logits = reference_forward(w, ids);
    const float* last = &logits[(ids.size() - 1) * V];
    int32_t t = static_cast<int32_t>(std::max_element(last, last + V) - last);
    out.push_back(t);
    ids.push_back(t);
  }
  return out;
}

std::string stub_decode(std::span<const int32_t> ids) {
  std::string s;
  for (int32_t t : ids) s += "<" + std::to_string(t) + ">";
  return s;
}

TEST(Engine, GreedyGenerationMatchesReference) {
  TempDir dir("generate");
  auto w = random_model(dir, "m", small_model_config("qwen2", kVocab, 64, 96, 2, 4, 2), 19);
  EngineOptions opt;
  opt.threads = 2;
  Engine engine(w, opt);
  std::vector<Engine::GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) reqs.push_back({some_tokens(3 + 5 * i, kVocab, 40 + i), 6 + i, {}});
  std::vector<std::vector<int32_t>> streamed(reqs.size());
  auto res = engine.generate_with(reqs, stub_decode, {-1},
                                  [&](size_t i, int32_t t) { streamed[i].push_back(t); });
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto expect = reference_greedy(*w, reqs[i].prompt, reqs[i].max_new_tokens);
    EXPECT_EQ(res[i].tokens, expect) << i;
    EXPECT_EQ(streamed[i], expect) << i;
    EXPECT_EQ(res[i].stop, Engine::StopReason::MaxTokens);
    EXPECT_EQ(res[i].text, stub_decode(expect));
    // One request alone gives the same tokens as in the batch.
    auto alone = engine.generate_with({reqs[i]}, stub_decode, {-1});
    EXPECT_EQ(alone[0].tokens, expect) << i;
  }
}

TEST(Engine, GenerationStopsAtEosStopStringAndContext) {
  TempDir dir("stops");
  auto w = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), 23);
  EngineOptions opt;
  opt.threads = 1;
  opt.max_context = 12;
  Engine engine(w, opt);
  auto prompt = some_tokens(4, kVocab, 9);
  auto expect = reference_greedy(*w, prompt, 6);
  // A token that occurs first at index k: EOS there stops before it; a stop string of it cuts the
  // text before it but keeps the token.
  size_t k = 3;
  while (k > 0 && std::find(expect.begin(), expect.begin() + k, expect[k]) != expect.begin() + k)
    --k;
  ASSERT_TRUE(std::find(expect.begin(), expect.begin() + k, expect[k]) == expect.begin() + k);
  std::string stop = "<" + std::to_string(expect[k]) + ">";
  std::vector<Engine::GenerateRequest> reqs = {
      {prompt, 6, {}}, {prompt, 6, {"zzz", stop}}, {prompt, 20, {}}};
  std::vector<int32_t> eos = {expect[k]};
  auto res = engine.generate_with({reqs[0]}, stub_decode, eos);
  EXPECT_EQ(res[0].stop, Engine::StopReason::Eos);
  EXPECT_EQ(res[0].tokens, std::vector<int32_t>(expect.begin(), expect.begin() + k));
  res = engine.generate_with(reqs, stub_decode, {-1});
  EXPECT_EQ(res[1].stop, Engine::StopReason::StopString);
  EXPECT_EQ(res[1].tokens, std::vector<int32_t>(expect.begin(), expect.begin() + k + 1));
  EXPECT_EQ(res[1].text, stub_decode(std::span(expect).subspan(0, k)));
  // Context of 12: prompt 4 plus at most 8 generated tokens.
  EXPECT_EQ(res[2].stop, Engine::StopReason::ContextFull);
  EXPECT_EQ(res[2].tokens.size(), 8u);
  EXPECT_EQ(std::vector<int32_t>(res[2].tokens.begin(), res[2].tokens.begin() + 6), expect);
}

// --- bad input -------------------------------------------------------------------------------

TEST(EngineErrors, PromptLongerThanContext) {
  TempDir dir("ctx");
  auto w = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 1, 4, 2), 1);
  EngineOptions opt;
  opt.max_context = 8;
  opt.threads = 1;
  Engine engine(w, opt);
  try {
    engine.forward_logits({some_tokens(9, kVocab, 1)});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("longer than the context (8 tokens)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(engine.loglikelihood({{some_tokens(6, kVocab, 1), some_tokens(4, kVocab, 2)}}),
               Error);
  EXPECT_THROW(engine.generate_with({{some_tokens(8, kVocab, 1), 4, {}}}, {}, {}), Error);
  EXPECT_THROW(engine.forward_logits({{5, kVocab}}), Error);  // token id outside the vocabulary
  EXPECT_THROW(engine.loglikelihood({{{}, {3}}}), Error);
}

TEST(EngineErrors, UnsupportedRopeTypeIsNamed) {
  TempDir dir("rope");
  auto cfg = small_model_config("llama", kVocab, 64, 96, 1, 4, 2);
  RandomModelSpec spec;
  spec.config = cfg;
  write_random_model(dir.path / "m", spec);
  // config.json with a yarn rope: the folder refuses to open.
  auto j = cfg;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  std::ofstream(dir.path / "m" / "config.json") << j.dump();
  try {
    open_folder_weights((dir.path / "m").string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("yarn"), std::string::npos) << e.what();
  }
  // An in-memory config with an unsupported type: the engine refuses.
  std::ofstream(dir.path / "m" / "config.json") << cfg.dump();
  auto folder = open_folder_weights((dir.path / "m").string());
  ModelConfig c = folder->config();
  c.rope_scaling.type = "dynamic";
  std::map<std::string, TensorView> views;
  for (const auto& s : expected_tensors(c, DType::BF16)) views[s.name] = folder->tensor(s.name);
  try {
    Engine engine(make_memory_weights(c, views));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope type 'dynamic'"), std::string::npos) << e.what();
  }
}

TEST(EngineErrors, MissingOrMisshapenTensorsAreNamed) {
  TempDir dir("tensors");
  auto folder = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 2, 4, 2), 1);
  const ModelConfig& c = folder->config();
  std::map<std::string, TensorView> views;
  for (const auto& s : expected_tensors(c, DType::BF16)) views[s.name] = folder->tensor(s.name);
  auto missing = views;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  try {
    Engine engine(make_memory_weights(c, missing));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'model.layers.1.mlp.up_proj.weight' is missing"),
              std::string::npos)
        << e.what();
  }
  auto bad = views;
  bad["model.layers.0.self_attn.k_proj.weight"] = views["model.layers.0.self_attn.q_proj.weight"];
  try {
    Engine engine(make_memory_weights(c, bad));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("k_proj.weight' has shape [64, 64], expected [32, 64]"),
              std::string::npos)
        << e.what();
  }
  // A view whose byte count does not match its shape.
  auto wrong = views;
  wrong["model.norm.weight"].nbytes -= 2;
  EXPECT_THROW(make_memory_weights(c, wrong), Error);
}

}  // namespace
}  // namespace evomerge

namespace evomerge {
namespace {

TEST(Device, NamesAreCheckedAndCanonical) {
  EXPECT_EQ(canonical_device("cpu"), "cpu");
  EXPECT_EQ(canonical_device("cuda"), "cuda:0");
  EXPECT_EQ(canonical_device("cuda:2"), "cuda:2");
  for (const char* bad : {"gpu", "cuda:", "cuda:-1", "cuda:1x", "CPU", "cuda:99999"})
    EXPECT_THROW(canonical_device(bad), Error) << bad;
}

TEST(Device, CudaWithoutTheBackendIsOneClearError) {
  if (infer_detail::cuda_built()) GTEST_SKIP() << "this build has the CUDA backend";
  TempDir dir("nocuda");
  auto w = random_model(dir, "m", small_model_config("llama", kVocab, 64, 96, 1, 4, 2), 5);
  EngineOptions o;
  o.device = "cuda:1";
  try {
    Engine engine(w, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device 'cuda:1': this evomerge was built without the "
                                         "CUDA backend"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace evomerge

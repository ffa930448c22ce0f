#include "evolve/model_evaluator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/progress.h"
#include "infer/random_model.h"
#include "tokenize/test_support.h"

namespace fs = std::filesystem;
using namespace evomerge;
using json = nlohmann::json;

namespace {

constexpr int kVocab = testing_util::kCharTokenizerVocab;
using testing_util::char_tokenizer;

class ModelEvaluatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::set_global_enabled(false);
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("evomerge_model_evaluator_test_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    // A base and two "fine-tunes" of one tiny Llama (4 layers), plus a 3-layer model B for DFS.
    for (auto [name, seed, layers] :
         {std::tuple{"base", 1, 4}, {"ft1", 2, 4}, {"ft2", 3, 4}, {"b3", 4, 3}}) {
      RandomModelSpec spec;
      spec.config = small_model_config("llama", kVocab, 32, 64, layers, 4, 2);
      spec.config["max_position_embeddings"] = 64;
      spec.config["bos_token_id"] = 97;
      spec.config["eos_token_id"] = 98;
      spec.seed = seed;
      spec.stddev = 0.3f;
      spec.dtype = DType::F32;
      write_random_model(*dir_ / name, spec);
    }
    std::string data;
    const char* qs[] = {"sky is", "fire is", "ice is", "grass is",
                        "sun is", "snow is", "sea is", "coal is"};
    for (int i = 0; i < 8; ++i)
      data += fmt::format(
          "{{\"q\": \"{}\", \"choices\": [\"blue\", \"hot\", \"cold\", \"green\"], \"label\": "
          "{}}}\n",
          qs[i], i % 4);
    std::ofstream(*dir_ / "mc.jsonl") << data;
    std::ofstream(*dir_ / "mc.yaml")
        << "task: mc\ndataset_path: json\ndataset_kwargs: {data_files: {test: mc.jsonl}}\n"
           "output_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_target: "
           "\"{{label}}\"\n"
           "doc_to_choice: \"{{choices}}\"\nmetric_list: [{metric: acc}]\n";
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string model(const char* name) { return (*dir_ / name).string(); }
  PsSpaceOptions ps_options() {
    PsSpaceOptions o;
    o.models = {model("ft1"), model("ft2")};
    o.base_model = model("base");
    o.num_layers = 4;
    o.layer_groups = 2;
    o.out_dtype = DType::F32;
    return o;
  }
  // Scores a model folder directly (the reference the in-memory path must equal).
  Evaluation score_folder(const eval::Scorer& scorer, const fs::path& folder,
                          const std::vector<std::vector<size_t>>& items) {
    EngineOptions eo;
    eo.threads = 1;
    Engine engine(open_folder_weights(folder.string()), eo);
    return score_engine(scorer, engine, tok_, items, {});
  }

  static fs::path* dir_;
  Tokenizer tok_ = char_tokenizer();
};
fs::path* ModelEvaluatorTest::dir_ = nullptr;

}  // namespace

TEST_F(ModelEvaluatorTest, PsCandidateInMemoryEqualsTheMergeWrittenToDisk) {
  eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}});
  PsGenome genome(ps_options());
  EngineOptions eo;
  eo.threads = 1;
  MergeOptions mo;
  mo.threads = 1;
  PsEvaluator ev(genome, scorer, tok_, {}, mo, eo);
  const std::vector<double> x1{0.9, 0.7, 0.4, 0.5, 0.2, 0.9, 0.8, 0.3};
  const std::vector<double> x2{0.3, 0.5, 0.9, 0.9, 0.6, 0.4, 0.1, 0.6};
  const auto evals = ev.evaluate({x1, x2}, 11);
  ASSERT_EQ(evals.size(), 2u);
  const auto items = select_items(scorer, 0, 11);
  for (int k = 0; k < 2; ++k) {
    const auto& x = k == 0 ? x1 : x2;
    ASSERT_TRUE(evals[k].ok) << evals[k].error;
    const fs::path out = *dir_ / ("merged" + std::to_string(k));
    FolderOptions fo;
    fo.replace_existing = true;
    merge_to_folder(genome.decode(x), out, mo, fo);
    const auto ref = score_folder(scorer, out, items);
    EXPECT_EQ(evals[k].fitness, ref.fitness) << k;
    ASSERT_EQ(evals[k].items.size(), 1u);
    EXPECT_EQ(evals[k].items[0].scores, ref.items[0].scores) << k;
    EXPECT_EQ(evals[k].items[0].items.size(), 8u);
    EXPECT_EQ(evals[k].params["models"][0]["weight"][0], x[0]);
  }
}

TEST_F(ModelEvaluatorTest, PsBuffersAreReusedBetweenCandidates) {
  eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}});
  PsEvaluator ev(PsGenome(ps_options()), scorer, tok_, {});
  ev.load(std::vector<double>(8, 0.5));
  const auto before = ev.buffers().views();
  const auto* engine_before = &ev.load(std::vector<double>(8, 0.7));
  const auto after = ev.buffers().views();
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, view] : before) EXPECT_EQ(view.data, after.at(name).data) << name;
  EXPECT_EQ(engine_before, &ev.load(std::vector<double>(8, 0.2)));
}

TEST_F(ModelEvaluatorTest, DfsPathOfModelAAloneEqualsModelA) {
  eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}});
  DfsSpaceOptions o;
  o.layers_per_model = {4, 3};
  o.repeats = 2;
  o.scaling = DfsScaling::ModelPair;
  DfsGenome genome(o);
  EngineOptions eo;
  eo.threads = 1;
  DfsEvaluator ev(genome, {open_folder_weights(model("base")), open_folder_weights(model("b3"))},
                  scorer, tok_, {}, eo);
  auto routed = genome.initial();  // model A in order, scales 1
  auto other = routed;
  other[5] = 1.0;  // add B's layer 1 after A's layers
  const auto evals = ev.evaluate({routed, other}, 0);
  const auto ref = score_folder(scorer, model("base"), select_items(scorer, 0, 0));
  ASSERT_TRUE(evals[0].ok) << evals[0].error;
  EXPECT_EQ(evals[0].fitness, ref.fitness);
  EXPECT_EQ(evals[0].items[0].scores, ref.items[0].scores);
  EXPECT_EQ(evals[1].params["length"], 6);  // A0 A1 A2 A3 B1 A3 (the fixed end)
  EXPECT_EQ(evals[0].params["length"], 4);
}

TEST_F(ModelEvaluatorTest, BadMergeIsAFailedCandidateNotACrash) {
  eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}});
  auto o = ps_options();
  o.models = {model("ft1"), (*dir_ / "missing").string()};
  PsEvaluator ev(PsGenome(o), scorer, tok_, {});
  const auto evals = ev.evaluate({std::vector<double>(8, 0.5)}, 0);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_FALSE(evals[0].ok);
  EXPECT_NE(evals[0].error.find("missing"), std::string::npos) << evals[0].error;
}

TEST_F(ModelEvaluatorTest, ItemSubsetsAreSharedAndSeeded) {
  eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}});
  const auto a = select_items(scorer, 3, 42), b = select_items(scorer, 3, 42),
             c = select_items(scorer, 0, 42);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[0].size(), 3u);
  EXPECT_EQ(c[0].size(), 8u);
}

TEST_F(ModelEvaluatorTest, ValidationItemsAreNeverSearchedOn) {
  eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}});
  const auto pools = split_opt_items(scorer, 3, 7);
  ASSERT_EQ(pools.validation[0].size(), 3u);
  ASSERT_EQ(pools.search[0].size(), 5u);
  std::vector<size_t> all = pools.search[0];
  all.insert(all.end(), pools.validation[0].begin(), pools.validation[0].end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, scorer.all_items(0));  // a partition of the split
  EXPECT_EQ(split_opt_items(scorer, 3, 7).validation, pools.validation);  // seeded
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto items = select_items(scorer, 2, seed, pools.search);
    ASSERT_EQ(items[0].size(), 2u);
    for (size_t i : items[0])
      EXPECT_TRUE(std::find(pools.search[0].begin(), pools.search[0].end(), i) !=
                  pools.search[0].end())
          << i;
  }
  EXPECT_EQ(select_items(scorer, 0, 1, pools.search)[0], pools.search[0]);  // 0: the whole pool
  // Nothing kept: the pool is the whole split, and draws are the plain ones.
  const auto none = split_opt_items(scorer, 0, 7);
  EXPECT_TRUE(none.validation[0].empty());
  EXPECT_EQ(none.search[0], scorer.all_items(0));
}

TEST_F(ModelEvaluatorTest, PsCandidatesAreScoredInTheRecipeDtype) {
  // A bf16 recipe is scored as bf16 weights: the in-memory candidate equals its bf16 folder.
  eval::Scorer scorer({{*dir_ / "mc.yaml", 1.0}});
  auto o = ps_options();
  o.out_dtype = DType::BF16;
  PsGenome genome(o);
  EngineOptions eo;
  eo.threads = 1;
  MergeOptions mo;
  mo.threads = 1;
  PsEvaluator ev(genome, scorer, tok_, {}, mo, eo);
  const std::vector<double> x{0.9, 0.7, 0.4, 0.5, 0.2, 0.9, 0.8, 0.3};
  const auto evals = ev.evaluate({x}, 0);
  ASSERT_TRUE(evals[0].ok) << evals[0].error;
  EXPECT_EQ(ev.buffers().dtype(), DType::BF16);
  const fs::path out = *dir_ / "merged_bf16";
  FolderOptions fo;
  fo.replace_existing = true;
  merge_to_folder(genome.decode(x), out, mo, fo);
  const auto ref = score_folder(scorer, out, select_items(scorer, 0, 0));
  EXPECT_EQ(evals[0].fitness, ref.fitness);
  EXPECT_EQ(evals[0].items[0].scores, ref.items[0].scores);
}

// tokenizer_source: union and tokenizer: {tokens, pad_to_multiple_of}: the merged vocabulary and
// the permuted embedding rows, against rows worked out by hand from mergekit's rules
// (mergekit/tokenizer/build.py, embed.py).
#include "merge/tokenizer_merge.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/progress.h"
#include "common/test_util.h"
#include "io/files.h"
#include "merge/merge.h"
#include "merge/test_models.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::make_tiny_model;
using testing::tensor_f32;
using testing::TinySpec;

json bpe(json vocab, json merges, json added) {
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}
json added_token(int id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// base (vocab_size 5): a b c ab, <s> added at 4, "big" at 5 (>= vocab_size: stripped)
// m1   (vocab_size 5): a c d cd, <eot> added at 4
// m2   (vocab_size 4): b a e d
class VocabMerge : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::set_global_enabled(false);
    root_ = fs::temp_directory_path() / ("evomerge_vocab_test_" + std::to_string(getpid()));
    fs::remove_all(root_);
    auto make = [](const std::string& name, int vocab, uint32_t seed, const json& tok) {
      TinySpec s;
      s.vocab = vocab;
      s.layers = 2;
      s.dtype = DType::F32;
      make_tiny_model(root_ / name, seed, s);
      write_file_atomic(root_ / name / "tokenizer.json", tok.dump());
    };
    make("base", 5, 1,
         bpe({{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"big", 5}}, {"a b", "b ig", "big a"},
             {added_token(4, "<s>")}));
    write_file_atomic(
        root_ / "base" / "tokenizer_config.json",
        json{{"bos_token", "<s>"},
             {"added_tokens_decoder", {{"4", {{"content", "<s>"}, {"special", true}}}}}}
            .dump());
    make("m1", 5, 2,
         bpe({{"a", 0}, {"c", 1}, {"d", 2}, {"cd", 3}}, {"c d"}, {added_token(4, "<eot>")}));
    make("m2", 4, 3, bpe({{"b", 0}, {"a", 1}, {"e", 2}, {"d", 3}}, json::array(), json::array()));
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string p(const std::string& n) { return (root_ / n).string(); }
  static std::string yaml(const std::string& tokenizer) {
    return "merge_method: linear\nbase_model: " + p("base") + "\n" + tokenizer +
           "\nout_dtype: float32\nmodels:\n  - {model: " + p("base") +
           ", parameters: {weight: 1}}\n  - {model: " + p("m1") +
           ", parameters: {weight: 1}}\n  - {model: " + p("m2") + ", parameters: {weight: 2}}\n";
  }
  static fs::path root_;
};
fs::path VocabMerge::root_;

constexpr int H = 8;
std::vector<float> row(const std::vector<float>& t, int r) {
  return {t.begin() + r * H, t.begin() + (r + 1) * H};
}

TEST_F(VocabMerge, UnionVocabularyAndRowsAsMergekitBuildsThem) {
  fs::path out = root_ / "union";
  merge_to_folder(
      parse_merge_config(yaml("tokenizer: {source: union, pad_to_multiple_of: 4}"), "u.yml"), out,
      MergeOptions{.progress = false});
  // Vocabulary: the stripped base (a b c ab <s>), then d cd e (m1, m2) and <eot>; 9 tokens, 12
  // rows.
  json tok = json::parse(read_text_file(out / "tokenizer.json"));
  EXPECT_FALSE(tok["model"]["vocab"].contains("big"));
  EXPECT_EQ(tok["model"]["merges"], json({"a b", "b ig"}));  // merges using "big" go, as mergekit's
  ASSERT_EQ(tok["added_tokens"].size(), 5u);
  const std::vector<std::pair<int, std::string>> want_added = {
      {4, "<s>"}, {5, "d"}, {6, "cd"}, {7, "e"}, {8, "<eot>"}};
  for (size_t i = 0; i < want_added.size(); ++i) {
    EXPECT_EQ(tok["added_tokens"][i]["id"], want_added[i].first);
    EXPECT_EQ(tok["added_tokens"][i]["content"], want_added[i].second);
  }
  EXPECT_EQ(tok["added_tokens"][1]["special"],
            false);  // mergekit's add_tokens(str): plain, normalized
  EXPECT_EQ(tok["added_tokens"][1]["normalized"], true);
  EXPECT_EQ(tok["added_tokens"][4]["special"], true);  // m1's own settings
  json tc = json::parse(read_text_file(out / "tokenizer_config.json"));
  EXPECT_EQ(tc["added_tokens_decoder"]["8"]["content"], "<eot>");
  EXPECT_EQ(tc["added_tokens_decoder"]["5"]["content"], "d");
  EXPECT_EQ(tc["bos_token"], "<s>");
  json cfg = json::parse(read_text_file(out / "config.json"));
  EXPECT_EQ(cfg["vocab_size"], 12);

  // Rows: each model's row, else (one model has it) that model's, else the base's, else the mean.
  for (std::string name : {"model.embed_tokens.weight", "lm_head.weight"}) {
    auto B = tensor_f32(root_ / "base", name), M1 = tensor_f32(root_ / "m1", name),
         M2 = tensor_f32(root_ / "m2", name);
    auto got = tensor_f32(out, name);
    ASSERT_EQ(got.size(), size_t{12 * H});
    std::vector<std::vector<float>> b(9), m1(9), m2(9);  // each model's permuted rows, by hand
    auto mean2 = [](std::vector<float> x, const std::vector<float>& y) {
      for (int c = 0; c < H; ++c) x[c] = (x[c] + y[c]) / 2;
      return x;
    };
    b = {row(B, 0),  row(B, 1),  row(B, 2), row(B, 3), row(B, 4), mean2(row(M1, 2), row(M2, 3)),
         row(M1, 3), row(M2, 2), row(M1, 4)};
    m1 = {row(M1, 0), row(B, 1),  row(M1, 1), row(B, 3), row(B, 4),
          row(M1, 2), row(M1, 3), row(M2, 2), row(M1, 4)};
    m2 = {row(M2, 1), row(M2, 0), row(B, 2),  row(B, 3), row(B, 4),
          row(M2, 3), row(M1, 3), row(M2, 2), row(M1, 4)};
    std::vector<double> pad(H, 0.0);
    for (int r = 0; r < 9; ++r)
      for (int c = 0; c < H; ++c) {
        const double want = (1.0 * b[r][c] + 1.0 * m1[r][c] + 2.0 * m2[r][c]) / 4.0;
        EXPECT_NEAR(got[r * H + c], want, 1e-6) << name << " row " << r << " col " << c;
        pad[c] +=
            want / 9.0;  // padding rows: each model's mean row, merged: the mean of the merged rows
      }
    for (int r = 9; r < 12; ++r)
      for (int c = 0; c < H; ++c)
        EXPECT_NEAR(got[r * H + c], pad[c], 1e-5) << name << " pad row " << r;
  }
}

TEST_F(VocabMerge, TokensEntriesForceAndModelToken) {
  fs::path out = root_ / "tokens";
  const std::string spec =
      "tokenizer:\n  source: union\n  tokens:\n    <eot>:\n      source: {kind: model_token, "
      "model: " +
      p("m2") + ", token: e}\n    a: {source: " + p("m1") +
      ", force: true}\n    c: {source: {kind: zero}}\n";
  merge_to_folder(parse_merge_config(yaml(spec), "t.yml"), out, MergeOptions{.progress = false});
  const std::string name = "model.embed_tokens.weight";
  auto B = tensor_f32(root_ / "base", name), M1 = tensor_f32(root_ / "m1", name),
       M2 = tensor_f32(root_ / "m2", name);
  auto got = tensor_f32(out, name);
  ASSERT_EQ(got.size(), size_t{9 * H});
  for (int c = 0; c < H; ++c) {
    EXPECT_NEAR(got[0 * H + c], M1[c], 1e-6);  // a, forced from m1 for every model
    // c (id 2): base and m1 have it (kept), m2 gets zeros
    EXPECT_NEAR(got[2 * H + c], (B[2 * H + c] + M1[1 * H + c] + 0.0) / 4.0, 1e-6);
    // <eot> (id 8): m1 keeps its own, base and m2 get m2's row of "e"
    EXPECT_NEAR(got[8 * H + c], (M2[2 * H + c] + M1[4 * H + c] + 2.0 * M2[2 * H + c]) / 4.0, 1e-6);
  }
}

TEST_F(VocabMerge, BaseSourceStripsAndModelSourceKeepsTheModelsVocabulary) {
  fs::path out = root_ / "src_m2";
  merge_to_folder(parse_merge_config(yaml("tokenizer_source: " + p("m2")), "s.yml"), out,
                  MergeOptions{.progress = false});
  const std::string name = "model.embed_tokens.weight";
  auto B = tensor_f32(root_ / "base", name), M1 = tensor_f32(root_ / "m1", name),
       M2 = tensor_f32(root_ / "m2", name);
  auto got = tensor_f32(out, name);
  ASSERT_EQ(got.size(), size_t{4 * H});  // m2's vocabulary: b a e d
  for (int c = 0; c < H; ++c) {
    EXPECT_NEAR(got[0 * H + c], (B[1 * H + c] + B[1 * H + c] + 2 * M2[0 * H + c]) / 4,
                1e-6);  // b: m1 lacks it -> base's
    EXPECT_NEAR(got[2 * H + c], (M2[2 * H + c] + M2[2 * H + c] + 2 * M2[2 * H + c]) / 4,
                1e-6);  // e: only m2
  }
  EXPECT_EQ(json::parse(read_text_file(out / "config.json"))["vocab_size"], 4);
  std::string e = testing_util::error_of([&] {
    merge_to_folder(parse_merge_config(
                        yaml("tokenizer:\n  tokens:\n    a: {source: org/elsewhere}\n"), "x.yml"),
                    root_ / "bad", MergeOptions{.progress = false});
  });
  EXPECT_NE(e.find("tokenizer.tokens.a.source: model org/elsewhere is referenced but not part of "
                   "this merge"),
            std::string::npos)
      << e;
  EXPECT_FALSE(fs::exists(root_ / "bad"));
}

}  // namespace
}  // namespace evomerge

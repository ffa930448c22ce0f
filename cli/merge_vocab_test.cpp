// A merged vocabulary end to end: `tokenizer: {source: union, pad_to_multiple_of}` over the bundled
// model and a copy whose tokenizer has one token renamed; our tokenizer loads the merged folder and
// finds the new token as an added token, its embedding row is the donor's, and the engine runs on
// the padded vocabulary. Plus `--strict` on the binary.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/progress.h"
#include "infer/engine.h"
#include "io/files.h"
#include "io/test_support.h"
#include "merge/merge.h"
#include "merge/test_models.h"
#include "test_support.h"
#include "tokenize/tokenizer.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Renames the highest-id vocabulary token of dir/tokenizer.json to `name` (dropping the merges that
// build or use it); returns its id.
int64_t rename_last_token(const fs::path& dir, const std::string& name) {
  json t = json::parse(read_text_file(dir / "tokenizer.json"));
  std::string old;
  int64_t id = -1;
  for (const auto& [tok, i] : t["model"]["vocab"].items())
    if (i.get<int64_t>() > id) id = i.get<int64_t>(), old = tok;
  t["model"]["vocab"].erase(old);
  t["model"]["vocab"][name] = id;
  json kept = json::array();
  for (const auto& m : t["model"]["merges"]) {
    std::string a = m.is_string() ? m.get<std::string>().substr(0, m.get<std::string>().find(' '))
                                  : m[0].get<std::string>();
    std::string b = m.is_string() ? m.get<std::string>().substr(m.get<std::string>().find(' ') + 1)
                                  : m[1].get<std::string>();
    if (a + b != old && a != old && b != old) kept.push_back(m);
  }
  t["model"]["merges"] = kept;
  write_file_atomic(dir / "tokenizer.json", t.dump());
  return id;
}

TEST(MergedVocab, UnionLoadsInOurTokenizerAndEngine) {
  Progress::set_global_enabled(false);
  testing::TempDir io;
  fs::copy("examples/models/math_en", io / "a", fs::copy_options::recursive);
  fs::copy("examples/models/ja_cmp", io / "b", fs::copy_options::recursive);
  const int64_t k = rename_last_token(io / "b", "<new>");
  const std::string yaml = "merge_method: linear\nbase_model: " + (io / "a").string() +
                           "\nout_dtype: float32\ntokenizer: {source: union, pad_to_multiple_of: "
                           "64}\nmodels:\n  - {model: " +
                           (io / "a").string() +
                           ", parameters: {weight: 0.5}}\n  - {model: " + (io / "b").string() +
                           ", parameters: {weight: 0.5}}\n";
  merge_to_folder(parse_merge_config(yaml, "union.yml"), io / "out",
                  MergeOptions{.progress = false});

  Tokenizer tok = Tokenizer::load(io / "out");
  ASSERT_EQ(tok.token_to_id("<new>"),
            std::optional<int32_t>(768));  // a has ids 0..767: appended after them
  EXPECT_EQ(tok.encode("<new>", false), std::vector<int32_t>{768});
  EXPECT_EQ(tok.vocab_size(), 769);
  EXPECT_EQ(json::parse(read_text_file(io / "out" / "config.json"))["vocab_size"],
            832);  // 769 padded to 64

  // Only b has "<new>": every model's row is b's, so the merge is b's row k.
  const auto b_rows = testing::tensor_f32(io / "b", "model.embed_tokens.weight");
  const auto out_rows = testing::tensor_f32(io / "out", "model.embed_tokens.weight");
  const auto a_rows = testing::tensor_f32(io / "a", "model.embed_tokens.weight");
  const size_t h = b_rows.size() / 768;
  ASSERT_EQ(out_rows.size(), 832 * h);
  for (size_t c = 0; c < h; ++c) {
    EXPECT_FLOAT_EQ(out_rows[768 * h + c], b_rows[k * h + c]);
    // the renamed token's old string is only in a: a's row at k for both
    EXPECT_FLOAT_EQ(out_rows[k * h + c], a_rows[k * h + c]);
  }

  Engine engine(open_folder_weights((io / "out").string()));
  auto logits = engine.forward_logits({tok.encode("12 + <new> =", false)});
  ASSERT_EQ(logits.size(), 1u);
  ASSERT_EQ(logits[0].size() % 832, 0u);
  for (float x : logits[0]) ASSERT_TRUE(std::isfinite(x));
}

TEST(MergedVocab, StrictTurnsIgnoredKeysIntoErrorsOnTheBinary) {
  testing::TempDir io;
  write_file_atomic(
      io / "c.yml",
      "merge_method: linear\nnormalize: true\nmodels:\n  - {model: examples/models/math_en, "
      "parameters: {weight: 1}}\n");
  const std::string args =
      fmt::format("merge '{}' '{}' --dry-run", (io / "c.yml").string(), (io / "o").string());
  const auto warned = testing::evomerge_cli(args, io);
  EXPECT_EQ(warned.status, 0) << warned.err;
  EXPECT_NE(warned.err.find("warning: " + (io / "c.yml").string() +
                            ":2: normalize: unknown key, has no effect"),
            std::string::npos)
      << warned.err;
  const auto strict = testing::evomerge_cli(args + " --strict", io);
  EXPECT_EQ(strict.status, 1) << strict.err;
}

}  // namespace
}  // namespace evomerge

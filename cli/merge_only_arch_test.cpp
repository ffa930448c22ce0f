// The merge-only architectures through the binary: `evomerge merge` writes a Mixtral (mixture of
// experts) and a GPT-2 merge, and `score` / `generate` on them fail with one error naming the
// architecture.
#include <gtest/gtest.h>

#include "arch/test_support.h"
#include "io/files.h"
#include "io/test_support.h"
#include "test_support.h"

namespace evomerge {
namespace {

TEST(MergeOnlyArchitectures, MergeWorksAndEvaluationIsRefusedByName) {
  for (const std::string family : {"mixtral", "gpt2"}) {
    SCOPED_TRACE(family);
    testing::TempDir io;
    std::filesystem::create_directories(io / "a");
    const nlohmann::json config = testing::tiny_config(family);
    testing::write_model_folder(io / "a", config);
    for (const char* f :
         {"tokenizer.json", "tokenizer_config.json"})  // a real tokenizer: the commands load it first
      std::filesystem::copy_file(std::filesystem::path("examples/models/math_en") / f, io / "a" / f,
                                 std::filesystem::copy_options::overwrite_existing);
    write_file_atomic(io / "m.yml", "merge_method: linear\nmodels:\n  - {model: " +
                                        (io / "a").string() + ", parameters: {weight: 1}}\n");
    const auto merged = testing::evomerge_cli(
        fmt::format("merge '{}' '{}'", (io / "m.yml").string(), (io / "out").string()), io);
    ASSERT_EQ(merged.status, 0) << merged.err;
    write_file_atomic(io / "t.txt", "hello");
    const std::string want = "architecture " + config.at("architectures")[0].get<std::string>() +
                             " is supported for merging but not for inference";
    const auto score = testing::evomerge_cli(
        fmt::format("score '{}' --text-file '{}'", (io / "out").string(), (io / "t.txt").string()),
        io);
    EXPECT_EQ(score.status, 1);
    EXPECT_NE(score.err.find(want), std::string::npos) << score.err;
    const auto generate =
        testing::evomerge_cli(fmt::format("generate '{}' --prompt hi", (io / "out").string()), io);
    EXPECT_EQ(generate.status, 1);
    EXPECT_NE(generate.err.find(want), std::string::npos) << generate.err;
  }
}

}  // namespace
}  // namespace evomerge

// The merge-only (mixture-of-experts) architectures through the binary: `evomerge merge` writes a
// Mixtral merge, and `score` / `generate` / `eval` on it fail with one error naming the
// architecture.
#include <gtest/gtest.h>

#include <cstdlib>

#include "arch/test_support.h"
#include "io/files.h"
#include "io/test_support.h"

#ifndef EVOMERGE_CLI
#error "EVOMERGE_CLI (path of the evomerge binary) must be defined by the build"
#endif

namespace evomerge {
namespace {

int run(const std::string& args, const std::filesystem::path& err) {
  std::string cmd = fmt::format("'{}' {} >/dev/null 2>'{}'", EVOMERGE_CLI, args, err.string());
  return std::system(cmd.c_str());
}

TEST(MergeOnlyArchitectures, MergeWorksAndEvaluationIsRefusedByName) {
  testing::TempDir io;
  std::filesystem::create_directories(io / "a");
  testing::write_model_folder(io / "a", testing::tiny_config("mixtral"));
  for (const char* f :
       {"tokenizer.json", "tokenizer_config.json"})  // a real tokenizer: the commands load it first
    std::filesystem::copy_file(std::filesystem::path("examples/models/math_en") / f, io / "a" / f,
                               std::filesystem::copy_options::overwrite_existing);
  write_file_atomic(io / "m.yml", "merge_method: linear\nmodels:\n  - {model: " +
                                      (io / "a").string() + ", parameters: {weight: 1}}\n");
  ASSERT_EQ(run(fmt::format("merge '{}' '{}'", (io / "m.yml").string(), (io / "out").string()),
                io / "e0"),
            0)
      << read_text_file(io / "e0");
  write_file_atomic(io / "t.txt", "hello");
  const std::string want =
      "architecture MixtralForCausalLM is supported for merging but not for inference";
  EXPECT_NE(run(fmt::format("score '{}' --text-file '{}'", (io / "out").string(),
                            (io / "t.txt").string()),
                io / "e1"),
            0);
  EXPECT_NE(read_text_file(io / "e1").find(want), std::string::npos) << read_text_file(io / "e1");
  EXPECT_NE(run(fmt::format("generate '{}' --prompt hi", (io / "out").string()), io / "e2"), 0);
  EXPECT_NE(read_text_file(io / "e2").find(want), std::string::npos) << read_text_file(io / "e2");
}

}  // namespace
}  // namespace evomerge

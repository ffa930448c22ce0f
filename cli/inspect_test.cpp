// End-to-end: the real `evomerge` binary on generated real-format model folders (good ones: text,
// --json, --tensors; every case of the bad-input catalogue: exit status 1 and its message on
// stderr).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "arch/bad_inputs.h"
#include "arch/test_support.h"
#include "io/test_support.h"
#include "test_support.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::read_bytes;
using testing::TempDir;

using CliRun = testing::CliResult;

// The binary with `args` (already shell-safe); `env`: assignments put before it.
CliRun run_cli(const std::string& args, const std::string& env = "") {
  static TempDir io("cli");
  return testing::run_shell_cli(env, args, io.path());
}

std::string quote(const fs::path& p) {
  return fmt::format("'{}'", p.string());
}

// tiny qwen3 (hidden 8, inter 12, 2 layers, 2 heads x head_dim 4, 1 kv head, vocab 16), tied, F32:
// embed 128 + 2 x (norms 16 + q 64 + k 32 + v 32 + o 64 + q/k norm 8 + mlp 288) + norm 8 = 1144.
constexpr int64_t kTinyQwen3Params = 1144;

class InspectGood : public ::testing::Test {
 protected:
  void SetUp() override {
    json c = testing::tiny_config("qwen3");
    c["tie_word_embeddings"] = true;
    specs_ = testing::write_model_folder(dir_.path(), c, DType::F32, /*shard_bytes=*/2600);
  }
  TempDir dir_{"inspect"};
  std::vector<TensorSpec> specs_;
};

TEST_F(InspectGood, TextSummary) {
  CliRun r = run_cli("inspect " + quote(dir_.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("architecture Qwen3ForCausalLM (qwen3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layers       2  hidden 8  intermediate 12  heads 2 (kv 1, head_dim 4)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("tied embeddings: yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("parameters   1144 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dtypes       F32 100.0%"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shards       2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model-00002-of-00002.safetensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("aux files    generation_config.json, tokenizer_config.json"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("model.layers.0.mlp.up_proj.weight"), std::string::npos)
      << "tensor table without --tensors";
}

TEST_F(InspectGood, JsonSummaryMatchesTheFolder) {
  CliRun r = run_cli("inspect --json " + quote(dir_.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["architecture"], "Qwen3ForCausalLM");
  EXPECT_EQ(j["family"], "qwen3");
  EXPECT_EQ(j["layers"], 2);
  EXPECT_EQ(j["head_dim"], 4);
  EXPECT_EQ(j["kv_heads"], 1);
  EXPECT_EQ(j["vocab_size"], 16);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["parameters"], kTinyQwen3Params);
  EXPECT_EQ(j["dtypes"], (json{{"F32", kTinyQwen3Params}}));
  EXPECT_EQ(j["tensor_bytes"], kTinyQwen3Params * 4);
  ASSERT_EQ(j["shards"].size(), 2u);
  size_t tensors = 0;
  for (const auto& s : j["shards"]) {
    EXPECT_EQ(s["bytes"], fs::file_size(dir_ / s["file"].get<std::string>()));
    tensors += s["tensors"].get<size_t>();
  }
  EXPECT_EQ(tensors, specs_.size());
  EXPECT_EQ(j["aux_files"], (json{"generation_config.json", "tokenizer_config.json"}));
  EXPECT_FALSE(j.contains("tensors"));
}

TEST_F(InspectGood, TensorTable) {
  CliRun r = run_cli("inspect --json --tensors " + quote(dir_.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_EQ(j["tensors"].size(), specs_.size());
  std::map<std::string, json> by_name;
  for (const auto& t : j["tensors"]) by_name[t["name"]] = t;
  for (const auto& s : specs_) {
    ASSERT_TRUE(by_name.count(s.name)) << s.name;
    EXPECT_EQ(by_name[s.name]["shape"], json(s.shape)) << s.name;
    EXPECT_EQ(by_name[s.name]["dtype"], "F32") << s.name;
    EXPECT_EQ(by_name[s.name]["bytes"], s.nbytes()) << s.name;
  }
  r = run_cli("inspect --tensors " + quote(dir_.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.1.self_attn.k_norm.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[16, 8]"), std::string::npos) << r.out;
}

TEST_F(InspectGood, HubReferenceFromLocalCache) {
  TempDir cache("hub");
  fs::path snap = cache / "models--tiny-org--tiny-qwen3/snapshots/abc123";
  fs::create_directories(snap.parent_path());
  fs::create_directory_symlink(dir_.path(), snap);
  testing::write_bytes(cache / "models--tiny-org--tiny-qwen3/refs/main", "abc123");
  CliRun r = run_cli("inspect --json tiny-org/tiny-qwen3", "HF_HUB_CACHE=" + quote(cache.path()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["parameters"], kTinyQwen3Params);
  r = run_cli("inspect tiny-org/not-downloaded", "HF_HUB_CACHE=" + quote(cache.path()));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not a local folder and not in the Hugging Face cache"), std::string::npos)
      << r.err;
}

TEST(InspectUsage, MissingArgumentIsAUsageError) {
  CliRun r = run_cli("inspect");
  EXPECT_EQ(r.status, 2) << r.err;
  r = run_cli("inspect /nonexistent/model/folder");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "evomerge: error: [model] /nonexistent/model/folder: no such model folder\n");
}

// Every catalogue case through the real binary: status 1 (no crash, no abort), one line on stderr
// carrying the case's message, nothing on stdout.
TEST(InspectBadInput, EveryCatalogueCase) {
  TempDir root("cli-bad");
  auto cases = testing::make_bad_input_catalogue(root.path());
  ASSERT_GE(cases.size(), 25u);
  for (const auto& c : cases) {
    CliRun r = run_cli("inspect " + quote(c.dir));
    EXPECT_EQ(r.status, 1) << c.id << ": " << r.err;
    EXPECT_TRUE(r.err.starts_with("evomerge: error: [")) << c.id << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos)
        << c.id << "\n  expected: " << c.message << "\n  got: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.id << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.id << ": " << r.out;
  }
}

}  // namespace
}  // namespace evomerge

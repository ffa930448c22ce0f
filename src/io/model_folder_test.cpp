// Model folders: weights over shards, index parsing, the Hugging Face cache, tag-along files.
#include "io/model_folder.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <functional>

#include "common/error.h"
#include "io/files.h"
#include "io/test_support.h"
#include "common/test_util.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::raw_safetensors;
using testing::TempDir;
using testing::write_bytes;

using testing_util::error_of;

// Sets an environment variable for the scope of a test, restoring the previous value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Writes n U8 tensors "w0".."w{n-1}" of 16 bytes each (values i) through the real writer.
void write_u8_model(const fs::path& dir, int n, uint64_t shard_bytes) {
  std::vector<Tensor> ts;
  std::vector<std::pair<std::string, TensorView>> named;
  for (int i = 0; i < n; ++i) {
    Tensor t(DType::U8, {4, 4});
    std::fill(t.storage.begin(), t.storage.end(), static_cast<std::byte>(i));
    ts.push_back(std::move(t));
  }
  for (int i = 0; i < n; ++i) named.emplace_back("w" + std::to_string(i), ts[i].view());
  write_safetensors(dir, named, shard_bytes);
}

TEST(ModelWeights, SingleFile) {
  TempDir dir;
  write_u8_model(dir.path(), 3, 1000);
  auto w = ModelWeights::open(dir.path());
  EXPECT_EQ(w.files().size(), 1u);
  EXPECT_EQ(w.names(), (std::vector<std::string>{"w0", "w1", "w2"}));
  EXPECT_EQ(w.total_tensor_bytes(), 48u);
  EXPECT_EQ(static_cast<uint8_t>(w.view("w2").data[15]), 2);
  EXPECT_NE(error_of([&] { w.view("w9"); }).find("tensor 'w9' is missing"), std::string::npos);
}

TEST(ModelWeights, AcrossShards) {
  TempDir dir;
  write_u8_model(dir.path(), 5, 32);  // two tensors per shard: 3 shards
  auto w = ModelWeights::open(dir.path());
  ASSERT_EQ(w.files().size(), 3u);
  EXPECT_EQ(w.files()[2].path().filename(), "model-00003-of-00003.safetensors");
  EXPECT_EQ(w.names(), (std::vector<std::string>{"w0", "w1", "w2", "w3", "w4"}));
  for (int i = 0; i < 5; ++i) {
    auto v = w.view("w" + std::to_string(i));
    ASSERT_EQ(v.nbytes, 16u);
    EXPECT_EQ(static_cast<uint8_t>(v.data[7]), i);
  }
  EXPECT_TRUE(w.contains("w4"));
  EXPECT_FALSE(w.contains("w5"));
  EXPECT_EQ(w.total_tensor_bytes(), 80u);
}

TEST(ModelWeights, CopiesAndMovesStayValid) {
  TempDir dir;
  write_u8_model(dir.path(), 4, 32);
  std::optional<ModelWeights> original(ModelWeights::open(dir.path()));
  ModelWeights copy = *original;
  ModelWeights moved = std::move(*original);
  original.reset();
  for (const ModelWeights* w : {&copy, &moved}) {
    const TensorInfo* info = w->find("w3");
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->name, "w3");
    EXPECT_EQ(static_cast<uint8_t>(w->view("w3").data[0]), 3);
  }
}

TEST(SafetensorsIndex, ParsesWeightMap) {
  auto map = parse_safetensors_index(
      R"({"metadata":{"total_size":32,"other":"x"},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors"}})", "idx");
  EXPECT_EQ(map, (std::map<std::string, std::string>{{"a", "m-1.safetensors"}, {"b", "m-2.safetensors"}}));
  EXPECT_EQ(parse_safetensors_index(R"({"weight_map":{"a":"x.safetensors"}})", "idx").size(), 1u);
}

TEST(SafetensorsIndex, RejectsUnsafeShardNames) {
  for (const char* bad : {"/etc/passwd", "../x.safetensors", "..", ".", "sub/x.safetensors", "a\\\\b", ""}) {
    std::string text = std::string(R"({"weight_map":{"t":")") + bad + "\"}}";
    std::string err = error_of([&] { parse_safetensors_index(text, "idx"); });
    EXPECT_NE(err.find("is not a plain file name in the model folder"), std::string::npos) << bad << ": " << err;
  }
}

TEST(HfCache, ResolvesOrgNameFromHubCache) {
  TempDir cache;
  fs::path repo = cache / "models--org--tiny";
  fs::path snap_old = repo / "snapshots/1111";
  fs::path snap_main = repo / "snapshots/2222";
  write_bytes(repo / "blobs/abc", "{}");
  fs::create_directories(snap_old);
  fs::create_directories(snap_main);
  // The real cache links snapshot files to blobs.
  fs::create_symlink("../../blobs/abc", snap_main / "config.json");
  write_bytes(repo / "refs/main", "2222\n");
  {
    ScopedEnv hub("HF_HUB_CACHE", cache.path().c_str());
    EXPECT_EQ(resolve_model_path("org/tiny"), snap_main);
    EXPECT_TRUE(fs::is_regular_file(resolve_model_path("org/tiny") / "config.json"));
    std::string err = error_of([] { resolve_model_path("org/absent"); });
    EXPECT_NE(err.find("not a local folder and not in the Hugging Face cache"), std::string::npos) << err;
    EXPECT_NE(err.find("models--org--absent"), std::string::npos) << err;
  }
  {
    // HF_HOME/hub when HF_HUB_CACHE is unset.
    TempDir home;
    fs::create_directories(home / "hub");
    fs::rename(repo, home / "hub/models--org--tiny");
    ScopedEnv hub("HF_HUB_CACHE", nullptr);
    ScopedEnv hf_home("HF_HOME", home.path().c_str());
    EXPECT_EQ(resolve_model_path("org/tiny"), home / "hub/models--org--tiny/snapshots/2222");
  }
}

TEST(HfCache, WithoutRefsMainTakesNewestSnapshot) {
  TempDir cache;
  fs::path snaps = cache / "models--org--m/snapshots";
  fs::create_directories(snaps / "old");
  fs::create_directories(snaps / "new");
  fs::last_write_time(snaps / "old", fs::file_time_type::clock::now() - std::chrono::hours(24));
  ScopedEnv hub("HF_HUB_CACHE", cache.path().c_str());
  EXPECT_EQ(resolve_model_path("org/m"), snaps / "new");
}

TEST(HfCache, RefsMainCannotEscapeSnapshots) {
  TempDir cache;
  fs::path repo = cache / "models--org--m";
  fs::create_directories(repo / "snapshots/only");
  write_bytes(repo / "refs/main", "..");
  ScopedEnv hub("HF_HUB_CACHE", cache.path().c_str());
  EXPECT_EQ(resolve_model_path("org/m"), repo / "snapshots/only");
}

TEST(HfCache, EmptySnapshotsAndNonHubNames) {
  TempDir cache;
  fs::create_directories(cache / "models--org--m/snapshots");
  ScopedEnv hub("HF_HUB_CACHE", cache.path().c_str());
  EXPECT_NE(error_of([] { resolve_model_path("org/m"); }).find("has no snapshot"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_model_path("./nothing-here"); }).find("no such model folder"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_model_path("a/b/c"); }).find("no such model folder"), std::string::npos);
}

// A file given where a model folder belongs said "no such model folder"; a FIFO or a link to
// /dev/zero as config.json said "config.json is missing".
TEST(ModelFolder, FileFifoAndDeviceAreNamedForWhatTheyAre) {
  TempDir dir;
  write_bytes(dir / "model.safetensors", "x");
  const std::string file = (dir / "model.safetensors").string();
  EXPECT_EQ(error_of([&] { resolve_model_path(file); }),
            "[model] " + file +
                ": is a file, not a model folder (give the folder that holds config.json and the "
                "weights)");
  TempDir fifo_dir;
  ASSERT_EQ(::mkfifo((fifo_dir / "config.json").c_str(), 0600), 0);
  EXPECT_EQ(error_of([&] { ModelFolder::open(fifo_dir.path().string()); }),
            "[io] " + (fifo_dir / "config.json").string() + ": is a FIFO, not a regular file");
  TempDir zero_dir;
  fs::create_symlink("/dev/zero", zero_dir / "config.json");
  EXPECT_EQ(error_of([&] { ModelFolder::open(zero_dir.path().string()); }),
            "[io] " + (zero_dir / "config.json").string() +
                ": is a character device, not a regular file");
}

// An index nested 150,000 deep overflowed nlohmann's recursive DOM; now one clear error.
TEST(SafetensorsIndex, DeepNestingIsRefused) {
  const std::string deep =
      "{\"weight_map\": " + std::string(150000, '[') + std::string(150000, ']') + "}";
  EXPECT_EQ(error_of([&] { parse_safetensors_index(deep, "m/model.safetensors.index.json"); }),
            "[model] m/model.safetensors.index.json: JSON nested deeper than 128 levels");
}

TEST(ModelFolder, LocalFolderWithAuxFiles) {
  TempDir dir;
  write_u8_model(dir.path(), 2, 1000);
  write_bytes(dir / "config.json", R"({"model_type":"llama"})");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                           "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja", "added_tokens.json"})
    write_bytes(dir / name, "x");
  for (const char* name : {"README.md", "pytorch_model.bin", "model.safetensors.index.json.bak", ".hidden",
                           "consolidated.safetensors", "training_args.bin", "model.gguf"})
    write_bytes(dir / name, "x");
  fs::create_directories(dir / "tokenizer_subdir");
  auto m = ModelFolder::open(dir.path().string());
  EXPECT_EQ(m.config["model_type"], "llama");
  EXPECT_EQ(m.weights.names().size(), 2u);
  EXPECT_EQ(m.aux_files, (std::vector<std::string>{"added_tokens.json", "chat_template.jinja", "generation_config.json",
                                                   "merges.txt", "special_tokens_map.json", "tokenizer.json",
                                                   "tokenizer.model", "tokenizer_config.json", "vocab.json"}));
}

TEST(ModelFolder, ConfigErrorsNameTheFile) {
  TempDir dir;
  write_u8_model(dir.path(), 1, 1000);
  std::string err = error_of([&] { ModelFolder::open(dir.path().string()); });
  EXPECT_NE(err.find("config.json is missing"), std::string::npos) << err;
  write_bytes(dir / "config.json", "{\"a\":");
  err = error_of([&] { ModelFolder::open(dir.path().string()); });
  EXPECT_NE(err.find("config.json: not valid JSON"), std::string::npos) << err;
  write_bytes(dir / "config.json", "[]");
  err = error_of([&] { ModelFolder::open(dir.path().string()); });
  EXPECT_NE(err.find("config.json: not a JSON object"), std::string::npos) << err;
}

}  // namespace
}  // namespace evomerge

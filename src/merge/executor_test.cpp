// The executor's tiled path (elementwise methods merged tile by tile from the stored bytes, checked
// and converted while in cache) against its plain path (every input converted to f32, the method on
// the whole tensor): the same bits, on tensors of awkward sizes (under one tile, one tile and a
// bit, several tiles with a ragged end), for every input dtype, output dtype and thread count.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/progress.h"
#include "merge/merge.h"
#include "merge/methods.h"
#include "merge/test_models.h"
#include "tensor/convert.h"

namespace evomerge {
namespace {

namespace fs = std::filesystem;
using testing::make_tiny_model;
using testing::TinySpec;

class ExecutorTiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Progress::set_global_enabled(false);
    root_ = fs::temp_directory_path() / ("evomerge_executor_test_" + std::to_string(getpid()));
    fs::remove_all(root_);
    // Tensor sizes: norms 136 (under a tile), embed/lm_head 131 x 136 = 17816 (a 16384-element tile
    // and a ragged one), MLP 136 x 253 = 34408 (two tiles and a ragged one); q/o 136 x 136.
    TinySpec s;
    s.layers = 2, s.vocab = 131, s.hidden = 136, s.intermediate = 253;
    const DType dtypes[] = {DType::BF16, DType::F16, DType::F32};
    for (int d = 0; d < 3; ++d) {
      s.dtype = dtypes[d];
      for (uint32_t k = 0; k < 3; ++k)
        make_tiny_model(root_ / (std::string(dtype_name(dtypes[d])) + std::to_string(k)),
                        10 * d + k + 1, s);
    }
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string p(const std::string& name) { return (root_ / name).string(); }

  // A config of `method` over base (model 0) and models 1, 2 of one dtype.
  static std::string config(const std::string& method, const std::string& dtype) {
    const std::string b = p(dtype + "0"), x = p(dtype + "1"), y = p(dtype + "2");
    if (method == "passthrough")
      return "merge_method: passthrough\nmodels:\n  - {model: " + x +
             ", parameters: {scale: 0.7}}\n";
    if (method == "linear")
      return "merge_method: linear\nmodels:\n  - {model: " + b +
             ", parameters: {weight: 0.4}}\n  - {model: " + x +
             ", parameters: {weight: 0.35}}\n  - {model: " + y + ", parameters: {weight: 0.3}}\n";
    if (method == "nearswap")
      return "merge_method: nearswap\nbase_model: " + b +
             "\nparameters: {t: 0.3}\nmodels:\n  - {model: " + x + "}\n";
    if (method == "ram")
      return "merge_method: ram\nbase_model: " + b +
             "\nparameters: {epsilon: 0.5}\nmodels:\n  - {model: " + x + "}\n  - {model: " + y +
             "}\n";
    return "merge_method: " + method + "\nbase_model: " + b + "\nmodels:\n  - {model: " + x +
           ", parameters: {weight: 0.7, density: 0.5}}\n  - {model: " + y +
           ", parameters: {weight: [0.2, 0.9], density: 0.5}}\n";
  }

  // Every tensor of the plan through merge_into (tiled for elementwise methods) in `out_dtype`
  // equals the plain path's f32 result (merge_tensor_f32) converted once.
  static void expect_same_as_plain(const std::string& yaml, DType out_dtype, int threads) {
    ModelCache cache;
    MergePlan plan = build_plan(parse_merge_config(yaml, "test.yml"), cache);
    Merger tiled(MergeOptions{.threads = threads}), plain(MergeOptions{.threads = 1});
    MergedBuffers buf(out_dtype);
    buf.prepare(plan);
    tiled.merge_into(plan, buf);
    for (size_t i = 0; i < plan.tensors.size(); ++i) {
      const PlanTensor& t = plan.tensors[i];
      const size_t n = static_cast<size_t>(shape_numel(t.shape));
      std::vector<float> ref(n);
      plain.merge_tensor_f32(plan, i, ref.data());
      std::vector<std::byte> want(n * dtype_size(out_dtype));
      convert_from_f32(out_dtype, ref.data(), want.data(), n);
      const TensorView got = buf.view(t.name);
      ASSERT_EQ(got.nbytes, want.size()) << t.name;
      ASSERT_EQ(0, std::memcmp(got.data, want.data(), want.size()))
          << t.name << " (" << n << " elements)";
    }
  }

  static fs::path root_;
};
fs::path ExecutorTiles::root_;

TEST_F(ExecutorTiles, ElementwiseMethodsAreMarkedAndTheRestAreNot) {
  for (const char* m : {"linear", "task_arithmetic", "passthrough", "nearswap", "ram"})
    EXPECT_TRUE(find_method(m)->elementwise) << m;
  // Per-tensor reductions (norms, L1 rescale, top-k, counts) make a slice's result differ.
  for (const char* m :
       {"slerp", "ties", "dare_ties", "dare_linear", "ramplus_tl", "model_stock", "sce", "karcher"})
    EXPECT_FALSE(find_method(m)->elementwise) << m;
}

TEST_F(ExecutorTiles, TiledEqualsPlainForEveryInputAndOutputDtype) {
  for (const char* in : {"BF16", "F16", "F32"})
    for (const char* m : {"linear", "task_arithmetic", "passthrough", "nearswap", "ram"})
      for (DType out : {DType::F32, DType::BF16, DType::F16}) {
        SCOPED_TRACE(std::string(m) + " from " + in + " to " + std::string(dtype_name(out)));
        expect_same_as_plain(config(m, in), out, 2);
      }
}

TEST_F(ExecutorTiles, TiledResultDoesNotDependOnTheThreadCount) {
  for (int threads : {1, 3}) expect_same_as_plain(config("linear", "BF16"), DType::BF16, threads);
}

TEST_F(ExecutorTiles, StreamedGtaEqualsPlainForEveryDtypeAndThreadCount) {
  // ties, dare_ties and dare_linear stream tiles from the stored bytes (methods_stream.h); the
  // plain path converts every input to f32 and runs the kernel on the whole tensor.
  for (const char* in : {"BF16", "F16", "F32"})
    for (const char* m : {"ties", "dare_ties", "dare_linear"})
      for (DType out : {DType::F32, DType::BF16})
        for (int threads : {1, 2, 3}) {
          SCOPED_TRACE(std::string(m) + " from " + in + " to " + std::string(dtype_name(out)) +
                       ", " + std::to_string(threads) + " threads");
          expect_same_as_plain(config(m, in), out, threads);
        }
}

TEST_F(ExecutorTiles, NonElementwiseMethodsThroughMergeIntoEqualPlain) {
  // breadcrumbs_ties and della take the other branch (merge, then one check-and-convert pass).
  for (const char* m : {"breadcrumbs_ties", "della"})
    for (DType out : {DType::F32, DType::BF16}) expect_same_as_plain(config(m, "BF16"), out, 2);
}

TEST_F(ExecutorTiles, NonFiniteResultIsTheSameErrorOnBothPaths) {
  // An f32 model with inf at element 16390 (in the second tile) and NaN at 17001 of its largest
  // tensor: both paths name that tensor, 2 values and the first at element 16390 (a tensor index,
  // not a tile one).
  TinySpec s;
  s.layers = 2, s.vocab = 131, s.hidden = 136, s.intermediate = 253, s.dtype = DType::F32;
  make_tiny_model(root_ / "inf", 99, s);
  const fs::path file = root_ / "inf" / "model.safetensors";
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  io.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  io.read(header.data(), static_cast<std::streamsize>(header_len));
  const auto j = nlohmann::json::parse(header);
  std::string big;
  uint64_t big_offset = 0, big_bytes = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const uint64_t b = it.value()["data_offsets"][0], e = it.value()["data_offsets"][1];
    if (e - b > big_bytes) big = it.key(), big_offset = b, big_bytes = e - b;
  }
  ASSERT_GT(big_bytes / 4, 17001u);
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  for (auto [index, value] : {std::pair<uint64_t, float>{16390, inf}, {17001, nan}}) {
    io.seekp(static_cast<std::streamoff>(8 + header_len + big_offset + 4 * index));
    io.write(reinterpret_cast<const char*>(&value), 4);
  }
  io.close();
  const std::string yaml = "merge_method: linear\nmodels:\n  - {model: " + p("F320") +
                           ", parameters: {weight: 1}}\n  - {model: " + p("inf") +
                           ", parameters: {weight: 1}}\n";
  ModelCache cache;
  MergePlan plan = build_plan(parse_merge_config(yaml, "test.yml"), cache);
  size_t index = plan.tensors.size();
  for (size_t i = 0; i < plan.tensors.size(); ++i)
    if (plan.tensors[i].name == big) index = i;
  ASSERT_LT(index, plan.tensors.size());
  auto error_of = [&](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  Merger merger(MergeOptions{.threads = 2});
  std::vector<float> f32(big_bytes / 4);
  const std::string plain = error_of([&] { merger.merge_tensor_f32(plan, index, f32.data()); });
  MergedBuffers buf(DType::BF16);
  buf.prepare(plan);
  const std::vector<size_t> which = {index};
  const std::string tiled = error_of([&] { merger.merge_into(plan, buf, which); });
  EXPECT_NE(
      plain.find("tensor '" + big + "': the merge produced 2 non-finite values (inf or NaN) of " +
                 std::to_string(big_bytes / 4) + ", the first at element 16390 (inf)"),
      std::string::npos)
      << plain;
  EXPECT_EQ(tiled, plain);
  // The streamed GTA path: the same outcome as its plain path (ties keeps the inf, the largest
  // magnitude: an error; dare_ties' mask happens to drop both here, and the NaN in its L1 norm
  // leaves the weights unscaled: no error on either path).
  for (const char* method : {"ties", "dare_ties"}) {
    const std::string gta = std::string("merge_method: ") + method + "\nbase_model: " + p("F320") +
                            "\nmodels:\n  - {model: " + p("inf") +
                            ", parameters: {weight: 1, density: 0.5}}\n";
    MergePlan gta_plan = build_plan(parse_merge_config(gta, "test.yml"), cache);
    const std::string want =
        error_of([&] { merger.merge_tensor_f32(gta_plan, index, f32.data()); });
    MergedBuffers gta_buf(DType::BF16);
    gta_buf.prepare(gta_plan);
    EXPECT_EQ(want.find("tensor '" + big + "': the merge produced ") != std::string::npos,
              std::string(method) == "ties")
        << method << ": " << want;
    EXPECT_EQ(error_of([&] { merger.merge_into(gta_plan, gta_buf, which); }), want) << method;
  }
}

}  // namespace
}  // namespace evomerge

// The streaming GTA path (methods_stream.h) against the plain kernels (run_method on whole f32
// tensors): the same bits for TIES, DARE-TIES and DARE-linear on awkward sizes (one element, under
// a tile, a tile, a tile and one, several tiles with a ragged end), on values with heavy ties
// (small integers times a scale: the threshold magnitude repeats thousands of times, so the cut
// must go by index), with densities 0 / small / 0.5 / 1, negative weights, every thread count and
// an order of tiles unlike a serial loop; each with the inputs read as f32 and straight from stored
// bf16 elements (TileIo::bf16), and with only some inputs stored as bf16 (the f32 reads then).
#include "merge/methods_stream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "merge/executor.h"
#include "merge/methods.h"
#include "tensor/convert.h"

namespace evomerge {
namespace {

// Tiles last first, as threads might hand them out; one "thread".
struct ReversedTiles : ParallelFor {
  void run(size_t n_chunks, const std::function<void(size_t)>& fn) const override {
    for (size_t c = n_chunks; c-- > 0;) fn(c);
  }
};

struct Inputs {
  std::vector<std::vector<float>> x;  // x[0] is the base
  std::vector<ParamSet> params;
  ParamSet globals;
};

// Values k * 2^-7 for small integers k (drawn by an LCG): differences repeat heavily.
Inputs make_inputs(size_t n, size_t m, uint64_t seed, bool ties_heavy) {
  Inputs in;
  uint64_t s = seed;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 33;
  };
  for (size_t i = 0; i < m; ++i) {
    std::vector<float> v(n);
    for (auto& e : v)
      e = ties_heavy ? static_cast<float>(static_cast<int>(next() % 41) - 20) * 0.0078125f
                     : static_cast<float>(static_cast<double>(next() % 2000001) * 1e-6 - 1.0);
    in.x.push_back(std::move(v));
  }
  in.params.resize(m);
  return in;
}

// How streamed() hands the inputs to the stream: f32 reads only, or also their stored bf16
// elements (all inputs, or all but the last).
enum class Stored { F32, Bf16, Bf16ButLast };

// The inputs rounded to bf16 (so the stored bf16 elements and the f32 values are the same numbers).
Inputs bf16_values(Inputs in) {
  for (auto& x : in.x)
    for (float& e : x) e = bf16_to_f32(f32_to_bf16(e));
  return in;
}

std::vector<float> plain(const std::string& method, const Inputs& in, size_t n,
                         const ParallelFor* par) {
  KernelArgs a;
  a.tensor = "model.layers.3.mlp.down_proj.weight";
  a.shape = {static_cast<int64_t>(n)};
  for (const auto& x : in.x) a.inputs.push_back(x.data());
  for (const auto& p : in.params) a.params.push_back(&p);
  a.base = 0;
  a.globals = &in.globals;
  a.seed = 42;
  a.parallel = par;
  std::vector<float> out(n);
  run_method(method, a, out.data());
  return out;
}

std::vector<float> streamed(const std::string& method, const Inputs& in, size_t n,
                            const ParallelFor* par, Stored stored = Stored::F32) {
  KernelArgs a;
  a.tensor = "model.layers.3.mlp.down_proj.weight";
  a.shape = {static_cast<int64_t>(n)};
  for (const auto& p : in.params) a.params.push_back(&p);
  a.base = 0;
  a.globals = &in.globals;
  a.seed = 42;
  a.parallel = par;
  EXPECT_TRUE(gta_streams(method, a, in.x.size()));
  std::vector<float> out(n, -1234.5f);
  std::vector<int> emitted((n + stream_tile_elements() - 1) / stream_tile_elements(), 0);
  std::mutex mu;
  TileIo io;
  io.read = [&](size_t i, size_t b, size_t len, float* dst) {
    std::copy_n(in.x[i].data() + b, len, dst);
  };
  std::vector<std::vector<uint16_t>> raw(in.x.size());
  if (stored != Stored::F32) {
    for (size_t i = 0; i < in.x.size(); ++i) {
      for (float e : in.x[i]) raw[i].push_back(f32_to_bf16(e));
      for (size_t k = 0; k < n; ++k) EXPECT_EQ(bf16_to_f32(raw[i][k]), in.x[i][k]);
    }
    io.bf16 = [&](size_t i) -> const uint16_t* {
      return stored == Stored::Bf16ButLast && i + 1 == raw.size() ? nullptr : raw[i].data();
    };
  }
  io.emit = [&](size_t tile, size_t b, size_t len, const float* merged) {
    std::copy_n(merged, len, out.data() + b);
    std::lock_guard<std::mutex> lock(mu);
    ++emitted[tile];
  };
  run_gta_stream(method, a, in.x.size(), io);
  for (size_t t = 0; t < emitted.size(); ++t) EXPECT_EQ(emitted[t], 1) << "tile " << t;
  return out;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << what << ": first difference at " << first << " (" << got[first] << " vs "
                     << want[first] << ")";
}

const size_t kSizes[] = {1, 7, 1000, 32768, 32769, 100003};

TEST(GtaStream, EqualsPlainOnAwkwardSizesDensitiesAndTies) {
  ThreadPool serial(1);
  for (const char* method : {"ties", "dare_ties", "dare_linear"})
    for (size_t n : kSizes)
      for (bool ties_heavy : {true, false})
        for (double d1 : {0.5, 0.0, 1.0, 0.013}) {
          Inputs in = make_inputs(n, 4, n * 31 + (ties_heavy ? 1 : 0), ties_heavy);
          in.params[1] = {{"weight", 0.7}, {"density", d1}};
          in.params[2] = {{"weight", -0.35}, {"density", 0.5}};
          in.params[3] = {{"weight", 1.3}, {"density", 0.9}};
          const std::string what = std::string(method) + " n=" + std::to_string(n) + " density " +
                                   std::to_string(d1) + (ties_heavy ? " tied values" : "");
          expect_same_bits(streamed(method, in, n, &serial), plain(method, in, n, nullptr), what);
          const Inputs rounded = bf16_values(in);
          const std::vector<float> want = plain(method, rounded, n, nullptr);
          for (Stored st : {Stored::Bf16, Stored::Bf16ButLast})
            expect_same_bits(streamed(method, rounded, n, &serial, st), want, what + " bf16");
        }
}

TEST(GtaStream, DoesNotDependOnThreadsOrTileOrder) {
  ThreadPool one(1), two(2), three(3);
  ReversedTiles reversed;
  const size_t n = 5 * 32768 + 17;
  for (const char* method : {"ties", "dare_ties", "dare_linear"}) {
    Inputs in = make_inputs(n, 3, 9, true);
    in.params[1] = {{"weight", 0.5}, {"density", 0.3}};
    in.params[2] = {{"weight", 0.5}, {"density", 0.7}};
    const std::vector<float> want = plain(method, in, n, nullptr);
    for (const ParallelFor* par :
         std::initializer_list<const ParallelFor*>{nullptr, &one, &two, &three, &reversed})
      for (Stored st : {Stored::F32, Stored::Bf16})  // the tied values are bf16 numbers
        expect_same_bits(streamed(method, in, n, par, st), want, method);
  }
}

TEST(GtaStream, IdenticalModelsAndParameterVariants) {
  // All task vectors zero (a threshold of 0: every value ties); lambda, normalize and rescale set.
  ThreadPool two(2);
  const size_t n = 40000;
  Inputs in = make_inputs(n, 3, 5, true);
  in.x[2] = in.x[0];
  in.params[1] = {{"weight", 0.25}, {"density", 0.6}};
  in.params[2] = {{"weight", 0.75}, {"density", 0.6}};
  for (const char* method : {"ties", "dare_ties", "dare_linear"})
    for (const ParamSet& g : {ParamSet{}, ParamSet{{"lambda", 0.6}, {"normalize", 1}},
                              ParamSet{{"rescale", 0}, {"normalize", 0}}}) {
      in.globals = g;
      expect_same_bits(streamed(method, in, n, &two), plain(method, in, n, nullptr), method);
    }
}

TEST(GtaStream, LargeTensorsSelectInASampledWindowWithTheSameBits) {
  // Over 8 tiles TIES estimates a window around the threshold from a sample and selects inside it;
  // where the window misses or overflows it falls back to the two histogram passes. Cases: heavy
  // ties (the cut goes by index, counted per tile from the window), distinct values, an all-zero
  // task vector (the window holds everything: overflow), and a tensor whose sampled runs hold tiny
  // values and the rest large ones (the sample puts the window far below the true threshold), and
  // fine-tune-like deltas (a few values, each repeated by the tens of thousands, at the window's
  // bounds: counted there, not kept).
  ThreadPool one(1), two(2), three(3);
  const size_t n = 9 * 32768 + 5;
  for (int variant = 0; variant < 5; ++variant)
    for (double d1 : {0.5, 0.013, 0.9}) {
      Inputs in = make_inputs(n, 3, 77 + variant, variant != 1);
      if (variant == 2) in.x[2] = in.x[0];
      if (variant == 3)
        for (size_t j = 0; j < 1024; ++j)  // the sample's runs: 1024 of 64 elements, evenly spaced
          for (size_t k = 0; k < 64; ++k)
            in.x[1][j * (n - 64) / 1023 + k] = in.x[0][j * (n - 64) / 1023 + k] + 1e-6f;
      if (variant == 4)  // like a fine-tune: most deltas 0, many one step, fewer two or three
        for (size_t j = 0; j < n; ++j) {
          const int steps[16] = {0, 0, 0, 0, 0, 0, 0, 1, -1, 1, -1, 1, -2, 2, 3, -1};
          in.x[1][j] =
              in.x[0][j] + static_cast<float>(steps[(j * 2654435761u >> 7) % 16]) * 0.0078125f;
        }
      in.params[1] = {{"weight", 0.6}, {"density", d1}};
      in.params[2] = {{"weight", 0.4}, {"density", 0.35}};
      const std::string what =
          "variant " + std::to_string(variant) + " density " + std::to_string(d1);
      const std::vector<float> want = plain("ties", in, n, nullptr);
      for (const ParallelFor* par : std::initializer_list<const ParallelFor*>{&one, &two, &three})
        expect_same_bits(streamed("ties", in, n, par), want, what);
      const Inputs rounded = bf16_values(in);
      const std::vector<float> want16 = plain("ties", rounded, n, nullptr);
      for (const ParallelFor* par : std::initializer_list<const ParallelFor*>{&one, &two, &three})
        expect_same_bits(streamed("ties", rounded, n, par, Stored::Bf16), want16, what + " bf16");
    }
}

TEST(GtaStream, AppliesOnlyWhereItGivesThePlainBits) {
  Inputs in = make_inputs(10, 3, 1, false);
  in.params[1] = {{"weight", 1}, {"density", 0.5}};
  in.params[2] = {{"weight", 1}, {"density", 1}};
  KernelArgs a;
  a.shape = {10};
  for (const auto& p : in.params) a.params.push_back(&p);
  a.base = 0;
  a.globals = &in.globals;
  EXPECT_TRUE(gta_streams("ties", a, 3));
  EXPECT_TRUE(gta_streams("dare_ties", a, 3));
  EXPECT_TRUE(gta_streams("dare_linear", a, 3));
  for (const char* m : {"task_arithmetic", "breadcrumbs", "della", "sce", "linear"})
    EXPECT_FALSE(gta_streams(m, a, 3)) << m;
  EXPECT_FALSE(gta_streams("ties", a, 1));  // no task vector: the plain path copies the base
  a.shape = {65536, 65536};
  EXPECT_FALSE(gta_streams("ties", a, 3));  // 2^32 elements: past the 32-bit histogram counts
  a.shape = {10};
  a.base = -1;
  EXPECT_FALSE(gta_streams("ties", a, 3));  // no base: the plain path's error
  a.base = 0;
  ParamSet rescale{{"rescale", 1}};
  a.globals = &rescale;
  EXPECT_FALSE(gta_streams("ties", a, 3));  // TIES with L1 rescale of a cut vector
}

}  // namespace
}  // namespace evomerge

// The merge methods: a registry (parameters, defaults, base-model use) and the kernels, which work on
// f32 arrays of one tensor. The plan (merge.h) fills parameters from the registry; the executors call
// run_method(). Tests call run_method() directly on hand-computed tensors.
//
// Math and defaults follow docs/mergekit-compat.md (the behavioural spec of mergekit); where we fix
// an upstream quirk instead of matching it, that file says so.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "merge/merge.h"
#include "tensor/tensor.h"

namespace evomerge {

struct MethodParam {
  std::string name;
  std::optional<double> default_value;  // nullopt: required
};

enum class BaseUse { Ignored, Optional, Required };

struct MethodSpec {
  std::string name;
  std::vector<MethodParam> globals;    // read from slice / top-level parameters (output tensor name)
  std::vector<MethodParam> per_model;  // read from the model's own parameters first (input tensor name)
  BaseUse base = BaseUse::Ignored;
  int min_inputs = 1;   // tensors present, base included
  int max_inputs = 0;   // 0: no limit
  bool base_is_input = false;  // the base is one more weighted input (linear, karcher): its per-model
                               // parameters are evaluated like the others'
  // Output element j depends only on element j of each input and on per-tensor parameters (no
  // reductions, no RNG, no shape): run_method on any slice of the inputs gives that slice of the
  // result, bit for bit. The executor then merges tile by tile straight from the stored bytes.
  bool elementwise = false;
};

const MethodSpec* find_method(std::string_view name);
std::vector<std::string> method_names();

// Runs `parallel(n_chunks, fn(chunk))` over chunks; the default runs them in order on this thread.
// Kernels split elementwise work into fixed-size chunks and combine reductions chunk by chunk in
// order, so results never depend on the number of threads.
struct ParallelFor {
  virtual ~ParallelFor() = default;
  virtual void run(size_t n_chunks, const std::function<void(size_t)>& fn) const;
  // How many threads run() may use at once, and which of them is calling (0 .. threads()-1, inside
  // a chunk): per-thread scratch (selection histograms) without locks or per-chunk copies.
  virtual size_t threads() const { return 1; }
  virtual size_t thread_index() const { return 0; }
};

struct KernelArgs {
  std::string_view tensor;                    // output tensor name (RNG key)
  Shape shape;
  std::vector<const float*> inputs;           // numel(shape) values each
  std::vector<const ParamSet*> params;        // per input
  int base = -1;                              // index into inputs, -1 if none
  const ParamSet* globals = nullptr;
  uint64_t seed = 0;
  const ParallelFor* parallel = nullptr;      // nullptr: serial
};

// Computes the merged tensor into out[numel]. Throws Error for runtime conditions the plan cannot
// see (e.g. "weights sum to zero" evaluated per tensor, multislerp's degenerate mean).
void run_method(std::string_view method, const KernelArgs& args, float* out);

// The value of rank r (0-based, ascending) among values[0..n), with how many values are smaller and
// how many are equal to it: the selection behind TIES, breadcrumbs and SCE top-k. rank_value is a
// 3-pass radix select on the float bits; rank_value_reference (nth_element on a copy) is the plain
// version it is tested against.
struct RankValue {
  float value = 0;
  size_t less = 0;
  size_t equal = 0;
};
RankValue rank_value(const float* values, size_t n, size_t r);
RankValue rank_value_reference(const float* values, size_t n, size_t r);
// rank_value over |values[i]| (no |x| buffer): TIES magnitude selection. `par` (optional) spreads
// the histogram passes over threads; the result is the same.
RankValue rank_value_of_abs(const float* values, size_t n, size_t r, const ParallelFor* par = nullptr);

// Counter-based random numbers (splitmix64 finaliser over a key and an index): uniform in [0,1).
uint64_t rng_key(uint64_t seed, std::string_view tensor, uint64_t stream);
double rng_uniform(uint64_t key, uint64_t index);

}  // namespace evomerge

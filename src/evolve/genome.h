// Search spaces: how a CMA-ES point (already mapped into its box, evolve/bounds.h) becomes a
// candidate merge.
//
// PS (parameter space): merge parameters per source model and per layer group, optionally per
// tensor filter, over a base method. Decoded into a mergekit-style config of the merge engine with
// one slice per layer group (mergekit-evolve's "discrete" layout), so the recipe is exportable as
// YAML that `evomerge merge` and mergekit run. Weights are not forced to sum to 1 (the paper's best
// summed ~2).
//
//   gene layout: for each slot (layer groups 0..G-1, then "embed" and "head" when separate), for
//   each filter set ("self_attn", "mlp", ..., then "*" for the rest; just "*" without filters), for
//   each evolved model: weight, then density (ties / dare_ties). slerp: one t per slot and filter
//   set.
//
// DFS (data-flow space, paper section 3.2): an indicator array I of length T = M * r over the M
// layers of all models laid out in order (model 0's layers first) and repeated r times; layer t mod
// M is on the path when I[t] > 0. Then a scaling matrix W: W[i][j] scales the hidden state passed
// from layer i to layer j (global layer indices), or per model pair in the reduced form. The path
// starts with model 0's first layer and ends with its last layer (the paper's model A); embeddings,
// final norm and head are model 0's. Decoded into infer/engine.h LayerHops. Instead of W, the
// released EvoMistral model's form is available: one input scale per hop (per indicator entry,
// plus one for the fixed end hop).
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/engine.h"
#include "merge/config.h"

namespace evomerge {

// One gene's own start and range, overriding the space-wide ones (PsSpaceOptions::genes).
struct GeneOverride {
  std::optional<double> init;
  std::optional<double> lower, upper;
};

struct PsSpaceOptions {
  std::string method = "dare_ties";  // dare_ties, ties, task_arithmetic, linear, slerp
  std::vector<std::string> models;   // evolved source models (references); slerp: exactly 2
  std::string base_model;  // ties/dare_ties/task_arithmetic: required; slerp: default models[0]
  int num_layers = 0;      // layers of the (common) architecture
  int layer_groups = 1;    // 1 .. num_layers (groups of nearly equal size, in order)
  bool separate_embed_head = false;  // own genes for embed_tokens and for model.norm + lm_head
  std::vector<std::string>
      filters;  // tensor-name substrings with their own genes, e.g. self_attn, mlp
  double weight_min = 0.0, weight_max = 1.0;
  double density_min = 0.0, density_max = 1.0;
  double t_min = 0.0, t_max = 1.0;
  double init_weight = 0.5, init_density = 0.5, init_t = 0.5;  // the paper starts every gene at 0.5
  std::optional<bool> normalize;  // ties/dare_ties/task_arithmetic/linear; unset: method default
  std::optional<DType> out_dtype;
  // Per-gene start and range by gene name (GeneInfo::name(), e.g. "layers[0,4)/model1/weight");
  // an unknown name or a start outside the gene's range is an error naming the gene.
  std::map<std::string, GeneOverride> genes;
};

// One gene's meaning, for reports and the run store.
struct GeneInfo {
  std::string slot;    // "layers[0,8)", "embed", "head"
  std::string filter;  // "*" or a filter substring
  int model = -1;      // index into models (-1 for slerp's t)
  std::string param;   // "weight", "density", "t"
  std::string name() const;
};

// The merge methods a PS search can evolve: dare_ties, ties, task_arithmetic, linear, slerp.
bool is_searchable_ps_method(std::string_view method);

class PsGenome {
 public:
  explicit PsGenome(PsSpaceOptions options);  // Error on a bad option (names the field)

  const PsSpaceOptions& options() const { return options_; }
  size_t dimension() const { return genes_.size(); }
  const std::vector<GeneInfo>& genes() const { return genes_; }
  std::vector<double> lower() const;
  std::vector<double> upper() const;
  std::vector<double> initial() const;
  // Layer groups as [start, end) ranges.
  const std::vector<std::pair<int, int>>& groups() const { return groups_; }

  // The merge config for a feasible point x (dimension() values inside [lower, upper]).
  MergeConfig decode(std::span<const double> x) const;
  // The same as mergekit YAML.
  std::string to_yaml(std::span<const double> x) const;
  // Human/queryable form: {"method", "models": [{"model", "weight": [per slot], ...}], ...}.
  nlohmann::json describe(std::span<const double> x) const;
  // A uniform merge (every model the same weight w, density d / t) as a point of this space.
  std::vector<double> uniform_point(double weight, double density_or_t) const;
  // The same with one weight per model (models.size() values, e.g. lambda_A = 0.5, lambda_B = 1.5)
  // in every slot and filter set; each value is clamped into its gene's range.
  std::vector<double> uniform_point(std::span<const double> model_weights,
                                    double density_or_t) const;

 private:
  bool uses_density() const;
  bool is_slerp() const;
  void build_genes();
  double gene_setting(const GeneInfo& g, std::optional<double> GeneOverride::*field, double weight,
                      double density, double t) const;
  PsSpaceOptions options_;
  std::vector<std::pair<int, int>> groups_;
  std::vector<std::string> slots_;
  std::vector<std::string> filter_sets_;  // options.filters then "*"
  std::vector<GeneInfo> genes_;
};

// Full: W[i][j] for every pair of global layers (M*M genes). ModelPair: one scale per pair of
// models (K*K). PerHop: one scale per indicator entry t (T genes) for the hop it switches on, plus
// one for the fixed end hop (T + 1 genes), the released EvoMistral model's input_scales.
enum class DfsScaling { Full, ModelPair, PerHop };

struct DfsSpaceOptions {
  std::vector<int> layers_per_model;  // model 0 is model A (start, end, embeddings, head)
  int repeats = 3;                    // r
  DfsScaling scaling = DfsScaling::Full;
  double scale_min = 0.1, scale_max = 2.0;  // scales stay positive
  double init_scale = 1.0;
  // Initial indicator values: model A's layers in the first repetition get `init_on` (the paper's
  // 2 sigma), every other entry `init_off`. init_on > 0 >= init_off is required, so the start is
  // exactly model A's plain path (with PS+DFS, the PS winner itself).
  double init_on = 0.5, init_off = 0.0;
};

class DfsGenome {
 public:
  explicit DfsGenome(DfsSpaceOptions options);

  const DfsSpaceOptions& options() const { return options_; }
  int total_layers() const { return total_layers_; }                       // M
  int indicator_size() const { return total_layers_ * options_.repeats; }  // T
  int scale_size() const;  // M*M, K*K per model pair, or T + 1 per hop
  size_t dimension() const { return static_cast<size_t>(indicator_size() + scale_size()); }
  // Indicator genes are unbounded (-inf, inf); scale genes are in [scale_min, scale_max].
  std::vector<double> lower() const;
  std::vector<double> upper() const;
  std::vector<double> initial() const;

  // (model, layer) of global layer index g in [0, M).
  std::pair<int, int> layer_of(int g) const;
  int global_index(int model, int layer) const;

  // The path: model A's layer 0, then every layer t mod M with I[t] > 0 in order of t (t = 0, the
  // fixed start itself, is skipped), then model A's last layer unless the path already ends with
  // it. Hop k > 0 has input_scale W[prev][this]; hop 0 reads the embeddings and has scale 1.
  std::vector<LayerHop> decode(std::span<const double> x) const;
  nlohmann::json describe(std::span<const double> x) const;

 private:
  double scale(std::span<const double> x, int from_global, int to_global) const;
  DfsSpaceOptions options_;
  int total_layers_ = 0;
  std::vector<int> offsets_;  // first global index of each model
};

}  // namespace evomerge

// mergekit YAML merge configurations (the schema of mergekit's MergeConfiguration), parsed from
// text or built in code (the evolution engine builds one per candidate).
//
// Supported: merge_method, base_model, models (with per-model parameters), slices (sources with
// layer_range, per-slice base_model and parameters), parameters at every level, scalar / gradient /
// conditional-list (filter) values, dtype, out_dtype, tokenizer_source (union, base or a
// model) and tokenizer {source, tokens, pad_to_multiple_of} (merge/tokenizer_merge.h),
// chat_template (auto, a built-in name or Jinja: merge/chat_templates.h), residual_weight (parsed,
// unused as upstream). `modules:` (multi-module architectures) is rejected with a clear error.
//
// Errors name the file, the YAML line and the key:
//   "[merge-config] recipe.yml:7: models[1].parameters.weight: expected a number, a list of numbers
//   or a filter list"
// What mergekit accepts and ignores (unknown keys anywhere: pydantic drops them) is not an error
// but a warning with the same place, collected in MergeConfig::warnings ("... has no effect");
// build_plan adds the parameters the method does not read, and MergeOptions::strict makes any
// warning an error. Duplicate keys and several YAML documents are errors (common/yaml.h), as are
// parameter values outside what mergekit's math needs (density in (0, 1], |value| <= 1e6, ...).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace evomerge {

// One mergekit ParameterSetting.
//  - Scalar: a number (booleans read as 1/0, as pydantic coerces them).
//  - Gradient: numbers g[0..K-1] spread evenly over t in [0,1], piecewise-linear (K=1 is a constant).
//  - Filtered: a list of {filter, value}; the first case whose filter is empty, "*" or a substring of the
//    tensor name decides; when none matches the value is absent (lookup falls through to the next level).
struct ParamValue {
  enum class Kind { Scalar, Gradient, Filtered };
  struct Case {
    std::string filter;  // "" or "*": matches every tensor
    std::shared_ptr<const ParamValue> value;
  };

  Kind kind = Kind::Scalar;
  double scalar = 0.0;
  std::vector<double> gradient;
  std::vector<Case> cases;
  int line = 0;  // YAML line (1-based) for error messages; 0 when built in code

  static ParamValue constant(double value);
  static ParamValue ramp(std::vector<double> knots);
  // Cases in order; an empty filter is the catch-all.
  static ParamValue filtered(std::vector<std::pair<std::string, ParamValue>> cases);

  // Value for `tensor_name` at layer position t in [0,1] (see mergekit-compat.md §1.3).
  std::optional<double> evaluate(std::string_view tensor_name, double t) const;
};

using ParamMap = std::map<std::string, ParamValue, std::less<>>;

// "path_or_org/name[+lora_adapter_folder]". A reference is also the key of the model cache.
struct ModelRef {
  std::string path;  // local folder, or "org/name" in the local Hugging Face cache
  std::string lora;  // PEFT adapter folder (adapter_config.json + adapter_model.safetensors), or ""

  // Splits on '+' (at most one). "@revision" suffixes are rejected clearly (we never download).
  static ModelRef parse(std::string_view text, std::string_view where);
  std::string str() const { return lora.empty() ? path : path + "+" + lora; }
  bool operator==(const ModelRef&) const = default;
  bool empty() const { return path.empty(); }
};

struct InputModel {  // an entry of `models:`
  ModelRef model;
  ParamMap parameters;
  int line = 0;
};

struct SliceSource {  // an entry of `slices[k].sources`
  ModelRef model;
  int layer_start = 0;  // [start, end), as mergekit's layer_range
  int layer_end = 0;
  ParamMap parameters;
  int line = 0;
};

struct OutputSlice {
  std::vector<SliceSource> sources;
  std::optional<ModelRef> base_model;  // overrides the top-level base_model for this slice
  ParamMap parameters;
  int line = 0;
};

// One entry of `tokenizer.tokens` (mergekit's TokenEmbeddingConfig): where the embedding row of a
// token of the merged vocabulary comes from when a model lacks it (or always, with force).
struct TokenEmbeddingSource {
  enum class Kind { Default, Model, ModelToken, Zero };
  Kind kind = Kind::Default;        // Default: mergekit's rule (one model has it / base / average)
  ModelRef model;                   // Model, ModelToken
  std::optional<int64_t> token_id;  // ModelToken: a row of `model`, by id ...
  std::string token;                // ... or by the token's string in that model's vocabulary
  bool force = false;               // use this source even for models that have the token
  int line = 0;
};

// `tokenizer: {source, tokens, pad_to_multiple_of}`; `given` is false for plain tokenizer_source.
struct TokenizerSpec {
  bool given = false;
  std::map<std::string, TokenEmbeddingSource> tokens;
  std::optional<int64_t> pad_to_multiple_of;
};

struct MergeConfig {
  std::string merge_method;
  std::optional<ModelRef> base_model;
  std::vector<InputModel> models;   // exactly one of models / slices is non-empty
  std::vector<OutputSlice> slices;
  ParamMap parameters;              // top-level (catch-all) parameters
  std::optional<DType> dtype;       // mergekit's load dtype; here: the output dtype when out_dtype is unset
  std::optional<DType> out_dtype;
  std::string tokenizer_source;  // "", "base", "union" or a model reference (also tokenizer.source)
  TokenizerSpec tokenizer;
  std::string chat_template;        // passed through into tokenizer_config.json when set
  std::string source_text;          // the YAML as given (written to mergekit_config.yml); empty if built in code
  std::string where = "<config>";   // file name for error messages
  std::vector<std::string> warnings;  // "file:line: key: ... has no effect (...)", in file order

  // Every distinct model reference (base first when set), in order of first appearance.
  std::vector<ModelRef> referenced_models() const;
};

// Parses mergekit YAML. `where` names the source in errors (a file name).
MergeConfig parse_merge_config(std::string_view yaml_text, std::string_view where = "<config>");
MergeConfig load_merge_config(const std::filesystem::path& path);

// mergekit YAML for a config (round-trips through parse_merge_config): how configs built in code are
// written to mergekit_config.yml and exported as recipes.
std::string merge_config_to_yaml(const MergeConfig& config);

}  // namespace evomerge

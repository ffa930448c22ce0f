// mergekit YAML parsing: the reference's example configs, parameter evaluation (gradients,
// filters), and errors that name the line and key.
#include "merge/config.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace evomerge {
namespace {

std::string error_of(std::string_view yaml) {
  try {
    parse_merge_config(yaml, "cfg.yml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Gradient, WorkedExampleFromTheReference) {
  // 40 layers, t: [0, 0.5, 0.3, 0.7, 1]; layer 10 -> t = 10/39, s = 1.0256 -> 0.5*0.9744 +
  // 0.3*0.0256
  ParamValue v = ParamValue::ramp({0, 0.5, 0.3, 0.7, 1});
  double t = 10.0 / 39.0;
  double s = t * 4, f = s - 1;
  EXPECT_NEAR(*v.evaluate("x", t), (1 - f) * 0.5 + f * 0.3, 1e-12);
  EXPECT_NEAR(*v.evaluate("x", t), 0.4949, 1e-4);
  // the ends are the first and last knots
  EXPECT_DOUBLE_EQ(*v.evaluate("x", 0.0), 0.0);
  EXPECT_DOUBLE_EQ(*v.evaluate("x", 1.0), 1.0);
  EXPECT_DOUBLE_EQ(*ParamValue::ramp({0.25}).evaluate("x", 0.7), 0.25);
}

// mergekit's model cards print the normalised config: `modules: {default: ...}` for the one
// module of a decoder-only model. It is the same merge as models:/slices: at the top level, the
// module's parameters above the top level's.
TEST(Modules, DefaultModuleIsTheTopLevelMerge) {
  MergeConfig c = parse_merge_config(
      "merge_method: ties\nbase_model: b\nparameters: {normalize: 0, lambda: 2}\nmodules:\n"
      "  default:\n    slices:\n      - sources:\n          - {model: a, layer_range: [0, 4]}\n"
      "          - {model: b, layer_range: [0, 4]}\n    parameters: {lambda: 0.9}\n",
      "cfg.yml");
  ASSERT_EQ(c.slices.size(), 1u);
  ASSERT_EQ(c.slices[0].sources.size(), 2u);
  EXPECT_EQ(c.slices[0].sources[0].model.path, "a");
  EXPECT_EQ(c.slices[0].sources[0].layer_end, 4);
  EXPECT_DOUBLE_EQ(*c.parameters.at("lambda").evaluate("x", 0), 0.9);
  EXPECT_DOUBLE_EQ(*c.parameters.at("normalize").evaluate("x", 0), 0.0);
  EXPECT_NE(error_of("merge_method: linear\nmodels: [{model: a}]\nmodules:\n  default:\n"
                     "    models: [{model: a}]\n")
                .find("cfg.yml:4: modules: cannot be combined with top-level models: or slices:"),
            std::string::npos);
  EXPECT_NE(error_of("merge_method: linear\nmodules:\n  default: {}\n")
                .find("exactly one of 'models' and 'slices'"),
            std::string::npos);
}

TEST(Filters, FirstMatchingSubstringWins) {
  ParamValue v = ParamValue::filtered(
      {{"self_attn", ParamValue::ramp({0, 1})}, {"mlp", ParamValue::constant(0.9)}});
  EXPECT_DOUBLE_EQ(*v.evaluate("model.layers.3.self_attn.q_proj.weight", 0.25), 0.25);
  EXPECT_DOUBLE_EQ(*v.evaluate("model.layers.3.mlp.up_proj.weight", 0.25), 0.9);
  EXPECT_FALSE(
      v.evaluate("model.norm.weight", 0.0).has_value());  // falls through to the next level
  ParamValue w =
      ParamValue::filtered({{"mlp", ParamValue::constant(0.5)}, {"", ParamValue::constant(0)}});
  EXPECT_DOUBLE_EQ(*w.evaluate("model.norm.weight", 0.0), 0.0);
}

TEST(Parse, TiesExampleWithGradientsAndFilters) {
  MergeConfig c = parse_merge_config(R"(merge_method: ties
base_model: org/llama2-13b
parameters: {normalize: true, int8_mask: true}
dtype: float16
models:
  - {model: org/a, parameters: {density: [1, 0.7, 0.1], weight: 1.0}}
  - {model: org/b, parameters: {density: 0.5, weight: [0, 0.3, 0.7, 1]}}
  - model: org/c
    parameters:
      density: 0.33
      weight: [{filter: mlp, value: 0.5}, {value: 0}]
)",
                                     "ties.yml");
  EXPECT_EQ(c.merge_method, "ties");
  ASSERT_TRUE(c.base_model);
  EXPECT_EQ(c.base_model->path, "org/llama2-13b");
  EXPECT_EQ(c.dtype, DType::F16);
  ASSERT_EQ(c.models.size(), 3u);
  EXPECT_DOUBLE_EQ(*c.parameters.at("normalize").evaluate("x", 0), 1.0);  // true -> 1
  EXPECT_EQ(c.models[0].parameters.at("density").kind, ParamValue::Kind::Gradient);
  EXPECT_DOUBLE_EQ(*c.models[0].parameters.at("density").evaluate("x", 0.5), 0.7);
  const ParamValue& w = c.models[2].parameters.at("weight");
  EXPECT_DOUBLE_EQ(*w.evaluate("model.layers.0.mlp.up_proj.weight", 0), 0.5);
  EXPECT_DOUBLE_EQ(*w.evaluate("model.layers.0.self_attn.q_proj.weight", 0), 0.0);
  EXPECT_EQ(c.models[2].line, 8);
  // base first, then models in order
  auto refs = c.referenced_models();
  ASSERT_EQ(refs.size(), 4u);
  EXPECT_EQ(refs[0].path, "org/llama2-13b");
  EXPECT_EQ(refs[3].path, "org/c");
}

TEST(Parse, PassthroughSlicesAndLora) {
  MergeConfig c = parse_merge_config(R"(merge_method: passthrough
dtype: float16
slices:
  - sources: [{model: org/a-13b, layer_range: [0, 24]}]
  - sources:
      - model: org/b-13b+adapters/b-lora
        layer_range: [20, 40]
        parameters: {scale: [{filter: o_proj, value: 0}, {value: 1}]}
)");
  ASSERT_EQ(c.slices.size(), 2u);
  EXPECT_EQ(c.slices[0].sources[0].layer_start, 0);
  EXPECT_EQ(c.slices[0].sources[0].layer_end, 24);
  EXPECT_EQ(c.slices[1].sources[0].model.path, "org/b-13b");
  EXPECT_EQ(c.slices[1].sources[0].model.lora, "adapters/b-lora");
  EXPECT_EQ(c.slices[1].sources[0].model.str(), "org/b-13b+adapters/b-lora");
}

TEST(Parse, RoundTripThroughYaml) {
  MergeConfig c;
  c.merge_method = "dare_ties";
  c.base_model = ModelRef{"base", ""};
  c.parameters["int8_mask"] = ParamValue::constant(1);
  c.dtype = DType::BF16;
  for (std::string m : {"a", "b"}) {
    InputModel im;
    im.model = ModelRef{m, ""};
    im.parameters["weight"] = ParamValue::ramp({0.1, 0.25, 0.3333333333333333});
    im.parameters["density"] = ParamValue::filtered(
        {{"self_attn", ParamValue::constant(0.4)}, {"", ParamValue::constant(0.6)}});
    c.models.push_back(im);
  }
  MergeConfig back = parse_merge_config(merge_config_to_yaml(c));
  EXPECT_EQ(back.merge_method, "dare_ties");
  EXPECT_EQ(back.base_model->path, "base");
  EXPECT_EQ(back.dtype, DType::BF16);
  ASSERT_EQ(back.models.size(), 2u);
  EXPECT_DOUBLE_EQ(*back.models[1].parameters.at("weight").evaluate("x", 1.0), 0.3333333333333333);
  EXPECT_DOUBLE_EQ(*back.models[1].parameters.at("density").evaluate("a.self_attn.b", 0), 0.4);
  EXPECT_DOUBLE_EQ(*back.models[1].parameters.at("density").evaluate("a.mlp.b", 0), 0.6);
}

TEST(ParseErrors, NameTheLineAndKey) {
  std::string e =
      error_of("merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight: abc\n");
  EXPECT_NE(e.find("cfg.yml:5"), std::string::npos) << e;
  EXPECT_NE(e.find("models[0].parameters.weight"), std::string::npos) << e;

  e = error_of("models: [{model: a}]\n");
  EXPECT_NE(e.find("merge_method"), std::string::npos) << e;

  e = error_of(
      "merge_method: linear\nmodels: [{model: a}]\nslices: [{sources: [{model: a, layer_range: [0, "
      "1]}]}]\n");
  EXPECT_NE(e.find("exactly one of"), std::string::npos) << e;

  e = error_of(
      "merge_method: passthrough\nslices:\n  - sources:\n    - {model: a, layer_range: [4, 2]}\n");
  EXPECT_NE(e.find("cfg.yml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("layer_range"), std::string::npos) << e;

  e = error_of("merge_method: linear\ndtype: float8\nmodels: [{model: a}]\n");
  EXPECT_NE(e.find("float8"), std::string::npos) << e;

  e = error_of("merge_method: linear\nmodels: [{model: a+b+c}]\n");
  EXPECT_NE(e.find("more than one '+'"), std::string::npos) << e;

  e = error_of(
      "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: {filter: mlp, value: "
      "1}}\n");
  EXPECT_NE(e.find("must be written as a list"), std::string::npos) << e;

  e = error_of("merge_method: linear\nmodules:\n  text:\n    models: [{model: a}]\n");
  EXPECT_NE(e.find("cfg.yml:3: modules: per-module merges (architectures with several modules, "
                   "e.g. text and vision) are not "
                   "supported"),
            std::string::npos)
      << e;

  e = error_of("merge_method: linear\nmodels: [{model: a}\n");
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

// mergekit (pydantic) drops unknown keys: they are warnings naming file, line and key.
TEST(Warnings, UnknownKeysAtEveryLevelNameFileLineAndKey) {
  MergeConfig c = parse_merge_config(R"(merge_method: ties
normalize: true
base_model: {model: {path: org/base}, trust: yes}
models:
  - model: org/a
    parameters:
      weight: [{filter: mlp, value: 1, note: x}, {value: 0.5}]
      density: 0.5
    comment: hi
slices_note: 1
)",
                                     "w.yml");
  ASSERT_EQ(c.warnings.size(), 5u);
  EXPECT_EQ(c.warnings[0],
            "w.yml:2: normalize: unknown key, has no effect (known: merge_method, base_model, "
            "models, slices, "
            "modules, parameters, dtype, out_dtype, tokenizer_source, tokenizer, chat_template)");
  EXPECT_EQ(c.warnings[1].substr(0, 30), "w.yml:3: base_model.trust: unk");
  EXPECT_EQ(c.warnings[2].substr(0, 58),
            "w.yml:7: models[0].parameters.weight[0].note: unknown key,");
  EXPECT_EQ(c.warnings[3].substr(0, 35), "w.yml:9: models[0].comment: unknown");
  EXPECT_EQ(c.warnings[4].substr(0, 50), "w.yml:10: slices_note: unknown key, has no effect ");
  // The values are still read.
  EXPECT_DOUBLE_EQ(
      *c.models[0].parameters.at("weight").evaluate("model.layers.0.mlp.up_proj.weight", 0), 1.0);
  EXPECT_TRUE(
      parse_merge_config("merge_method: linear\nmodels: [{model: a, parameters: {weight: 1}}]\n")
          .warnings.empty());
}

TEST(ParseErrors, DuplicateKeysNameBothLines) {
  // top level: yaml-cpp would keep the first, PyYAML the last
  std::string e = error_of("merge_method: linear\nmodels: [{model: a}]\nmerge_method: ties\n");
  EXPECT_EQ(e,
            "[merge-config] cfg.yml:3: key 'merge_method' appears twice in the same mapping (lines "
            "1 and 3); give it once");
  // nested, inside a flow map
  e = error_of(
      "merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight: 1\n      "
      "density: 1\n      weight: 2\n");
  EXPECT_NE(e.find("cfg.yml:7: key 'weight' appears twice in the same mapping (lines 5 and 7)"),
            std::string::npos)
      << e;
  e = error_of("merge_method: linear\nmodels: [{model: a, model: b}]\n");
  EXPECT_NE(e.find("key 'model' appears twice"), std::string::npos) << e;
  // the same key in different mappings is fine
  EXPECT_EQ(error_of("merge_method: linear\nmodels: [{model: a, parameters: {weight: 1}}, {model: "
                     "b, parameters: {weight: 1}}]\n"),
            "");
}

TEST(ParseErrors, SeveralDocumentsNameTheirLines) {
  std::string e = error_of(
      "merge_method: linear\nmodels: [{model: a}]\n---\nmerge_method: ties\nmodels: [{model: "
      "b}]\n");
  EXPECT_NE(e.find("cfg.yml: the file holds 2 YAML documents (starting on lines 1, 4)"),
            std::string::npos)
      << e;
  // one document with explicit markers is one document
  EXPECT_EQ(error_of("---\nmerge_method: linear\nmodels: [{model: a}]\n...\n"), "");
}

// Fuzz finding (fuzz/merge_config_fuzz.cpp): a top-level line that starts with ',' made yaml-cpp's
// LoadAll append empty documents without end (32 MB of nodes from 399 bytes). It is one error now.
TEST(ParseErrors, EndlessEmptyDocumentsAreBoundedAndNamed) {
  const std::string e = error_of(
      "# arct\n,merge_method: arcee_fusion\nbase_model: Qwen/Qwen2.5-14B\nparameters:\n  "
      "normalize: true\ndtype: float16\ntokenizer_source: base\n");
  EXPECT_NE(e.find("cfg.yml"), std::string::npos) << e;
  EXPECT_NE(e.find("YAML documents"), std::string::npos) << e;
}

TEST(ParseErrors, ParameterRangesAndAbsurdValues) {
  auto with = [](std::string params) {
    return error_of("merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters: " +
                    params + "\n");
  };
  EXPECT_NE(
      with("{density: 0}").find("cfg.yml:5: models[0].parameters.density: 0 is outside (0, 1]"),
      std::string::npos);
  EXPECT_NE(with("{density: 1.5}").find("outside (0, 1]"), std::string::npos);
  EXPECT_EQ(with("{density: 1}"), "");
  EXPECT_NE(with("{density: [1, 0.5, -0.1]}")
                .find("models[0].parameters.density[2]: -0.1 is outside (0, 1]"),
            std::string::npos);
  EXPECT_NE(with("{density: [{filter: mlp, value: 2}]}").find("density[0].value: 2 is outside"),
            std::string::npos);
  EXPECT_NE(with("{weight: 1e308}").find("models[0].parameters.weight: 1e+308 is too large"),
            std::string::npos);
  EXPECT_NE(with("{weight: .inf}").find("is not a number"), std::string::npos);
  EXPECT_NE(with("{weight: .nan}").find("is not a number"), std::string::npos);
  EXPECT_NE(with("{gamma: 1}").find("outside [0, 1)"), std::string::npos);
  EXPECT_NE(with("{epsilon: -0.1}").find("outside [0, 1)"), std::string::npos);
  EXPECT_NE(error_of("merge_method: karcher\nparameters: {max_iter: 2.5}\nmodels: [{model: a}]\n")
                .find("max_iter: 2.5 is outside the integers >= 1"),
            std::string::npos);
  EXPECT_NE(
      error_of(
          "merge_method: sce\nbase_model: b\nparameters: {select_topk: 0}\nmodels: [{model: a}]\n")
          .find("select_topk: 0 is outside"),
      std::string::npos);
  EXPECT_EQ(with("{weight: -2.5, density: 0.01, gamma: 0, epsilon: 0.1}"), "");
}

}  // namespace
}  // namespace evomerge

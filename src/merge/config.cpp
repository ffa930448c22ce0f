#include "merge/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"
#include "common/yaml.h"
#include "common/yaml_fields.h"
#include "io/files.h"

namespace evomerge {

namespace {

constexpr std::string_view kStage = "merge-config";

int line_of(const YAML::Node& node) {
  return yaml_line(node);
}

// Errors through the shared field reader ("[merge-config] m.yml:7: models[1].parameters: ...").
struct Ctx : YamlFields {
  std::vector<std::pair<int, std::string>>
      warnings;  // (line, message), sorted into file order at the end
  // Something mergekit accepts and ignores (pydantic drops unknown fields): kept, with its place.
  void warn(const YAML::Node& node, std::string_view key, std::string_view what) {
    warnings.emplace_back(line_of(node), fmt::format("{}: {}", at(node, key), what));
  }
};

std::optional<double> as_number(const YAML::Node& node) {
  if (!node.IsScalar()) return std::nullopt;
  const std::string& s = node.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") return 1.0;
  if (s == "false" || s == "False" || s == "FALSE") return 0.0;
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used != s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

// The values a parameter can take where mergekit's math needs it (a density outside (0, 1] keeps a
// negative or more-than-all share of a tensor; a gamma of 1 or more removes everything), and a
// bound on every value: a weight of 1e308 is finite but overflows the f32 arithmetic of every
// method.
constexpr double kMaxParamMagnitude = 1e6;

void check_param_range(const Ctx& ctx, const YAML::Node& node, const std::string& key,
                       std::string_view name, double v) {
  auto outside = [&](std::string_view range) {
    ctx.bad(node, key, fmt::format("{} is outside {} (the range {} needs)", v, range, name));
  };
  if (std::fabs(v) > kMaxParamMagnitude)
    ctx.bad(node, key,
            fmt::format(
                "{} is too large (|value| <= {:g}; larger values overflow the merge arithmetic)", v,
                kMaxParamMagnitude));
  if (name == "density" && !(v > 0 && v <= 1)) outside("(0, 1]");
  if (name == "select_topk" && !(v > 0 && v <= 1)) outside("(0, 1]");
  if (name == "gamma" && !(v >= 0 && v < 1)) outside("[0, 1)");
  if (name == "epsilon" && !(v >= 0 && v < 1)) outside("[0, 1)");
  if ((name == "tol" || name == "eps") && !(v > 0)) outside("(0, inf)");
  if (name == "max_iter" && !(v >= 1 && v == std::floor(v))) outside("the integers >= 1");
}

ParamValue parse_value(Ctx& ctx, const YAML::Node& node, const std::string& key, bool allow_filters,
                       std::string_view name) {
  constexpr std::string_view kExpect =
      "expected a number, a list of numbers or a list of {filter, value}";
  ParamValue v;
  v.line = line_of(node);
  if (node.IsScalar()) {
    auto n = as_number(node);
    if (!n) ctx.bad(node, key, fmt::format("'{}' is not a number ({})", node.Scalar(), kExpect));
    check_param_range(ctx, node, key, name, *n);
    v.kind = ParamValue::Kind::Scalar;
    v.scalar = *n;
    return v;
  }
  if (node.IsMap()) {
    // mergekit parses a bare {filter, value} but fails when evaluating it; say so up front.
    ctx.bad(node, key,
            "a single {filter, value} must be written as a list: [{filter: ..., value: ...}]");
  }
  if (!node.IsSequence() || node.size() == 0) ctx.bad(node, key, std::string(kExpect));
  if (node[0].IsMap()) {
    if (!allow_filters) ctx.bad(node, key, "filter lists cannot be nested");
    v.kind = ParamValue::Kind::Filtered;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node& c = node[i];
      std::string ck = fmt::format("{}[{}]", key, i);
      if (!c.IsMap()) ctx.bad(c, ck, "every entry of a filter list must be {filter, value}");
      for (const auto& kv : c) {
        std::string k = kv.first.as<std::string>();
        if (k != "filter" && k != "value")
          ctx.warn(kv.first, ck + "." + k,
                   "unknown key, has no effect (a filter case has filter and value)");
      }
      if (!c["value"]) ctx.bad(c, ck, "missing 'value'");
      ParamValue::Case cs;
      if (c["filter"] && !c["filter"].IsNull()) {
        if (!c["filter"].IsScalar()) ctx.bad(c["filter"], ck + ".filter", "must be a string");
        cs.filter = c["filter"].Scalar();
      }
      cs.value =
          std::make_shared<ParamValue>(parse_value(ctx, c["value"], ck + ".value", false, name));
      v.cases.push_back(std::move(cs));
    }
    return v;
  }
  v.kind = ParamValue::Kind::Gradient;
  for (size_t i = 0; i < node.size(); ++i) {
    auto n = as_number(node[i]);
    if (!n)
      ctx.bad(node[i], fmt::format("{}[{}]", key, i), fmt::format("not a number ({})", kExpect));
    check_param_range(ctx, node[i], fmt::format("{}[{}]", key, i), name, *n);
    v.gradient.push_back(*n);
  }
  return v;
}

ParamMap parse_params(Ctx& ctx, const YAML::Node& node, const std::string& key) {
  ParamMap out;
  if (!node || node.IsNull()) return out;
  if (!node.IsMap()) ctx.bad(node, key, "expected a map of parameter name -> value");
  for (const auto& kv : node) {
    std::string name = kv.first.as<std::string>();
    out[name] = parse_value(ctx, kv.second, key + "." + name, true, name);
  }
  return out;
}

ModelRef parse_ref(Ctx& ctx, const YAML::Node& node, const std::string& key) {
  if (node.IsScalar()) {
    try {
      return ModelRef::parse(node.Scalar(), ctx.where);
    } catch (const Error& e) {
      ctx.bad(node, key, e.what());
    }
  }
  if (node.IsMap()) {
    // Object form: {model: {path, revision?}, lora: {path}?, override_architecture?}
    ModelRef ref;
    for (const auto& kv : node) {
      std::string k = kv.first.as<std::string>();
      auto path_of = [&](const YAML::Node& n, const std::string& sub) -> std::string {
        if (n.IsScalar()) return n.Scalar();
        if (n.IsMap() && n["path"] && n["path"].IsScalar()) {
          if (n["revision"] && !n["revision"].IsNull())
            ctx.bad(
                n["revision"], sub + ".revision",
                "revisions are not supported (models are read from local folders or the HF cache)");
          return n["path"].Scalar();
        }
        ctx.bad(n, sub, "expected a path or {path: ...}");
      };
      if (k == "model")
        ref.path = path_of(kv.second, key + ".model");
      else if (k == "lora")
        ref.lora = kv.second.IsNull() ? "" : path_of(kv.second, key + ".lora");
      else if (k == "override_architecture")
        ctx.bad(kv.first, key + ".override_architecture", "is not supported");
      else
        ctx.warn(kv.first, key + "." + k,
                 "unknown key in a model reference, has no effect (known: model, lora)");
    }
    if (ref.path.empty()) ctx.bad(node, key, "model reference has no 'model' path");
    return ref;
  }
  ctx.bad(node, key, "expected a model reference (a path or org/name)");
}

std::optional<DType> parse_dtype(const Ctx& ctx, const YAML::Node& node, const std::string& key) {
  if (!node || node.IsNull()) return std::nullopt;
  if (!node.IsScalar()) ctx.bad(node, key, "expected a dtype name");
  std::string s = node.Scalar();
  if (s.starts_with("torch.")) s = s.substr(6);
  if (s == "bfloat16" || s == "bf16") return DType::BF16;
  if (s == "float16" || s == "fp16" || s == "half") return DType::F16;
  if (s == "float32" || s == "fp32" || s == "float") return DType::F32;
  ctx.bad(node, key,
          fmt::format("unknown or unsupported dtype '{}' (expected bfloat16, float16 or float32)",
                      node.Scalar()));
}

void warn_unknown_keys(Ctx& ctx, const YAML::Node& map, const std::string& key,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& kv : map) {
    std::string k = kv.first.as<std::string>();
    bool ok = false;
    for (auto a : allowed) ok = ok || a == k;
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      ctx.warn(kv.first, key.empty() ? k : key + "." + k,
               fmt::format("unknown key, has no effect (known: {})", list));
    }
  }
}

int parse_int(const Ctx& ctx, const YAML::Node& node, const std::string& key) {
  auto n = as_number(node);
  if (!n || *n != std::floor(*n) || std::fabs(*n) > 1e7) ctx.bad(node, key, "expected an integer");
  return static_cast<int>(*n);
}

// tokenizer: {source, tokens: {TOKEN: {source: MODEL | {kind: model_token, model, token_id | token}
// | {kind: zero}, force}}, pad_to_multiple_of}
TokenizerSpec parse_tokenizer_spec(Ctx& ctx, const YAML::Node& tk) {
  TokenizerSpec spec;
  spec.given = true;
  warn_unknown_keys(ctx, tk, "tokenizer", {"source", "tokens", "pad_to_multiple_of"});
  if (tk["source"] && !tk["source"].IsScalar())
    ctx.bad(tk["source"], "tokenizer.source", "expected 'union', 'base' or a model");
  if (auto pad = tk["pad_to_multiple_of"]; pad && !pad.IsNull()) {
    int v = parse_int(ctx, pad, "tokenizer.pad_to_multiple_of");
    if (v < 1 || v > 65536)
      ctx.bad(pad, "tokenizer.pad_to_multiple_of", "expected an integer in [1, 65536]");
    spec.pad_to_multiple_of = v;
  }
  const YAML::Node& tokens = tk["tokens"];
  if (!tokens || tokens.IsNull()) return spec;
  if (!tokens.IsMap())
    ctx.bad(tokens, "tokenizer.tokens", "expected a map of token -> {source, force}");
  for (const auto& kv : tokens) {
    const std::string token = kv.first.as<std::string>();
    const std::string key = "tokenizer.tokens." + token;
    const YAML::Node& e = kv.second;
    TokenEmbeddingSource src;
    src.line = line_of(kv.first);
    if (!e.IsNull()) {
      if (!e.IsMap()) ctx.bad(e, key, "expected {source: ..., force: ...}");
      warn_unknown_keys(ctx, e, key, {"source", "force"});
      if (auto f = e["force"]; f && !f.IsNull()) {
        auto b = as_number(f);
        if (!b || (*b != 0 && *b != 1)) ctx.bad(f, key + ".force", "expected true or false");
        src.force = *b != 0;
      }
      if (auto so = e["source"]; so && !so.IsNull()) {
        if (so.IsScalar()) {
          src.kind = TokenEmbeddingSource::Kind::Model;
          src.model = parse_ref(ctx, so, key + ".source");
        } else if (so.IsMap() && so["kind"] && so["kind"].IsScalar() &&
                   so["kind"].Scalar() == "zero") {
          warn_unknown_keys(ctx, so, key + ".source", {"kind"});
          src.kind = TokenEmbeddingSource::Kind::Zero;
        } else if (so.IsMap() && so["kind"] && so["kind"].IsScalar() &&
                   so["kind"].Scalar() == "model_token") {
          warn_unknown_keys(ctx, so, key + ".source", {"kind", "model", "token_id", "token"});
          src.kind = TokenEmbeddingSource::Kind::ModelToken;
          if (!so["model"]) ctx.bad(so, key + ".source.model", "required key is missing");
          src.model = parse_ref(ctx, so["model"], key + ".source.model");
          const bool has_id = so["token_id"] && !so["token_id"].IsNull(),
                     has_tok = so["token"] && !so["token"].IsNull();
          if (has_id == has_tok)
            ctx.bad(so, key + ".source", "give exactly one of token_id and token (as mergekit)");
          if (has_id) {
            int id = parse_int(ctx, so["token_id"], key + ".source.token_id");
            if (id < 0) ctx.bad(so["token_id"], key + ".source.token_id", "must be >= 0");
            src.token_id = id;
          } else {
            if (!so["token"].IsScalar())
              ctx.bad(so["token"], key + ".source.token", "expected a string");
            src.token = so["token"].Scalar();
          }
        } else {
          ctx.bad(so, key + ".source",
                  "expected a model, {kind: model_token, model, token_id | token} or {kind: zero}");
        }
      }
    }
    spec.tokens[token] = std::move(src);
  }
  return spec;
}

}  // namespace

ParamValue ParamValue::constant(double value) {
  ParamValue v;
  v.kind = Kind::Scalar;
  v.scalar = value;
  return v;
}

ParamValue ParamValue::ramp(std::vector<double> knots) {
  ParamValue v;
  v.kind = Kind::Gradient;
  v.gradient = std::move(knots);
  return v;
}

ParamValue ParamValue::filtered(std::vector<std::pair<std::string, ParamValue>> cases) {
  ParamValue v;
  v.kind = Kind::Filtered;
  for (auto& [f, val] : cases) v.cases.push_back({f, std::make_shared<ParamValue>(std::move(val))});
  return v;
}

std::optional<double> ParamValue::evaluate(std::string_view tensor_name, double t) const {
  switch (kind) {
    case Kind::Scalar:
      return scalar;
    case Kind::Gradient: {
      if (gradient.empty()) return std::nullopt;
      const size_t k = gradient.size();
      if (k == 1) return gradient[0];
      double s = std::clamp(t, 0.0, 1.0) * static_cast<double>(k - 1);
      size_t i0 = static_cast<size_t>(std::floor(s));
      if (i0 > k - 1) i0 = k - 1;
      size_t i1 = std::min(k - 1, i0 + 1);
      double f = s - static_cast<double>(i0);
      return (1.0 - f) * gradient[i0] + f * gradient[i1];
    }
    case Kind::Filtered:
      for (const auto& c : cases)
        if (c.filter.empty() || c.filter == "*" ||
            tensor_name.find(c.filter) != std::string_view::npos)
          return c.value->evaluate(tensor_name, t);
      return std::nullopt;
  }
  return std::nullopt;
}

ModelRef ModelRef::parse(std::string_view text, std::string_view where) {
  ModelRef ref;
  std::string s(text);
  size_t plus = s.find('+');
  if (plus != std::string::npos && s.find('+', plus + 1) != std::string::npos)
    fail(kStage, "{}: model reference '{}' has more than one '+' (expected model[+lora])", where,
         text);
  ref.path = s.substr(0, plus);
  if (plus != std::string::npos) ref.lora = s.substr(plus + 1);
  for (const std::string* part : {&ref.path, &ref.lora})
    if (part->find('@') != std::string::npos)
      fail(kStage,
           "{}: model reference '{}': revisions ('@...') are not supported (models are read from "
           "local folders or the HF cache)",
           where, text);
  if (ref.path.empty() || (plus != std::string::npos && ref.lora.empty()))
    fail(kStage, "{}: model reference '{}' is empty", where, text);
  return ref;
}

std::vector<ModelRef> MergeConfig::referenced_models() const {
  std::vector<ModelRef> out;
  auto add = [&](const ModelRef& r) {
    if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  };
  if (base_model) add(*base_model);
  for (const auto& m : models) add(m.model);
  for (const auto& s : slices) {
    if (s.base_model) add(*s.base_model);
    for (const auto& src : s.sources) add(src.model);
  }
  return out;
}

// The node that holds models:/slices: — the root, or the root's `modules: {default: ...}`. Any
// other module name (several modules: text and vision, encoder and decoder) is refused: every
// supported architecture has one module.
YAML::Node module_body(Ctx& ctx, const YAML::Node& root) {
  const YAML::Node mods = root["modules"];
  if (!mods || mods.IsNull()) return root;
  const char* why =
      "per-module merges (architectures with several modules, e.g. text and vision) are not "
      "supported: every supported architecture has one module, 'default'; give modules: {default: "
      "{models: ...}} or models:/slices: at the top level";
  if (!mods.IsMap() || mods.size() != 1 || !mods["default"] || !mods["default"].IsMap())
    ctx.bad(mods, "modules", why);
  if (root["models"] || root["slices"])
    ctx.bad(mods, "modules", "cannot be combined with top-level models: or slices:");
  const YAML::Node body = mods["default"];
  warn_unknown_keys(ctx, body, "modules.default", {"models", "slices", "parameters"});
  return body;
}

MergeConfig parse_merge_config(std::string_view yaml_text, std::string_view where) {
  MergeConfig cfg;
  Ctx ctx{{kStage, std::string(where)}, {}};
  YAML::Node root = load_yaml_document(yaml_text, where, kStage);
  if (!root.IsMap()) fail(kStage, "{}: expected a YAML map at the top level", where);
  cfg.where = std::string(where);
  cfg.source_text = std::string(yaml_text);
  try {
    warn_unknown_keys(ctx, root, "",
                      {"merge_method", "base_model", "models", "slices", "modules", "parameters",
                       "dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template"});
    if (!root["merge_method"] || !root["merge_method"].IsScalar())
      ctx.bad(root, "merge_method", "required key is missing (e.g. merge_method: linear)");
    cfg.merge_method = root["merge_method"].Scalar();
    // `modules:` with the one module of a single-module architecture, `default` (what mergekit's
    // own model cards print, its normalised form), is the same merge as models:/slices: at the top
    // level; the module's parameters sit between the slices' and the top level's.
    const YAML::Node body = module_body(ctx, root);
    if (root["base_model"] && !root["base_model"].IsNull())
      cfg.base_model = parse_ref(ctx, root["base_model"], "base_model");
    cfg.parameters = parse_params(ctx, root["parameters"], "parameters");
    if (!body.is(root))
      for (auto& [name, value] :
           parse_params(ctx, body["parameters"], "modules.default.parameters"))
        cfg.parameters[name] = std::move(value);
    cfg.dtype = parse_dtype(ctx, root["dtype"], "dtype");
    cfg.out_dtype = parse_dtype(ctx, root["out_dtype"], "out_dtype");
    if (auto ts = root["tokenizer_source"]; ts && !ts.IsNull()) {
      if (!ts.IsScalar())
        ctx.bad(ts, "tokenizer_source", "expected 'base', 'union' or a model reference");
      cfg.tokenizer_source = ts.Scalar();
    }
    if (auto tk = root["tokenizer"]; tk && !tk.IsNull()) {
      if (root["tokenizer_source"])
        ctx.bad(tk, "tokenizer", "cannot be combined with tokenizer_source");
      if (!tk.IsMap()) ctx.bad(tk, "tokenizer", "expected a map {source: ...}");
      cfg.tokenizer = parse_tokenizer_spec(ctx, tk);
      cfg.tokenizer_source =
          tk["source"] && tk["source"].IsScalar() ? tk["source"].Scalar() : "union";
    }
    if (auto ct = root["chat_template"]; ct && !ct.IsNull()) {
      if (!ct.IsScalar()) ctx.bad(ct, "chat_template", "expected a string");
      cfg.chat_template = ct.Scalar();
    }
    const bool has_models = body["models"] && !body["models"].IsNull();
    const bool has_slices = body["slices"] && !body["slices"].IsNull();
    if (has_models == has_slices)
      ctx.bad(body, "models/slices", "exactly one of 'models' and 'slices' must be given");
    if (has_models) {
      const YAML::Node& ms = body["models"];
      if (!ms.IsSequence() || ms.size() == 0) ctx.bad(ms, "models", "expected a non-empty list");
      for (size_t i = 0; i < ms.size(); ++i) {
        std::string key = fmt::format("models[{}]", i);
        const YAML::Node& m = ms[i];
        InputModel im;
        im.line = line_of(m);
        if (m.IsScalar()) {
          im.model = parse_ref(ctx, m, key);
        } else {
          if (!m.IsMap()) ctx.bad(m, key, "expected {model: ..., parameters: ...}");
          warn_unknown_keys(ctx, m, key, {"model", "parameters"});
          if (!m["model"]) ctx.bad(m, key + ".model", "required key is missing");
          im.model = parse_ref(ctx, m["model"], key + ".model");
          im.parameters = parse_params(ctx, m["parameters"], key + ".parameters");
        }
        cfg.models.push_back(std::move(im));
      }
    } else {
      const YAML::Node& ss = body["slices"];
      if (!ss.IsSequence() || ss.size() == 0) ctx.bad(ss, "slices", "expected a non-empty list");
      for (size_t i = 0; i < ss.size(); ++i) {
        std::string key = fmt::format("slices[{}]", i);
        const YAML::Node& s = ss[i];
        if (!s.IsMap()) ctx.bad(s, key, "expected {sources: [...]}");
        warn_unknown_keys(ctx, s, key, {"sources", "base_model", "residual_weight", "parameters"});
        OutputSlice slice;
        slice.line = line_of(s);
        if (s["base_model"] && !s["base_model"].IsNull())
          slice.base_model = parse_ref(ctx, s["base_model"], key + ".base_model");
        slice.parameters = parse_params(ctx, s["parameters"], key + ".parameters");
        const YAML::Node& srcs = s["sources"];
        if (!srcs || !srcs.IsSequence() || srcs.size() == 0)
          ctx.bad(s, key + ".sources", "expected a non-empty list");
        for (size_t j = 0; j < srcs.size(); ++j) {
          std::string skey = fmt::format("{}.sources[{}]", key, j);
          const YAML::Node& src = srcs[j];
          if (!src.IsMap()) ctx.bad(src, skey, "expected {model: ..., layer_range: [start, end]}");
          warn_unknown_keys(ctx, src, skey, {"model", "layer_range", "parameters"});
          SliceSource so;
          so.line = line_of(src);
          if (!src["model"]) ctx.bad(src, skey + ".model", "required key is missing");
          so.model = parse_ref(ctx, src["model"], skey + ".model");
          const YAML::Node& lr = src["layer_range"];
          if (!lr || !lr.IsSequence() || lr.size() != 2)
            ctx.bad(lr ? lr : src, skey + ".layer_range", "expected [start, end]");
          so.layer_start = parse_int(ctx, lr[0], skey + ".layer_range[0]");
          so.layer_end = parse_int(ctx, lr[1], skey + ".layer_range[1]");
          if (so.layer_start < 0 || so.layer_end <= so.layer_start)
            ctx.bad(lr, skey + ".layer_range",
                    fmt::format("[{}, {}] is not a valid range (need 0 <= start < end)",
                                so.layer_start, so.layer_end));
          so.parameters = parse_params(ctx, src["parameters"], skey + ".parameters");
          slice.sources.push_back(std::move(so));
        }
        cfg.slices.push_back(std::move(slice));
      }
    }
  } catch (const YAML::Exception& e) {
    fail(kStage, "{}:{}: {}", where, e.mark.line + 1, e.msg);
  }
  std::stable_sort(ctx.warnings.begin(), ctx.warnings.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [line, message] : ctx.warnings) cfg.warnings.push_back(std::move(message));
  return cfg;
}

MergeConfig load_merge_config(const std::filesystem::path& path) {
  return parse_merge_config(read_text_file(path, 16u << 20), path.string());
}

namespace {
void emit_value(YAML::Emitter& e, const ParamValue& v) {
  switch (v.kind) {
    case ParamValue::Kind::Scalar:
      e << v.scalar;
      break;
    case ParamValue::Kind::Gradient:
      e << YAML::Flow << YAML::BeginSeq;
      for (double g : v.gradient) e << g;
      e << YAML::EndSeq;
      break;
    case ParamValue::Kind::Filtered:
      e << YAML::BeginSeq;
      for (const auto& c : v.cases) {
        e << YAML::BeginMap;
        if (!c.filter.empty()) e << YAML::Key << "filter" << YAML::Value << c.filter;
        e << YAML::Key << "value" << YAML::Value;
        emit_value(e, *c.value);
        e << YAML::EndMap;
      }
      e << YAML::EndSeq;
      break;
  }
}
void emit_params(YAML::Emitter& e, const ParamMap& p) {
  if (p.empty()) return;
  e << YAML::Key << "parameters" << YAML::Value << YAML::BeginMap;
  for (const auto& [k, v] : p) {
    e << YAML::Key << k << YAML::Value;
    emit_value(e, v);
  }
  e << YAML::EndMap;
}
}  // namespace

std::string merge_config_to_yaml(const MergeConfig& c) {
  YAML::Emitter e;
  e.SetDoublePrecision(17);
  e << YAML::BeginMap;
  e << YAML::Key << "merge_method" << YAML::Value << c.merge_method;
  if (c.base_model) e << YAML::Key << "base_model" << YAML::Value << c.base_model->str();
  emit_params(e, c.parameters);
  if (c.dtype) e << YAML::Key << "dtype" << YAML::Value << std::string(dtype_torch_name(*c.dtype));
  if (c.out_dtype)
    e << YAML::Key << "out_dtype" << YAML::Value << std::string(dtype_torch_name(*c.out_dtype));
  if (!c.tokenizer_source.empty())
    e << YAML::Key << "tokenizer_source" << YAML::Value << c.tokenizer_source;
  if (!c.chat_template.empty()) e << YAML::Key << "chat_template" << YAML::Value << c.chat_template;
  if (!c.models.empty()) {
    e << YAML::Key << "models" << YAML::Value << YAML::BeginSeq;
    for (const auto& m : c.models) {
      e << YAML::BeginMap << YAML::Key << "model" << YAML::Value << m.model.str();
      emit_params(e, m.parameters);
      e << YAML::EndMap;
    }
    e << YAML::EndSeq;
  }
  if (!c.slices.empty()) {
    e << YAML::Key << "slices" << YAML::Value << YAML::BeginSeq;
    for (const auto& s : c.slices) {
      e << YAML::BeginMap;
      if (s.base_model) e << YAML::Key << "base_model" << YAML::Value << s.base_model->str();
      emit_params(e, s.parameters);
      e << YAML::Key << "sources" << YAML::Value << YAML::BeginSeq;
      for (const auto& src : s.sources) {
        e << YAML::BeginMap << YAML::Key << "model" << YAML::Value << src.model.str();
        e << YAML::Key << "layer_range" << YAML::Value << YAML::Flow << YAML::BeginSeq
          << src.layer_start << src.layer_end << YAML::EndSeq;
        emit_params(e, src.parameters);
        e << YAML::EndMap;
      }
      e << YAML::EndSeq << YAML::EndMap;
    }
    e << YAML::EndSeq;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace evomerge

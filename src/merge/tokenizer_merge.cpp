#include "merge/tokenizer_merge.h"

#include <algorithm>
#include <set>

#include "arch/arch.h"
#include "common/error.h"
#include "io/files.h"
#include "merge/merge.h"

namespace evomerge {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr std::string_view kStage = "tokenizer-merge";
constexpr size_t kMaxTokenizerBytes = size_t{64} << 20;
constexpr size_t kMaxTokens = size_t{1} << 22;
constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;

int64_t checked_id(const json& v, const fs::path& path, std::string_view field) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxId)
    fail(kStage, "{}: field '{}' must be a token id in [0, 2^31), got {}", path.string(), field,
         v.dump());
  return v.get<int64_t>();
}

// The tokens of `t` whose id is >= vocab_size removed, with the merges that use them
// (mergekit's get_stripped_tokenizer).
json stripped(const ModelVocab& v) {
  json t = v.tokenizer_json;
  std::set<std::string> unused;
  for (const auto& [tok, id] : v.ids)
    if (id >= v.config_vocab_size) unused.insert(tok);
  if (unused.empty()) return t;
  json& model = t["model"];
  if (model["vocab"].is_object())
    for (const auto& tok : unused) model["vocab"].erase(tok);
  json added = json::array();
  for (const auto& e : t["added_tokens"])
    if (e["id"].get<int64_t>() < v.config_vocab_size) added.push_back(e);
  t["added_tokens"] = added;
  if (model.contains("merges") && model["merges"].is_array()) {
    json kept = json::array();
    for (const auto& m : model["merges"]) {
      std::vector<std::string> parts;
      if (m.is_string()) {
        std::string s = m.get<std::string>();
        size_t sp = s.find(' ');
        parts = {s.substr(0, sp), sp == std::string::npos ? "" : s.substr(sp + 1)};
      } else if (m.is_array()) {
        for (const auto& p : m)
          if (p.is_string()) parts.push_back(p.get<std::string>());
      }
      bool keep = std::none_of(parts.begin(), parts.end(),
                               [&](const std::string& p) { return unused.count(p) > 0; });
      if (keep) kept.push_back(m);
    }
    model["merges"] = kept;
  }
  return t;
}

std::vector<std::pair<int64_t, std::string>> by_id(const std::map<std::string, int64_t>& ids) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const auto& [tok, id] : ids) out.emplace_back(id, tok);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

ModelVocab read_model_vocab(const fs::path& dir, int64_t config_vocab_size) {
  const fs::path path = dir / "tokenizer.json";
  ModelVocab v;
  v.config_vocab_size = config_vocab_size;
  try {
    v.tokenizer_json = json::parse(read_text_file(path, kMaxTokenizerBytes));
  } catch (const json::exception& e) {
    fail(kStage, "{}: not valid JSON: {}", path.string(), e.what());
  }
  const json& t = v.tokenizer_json;
  if (!t.is_object() || !t.contains("model") || !t["model"].is_object() ||
      !t["model"].contains("vocab"))
    fail(kStage,
         "{}: field 'model.vocab' is missing (a tokenizer merge needs a tokenizers-library "
         "tokenizer.json)",
         path.string());
  const json& vocab = t["model"]["vocab"];
  if (vocab.size() > kMaxTokens)
    fail(kStage, "{}: field 'model.vocab' has more than {} tokens", path.string(), kMaxTokens);
  if (vocab.is_object()) {
    for (const auto& [tok, id] : vocab.items())
      v.ids[tok] = checked_id(id, path, "model.vocab." + tok);
  } else if (vocab.is_array()) {  // Unigram: [[piece, score], ...], the id is the position
    for (size_t i = 0; i < vocab.size(); ++i) {
      if (!vocab[i].is_array() || vocab[i].empty() || !vocab[i][0].is_string())
        fail(kStage, "{}: field 'model.vocab[{}]' must be [piece, score]", path.string(), i);
      v.ids[vocab[i][0].get<std::string>()] = static_cast<int64_t>(i);
    }
  } else {
    fail(kStage, "{}: field 'model.vocab' must be an object or a list", path.string());
  }
  if (t.contains("added_tokens") && !t["added_tokens"].is_null()) {
    const json& added = t["added_tokens"];
    if (!added.is_array() || added.size() > kMaxTokens)
      fail(kStage, "{}: field 'added_tokens' must be a (bounded) list", path.string());
    for (size_t i = 0; i < added.size(); ++i) {
      const json& e = added[i];
      if (!e.is_object() || !e.contains("content") || !e["content"].is_string() ||
          !e.contains("id"))
        fail(kStage, "{}: field 'added_tokens[{}]' must be {{id, content, ...}}", path.string(), i);
      v.ids[e["content"].get<std::string>()] =
          checked_id(e["id"], path, fmt::format("added_tokens[{}].id", i));
      v.added.push_back(e);
    }
  } else {
    v.tokenizer_json["added_tokens"] = json::array();
  }
  return v;
}

MergedVocab build_merged_vocab(const std::vector<const ModelVocab*>& models,
                               const std::string& source, std::optional<size_t> source_model,
                               std::optional<int64_t> pad_to_multiple_of, std::string_view where) {
  EM_ASSERT(!models.empty());
  MergedVocab out;
  if (source_model) {  // a named model's tokenizer, not stripped (mergekit loads it as it is)
    out.tokenizer_json = models[*source_model]->tokenizer_json;
    out.ids = models[*source_model]->ids;
  } else {
    const ModelVocab& base = *models[0];
    out.tokenizer_json = stripped(base);
    for (const auto& [tok, id] : base.ids)
      if (id < base.config_vocab_size) out.ids[tok] = id;
  }
  if (source == "union") {
    // Every model's ordinary tokens, then its added tokens (first settings of a content win).
    std::vector<std::string> order;
    std::set<std::string> seen;
    std::vector<json> added;
    std::set<std::string> added_seen;
    for (const ModelVocab* m : models) {
      std::set<std::string> own_added;
      for (const auto& e : m->added) own_added.insert(e["content"].get<std::string>());
      for (const auto& [id, tok] : by_id(m->ids))
        if (id < m->config_vocab_size && !own_added.count(tok) && seen.insert(tok).second)
          order.push_back(tok);
      for (const auto& e : m->added)
        if (e["id"].get<int64_t>() < m->config_vocab_size &&
            added_seen.insert(e["content"].get<std::string>()).second)
          added.push_back(e);
    }
    int64_t next = 0;
    for (const auto& [tok, id] : out.ids) next = std::max(next, id + 1);
    auto append = [&](json entry) {
      entry["id"] = next;
      out.ids[entry["content"].get<std::string>()] = next++;
      out.tokenizer_json["added_tokens"].push_back(entry);
      out.new_added.push_back(std::move(entry));
    };
    for (const auto& tok : order)
      if (!added_seen.count(tok) && !out.ids.count(tok))
        append({{"id", 0},
                {"content", tok},
                {"single_word", false},
                {"lstrip", false},
                {"rstrip", false},
                {"normalized", true},
                {"special", false}});
    for (const auto& e : added)
      if (!out.ids.count(e["content"].get<std::string>())) append(e);
  } else if (source != "base" && !source_model) {
    fail(kStage, "{}: tokenizer source '{}' is not 'union', 'base' or a merged model", where,
         source);
  }
  for (const auto& [tok, id] : out.ids) out.size = std::max(out.size, id + 1);
  out.rows = out.size;
  if (pad_to_multiple_of && out.rows % *pad_to_multiple_of)
    out.rows = (out.rows / *pad_to_multiple_of + 1) * *pad_to_multiple_of;
  for (const ModelVocab* m : models) {
    std::vector<int64_t> p(static_cast<size_t>(out.size), -1);
    for (const auto& [tok, id] : out.ids) {
      auto it = m->ids.find(tok);
      if (it != m->ids.end() && it->second < m->config_vocab_size)
        p[static_cast<size_t>(id)] = it->second;
    }
    out.permutation.push_back(std::move(p));
  }
  return out;
}

std::vector<std::vector<float>> permute_embeddings(
    const MergedVocab& vocab, const std::vector<const ModelVocab*>& models,
    const std::vector<size_t>& inputs, std::optional<size_t> base, const TokenizerSpec& spec,
    const std::function<std::optional<size_t>(const ModelRef&)>& model_of, int64_t hidden,
    const ReadRows& read_rows, std::string_view where) {
  // The models mergekit consults: the tensor's inputs and the base.
  std::vector<size_t> consulted = inputs;
  if (base && std::find(consulted.begin(), consulted.end(), *base) == consulted.end())
    consulted.push_back(*base);
  std::map<size_t, std::vector<float>> rows;
  for (size_t m : consulted) rows[m] = read_rows(m);
  const size_t h = static_cast<size_t>(hidden);
  auto row_of = [&](size_t m, int64_t r) -> const float* {
    const std::vector<float>& t = rows.at(m);
    if (r < 0 || static_cast<size_t>(r + 1) * h > t.size())
      fail(kStage, "{}: token row {} is outside the {} embedding rows of input {}", where, r,
           t.size() / h, m);
    return t.data() + static_cast<size_t>(r) * h;
  };
  auto model_index = [&](const ModelRef& ref, const std::string& key) {
    auto m = model_of(ref);
    if (!m || !rows.count(*m))
      fail(kStage, "{}: {}: model {} is referenced but not part of this merge", where, key,
           ref.str());
    return *m;
  };

  // The default row of every token that needs one (mergekit's assign_embedding_sources and
  // compute_default_embedding); absent: the token's models all have it.
  const size_t n = static_cast<size_t>(vocab.size);
  std::vector<std::optional<std::vector<float>>> fallback(n);
  for (const auto& [tok, id] : vocab.ids) {
    const size_t i = static_cast<size_t>(id);
    std::vector<float> e(h, 0.0f);
    auto explicit_it = spec.tokens.find(tok);
    if (explicit_it != spec.tokens.end()) {
      const TokenEmbeddingSource& s = explicit_it->second;
      const std::string key = "tokenizer.tokens." + tok;
      switch (s.kind) {
        case TokenEmbeddingSource::Kind::Default:
          fail(kStage, "{}:{}: {}: no source given (mergekit cannot compute its embedding either)",
               where, s.line, key);
        case TokenEmbeddingSource::Kind::Zero:
          break;
        case TokenEmbeddingSource::Kind::Model: {
          size_t m = model_index(s.model, key + ".source");
          if (vocab.permutation[m][i] < 0)
            fail(kStage, "{}:{}: {}.source: token '{}' is not in model {}", where, s.line, key, tok,
                 s.model.str());
          std::copy_n(row_of(m, vocab.permutation[m][i]), h, e.begin());
          break;
        }
        case TokenEmbeddingSource::Kind::ModelToken: {
          size_t m = model_index(s.model, key + ".source.model");
          int64_t r = s.token_id ? *s.token_id : -1;
          if (!s.token_id) {
            auto it = models[m]->ids.find(s.token);
            if (it == models[m]->ids.end())
              fail(kStage, "{}:{}: {}.source.token: '{}' is not in model {}", where, s.line, key,
                   s.token, s.model.str());
            r = it->second;
          }
          if (static_cast<size_t>(r + 1) * h > rows.at(m).size())
            fail(kStage, "{}:{}: {}.source: token id {} is out of range for model {}", where,
                 s.line, key, r, s.model.str());
          std::copy_n(row_of(m, r), h, e.begin());
          break;
        }
      }
      fallback[i] = std::move(e);
      continue;
    }
    std::vector<size_t> have;
    for (size_t m : consulted)
      if (vocab.permutation[m][i] >= 0) have.push_back(m);
    if (have.size() == consulted.size() && !have.empty()) continue;  // every row is the model's own
    if (have.size() == 1 || (base && vocab.permutation[*base][i] >= 0)) {
      size_t m = have.size() == 1 ? have[0] : *base;
      std::copy_n(row_of(m, vocab.permutation[m][i]), h, e.begin());
    } else if (!have.empty()) {
      std::vector<double> acc(h, 0.0);
      for (size_t m : have) {
        const float* r = row_of(m, vocab.permutation[m][i]);
        for (size_t c = 0; c < h; ++c) acc[c] += r[c];
      }
      for (size_t c = 0; c < h; ++c)
        e[c] = static_cast<float>(acc[c] / static_cast<double>(have.size()));
    }  // no model has it: zeros
    fallback[i] = std::move(e);
  }

  std::vector<std::vector<float>> out;
  for (size_t m : inputs) {
    std::vector<float> t(static_cast<size_t>(vocab.rows) * h, 0.0f);
    for (const auto& [tok, id] : vocab.ids) {
      const size_t i = static_cast<size_t>(id);
      auto ex = spec.tokens.find(tok);
      const bool force = ex != spec.tokens.end() && ex->second.force;
      const float* src = nullptr;
      if (vocab.permutation[m][i] >= 0 && !force)
        src = row_of(m, vocab.permutation[m][i]);
      else if (fallback[i])
        src = fallback[i]->data();
      if (src) std::copy_n(src, h, t.begin() + static_cast<std::ptrdiff_t>(i * h));
    }
    if (vocab.rows > vocab.size) {  // padding rows: the mean of the real ones
      std::vector<double> acc(h, 0.0);
      for (size_t i = 0; i < n; ++i)
        for (size_t c = 0; c < h; ++c) acc[c] += t[i * h + c];
      for (size_t i = n; i < static_cast<size_t>(vocab.rows); ++i)
        for (size_t c = 0; c < h; ++c)
          t[i * h + c] = static_cast<float>(acc[c] / static_cast<double>(n));
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace evomerge

namespace evomerge {

void plan_merged_vocab(MergePlan& plan) {
  const MergeConfig& c = plan.config;
  std::vector<ModelVocab> vocabs;
  for (const auto& m : plan.models)
    vocabs.push_back(read_model_vocab(m->folder().dir, m->config().vocab_size));
  std::vector<const ModelVocab*> ptrs;
  for (const auto& v : vocabs) ptrs.push_back(&v);
  auto model_of = [&](const ModelRef& r) -> std::optional<size_t> {
    for (size_t i = 0; i < plan.models.size(); ++i)
      if (plan.models[i]->ref() == r) return i;
    return std::nullopt;
  };
  const std::string source = c.tokenizer_source.empty() ? "union" : c.tokenizer_source;
  std::optional<size_t> source_model;
  if (source != "union" && source != "base") {
    source_model = model_of(ModelRef::parse(source, c.where));
    if (!source_model)
      fail(kStage, "{}: tokenizer source '{}' is not one of the merged models", c.where, source);
  }
  auto vocab = std::make_shared<MergedVocab>(
      build_merged_vocab(ptrs, source, source_model, c.tokenizer.pad_to_multiple_of, c.where));
  const std::optional<size_t> base = c.base_model ? model_of(*c.base_model) : std::nullopt;
  const int64_t hidden = plan.models[plan.donor]->config().hidden_size;
  const TensorNames names = tensor_names(plan.models[plan.donor]->config());
  for (PlanTensor& t : plan.tensors) {
    if (t.name != names.embed && t.name != names.head) continue;
    std::vector<size_t> inputs;
    for (const auto& in : t.inputs) inputs.push_back(static_cast<size_t>(in.model));
    auto read_rows = [&](size_t m) {
      const SourceModel& sm = *plan.models[m];
      std::string name = t.name;
      for (const auto& in : t.inputs)
        if (static_cast<size_t>(in.model) == m) name = in.tensor;
      if (!sm.has(name))
        name = tensor_names(sm.config()).embed;  // a tied base consulted for the head
      const TensorInfo* info = sm.info(name);
      if (info->shape.size() != 2 || info->shape[1] != hidden)
        fail(kStage, "{}: tensor '{}' of {} has shape {}; a merged vocabulary needs [rows, {}]",
             c.where, name, sm.reference(), shape_string(info->shape), hidden);
      std::vector<float> rows(static_cast<size_t>(shape_numel(info->shape)));
      sm.read_f32(name, rows.data());
      return rows;
    };
    auto permuted = permute_embeddings(*vocab, ptrs, inputs, base, c.tokenizer, model_of, hidden,
                                       read_rows, c.where);
    for (size_t k = 0; k < t.inputs.size(); ++k)
      t.inputs[k].rows = std::make_shared<const std::vector<float>>(std::move(permuted[k]));
    t.shape = {vocab->rows, hidden};
  }
  plan.out_config_json["vocab_size"] = vocab->rows;
  plan.vocab = std::move(vocab);
}

}  // namespace evomerge

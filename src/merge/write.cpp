// Streaming a plan into a Hugging Face folder: tensors merged one at a time (each on all cores),
// converted once to the output dtype and written piece by piece as the pieces are done. Peak
// memory: one output byte buffer, plus for the methods that are not elementwise the
// f32 inputs of one tensor and its f32 result (elementwise ones go tile by tile, executor.h).
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "common/error.h"
#include "common/pages.h"
#include "common/progress.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "merge/executor.h"
#include "merge/merge.h"
#include "merge/tokenizer_merge.h"

namespace evomerge {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Asks the kernel to start reading a tensor's pages (the inputs of the next tensor) while this one
// merges.
void prefetch(const TensorView& v) { advise_pages(v.data, v.nbytes, MADV_WILLNEED); }
// Drops a consumed input's pages from this process (they stay in the page cache), so resident
// memory does not grow with the model size. Read-only mappings simply refault if touched again.
void release(const TensorView& v) { release_mapped_pages(v.data, v.nbytes); }

std::string model_card(const MergePlan& plan, const fs::path& out_dir) {
  const MergeConfig& c = plan.config;
  std::string yaml = c.source_text.empty() ? merge_config_to_yaml(c) : c.source_text;
  std::string s = "---\nbase_model:\n";
  for (const auto& m : plan.models) {
    s += fmt::format("- {}\n", m->ref().path);
    if (!m->ref().lora.empty()) s += fmt::format("- {}\n", m->ref().lora);
  }
  s += "library_name: transformers\ntags:\n- mergekit\n- merge\n- evomerge\n---\n";
  s += fmt::format("# {}\n\nThis is a merge of pre-trained language models created with evomerge (mergekit-compatible).\n\n",
                   out_dir.filename().string());
  s += "## Merge Details\n### Merge Method\n\n";
  const std::optional<ModelRef>& base = c.base_model;
  s += fmt::format("This model was merged using the {} merge method", plan.method);
  if (base && plan.method != "slerp") s += fmt::format(" using {} as a base", base->str());
  s += ".\n\n### Models Merged\n\nThe following models were included in the merge:\n";
  for (const auto& m : plan.models)
    if (!base || plan.method == "slerp" || m->ref() != *base) s += fmt::format("* {}\n", m->reference());
  s += "\n### Configuration\n\nThe following YAML configuration was used to produce this model:\n\n```yaml\n" + yaml;
  if (!yaml.empty() && yaml.back() != '\n') s += "\n";
  s += "```\n";
  return s;
}

// The merged vocabulary's tokenizer.json, and the same added tokens in tokenizer_config.json's
// added_tokens_decoder and added_tokens.json where the source has them (transformers reads all
// three).
void write_merged_vocab(const MergedVocab& vocab, const fs::path& dir) {
  write_file_atomic(dir / "tokenizer.json", vocab.tokenizer_json.dump(2) + "\n");
  auto update = [&](const fs::path& path, const std::function<void(json&)>& fn) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return;
    json j;
    try {
      j = json::parse(read_text_file(path, 64u << 20));
    } catch (const json::exception& e) {
      fail("merge", "{}: not valid JSON: {}", path.filename().string(), e.what());
    }
    if (!j.is_object()) fail("merge", "{}: not a JSON object", path.filename().string());
    fn(j);
    write_file_atomic(path, j.dump(2) + "\n");
  };
  update(dir / "tokenizer_config.json", [&](json& j) {
    json decoder = j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()
                       ? j["added_tokens_decoder"]
                       : json::object();
    for (const auto& e : vocab.tokenizer_json["added_tokens"]) {
      json entry = e;
      entry.erase("id");
      decoder[std::to_string(e["id"].get<int64_t>())] = entry;
    }
    j["added_tokens_decoder"] = decoder;
  });
  update(dir / "added_tokens.json", [&](json& j) {
    for (const auto& e : vocab.tokenizer_json["added_tokens"])
      j[e["content"].get<std::string>()] = e["id"];
  });
}

}  // namespace

MergeStats Merger::write_folder(const MergePlan& plan, const fs::path& out_dir, const FolderOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  MergeStats stats;
  // The tokenizer source, checked before anything is written.
  const SourceModel* tok_model = plan.models[plan.donor].get();
  const std::string& ts = plan.config.tokenizer_source;
  if (ts == "union" || ts == "base" || (ts.empty() && plan.vocab)) {
    tok_model =
        plan.models.front().get();  // the base, else the first model (mergekit's build_tokenizer)
  } else if (!ts.empty()) {
    ModelRef r = ModelRef::parse(ts, plan.config.where);
    tok_model = nullptr;
    for (const auto& m : plan.models)
      if (m->ref() == r) tok_model = m.get();
    if (!tok_model)
      fail("merge", "{}: tokenizer_source: '{}' is not one of the merged models", plan.config.where,
           ts);
  }

  StagedDir staged(out_dir, options.replace_existing);
  std::vector<TensorSpec> specs;
  for (const auto& t : plan.tensors) specs.push_back({t.name, t.dtype, t.shape});
  ShardedWriter writer(staged.path(), specs, options.max_shard_bytes);

  Progress progress("merge", plan.tensors.size(), "tensors", options_.progress);
  // One output buffer of the largest tensor's size, not zero-filled (every byte is overwritten).
  // The executor hands each finished piece to the writer while it is in cache: a pwrite of a
  // cold 100 MB buffer cost more CPU than the merge itself.
  size_t max_bytes = 0;
  for (const auto& t : plan.tensors)
    max_bytes = std::max(max_bytes, static_cast<size_t>(t.nbytes()));
  std::unique_ptr<std::byte[]> bytes = std::make_unique_for_overwrite<std::byte[]>(max_bytes);
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlanTensor& t = plan.tensors[i];
    if (i + 1 < plan.tensors.size())
      for (const auto& in : plan.tensors[i + 1].inputs)
        prefetch(plan.models[in.model]->stored(in.tensor));
    const size_t n = static_cast<size_t>(shape_numel(t.shape));
    const Merger::Impl::PartSink sink = [&writer, &t](uint64_t offset,
                                                      std::span<const std::byte> part) {
      writer.write_part(t.name, offset, part);
    };
    impl_->merge_out(plan, t, t.dtype, bytes.get(), &sink);
    if (t.nbytes() == 0) writer.write(t.name, {});  // no pieces
    for (const auto& in : t.inputs) release(plan.models[in.model]->stored(in.tensor));
    for (const auto& in : t.inputs) stats.bytes_read += static_cast<uint64_t>(n) * dtype_size(plan.models[in.model]->info(in.tensor)->dtype);
    stats.bytes_written += t.nbytes();
    ++stats.tensors;
    progress.set_note(fmt::format("{} / {} written", format_bytes(static_cast<double>(stats.bytes_written)),
                                  format_bytes(static_cast<double>(plan.output_bytes()))));
    progress.add(1, t.nbytes());
  }
  writer.finish();
  progress.finish();

  const SourceModel& donor = *plan.models[plan.donor];
  write_file_atomic(staged.path() / "config.json", plan.out_config_json.dump(2) + "\n");
  if (options.copy_tokenizer) {
    for (const auto& f : tok_model->folder().aux_files) {
      bool tokenizer_file = f.starts_with("tokenizer") || f == "special_tokens_map.json" || f == "added_tokens.json" ||
                            f == "vocab.json" || f == "merges.txt" || f.starts_with("chat_template");
      const SourceModel& from = tokenizer_file ? *tok_model : donor;
      if (tokenizer_file || &from == &donor) {
        std::error_code ec;
        if (fs::exists(from.folder().dir / f, ec)) copy_file_atomic(from.folder().dir / f, staged.path() / f);
      }
    }
    if (tok_model != &donor)
      for (const auto& f : donor.folder().aux_files) {
        bool tokenizer_file = f.starts_with("tokenizer") || f == "special_tokens_map.json" || f == "added_tokens.json" ||
                              f == "vocab.json" || f == "merges.txt" || f.starts_with("chat_template");
        if (!tokenizer_file) copy_file_atomic(donor.folder().dir / f, staged.path() / f);
      }
  }
  if (plan.vocab && options.copy_tokenizer) write_merged_vocab(*plan.vocab, staged.path());
  if (!plan.chat_template.empty()) {
    // The template goes into tokenizer_config.json; a copied chat_template.jinja / .json would take
    // precedence over it when transformers loads the folder, so they go.
    for (const char* f : {"chat_template.jinja", "chat_template.json"}) {
      std::error_code rm;
      fs::remove(staged.path() / f, rm);
    }
    fs::path tc = staged.path() / "tokenizer_config.json";
    json j = json::object();
    std::error_code ec;
    if (fs::exists(tc, ec)) {
      try {
        j = json::parse(read_text_file(tc));
      } catch (const json::exception& e) {
        fail("merge", "{}: not valid JSON: {}", (tok_model->folder().dir / "tokenizer_config.json").string(), e.what());
      }
    }
    if (!j.is_object())
      fail("merge", "{}: not a JSON object",
           (tok_model->folder().dir / "tokenizer_config.json").string());
    j["chat_template"] = plan.chat_template;
    write_file_atomic(tc, j.dump(2) + "\n");
  }
  write_file_atomic(staged.path() / "mergekit_config.yml",
                    plan.config.source_text.empty() ? merge_config_to_yaml(plan.config) : plan.config.source_text);
  if (options.write_model_card) write_file_atomic(staged.path() / "README.md", model_card(plan, out_dir));
  staged.commit();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace evomerge

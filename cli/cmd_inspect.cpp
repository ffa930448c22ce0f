// evomerge inspect PATH: what a model folder holds.
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "arch/arch.h"
#include "command.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/text.h"

namespace evomerge::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool tensors = false;
  bool json = false;
};

int run_inspect(const InspectOptions& opt) {
  Model model = Model::open(opt.model);
  const auto& c = model.config;
  const auto& w = model.folder.weights;
  std::map<std::string, int64_t> dtype_params;
  int64_t params = 0;
  for (const auto& f : w.files())
    for (const auto& t : f.tensors()) {
      int64_t n = shape_numel(t.shape);
      params += n;
      dtype_params[std::string(dtype_name(t.dtype))] += n;
    }
  if (opt.json) {
    nlohmann::ordered_json out;
    out["path"] = model.folder.dir.string();
    out["architecture"] = c.architecture;
    out["family"] = arch_family_name(c.family);
    out["layers"] = c.num_hidden_layers;
    out["hidden_size"] = c.hidden_size;
    out["intermediate_size"] = c.intermediate_size;
    out["attention_heads"] = c.num_attention_heads;
    out["kv_heads"] = c.num_key_value_heads;
    out["head_dim"] = c.head_dim;
    out["vocab_size"] = c.vocab_size;
    out["tie_word_embeddings"] = c.tie_word_embeddings;
    out["parameters"] = params;
    out["dtypes"] = dtype_params;
    out["tensor_bytes"] = w.total_tensor_bytes();
    auto& shards = out["shards"] = nlohmann::ordered_json::array();
    for (const auto& f : w.files())
      shards.push_back({{"file", f.path().filename().string()}, {"bytes", f.file_size()}, {"tensors", f.tensors().size()}});
    out["aux_files"] = model.folder.aux_files;
    if (opt.tensors) {
      auto& list = out["tensors"] = nlohmann::ordered_json::array();
      for (const auto& name : w.names()) {
        const TensorInfo* t = w.find(name);
        list.push_back({{"name", name}, {"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"bytes", t->nbytes()}});
      }
    }
    fmt::print("{}\n", out.dump(2));
    return 0;
  }
  fmt::print("model        {}\n", model.folder.dir.string());
  fmt::print("architecture {} ({})\n", c.architecture, arch_family_name(c.family));
  fmt::print("layers       {}  hidden {}  intermediate {}  heads {} (kv {}, head_dim {})\n", c.num_hidden_layers,
             c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
  fmt::print("vocab        {}  tied embeddings: {}  rope_theta {}{}\n", c.vocab_size, c.tie_word_embeddings ? "yes" : "no",
             c.rope_theta, c.rope_scaling.type == "default" ? "" : " (" + c.rope_scaling.type + " scaling)");
  fmt::print("parameters   {} ({:.2f} M)\n", params, params / 1e6);
  std::string dts;
  for (const auto& [d, n] : dtype_params) dts += fmt::format("{}{} {:.1f}%", dts.empty() ? "" : ", ", d, 100.0 * n / std::max<int64_t>(params, 1));
  fmt::print("dtypes       {}\n", dts);
  fmt::print("shards       {}\n", w.files().size());
  for (const auto& f : w.files())
    fmt::print("  {:<40} {:>10}  {} tensors\n", f.path().filename().string(), format_bytes(f.file_size()), f.tensors().size());
  fmt::print("aux files    {}\n", fmt::join(model.folder.aux_files, ", "));
  if (opt.tensors) {
    fmt::print("\n{:<60} {:<5} {:<16} {:>10}\n", "tensor", "dtype", "shape", "bytes");
    for (const auto& name : w.names()) {
      const TensorInfo* t = w.find(name);
      fmt::print("{:<60} {:<5} {:<16} {:>10}\n", name, dtype_name(t->dtype), shape_string(t->shape), t->nbytes());
    }
  }
  return 0;
}

const bool registered = register_command({"inspect", "Describe a model folder: architecture, sizes, dtypes, shards",
                                          [](CLI::App& app) -> Runner {
                                            auto opt = std::make_shared<InspectOptions>();
                                            app.add_option("model", opt->model, "Model folder or HF-cache org/name")->required();
                                            app.add_flag("--tensors", opt->tensors, "List every tensor");
                                            app.add_flag("--json", opt->json, "Machine-readable output");
                                            return [opt] {
                                              try {
                                                return run_inspect(*opt);
                                              } catch (const std::filesystem::filesystem_error& e) {
                                                // e.g. a folder we may not list: one clear error, not a crash
                                                fail("io", "{}", printable(e.what()));
                                              }
                                            };
                                          }});

}  // namespace
}  // namespace evomerge::cli

#include "evolve/dfs_export.h"

#include <fmt/format.h>

#include "arch/arch.h"
#include "arch/config.h"
#include "common/error.h"
#include "io/files.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "tensor/convert.h"

namespace evomerge {

void export_dfs_model(const std::vector<std::shared_ptr<const WeightSource>>& models,
                      const std::vector<LayerHop>& path, const nlohmann::json& config_json_a,
                      const std::filesystem::path& out_dir, const DfsExportOptions& options) {
  if (models.empty()) fail("evolve", "dfs export: no models");
  if (path.empty()) fail("evolve", "dfs export: empty layer path");
  nlohmann::json cfg_json = config_json_a;
  cfg_json["num_hidden_layers"] = static_cast<int64_t>(path.size());
  DType dtype = DType::F32;
  if (options.dtype)
    dtype = *options.dtype;
  else if (auto t = models[0]->config().torch_dtype; t && dtype_is_compute(*t))
    dtype = *t;
  cfg_json["torch_dtype"] = std::string(dtype_torch_name(dtype));
  // Per-layer lists (e.g. Qwen's layer_types) would no longer match the layer count.
  if (cfg_json.contains("layer_types")) cfg_json.erase("layer_types");
  const ModelConfig out_cfg = parse_model_config(cfg_json, (out_dir / "config.json").string());
  const auto specs = expected_tensors(out_cfg, dtype);

  // Check every source tensor first: nothing is written when the path cannot be exported.
  struct Source {
    const WeightSource* model;
    std::string name;
    double scale;  // 1 or 1/P_k
  };
  std::vector<Source> sources;
  std::vector<double> prefix(path.size());
  double p = 1;
  for (size_t k = 0; k < path.size(); ++k) {
    const auto& hop = path[k];
    if (hop.model < 0 || hop.model >= static_cast<int>(models.size()))
      fail("evolve", "dfs export: hop {} names model {} of {}", k, hop.model, models.size());
    if (hop.layer < 0 || hop.layer >= models[hop.model]->config().num_hidden_layers)
      fail("evolve", "dfs export: hop {} names layer {} of model {} ({} layers)", k, hop.layer,
           hop.model, models[hop.model]->config().num_hidden_layers);
    if (!(hop.input_scale > 0))
      fail("evolve", "dfs export: hop {} has input scale {} (must be > 0)", k, hop.input_scale);
    p *= hop.input_scale;
    prefix[k] = p;
  }
  for (const auto& spec : specs) {
    const auto loc = classify_tensor(spec.name);
    EM_ASSERT(loc.has_value());
    Source s{models[0].get(), spec.name, 1.0};
    if (loc->place == TensorPlace::Layer) {
      const auto& hop = path[static_cast<size_t>(loc->layer)];
      s.model = models[hop.model].get();
      s.name = layer_tensor_name(hop.layer, loc->suffix);
      const auto r = loc->role;
      if (r == TensorRole::O || r == TensorRole::OBias || r == TensorRole::Down ||
          r == TensorRole::DownBias)
        s.scale = 1.0 / prefix[static_cast<size_t>(loc->layer)];
    } else if (loc->role == TensorRole::LmHead && !s.model->has(spec.name)) {
      s.name = "model.embed_tokens.weight";  // a tied model A exported untied (only if the config
                                             // says so)
    }
    const TensorView v = s.model->tensor(s.name);
    if (v.shape != spec.shape)
      fail("evolve",
           "dfs export: tensor '{}' of model {} has shape {}, the exported layer needs {} (models "
           "must share layer shapes)",
           s.name,
           loc->place == TensorPlace::Layer ? path[static_cast<size_t>(loc->layer)].model : 0,
           shape_string(v.shape), shape_string(spec.shape));
    if (!dtype_is_compute(v.dtype))
      fail("evolve", "dfs export: tensor '{}' has dtype {}", s.name, dtype_name(v.dtype));
    sources.push_back(std::move(s));
  }

  StagedDir staged(out_dir, options.replace_existing);
  {
    ShardedWriter writer(staged.path(), specs);
    std::vector<float> buf;
    std::vector<std::byte> out;
    for (size_t i = 0; i < specs.size(); ++i) {
      const TensorView v = sources[i].model->tensor(sources[i].name);
      const size_t n = static_cast<size_t>(v.numel());
      buf.resize(n);
      convert_to_f32(v.dtype, v.data, buf.data(), n);
      if (sources[i].scale != 1.0)
        for (auto& x : buf) x = static_cast<float>(x * sources[i].scale);
      out.resize(specs[i].nbytes());
      convert_from_f32(dtype, buf.data(), out.data(), n);
      writer.write(specs[i].name, out);
    }
    writer.finish();
  }
  write_file_atomic(staged.path() / "config.json", cfg_json.dump(2) + "\n");
  if (!options.aux_from.empty())
    for (const auto& f : list_aux_files(options.aux_from)) {
      std::filesystem::create_directories((staged.path() / f).parent_path());
      copy_file_atomic(options.aux_from / f, staged.path() / f);
    }
  nlohmann::json hops = nlohmann::json::array();
  for (const auto& h : path)
    hops.push_back({{"model", h.model}, {"layer", h.layer}, {"input_scale", h.input_scale}});
  write_file_atomic(staged.path() / "evomerge_dfs_path.json",
                    nlohmann::json{{"path", hops}}.dump(2) + "\n");
  staged.commit();
}

}  // namespace evomerge

// WeightSource implementations: a memory-mapped model folder and caller-owned views.
#include <fmt/format.h>

#include "common/error.h"
#include "infer/engine.h"

namespace evomerge {
namespace {

class FolderWeights final : public WeightSource {
 public:
  explicit FolderWeights(Model model) : model_(std::move(model)) {}
  const ModelConfig& config() const override { return model_.config; }
  TensorView tensor(std::string_view name) const override {
    return model_.folder.weights.view(name);
  }
  bool has(std::string_view name) const override { return model_.folder.weights.contains(name); }
  bool file_mapped() const override { return true; }  // ModelWeights: all memory-mapped

 private:
  Model model_;  // owns the memory maps the views point into
};

class MemoryWeights final : public WeightSource {
 public:
  MemoryWeights(ModelConfig config, std::map<std::string, TensorView> tensors)
      : config_(std::move(config)), tensors_(tensors.begin(), tensors.end()) {}
  const ModelConfig& config() const override { return config_; }
  TensorView tensor(std::string_view name) const override {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail("infer", "in-memory weights: tensor '{}' is missing", name);
    return it->second;
  }
  bool has(std::string_view name) const override { return tensors_.find(name) != tensors_.end(); }

 private:
  ModelConfig config_;
  std::map<std::string, TensorView, std::less<>> tensors_;
};

}  // namespace

std::shared_ptr<WeightSource> open_folder_weights(std::string_view reference) {
  // Model::open checks every tensor the config implies: present, right shape, compute dtype.
  return std::make_shared<FolderWeights>(Model::open(reference));
}

std::shared_ptr<WeightSource> make_memory_weights(ModelConfig config,
                                                  std::map<std::string, TensorView> tensors) {
  for (const auto& [name, view] : tensors) {
    if (view.nbytes != static_cast<size_t>(view.numel()) * dtype_size(view.dtype))
      fail("infer", "in-memory weights: tensor '{}': {} bytes for shape {} of {}", name,
           view.nbytes, shape_string(view.shape), dtype_name(view.dtype));
  }
  return std::make_shared<MemoryWeights>(std::move(config), std::move(tensors));
}

}  // namespace evomerge

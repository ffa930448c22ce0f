// Hugging Face model folders on disk: config.json, weights in model.safetensors or in shards listed
// by model.safetensors.index.json, and the tokenizer and other files that travel with a model.
// What the tensors mean is arch/'s business; this header only finds and validates files.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"

namespace evomerge {

// A model's tensors across one or several safetensors files, all memory-mapped.
class ModelWeights {
 public:
  // Opens dir/model.safetensors if present, else dir/model.safetensors.index.json and its shards.
  // Shard names in the index must be plain file names inside `dir` (no path separator, no "..",
  // not absolute) and exist; every tensor of the weight map must be in its shard and vice versa.
  static ModelWeights open(const std::filesystem::path& dir);

  // Tensor names in storage order (shard by shard, by offset).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(std::string_view name) const { return index_.count(name) != 0; }
  const TensorInfo* find(std::string_view name) const;
  // Throws Error "[model] DIR: tensor 'NAME' is missing" when absent.
  TensorView view(std::string_view name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }
  uint64_t total_tensor_bytes() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::vector<std::string> names_;
  // name -> (file index, tensor index in that file): indices, not pointers, so copies stay valid.
  std::map<std::string, std::pair<size_t, size_t>, std::less<>> index_;
};

// Parses model.safetensors.index.json text: returns tensor name -> shard file name, after checking
// the shard names are safe. Exposed for tests and the fuzz target.
std::map<std::string, std::string> parse_safetensors_index(std::string_view json_text, std::string_view where);

struct ModelFolder {
  std::filesystem::path dir;
  std::string reference;        // what the user wrote (a path or "org/name")
  nlohmann::json config;        // config.json as read
  ModelWeights weights;
  // Files that travel with the model (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
  // generation_config.json, chat templates, tokenizer.model, vocab/merges files, ...): names
  // relative to dir. Never weights, index or config.json.
  std::vector<std::string> aux_files;

  static ModelFolder open(std::string_view reference);
};

// Resolves a model reference: an existing local folder, or "org/name" in the local Hugging Face cache
// ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub: models--org--name/snapshots/REV,
// REV from refs/main when present, else the only or newest snapshot). Never touches the network.
std::filesystem::path resolve_model_path(std::string_view reference);

// Names of the files in `dir` that travel with a model (see ModelFolder::aux_files).
std::vector<std::string> list_aux_files(const std::filesystem::path& dir);

}  // namespace evomerge

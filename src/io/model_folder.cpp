#include "io/model_folder.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "common/error.h"
#include "common/json_limits.h"
#include "common/text.h"
#include "io/files.h"

namespace evomerge {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::map<std::string, std::string> parse_safetensors_index(std::string_view json_text, std::string_view where) {
  json index;
  check_json_depth(json_text, "model", where);
  try {
    index = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("model", "{}: not valid JSON: {}", where, printable(e.what()));
  }
  if (!index.is_object()) fail("model", "{}: not a JSON object", where);
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) fail("model", "{}: field 'weight_map' missing or not an object", where);
  if (auto md = index.find("metadata"); md != index.end() && !md->is_object() && !md->is_null())
    fail("model", "{}: field 'metadata' is not an object", where);
  std::map<std::string, std::string> result;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) fail("model", "{}: weight_map['{}'] is not a string", where, name);
    const auto& s = shard.get_ref<const std::string&>();
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos || s.find('\\') != std::string::npos ||
        s.find('\0') != std::string::npos || s.find("..") != std::string::npos)
      fail("model", "{}: weight_map['{}']: shard name '{}' is not a plain file name in the model folder", where,
           name, s);
    result[name] = s;
  }
  if (result.empty()) fail("model", "{}: weight_map is empty", where);
  return result;
}

ModelWeights ModelWeights::open(const fs::path& dir) {
  ModelWeights w;
  w.dir_ = dir;
  std::error_code ec;
  fs::path single = dir / "model.safetensors";
  fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::exists(single, ec)) {
    w.files_.push_back(SafetensorsFile::open(single));
  } else if (fs::exists(index_path, ec)) {
    auto map = parse_safetensors_index(read_text_file(index_path, 512u << 20), index_path.string());
    std::vector<std::string> shard_names;
    for (const auto& [name, shard] : map)
      if (std::find(shard_names.begin(), shard_names.end(), shard) == shard_names.end()) shard_names.push_back(shard);
    std::sort(shard_names.begin(), shard_names.end());
    for (const auto& shard : shard_names) {
      fs::path p = dir / shard;
      if (!fs::is_regular_file(p, ec))
        fail("model", "{}: shard '{}' listed in the index does not exist", index_path.string(), shard);
      w.files_.push_back(SafetensorsFile::open(p));
    }
    // Every tensor of the map must be in its shard, and every shard tensor in the map.
    for (size_t f = 0; f < w.files_.size(); ++f) {
      for (const auto& t : w.files_[f].tensors()) {
        auto it = map.find(t.name);
        if (it == map.end() || it->second != shard_names[f])
          fail("model", "{}: tensor '{}' is in shard '{}' but the index says '{}'", index_path.string(), t.name,
               shard_names[f], it == map.end() ? "(absent)" : it->second);
      }
    }
    for (const auto& [name, shard] : map) {
      size_t f = std::find(shard_names.begin(), shard_names.end(), shard) - shard_names.begin();
      if (!w.files_[f].find(name))
        fail("model", "{}: tensor '{}' is listed for shard '{}' but is not in it", index_path.string(), name, shard);
    }
  } else {
    // Other single-file names (e.g. adapter weights are handled elsewhere).
    fail("model", "{}: no model.safetensors or model.safetensors.index.json", dir.string());
  }
  for (size_t f = 0; f < w.files_.size(); ++f) {
    const auto& tensors = w.files_[f].tensors();
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!w.index_.emplace(tensors[i].name, std::make_pair(f, i)).second)
        fail("model", "{}: tensor '{}' appears in more than one shard", dir.string(), tensors[i].name);
      w.names_.push_back(tensors[i].name);
    }
  }
  return w;
}

const TensorInfo* ModelWeights::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &files_[it->second.first].tensors()[it->second.second];
}

TensorView ModelWeights::view(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("model", "{}: tensor '{}' is missing", dir_.string(), name);
  const SafetensorsFile& file = files_[it->second.first];
  return file.view(file.tensors()[it->second.second]);
}

uint64_t ModelWeights::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_)
    for (const auto& t : f.tensors()) total += t.nbytes();
  return total;
}

std::vector<std::string> list_aux_files(const fs::path& dir) {
  static const std::set<std::string> kWeights = {"model.safetensors", "model.safetensors.index.json", "config.json",
                                                 "pytorch_model.bin", "pytorch_model.bin.index.json"};
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code entry_ec;
    if (!entry.is_regular_file(entry_ec)) continue;  // follows symlinks (HF cache snapshots link to blobs)
    std::string name = entry.path().filename().string();
    if (kWeights.count(name) || name.starts_with(".")) continue;
    if (name.ends_with(".safetensors") || name.ends_with(".bin") || name.ends_with(".pt") || name.ends_with(".gguf"))
      continue;
    bool travels = name.starts_with("tokenizer") || name == "special_tokens_map.json" ||
                   name == "generation_config.json" || name == "added_tokens.json" || name == "vocab.json" ||
                   name == "merges.txt" || name.starts_with("chat_template") || name == "preprocessor_config.json";
    if (travels) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path resolve_model_path(std::string_view reference) {
  std::error_code ec;
  fs::path local(reference);
  if (fs::is_directory(local, ec)) return local;
  if (fs::exists(local, ec))
    fail("model",
         "{}: is a file, not a model folder (give the folder that holds config.json and the "
         "weights)",
         reference);
  // "org/name" (exactly one slash, no leading dot or slash) may be a hub id.
  bool hub_like = !reference.empty() && reference.front() != '/' && reference.front() != '.' &&
                  std::count(reference.begin(), reference.end(), '/') == 1;
  if (!hub_like) fail("model", "{}: no such model folder", reference);
  fs::path cache;
  if (const char* v = std::getenv("HF_HUB_CACHE"); v && *v) cache = v;
  else if (const char* h = std::getenv("HF_HOME"); h && *h) cache = fs::path(h) / "hub";
  else if (const char* home = std::getenv("HOME"); home && *home) cache = fs::path(home) / ".cache/huggingface/hub";
  size_t slash = reference.find('/');
  std::string repo_dir = "models--" + std::string(reference.substr(0, slash)) + "--" +
                         std::string(reference.substr(slash + 1));
  fs::path repo = cache / repo_dir;
  fs::path snapshots = repo / "snapshots";
  if (!fs::is_directory(snapshots, ec))
    fail("model", "{}: not a local folder and not in the Hugging Face cache ({}); evomerge never downloads, "
         "fetch it first (e.g. `huggingface-cli download {}`)", reference, repo.string(), reference);
  fs::path ref_main = repo / "refs" / "main";
  if (fs::is_regular_file(ref_main, ec)) {
    std::string rev = read_text_file(ref_main, 4096);
    while (!rev.empty() && (rev.back() == '\n' || rev.back() == ' ')) rev.pop_back();
    fs::path snap = snapshots / rev;
    // A revision is one folder name under snapshots/: never "..", "." or a path.
    bool plain = !rev.empty() && rev != "." && rev != ".." && rev.find('/') == std::string::npos &&
                 rev.find('\0') == std::string::npos;
    if (plain && fs::is_directory(snap, ec)) return snap;
  }
  fs::path newest;
  fs::file_time_type newest_time{};
  for (const auto& entry : fs::directory_iterator(snapshots, ec)) {
    std::error_code entry_ec;
    if (!entry.is_directory(entry_ec)) continue;
    auto t = entry.last_write_time(ec);
    if (newest.empty() || t > newest_time) {
      newest = entry.path();
      newest_time = t;
    }
  }
  if (newest.empty()) fail("model", "{}: the Hugging Face cache entry {} has no snapshot", reference, repo.string());
  return newest;
}

ModelFolder ModelFolder::open(std::string_view reference) {
  ModelFolder m;
  m.reference = std::string(reference);
  m.dir = resolve_model_path(reference);
  fs::path config_path = m.dir / "config.json";
  std::error_code ec;
  if (!fs::exists(config_path, ec)) fail("model", "{}: config.json is missing", m.dir.string());
  const std::string config_text =
      read_text_file(config_path, 16u << 20);  // refuses non-regular files
  check_json_depth(config_text, "model", config_path.string());
  try {
    m.config = json::parse(config_text);
  } catch (const json::exception& e) {
    fail("model", "{}: not valid JSON: {}", config_path.string(), printable(e.what()));
  }
  if (!m.config.is_object()) fail("model", "{}: not a JSON object", config_path.string());
  m.weights = ModelWeights::open(m.dir);
  m.aux_files = list_aux_files(m.dir);
  return m;
}

}  // namespace evomerge

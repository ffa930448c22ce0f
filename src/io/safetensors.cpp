#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/json_limits.h"
#include "common/text.h"
#include "io/files.h"

namespace evomerge {

namespace {

using json = nlohmann::json;

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool checked_add(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). Returns the offset of the
// first invalid byte, or npos.
size_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;       // overlong
      else if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;       // overlong
      else if (c == 0xf4) hi = 0x8f;  // > U+10FFFF
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
    i += len;
  }
  return std::string_view::npos;
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry, std::string_view where) {
  if (!entry.is_object()) fail("safetensors", "{}: tensor '{}': entry is not a JSON object", where, name);
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail("safetensors", "{}: tensor '{}': unknown field '{}'", where, name, key);
  }
  TensorInfo info;
  info.name = name;
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string())
    fail("safetensors", "{}: tensor '{}': field 'dtype' missing or not a string", where, name);
  auto dtype = dtype_from_name(dtype_it->get_ref<const std::string&>());
  if (!dtype)
    fail("safetensors", "{}: tensor '{}': unsupported dtype '{}'", where, name,
         dtype_it->get_ref<const std::string&>());
  info.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array())
    fail("safetensors", "{}: tensor '{}': field 'shape' missing or not an array", where, name);
  if (shape_it->size() > 64) fail("safetensors", "{}: tensor '{}': shape has {} dimensions (max 64)", where, name, shape_it->size());
  uint64_t numel = 1;
  for (const auto& d : *shape_it) {
    if (!d.is_number_unsigned())
      fail("safetensors", "{}: tensor '{}': field 'shape' holds a value that is not a non-negative integer", where, name);
    uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(INT64_MAX) || !checked_mul(numel, dim, &numel))
      fail("safetensors", "{}: tensor '{}': shape {} overflows", where, name, shape_it->dump());
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t expected_bytes = 0;
  if (!checked_mul(numel, dtype_size(info.dtype), &expected_bytes))
    fail("safetensors", "{}: tensor '{}': byte size of shape {} overflows", where, name, shape_it->dump());

  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2 ||
      !(*off_it)[0].is_number_unsigned() || !(*off_it)[1].is_number_unsigned())
    fail("safetensors", "{}: tensor '{}': field 'data_offsets' must be [begin, end] of non-negative integers", where, name);
  info.data_begin = (*off_it)[0].get<uint64_t>();
  info.data_end = (*off_it)[1].get<uint64_t>();
  if (info.data_end < info.data_begin)
    fail("safetensors", "{}: tensor '{}': data_offsets end {} < begin {}", where, name, info.data_end, info.data_begin);
  if (info.nbytes() != expected_bytes)
    fail("safetensors", "{}: tensor '{}': data_offsets span {} bytes but dtype {} x shape {} needs {}", where,
         name, info.nbytes(), dtype_name(info.dtype), shape_it->dump(), expected_bytes);
  return info;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_bytes,
                                           std::string_view where) {
  // Reject duplicate top-level keys while parsing: nlohmann would keep only the last one.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  if (size_t bad = first_invalid_utf8(header_json); bad != std::string_view::npos)
    fail("safetensors", "{}: header is not valid UTF-8 (byte {} of the header)", where, bad);
  check_json_depth(header_json, "safetensors", std::string(where) + " header");
  json header;
  try {
    header = json::parse(header_json.begin(), header_json.end(), on_event);
  } catch (const json::parse_error& e) {
    fail("safetensors", "{}: header is not valid JSON (byte {} of the header): {}", where, e.byte, printable(e.what()));
  } catch (const json::exception& e) {
    fail("safetensors", "{}: header is not valid JSON: {}", where, printable(e.what()));
  }
  if (!duplicate.empty()) fail("safetensors", "{}: duplicate tensor name '{}' in header", where, duplicate);
  if (!header.is_object()) fail("safetensors", "{}: header is not a JSON object", where);

  SafetensorsHeader result;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("safetensors", "{}: __metadata__ is not an object", where);
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail("safetensors", "{}: __metadata__ value of '{}' is not a string", where, key);
        result.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    result.tensors.push_back(parse_tensor_entry(name, entry, where));
  }
  std::stable_sort(result.tensors.begin(), result.tensors.end(),
                   [](const TensorInfo& a, const TensorInfo& b) {
                     return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
                   });
  // Contiguous, non-overlapping spans covering [0, data_bytes) exactly.
  uint64_t expected_begin = 0;
  for (const auto& t : result.tensors) {
    if (t.data_begin != expected_begin)
      fail("safetensors", "{}: tensor '{}': data_offsets begin {} but the previous tensor ends at {} ({})", where,
           t.name, t.data_begin, expected_begin, t.data_begin < expected_begin ? "overlap" : "gap");
    expected_begin = t.data_end;
  }
  if (expected_begin != data_bytes)
    fail("safetensors", "{}: tensors cover {} bytes but the data buffer holds {} ({})", where, expected_begin,
         data_bytes, expected_begin < data_bytes ? "trailing bytes" : "file truncated");
  return result;
}

SafetensorsHeader parse_safetensors_buffer(std::span<const std::byte> file, std::string_view where,
                                           uint64_t* data_start) {
  if (file.size() < 8) fail("safetensors", "{}: file is {} bytes, too small for the 8-byte header length", where, file.size());
  uint64_t header_len = read_u64_le(file.data());
  if (header_len > kMaxSafetensorsHeaderBytes)
    fail("safetensors", "{}: header length {} exceeds the limit of {} bytes", where, header_len,
         kMaxSafetensorsHeaderBytes);
  uint64_t start = 0;
  if (!checked_add(8, header_len, &start) || start > file.size())
    fail("safetensors", "{}: header length {} runs past the end of the {}-byte file", where, header_len, file.size());
  std::string_view text(reinterpret_cast<const char*>(file.data() + 8), header_len);
  if (data_start) *data_start = start;
  return parse_safetensors_header(text, file.size() - start, where);
}

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("io", "{}: cannot open: {}", path.string(), std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("io", "{}: not a regular file", path.string());
  }
  std::shared_ptr<MappedFile> mapped(new MappedFile());
  mapped->path_ = path;
  mapped->size_ = static_cast<size_t>(st.st_size);
  if (mapped->size_ > 0) {
    void* p = mmap(nullptr, mapped->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail("io", "{}: mmap failed: {}", path.string(), std::strerror(err));
    }
    mapped->data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);
  return mapped;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<std::byte*>(data_), size_);
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  f.header_ = parse_safetensors_buffer(f.file_->bytes(), path.string(), &f.data_start_);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.by_name_.emplace(f.header_.tensors[i].name, i);
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

TensorView SafetensorsFile::view(const TensorInfo& info) const {
  EM_ASSERT(data_start_ + info.data_end <= file_->bytes().size());
  return TensorView{info.dtype, info.shape, file_->bytes().data() + data_start_ + info.data_begin, info.nbytes()};
}

// ---------------------------------------------------------------------------------------------
// Writer

ShardedWriter::ShardedWriter(std::filesystem::path dir, std::vector<TensorSpec> specs, uint64_t max_shard_bytes,
                             std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)), specs_(std::move(specs)) {
  EM_ASSERT(max_shard_bytes > 0);
  // The destructor does not run when a constructor throws: remove what was created so far here.
  try {
    plan_and_create(max_shard_bytes, metadata);
  } catch (...) {
    remove_temporaries();
    throw;
  }
}

void ShardedWriter::remove_temporaries() {
  for (auto& shard : shards_) {
    if (shard.fd >= 0) ::close(shard.fd);
    shard.fd = -1;
    std::error_code ec;
    std::filesystem::remove(shard.temp_path, ec);
  }
}

void ShardedWriter::plan_and_create(uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  {
    std::set<std::string_view> names;
    for (const auto& spec : specs_) {
      if (spec.name == "__metadata__")
        fail("safetensors", "{}: a tensor cannot be named '__metadata__' (reserved by the format)", dir_.string());
      if (!names.insert(spec.name).second)
        fail("safetensors", "{}: tensor '{}' is written twice", dir_.string(), spec.name);
    }
  }
  // Greedy shard assignment in the given order.
  std::vector<std::vector<size_t>> groups;
  uint64_t current = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    uint64_t n = specs_[i].nbytes();
    if (groups.empty() || (current > 0 && current + n > max_shard_bytes)) {
      groups.emplace_back();
      current = 0;
    }
    groups.back().push_back(i);
    current += n;
    total_bytes_ += n;
  }
  if (groups.empty()) groups.emplace_back();
  const size_t n_shards = groups.size();
  for (size_t s = 0; s < n_shards; ++s) {
    Shard shard;
    shard.name = n_shards == 1 ? "model.safetensors"
                               : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, n_shards);
    // Within a shard, larger elements first so every tensor starts aligned to its element size.
    auto& group = groups[s];
    std::stable_sort(group.begin(), group.end(), [&](size_t a, size_t b) {
      return dtype_size(specs_[a].dtype) > dtype_size(specs_[b].dtype);
    });
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (size_t i : group) {
      const auto& spec = specs_[i];
      uint64_t n = spec.nbytes();
      header[spec.name] = {{"dtype", dtype_name(spec.dtype)}, {"shape", spec.shape}, {"data_offsets", {offset, offset + n}}};
      if (!slots_.emplace(spec.name, Slot{s, offset, n}).second)
        fail("safetensors", "{}: tensor '{}' is written twice", dir_.string(), spec.name);
      offset += n;
    }
    std::string text = header.dump();
    while ((text.size() + 8) % 8 != 0) text.push_back(' ');
    shard.data_start = 8 + text.size();
    for (auto& [name, slot] : slots_)
      if (slot.shard == s) slot.file_offset += shard.data_start;
    shard.temp_path = dir_ / (std::string(".") + shard.name + ".tmp");
    shard.fd = ::open(shard.temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (shard.fd < 0) fail("io", "{}: cannot create: {}", shard.temp_path.string(), std::strerror(errno));
    shards_.push_back(shard);  // from here on remove_temporaries() cleans it up
    std::string prefix(8, '\0');
    uint64_t len = text.size();
    for (int b = 0; b < 8; ++b) prefix[b] = static_cast<char>((len >> (8 * b)) & 0xff);
    write_all_at(shards_.back().fd, prefix.data(), 8, 0, shard.temp_path);
    write_all_at(shards_.back().fd, text.data(), text.size(), 8, shard.temp_path);
    if (ftruncate(shards_.back().fd, static_cast<off_t>(shard.data_start + offset)) != 0)
      fail("io", "{}: cannot size file: {}", shard.temp_path.string(), write_error_text(errno));
  }
}

ShardedWriter::~ShardedWriter() {
  if (!finished_) remove_temporaries();
}

void ShardedWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  auto it = slots_.find(name);
  EM_ASSERT_MSG(it != slots_.end(), "ShardedWriter::write: tensor not declared");
  Slot& slot = it->second;
  EM_ASSERT_MSG(bytes.size() == slot.nbytes, "ShardedWriter::write: byte count differs from spec");
  EM_ASSERT_MSG(!slot.written, "ShardedWriter::write: tensor written twice");
  const Shard& shard = shards_[slot.shard];
  write_all_at(shard.fd, bytes.data(), bytes.size(), slot.file_offset, shard.temp_path);
  slot.written = true;  // distinct tensors touch distinct slots: no lock needed
}

void ShardedWriter::write_part(std::string_view name, uint64_t offset,
                               std::span<const std::byte> bytes) {
  auto it = slots_.find(name);
  EM_ASSERT_MSG(it != slots_.end(), "ShardedWriter::write_part: tensor not declared");
  Slot& slot = it->second;
  EM_ASSERT_MSG(offset <= slot.nbytes && bytes.size() <= slot.nbytes - offset,
                "ShardedWriter::write_part: part beyond the tensor's bytes");
  const Shard& shard = shards_[slot.shard];
  write_all_at(shard.fd, bytes.data(), bytes.size(), slot.file_offset + offset, shard.temp_path);
  std::lock_guard<std::mutex> lock(parts_mutex_);
  EM_ASSERT_MSG(!slot.written, "ShardedWriter::write_part: tensor already complete");
  slot.part_bytes += bytes.size();
  slot.written = slot.part_bytes == slot.nbytes;
}

std::vector<std::string> ShardedWriter::file_names() const {
  std::vector<std::string> names;
  for (const auto& s : shards_) names.push_back(s.name);
  if (shards_.size() > 1) names.push_back("model.safetensors.index.json");
  return names;
}

void ShardedWriter::finish() {
  EM_ASSERT(!finished_);
  for (const auto& [name, slot] : slots_)
    EM_ASSERT_MSG(slot.written, "ShardedWriter::finish: a declared tensor was never written");
  for (auto& shard : shards_) {
    if (::close(shard.fd) != 0)
      fail("io", "{}: close failed: {}", shard.temp_path.string(), write_error_text(errno));
    shard.fd = -1;
  }
  if (shards_.size() > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total_bytes_}};
    nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
    for (const auto& spec : specs_) weight_map[spec.name] = shards_[slots_.find(spec.name)->second.shard].name;
    index["weight_map"] = weight_map;
    write_file_atomic(dir_ / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  for (auto& shard : shards_) rename_file(shard.temp_path, dir_ / shard.name);
  finished_ = true;
}

void write_safetensors(const std::filesystem::path& dir,
                       const std::vector<std::pair<std::string, TensorView>>& tensors, uint64_t max_shard_bytes) {
  std::vector<TensorSpec> specs;
  for (const auto& [name, view] : tensors) specs.push_back({name, view.dtype, view.shape});
  ShardedWriter writer(dir, specs, max_shard_bytes);
  for (const auto& [name, view] : tensors) writer.write(name, view.bytes());
  writer.finish();
}

}  // namespace evomerge

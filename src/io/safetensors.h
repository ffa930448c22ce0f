// safetensors files: validated, memory-mapped reading and streaming, sharded writing.
//
// Layout: [u64 LE header length N][N bytes of UTF-8 JSON header][data buffer]. The header maps each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data
// buffer, plus an optional string->string "__metadata__". The reader is a security boundary: every
// size and offset is checked (see validate rules in safetensors.cpp) before anything is allocated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace evomerge {

// The header length limit of the reference implementation (MAX_HEADER_SIZE).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t data_begin = 0;  // offsets relative to the data buffer
  uint64_t data_end = 0;
  uint64_t nbytes() const { return data_end - data_begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by data_begin (file order)
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header (the JSON text) against a data buffer of `data_bytes` bytes. `where`
// names the file in error messages. Throws Error on any violation: invalid UTF-8 or JSON, unknown
// dtype, bad shape, overflow, overlapping / gapped / out-of-range offsets, dtype x shape != span,
// trailing bytes, duplicate names, non-string metadata, unknown keys in a tensor entry.
SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_bytes,
                                           std::string_view where);

// Splits a whole file image into header and data and validates it (the header length prefix bound
// included). Used by the file reader, tests and the fuzz target.
SafetensorsHeader parse_safetensors_buffer(std::span<const std::byte> file, std::string_view where,
                                           uint64_t* data_start = nullptr);

// A read-only memory map of a whole file.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// A validated safetensors file; tensor views point into the memory map (zero-copy). Views stay valid
// while any copy of the shared MappedFile lives.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;
  TensorView view(const TensorInfo& info) const;
  const std::filesystem::path& path() const { return file_->path(); }
  uint64_t file_size() const { return file_->bytes().size(); }
  const std::shared_ptr<MappedFile>& mapping() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
  uint64_t data_start_ = 0;
  std::map<std::string, size_t, std::less<>> by_name_;
};

// What a writer needs to know of a tensor before its bytes exist.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t nbytes() const { return static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype); }
};

// Writes a model's tensors into `dir` as model.safetensors, or as model-0000i-of-0000N.safetensors
// shards plus model.safetensors.index.json when they exceed `max_shard_bytes` (filled greedily in the
// given order; a tensor larger than the budget gets a shard of its own, as Hugging Face does).
// The layout (shard, offset of every tensor) is fixed up front, so tensors may be written in any
// order and from several threads at once. Files are written under temporary names and renamed by
// finish(); if the writer is destroyed before finish(), the temporaries are removed.
class ShardedWriter {
 public:
  static constexpr uint64_t kDefaultShardBytes = 5'000'000'000;

  ShardedWriter(std::filesystem::path dir, std::vector<TensorSpec> specs,
                uint64_t max_shard_bytes = kDefaultShardBytes,
                std::map<std::string, std::string> metadata = {{"format", "pt"}});
  ~ShardedWriter();
  ShardedWriter(const ShardedWriter&) = delete;
  ShardedWriter& operator=(const ShardedWriter&) = delete;

  // Writes one tensor's bytes (exactly spec.nbytes()). Thread-safe for distinct tensors.
  void write(std::string_view name, std::span<const std::byte> bytes);
  // Writes bytes [offset, offset + size) of one tensor, so a producer can write each piece while it
  // is still in cache. Thread-safe (any tensors, any parts); the parts of a tensor must not
  // overlap, and it counts as written once they add up to its size.
  void write_part(std::string_view name, uint64_t offset, std::span<const std::byte> bytes);
  // Checks every tensor was written, flushes, renames the shards and writes the index.
  void finish();

  size_t shard_count() const { return shards_.size(); }
  std::vector<std::string> file_names() const;  // final names, index included
  uint64_t total_tensor_bytes() const { return total_bytes_; }

 private:
  struct Shard {
    std::string name;
    std::filesystem::path temp_path;
    int fd = -1;
    uint64_t data_start = 0;
  };
  struct Slot {
    size_t shard = 0;
    uint64_t file_offset = 0;
    uint64_t nbytes = 0;
    uint64_t part_bytes = 0;  // written by write_part (guarded by parts_mutex_)
    bool written = false;
  };
  void plan_and_create(uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata);
  void remove_temporaries();  // closes and deletes the temporary shard files

  std::filesystem::path dir_;
  std::vector<TensorSpec> specs_;
  std::vector<Shard> shards_;
  std::map<std::string, Slot, std::less<>> slots_;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
  std::mutex parts_mutex_;
};

// Convenience: writes owned tensors (in order) into `dir` via ShardedWriter.
void write_safetensors(const std::filesystem::path& dir,
                       const std::vector<std::pair<std::string, TensorView>>& tensors,
                       uint64_t max_shard_bytes = ShardedWriter::kDefaultShardBytes);

}  // namespace evomerge

// Tensors as evomerge sees them: a dtype, a row-major shape and a span of little-endian bytes.
// TensorView borrows its bytes (from a memory-mapped file or a caller buffer); Tensor owns them.
// Compute dtypes are F32, F16 and BF16 (converted to f32 for math); the others are carried through
// untouched (copied byte for byte by merges that pass them along).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace evomerge {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, U16, U32, U64 };

// Bytes per element.
size_t dtype_size(DType dtype);
// safetensors spelling: "F32", "BF16", ...
std::string_view dtype_name(DType dtype);
// Parses the safetensors spelling; nullopt for an unknown or unsupported dtype.
std::optional<DType> dtype_from_name(std::string_view name);
// torch spelling used in config.json's torch_dtype: "float32", "bfloat16", "float16".
std::string_view dtype_torch_name(DType dtype);
std::optional<DType> dtype_from_torch_name(std::string_view name);
// True for F32, F16, BF16: the dtypes merges and inference compute with.
bool dtype_is_compute(DType dtype);

using Shape = std::vector<int64_t>;

// Number of elements of a shape (1 for a scalar, shape []). Dimensions must be >= 0; callers that
// read shapes from files check overflow themselves (see io/safetensors.cpp).
int64_t shape_numel(const Shape& shape);
// "[4096, 11008]"
std::string shape_string(const Shape& shape);

struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  const std::byte* data = nullptr;  // little-endian, row-major, no strides
  size_t nbytes = 0;

  int64_t numel() const { return shape_numel(shape); }
  std::span<const std::byte> bytes() const { return {data, nbytes}; }
};

struct Tensor {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<std::byte> storage;

  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled
  static Tensor from_f32(const Shape& shape, std::span<const float> values, DType dtype = DType::F32);

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return storage.size(); }
  TensorView view() const { return {dtype, shape, storage.data(), storage.size()}; }
};

// Converts any compute-dtype view to f32 values (allocates). Asserts dtype_is_compute.
std::vector<float> to_f32(const TensorView& view);

}  // namespace evomerge

#include "tensor/tensor.h"

#include <fmt/format.h>

#include "common/error.h"
#include "tensor/convert.h"

namespace evomerge {

namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::string_view torch_name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", "float32", 4},  {DType::F16, "F16", "float16", 2},
    {DType::BF16, "BF16", "bfloat16", 2}, {DType::F64, "F64", "float64", 8},
    {DType::I64, "I64", "int64", 8},    {DType::I32, "I32", "int32", 4},
    {DType::I16, "I16", "int16", 2},    {DType::I8, "I8", "int8", 1},
    {DType::U8, "U8", "uint8", 1},      {DType::BOOL, "BOOL", "bool", 1},
    {DType::U16, "U16", "uint16", 2},   {DType::U32, "U32", "uint32", 4},
    {DType::U64, "U64", "uint64", 8},
};
const DTypeInfo& info(DType dtype) {
  for (const auto& i : kDTypes)
    if (i.dtype == dtype) return i;
  EM_ASSERT_MSG(false, "unknown DType");
  __builtin_unreachable();
}
}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
std::string_view dtype_name(DType dtype) { return info(dtype).name; }
std::string_view dtype_torch_name(DType dtype) { return info(dtype).torch_name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kDTypes)
    if (i.name == name) return i.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_torch_name(std::string_view name) {
  if (name.starts_with("torch.")) name.remove_prefix(6);
  if (name == "float") return DType::F32;
  if (name == "half") return DType::F16;
  for (const auto& i : kDTypes)
    if (i.torch_name == name) return i.dtype;
  return std::nullopt;
}

bool dtype_is_compute(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    EM_ASSERT(d >= 0);
    n *= d;
  }
  return n;
}

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Tensor::Tensor(DType dtype_, Shape shape_)
    : dtype(dtype_), shape(std::move(shape_)), storage(shape_numel(shape) * dtype_size(dtype)) {}

Tensor Tensor::from_f32(const Shape& shape, std::span<const float> values, DType dtype) {
  EM_ASSERT(dtype_is_compute(dtype));
  EM_ASSERT(static_cast<int64_t>(values.size()) == shape_numel(shape));
  Tensor t(dtype, shape);
  convert_from_f32(dtype, values.data(), t.storage.data(), values.size());
  return t;
}

std::vector<float> to_f32(const TensorView& view) {
  EM_ASSERT(dtype_is_compute(view.dtype));
  std::vector<float> out(view.numel());
  EM_ASSERT(out.size() * dtype_size(view.dtype) == view.nbytes);
  convert_to_f32(view.dtype, view.data, out.data(), out.size());
  return out;
}

}  // namespace evomerge

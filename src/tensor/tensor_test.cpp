#include "tensor/tensor.h"

#include <gtest/gtest.h>

namespace evomerge {
namespace {

TEST(Tensor, DTypeNamesRoundTrip) {
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32, DType::I16,
                  DType::I8, DType::U8, DType::BOOL}) {
    EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
    EXPECT_EQ(dtype_from_torch_name(dtype_torch_name(d)), d);
  }
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_FALSE(dtype_from_name("F8_E4M3").has_value());
  EXPECT_EQ(dtype_from_torch_name("torch.bfloat16"), DType::BF16);
}

TEST(Tensor, ShapeAndOwnedStorage) {
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({3, 0, 2}), 0);
  EXPECT_EQ(shape_string({2, 3}), "[2, 3]");
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  Tensor t = Tensor::from_f32({2, 3}, v, DType::BF16);
  EXPECT_EQ(t.nbytes(), 12u);
  EXPECT_EQ(to_f32(t.view()), v);
}

}  // namespace
}  // namespace evomerge

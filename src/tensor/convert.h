// dtype conversions between the 16-bit float formats and f32.
//
// Conventions (they match PyTorch's .to()):
//  - f32 -> bf16 and f32 -> f16 round to nearest, ties to even; overflow to f16 gives +-inf.
//  - NaN stays NaN: bf16 keeps the top payload bits and sets the quiet bit; f16 likewise.
//  - f16 -> f32 and bf16 -> f32 are exact (f16 subnormals included); an f16 NaN comes back quiet.
// The scalar functions are the reference; the span functions are vectorised (Highway, dispatched at
// run time to the best SIMD target) and are tested against the scalar ones on every 16-bit pattern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tensor/tensor.h"

namespace evomerge {

inline float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t x = f32_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  uint32_t lsb = (x >> 16) & 1u;
  return static_cast<uint16_t>((x + 0x7fffu + lsb) >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Vectorised conversions of n elements. `src`/`dst` of the 16-bit dtypes hold uint16 bit patterns;
// pointers need no particular alignment.
void bf16_to_f32(const uint16_t* src, float* dst, size_t n);
void f32_to_bf16(const float* src, uint16_t* dst, size_t n);
void f16_to_f32(const uint16_t* src, float* dst, size_t n);
void f32_to_f16(const float* src, uint16_t* dst, size_t n);

// Dispatch on a compute dtype (F32 copies). `src`/`dst` may be unaligned.
void convert_to_f32(DType src_dtype, const void* src, float* dst, size_t n);
void convert_from_f32(DType dst_dtype, const float* src, void* dst, size_t n);

}  // namespace evomerge

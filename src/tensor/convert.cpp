#include "tensor/convert.h"

#include <cstring>

#include "common/error.h"

// Highway dynamic dispatch: this file is compiled once per SIMD target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tensor/convert.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace evomerge {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void Bf16ToF32(const uint16_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du32;
  const hn::Rebind<uint16_t, decltype(df)> du16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto wide = hn::PromoteTo(du32, hn::LoadU(du16, src + i));
    hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(wide)), df, dst + i);
  }
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

void F32ToBf16(const float* HWY_RESTRICT src, uint16_t* HWY_RESTRICT dst, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du32;
  const hn::RebindToSigned<decltype(df)> di32;
  const hn::Rebind<uint16_t, decltype(df)> du16;
  const size_t lanes = hn::Lanes(df);
  const auto bias = hn::Set(du32, 0x7fffu);
  const auto one = hn::Set(du32, 1u);
  const auto quiet = hn::Set(du32, 0x40u);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto v = hn::LoadU(df, src + i);
    auto bits = hn::BitCast(du32, v);
    auto high = hn::ShiftRight<16>(bits);
    auto rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(bias, hn::And(high, one))));
    auto nan_mask = hn::RebindMask(du32, hn::IsNaN(v));
    auto result = hn::IfThenElse(nan_mask, hn::Or(high, quiet), rounded);
    // Values are <= 0xffff, so the saturating i32 -> u16 demotion is exact.
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di32, result)), du16, dst + i);
  }
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void F16ToF32(const uint16_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> df16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto h = hn::LoadU(df16, reinterpret_cast<const hwy::float16_t*>(src + i));
    hn::StoreU(hn::PromoteTo(df, h), df, dst + i);
  }
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void F32ToF16(const float* HWY_RESTRICT src, uint16_t* HWY_RESTRICT dst, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> df16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto v = hn::LoadU(df, src + i);
    hn::StoreU(hn::DemoteTo(df16, v), df16, reinterpret_cast<hwy::float16_t*>(dst + i));
  }
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

}  // namespace HWY_NAMESPACE
}  // namespace evomerge
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace evomerge {

HWY_EXPORT(Bf16ToF32);
HWY_EXPORT(F32ToBf16);
HWY_EXPORT(F16ToF32);
HWY_EXPORT(F32ToF16);

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    if (mantissa == 0) return bits_to_f32(sign);
    // Subnormal: value = mantissa * 2^-24; normalise so bit 10 is the implicit one.
    int shift = 0;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3ffu;
    return bits_to_f32(sign | (static_cast<uint32_t>(113 - shift) << 23) | (mantissa << 13));
  }
  if (exponent == 31) {
    uint32_t payload = mantissa << 13;
    if (mantissa) payload |= 0x400000u;  // NaN comes back quiet, as F16C does
    return bits_to_f32(sign | 0x7f800000u | payload);
  }
  return bits_to_f32(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t x = f32_to_bits(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((x >> 13) & 0x3ffu);  // NaN
  if (x >= 0x47800000u) return sign | 0x7c00u;  // >= 65536 (and inf): inf
  uint32_t exponent = x >> 23;
  if (exponent < 113) {
    // Result is an f16 subnormal (or zero): units of 2^-24. value = m * 2^(e-150) = m >> (126-e).
    if (exponent < 102) return sign;
    uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exponent;  // 14..24
    uint32_t result = mantissa >> shift;
    uint32_t rem = mantissa & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (result & 1u))) ++result;
    return sign | static_cast<uint16_t>(result);
  }
  uint32_t result = ((exponent - 112) << 10) | ((x & 0x7fffffu) >> 13);
  uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (result & 1u))) ++result;  // may carry into inf: correct
  return sign | static_cast<uint16_t>(result);
}

void bf16_to_f32(const uint16_t* src, float* dst, size_t n) { HWY_DYNAMIC_DISPATCH(Bf16ToF32)(src, dst, n); }
void f32_to_bf16(const float* src, uint16_t* dst, size_t n) { HWY_DYNAMIC_DISPATCH(F32ToBf16)(src, dst, n); }
void f16_to_f32(const uint16_t* src, float* dst, size_t n) { HWY_DYNAMIC_DISPATCH(F16ToF32)(src, dst, n); }
void f32_to_f16(const float* src, uint16_t* dst, size_t n) { HWY_DYNAMIC_DISPATCH(F32ToF16)(src, dst, n); }

void convert_to_f32(DType src_dtype, const void* src, float* dst, size_t n) {
  switch (src_dtype) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: bf16_to_f32(static_cast<const uint16_t*>(src), dst, n); return;
    case DType::F16: f16_to_f32(static_cast<const uint16_t*>(src), dst, n); return;
    default: EM_ASSERT_MSG(false, "convert_to_f32: not a compute dtype");
  }
}

void convert_from_f32(DType dst_dtype, const float* src, void* dst, size_t n) {
  switch (dst_dtype) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: f32_to_bf16(src, static_cast<uint16_t*>(dst), n); return;
    case DType::F16: f32_to_f16(src, static_cast<uint16_t*>(dst), n); return;
    default: EM_ASSERT_MSG(false, "convert_from_f32: not a compute dtype");
  }
}

}  // namespace evomerge
#endif  // HWY_ONCE

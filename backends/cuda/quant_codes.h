#pragma once

// The int8 and e4m3 codes of workloads/quant.h (QuantizeInt8, FloatToFp8) as functions the
// device kernels (quant_kernels.cu) and the host compiler both build: the host tests
// (tests/gpu/cuda_quant_host_test.cc) check them against workloads/quant.cc without a GPU, and
// the kernels compute the same operations, so they give the same bits. Every step is one fp32
// operation rounded to nearest even: the division x / scale (__fdiv_rn on the device, IEEE as
// on the host), rint, and integer bit manipulation.

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CB_QUANT_HD __host__ __device__ __forceinline__
#else
#define CB_QUANT_HD inline
#endif

namespace cb::cuda {

inline constexpr float kQuantInt8Max = 127.0f;  // = workloads/quant.h kInt8Max
inline constexpr float kQuantFp8Max = 448.0f;   // = kFp8Max

CB_QUANT_HD float QuantDiv(float x, float scale) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(x, scale);
#else
  return x / scale;
#endif
}

CB_QUANT_HD uint32_t QuantFloatBits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

/// rintf (to nearest even in the default rounding mode) and fabsf on either side.
CB_QUANT_HD float QuantRint(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::rint(x);
#endif
}
CB_QUANT_HD float QuantAbs(float x) {
#if defined(__CUDA_ARCH__)
  return fabsf(x);
#else
  return std::fabs(x);
#endif
}

/// The scale of a row (or group) whose largest magnitude is `absmax`: absmax / qmax, or 1 for
/// an all-zero row (workloads/quant.h AbsMaxScale).
CB_QUANT_HD float QuantScaleOf(float absmax, float qmax) {
  return absmax > 0 ? QuantDiv(absmax, qmax) : 1.0f;
}

/// QuantizeInt8: rne(x / scale) saturated to [-127, 127]. Finite inputs (as on the host).
CB_QUANT_HD int8_t Int8Code(float x, float scale) {
  float q = QuantRint(QuantDiv(x, scale));
  q = q < -kQuantInt8Max ? -kQuantInt8Max : (q > kQuantInt8Max ? kQuantInt8Max : q);
  return static_cast<int8_t>(q);
}

/// FloatToFp8: the e4m3fn byte nearest to v, ties to even; |v| >= 448 (infinities included)
/// saturates to +-448 (0x7e / 0xfe); NaN gives 0x7f.
CB_QUANT_HD uint8_t Fp8Code(float v) {
  const uint32_t u = QuantFloatBits(v);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t mag = u & 0x7fffffffu;
  if (mag > 0x7f800000u) return 0x7f;  // NaN
  const float a = QuantAbs(v);
  if (a >= kQuantFp8Max) return sign | 0x7e;
  if (mag < (121u << 23)) {  // a < 2^-6: multiples of 2^-9 (code 8 is 2^-6, the first normal)
    return sign | static_cast<uint8_t>(QuantRint(a * 512.0f));  // a x 2^9 is exact
  }
  // Normal: the exponent rebiased (127 -> 7) and the 23-bit mantissa rounded to 3 bits, ties
  // to even; a carry out of the mantissa moves to the next binade as it should.
  const uint32_t w = mag - (120u << 23);
  const uint32_t r = (w + 0x7ffffu + ((w >> 20) & 1u)) >> 20;
  return sign | static_cast<uint8_t>(r < 0x7eu ? r : 0x7eu);
}

/// QuantizeFp8: the code of x / scale (one fp32 division).
CB_QUANT_HD uint8_t Fp8CodeOf(float x, float scale) { return Fp8Code(QuantDiv(x, scale)); }

}  // namespace cb::cuda

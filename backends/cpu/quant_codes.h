#pragma once

/// The 8-bit codes of workloads/quant.h in AVX-512 registers: encoders bit for bit equal to
/// QuantizeInt8 and FloatToFp8 (the weight packer's, quant_matrix.cc, and the KV cache's,
/// attention.cc), and the loads through which the attention kernel reads 8-bit K and V as
/// fp32. Only kernel sources include this (compiled with AVX-512 F/BW/VL/DQ).

#include <cstdint>
#include <cstring>

#include "backends/cpu/vec_math.h"
#include "workloads/quant.h"

namespace cb::cpu {

/// An e4m3fn code in memory: a type of its own, so that Load16 reads it as its value.
enum class fp8_t : uint8_t {};

/// QuantizeInt8 of 8 lanes, bit for bit: x / scale in fp32, rounded to nearest even, clamped.
inline __m256i Int8Codes8(__m256 x, __m256 scale) {
  const __m256 q =
      _mm256_roundscale_ps(_mm256_div_ps(x, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 c =
      _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(-kInt8Max)), _mm256_set1_ps(kInt8Max));
  return _mm256_cvtps_epi32(c);
}

/// FloatToFp8 of 8 lanes, bit for bit (e4m3fn, saturating, NaN -> 0x7f). Normal codes round
/// fp32's bits to 3 mantissa bits to nearest even in the integers (carries roll into the
/// exponent) and rebias the exponent (127 -> 7); below 2^-6 the code counts subnormal units
/// of 2^-9, rne(|x| 2^9) (cvtps2dq rounds to nearest even). Codes above 0x7e saturate.
inline __m256i Fp8Codes8(__m256 x) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(bits, 24), _mm256_set1_epi32(0x80));
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256i ab = _mm256_castps_si256(a);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(ab, 20), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_add_epi32(_mm256_add_epi32(ab, _mm256_set1_epi32(0x7ffff)), odd);
  const __m256i normal =
      _mm256_sub_epi32(_mm256_srli_epi32(rounded, 20), _mm256_set1_epi32(120 << 3));
  const __m256i sub = _mm256_cvtps_epi32(_mm256_mul_ps(a, _mm256_set1_ps(512.0f)));
  const __mmask8 tiny = _mm256_cmplt_epi32_mask(ab, _mm256_set1_epi32(0x3c800000));  // 2^-6
  __m256i code = _mm256_mask_mov_epi32(normal, tiny, sub);
  code = _mm256_min_epu32(code, _mm256_set1_epi32(0x7e));
  const __mmask8 nan = _mm256_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm256_mask_mov_epi32(_mm256_or_si256(code, sign), nan, _mm256_set1_epi32(0x7f));
}

/// The 8 low bytes of 8 int32 lanes.
inline uint64_t Bytes8(__m256i v) {
  return static_cast<uint64_t>(_mm_cvtsi128_si64(_mm256_cvtepi32_epi8(v)));
}

/// AbsMaxScale(x, n, qmax), vectorised (a maximum is exact in any order).
inline float AbsMaxScaleOf(const float* x, int64_t n, float qmax) {
  __m512 m = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(TailMask(n - i), x + i)));
  }
  const float mx = _mm512_reduce_max_ps(m);
  return mx > 0 ? mx / qmax : 1.0f;
}

/// QuantizeInt8 / QuantizeFp8 (int8 or fp8 `dtype`) of n values with `scale`, 8 at a time.
inline void EncodeCodes(DType dtype, const float* x, int64_t n, float scale, uint8_t* codes) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const uint64_t b =
        Bytes8(dtype == DType::kInt8 ? Int8Codes8(v, s) : Fp8Codes8(_mm256_div_ps(v, s)));
    std::memcpy(codes + i, &b, sizeof b);
  }
  for (; i < n; ++i) {
    codes[i] = dtype == DType::kInt8 ? static_cast<uint8_t>(QuantizeInt8(x[i], scale))
                                     : QuantizeFp8(x[i], scale);
  }
}

/// 16 int8 codes as fp32 (exact).
inline __m512 Load16(const int8_t* p, __mmask16 m = 0xffff) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

/// 16 e4m3fn codes as fp32, exactly (Fp8ToFloat; 0x7f, which no encoder writes for a finite
/// value, reads as 480, not NaN): the sign-extended code shifted so that its 4 exponent and
/// 3 mantissa bits land on fp32's, plus the bias difference 127 - 7; subnormal codes
/// (exponent 0: m x 2^-9, zero included) from a table of 8, their sign put back.
inline __m512 Load16(const fp8_t* p, __mmask16 m = 0xffff) {
  const __m512i w = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p));
  const __m512i sign_mag =
      _mm512_and_si512(_mm512_slli_epi32(w, 20), _mm512_set1_epi32(0x87f00000));
  __m512i r = _mm512_add_epi32(sign_mag, _mm512_set1_epi32(120 << 23));
  const __m512i sub = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0x3c600000, 0x3c400000, 0x3c200000,
                                       0x3c000000, 0x3bc00000, 0x3b800000, 0x3b000000, 0);
  const __mmask16 subnormal = _mm512_testn_epi32_mask(w, _mm512_set1_epi32(0x78));
  r = _mm512_mask_permutexvar_epi32(r, subnormal, w, sub);
  constexpr int kAOrBAndC = 0xf8;  // a | (b & c): the sign bit back on the table's values
  r = _mm512_ternarylogic_epi32(r, w, _mm512_set1_epi32(static_cast<int>(0x80000000u)), kAOrBAndC);
  return _mm512_castsi512_ps(r);
}

}  // namespace cb::cpu

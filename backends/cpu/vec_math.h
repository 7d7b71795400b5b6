#pragma once

/// AVX-512 helpers shared by the kernels: masked loads and stores of fp32 and bf16 lanes
/// (widths that are not multiples of 16 run with a tail mask) and a vector exp. Only the
/// kernel sources include this; they are compiled with AVX-512 F/BW/VL/DQ enabled.

#include <immintrin.h>

#include <cstdint>

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512DQ__)
#error "the cpu backend kernels need AVX-512 F/BW/VL/DQ (see backends/cpu/CMakeLists.txt)"
#endif

namespace cb::cpu {

using bf16_t = uint16_t;  ///< bf16 storage: the upper 16 bits of an fp32

inline __mmask16 TailMask(int64_t remaining) {
  if (remaining <= 0) return 0;
  return remaining >= 16 ? static_cast<__mmask16>(0xffff)
                         : static_cast<__mmask16>((1u << remaining) - 1u);
}

inline __m512 Load16(const float* p, __mmask16 m = 0xffff) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 Load16(const bf16_t* p, __mmask16 m = 0xffff) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/// fp32 -> bf16, round to nearest even (as cb::FloatToBf16 for finite values).
inline __m256i ToBf16(__m512 v) {
#if defined(__AVX512BF16__)
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
#else
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
#endif
}

/// v rounded to bf16 precision (round to nearest even), as fp32.
inline __m512 RoundToBf16(__m512 v) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(ToBf16(v)), 16));
}

inline void Store16(float* p, __m512 v, __mmask16 m = 0xffff) { _mm512_mask_storeu_ps(p, m, v); }
inline void Store16(bf16_t* p, __m512 v, __mmask16 m = 0xffff) {
  _mm256_mask_storeu_epi16(p, m, ToBf16(v));
}

/// Copies n values, converting between fp32 and bf16 as the pointer types say.
template <typename TI, typename TO>
inline void CopyRow(const TI* in, TO* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    Store16(out + i, Load16(in + i, m), m);
  }
}

/// exp(x) for every lane, relative error about 2 ulp on [-87, 88]; clamps outside.
inline __m512 Exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln2 split hi + lo
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);  // Taylor series to r^6: |r| <= ln2 / 2
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

/// In place: s[0, len) = softmax numerators exp(s - max); returns 1 / their sum.
inline float SoftmaxNumerators(float* s, int64_t len) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  __m512 mx = ninf;
  for (int64_t t = 0; t < len; t += 16) {
    mx = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, TailMask(len - t), s + t), mx);
  }
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t t = 0; t < len; t += 16) {
    const __mmask16 m = TailMask(len - t);
    const __m512 e = Exp16(_mm512_sub_ps(Load16(s + t, m), top));
    Store16(s + t, e, m);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

/// silu(g) = g / (1 + exp(-g)); 1 / d by rcp14 and one Newton step (error ~1e-8), which is
/// several times cheaper than vdivps.
inline __m512 Silu16(__m512 g) {
  const __m512 d =
      _mm512_add_ps(_mm512_set1_ps(1.0f), Exp16(_mm512_sub_ps(_mm512_setzero_ps(), g)));
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
  return _mm512_mul_ps(g, r);
}

}  // namespace cb::cpu

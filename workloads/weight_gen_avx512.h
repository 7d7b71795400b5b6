#pragma once

/// The synthetic weights' generator (WeightSource) on 8 elements at once with AVX-512: the
/// same function, bit for bit, as WeightSource::Value (tests/unit/weights_test.cc checks it).
/// Callers are compiled for AVX-512 F/DQ (the cpu backend's kernels) or mark their function
/// with CB_WEIGHT_GEN_TARGET and check the CPU first.

#include <immintrin.h>

#include <cstdint>

#define CB_WEIGHT_GEN_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

namespace cb::weight_gen {

/// Mix64 of WeightSource on 8 lanes.
CB_WEIGHT_GEN_TARGET inline __m512i Mix64x8(__m512i z) {
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                         _mm512_set1_epi64(static_cast<int64_t>(0xbf58476d1ce4e5b9ULL)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                         _mm512_set1_epi64(static_cast<int64_t>(0x94d049bb133111ebULL)));
  return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/// offset + scale * unit(stream, index) for 8 (stream, index, scale, offset) lanes, with the
/// multiply-add fused as WeightSource::Value does it.
CB_WEIGHT_GEN_TARGET inline __m256 Values8(__m512i stream, __m512i index, __m256 scale,
                                           __m256 offset) {
  const __m512i golden = _mm512_set1_epi64(static_cast<int64_t>(0x9e3779b97f4a7c15ULL));
  const __m512i bits = Mix64x8(_mm512_add_epi64(stream, _mm512_mullo_epi64(index, golden)));
  // 24 random bits -> [-1, 1), exact in fp32.
  const __m256 u = _mm256_sub_ps(
      _mm256_mul_ps(_mm512_cvtepi64_ps(_mm512_srli_epi64(bits, 40)), _mm256_set1_ps(0x1p-23f)),
      _mm256_set1_ps(1.0f));
  return _mm256_fmadd_ps(scale, u, offset);
}

}  // namespace cb::weight_gen

#pragma once

// The packers' generator lanes (packed_matrix.cc, quant_matrix.cc): the weights of one n-block
// generated 8 elements at a time in the order the packed layout stores them.

#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/packed_matrix.h"
#include "workloads/weight_gen_avx512.h"

namespace cb::cpu {

/// Generator state of each lane of one n-block: with `width` reduction elements per step
/// (1 fp32, 2 bf16 and fp8, 4 int8) lane l is row l / width, column width x step + l % width.
struct BlockLanes {
  static constexpr int kMax = 4 * kPackN;
  alignas(64) int64_t stream[kMax];
  alignas(64) int64_t base[kMax];    ///< generator index of the lane's element at step 0
  alignas(64) int64_t stride[kMax];  ///< generator index distance of consecutive columns
  alignas(64) float scale[kMax];
  alignas(64) float offset[kMax];
  alignas(64) int32_t col[kMax];  ///< column of the lane at step 0
};

void FillLanes(int64_t nb, int64_t n, const RowMap& rows, const WeightSource& source, int width,
               BlockLanes* lanes);

/// 8 lanes [l, l + 8) at step s: their values, zero for columns at or beyond k.
inline __m256 LaneValues(const BlockLanes& ln, int l, int64_t s, int width, int64_t k) {
  const __m512i idx = _mm512_add_epi64(
      _mm512_load_si512(ln.base + l),
      _mm512_mullo_epi64(_mm512_load_si512(ln.stride + l), _mm512_set1_epi64(s * width)));
  const __m256 v = weight_gen::Values8(_mm512_load_si512(ln.stream + l), idx,
                                       _mm256_load_ps(ln.scale + l), _mm256_load_ps(ln.offset + l));
  if (s * width + width <= k) return v;
  const __m256i col =
      _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(ln.col + l)),
                       _mm256_set1_epi32(static_cast<int>(s * width)));
  const __mmask8 valid = _mm256_cmplt_epi32_mask(col, _mm256_set1_epi32(static_cast<int>(k)));
  return _mm256_maskz_mov_ps(valid, v);
}

}  // namespace cb::cpu

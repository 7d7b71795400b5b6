#pragma once

/// The inner loop of the bf16 kernels (skinny GEMM, grouped experts and heads): rows of
/// inputs against one 64-column block of a packed bf16 matrix (PackedMatrix: a block is
/// [k_pad / 2][64][2]), accumulating in fp32 with vdpbf16ps. Only sources compiled with
/// AVX512_BF16 include it.

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backends/cpu/packed_matrix.h"

#if !defined(__AVX512BF16__)
#error "bf16_block.h needs AVX512_BF16 (see backends/cpu/CMakeLists.txt)"
#endif

namespace cb::cpu {

/// Weight elements of one step: 64 columns x one k-pair = 256 bytes.
inline constexpr int64_t kBf16StepElems = 2 * kPackN;
/// Software prefetch distance for passes shared by several rows, where the kernel does enough
/// arithmetic per byte that the hardware prefetcher alone falls behind (measured: +5..15% at
/// 2-8 rows). One row streams at full bandwidth without it, and a little slower with it.
inline constexpr int64_t kBf16PrefetchBytes = 4096;

/// The block a work item streams after the current one, fetched into L2 while the current
/// block's groups of rows run (when a block serves several groups, memory then stays busy
/// while the later groups compute): group `group` of `groups` fetches every groups-th step.
struct NextBlock {
  const char* base = nullptr;
  int64_t group = 0, groups = 1;
};

/// acc[m][0..4) += x[m][2s..2s+2) . block step s, for steps [s0, s1): per step 4 vectors of
/// weights and a broadcast of each row's pair of inputs. Row m's inputs start at x[m].
template <int M, bool kPrefetch, bool kNext = false>
inline void AccumulateBf16(const uint16_t* wb, int64_t s0, int64_t s1, const uint16_t* const* x,
                           __m512 (&acc)[M][4], NextBlock next = {}) {
  for (int64_t s = s0; s < s1; ++s) {
    const __m512i* wp = reinterpret_cast<const __m512i*>(wb + s * kBf16StepElems);
    if constexpr (kPrefetch) {
      const char* ahead = reinterpret_cast<const char*>(wp) + kBf16PrefetchBytes;
      for (int line = 0; line < 4; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
    }
    if constexpr (kNext) {
      const int64_t q = next.group * s1 + s;
      if (q % next.groups == 0) {
        const char* line = next.base + q / next.groups * kBf16StepElems * 2;
        for (int l = 0; l < 4; ++l) _mm_prefetch(line + 64 * l, _MM_HINT_T1);
      }
    }
    const __m512i w0 = _mm512_load_si512(wp), w1 = _mm512_load_si512(wp + 1);
    const __m512i w2 = _mm512_load_si512(wp + 2), w3 = _mm512_load_si512(wp + 3);
    for (int m = 0; m < M; ++m) {
      int32_t pair;
      std::memcpy(&pair, x[m] + 2 * s, sizeof pair);
      const __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
      acc[m][0] = _mm512_dpbf16_ps(acc[m][0], reinterpret_cast<__m512bh>(w0), xb);
      acc[m][1] = _mm512_dpbf16_ps(acc[m][1], reinterpret_cast<__m512bh>(w1), xb);
      acc[m][2] = _mm512_dpbf16_ps(acc[m][2], reinterpret_cast<__m512bh>(w2), xb);
      acc[m][3] = _mm512_dpbf16_ps(acc[m][3], reinterpret_cast<__m512bh>(w3), xb);
    }
  }
}

/// acc = x[m] . the whole block (`steps` k-pairs), accumulators zeroed first; with
/// `next.base`, the next block is fetched meanwhile.
template <int M>
inline void DotBlockBf16(const uint16_t* wb, int64_t steps, const uint16_t* const* x, bool prefetch,
                         __m512 (&acc)[M][4], NextBlock next = {}) {
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_ps();
  }
  if (next.base != nullptr) {
    if (prefetch) {
      AccumulateBf16<M, true, true>(wb, 0, steps, x, acc, next);
    } else {
      AccumulateBf16<M, false, true>(wb, 0, steps, x, acc, next);
    }
  } else if (prefetch) {
    AccumulateBf16<M, true>(wb, 0, steps, x, acc);
  } else {
    AccumulateBf16<M, false>(wb, 0, steps, x, acc);
  }
}

}  // namespace cb::cpu

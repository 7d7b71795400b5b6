#include "backends/cpu/skinny_gemm.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/host_info.h"
#include "backends/cpu/vec_math.h"

namespace cb::cpu {
namespace {

#if defined(__AVX512BF16__)

/// Reduction steps per chunk when more than 4 rows share one pass over a block: 128 steps of
/// 256 bytes = 32 KiB, so the second group of rows re-reads the chunk from L1.
constexpr int64_t kChunkSteps = 128;
/// Software prefetch distance for 2 rows and more, where the kernel does enough arithmetic per
/// byte that the hardware prefetcher alone falls behind (measured: +5..15% at 2-8 rows). One
/// row streams at full bandwidth without it, and a little slower with it.
constexpr int64_t kPrefetchBytes = 4096;
/// Weight elements of one step: 64 columns x one pair of k (vdpbf16ps takes pairs) = 256 bytes.
constexpr int64_t kStepElems = 2 * kPackN;

/// acc[m][0..4) += steps [s0, s1) of block `wb` against rows x[m]: per step, 4 vectors of
/// weights and a broadcast of each row's pair of inputs.
template <int M, bool kPrefetch>
inline void Accumulate(const uint16_t* wb, int64_t s0, int64_t s1, const uint16_t* x, int64_t ldx,
                       __m512 (&acc)[M][4]) {
  for (int64_t s = s0; s < s1; ++s) {
    const __m512i* wp = reinterpret_cast<const __m512i*>(wb + s * kStepElems);
    if constexpr (kPrefetch) {
      const char* ahead = reinterpret_cast<const char*>(wp) + kPrefetchBytes;
      for (int line = 0; line < 4; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
    }
    const __m512i w0 = _mm512_load_si512(wp), w1 = _mm512_load_si512(wp + 1);
    const __m512i w2 = _mm512_load_si512(wp + 2), w3 = _mm512_load_si512(wp + 3);
    for (int m = 0; m < M; ++m) {
      int32_t pair;
      std::memcpy(&pair, x + m * ldx + 2 * s, sizeof pair);
      const __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
      acc[m][0] = _mm512_dpbf16_ps(acc[m][0], reinterpret_cast<__m512bh>(w0), xb);
      acc[m][1] = _mm512_dpbf16_ps(acc[m][1], reinterpret_cast<__m512bh>(w1), xb);
      acc[m][2] = _mm512_dpbf16_ps(acc[m][2], reinterpret_cast<__m512bh>(w2), xb);
      acc[m][3] = _mm512_dpbf16_ps(acc[m][3], reinterpret_cast<__m512bh>(w3), xb);
    }
  }
}

/// Rows [0, M) of one block over all steps, accumulators in registers.
template <int M>
inline void FullBlock(const uint16_t* wb, int64_t steps, const uint16_t* x, int64_t ldx, float* y,
                      int64_t ldy, int64_t n_valid) {
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_ps();
  }
  Accumulate<M, (M > 1)>(wb, 0, steps, x, ldx, acc);
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) {
      Store16(y + m * ldy + 16 * j, acc[m][j], TailMask(n_valid - 16 * j));
    }
  }
}

/// Rows [0, M) of one block over steps [s0, s1), accumulators kept in `partial` [M][64]. The
/// first group of rows brings the chunk in (with prefetch), the others find it in L1.
template <int M>
inline void PartialBlock(const uint16_t* wb, int64_t s0, int64_t s1, const uint16_t* x, int64_t ldx,
                         float* partial, bool first) {
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_loadu_ps(partial + m * 64 + 16 * j);
  }
  if (first) {
    Accumulate<M, true>(wb, s0, s1, x, ldx, acc);
  } else {
    Accumulate<M, false>(wb, s0, s1, x, ldx, acc);
  }
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) _mm512_storeu_ps(partial + m * 64 + 16 * j, acc[m][j]);
  }
}

void BlockRows(const uint16_t* wb, int64_t steps, const uint16_t* x, int64_t ldx, int64_t rows,
               float* y, int64_t ldy, int64_t n_valid) {
  switch (rows) {
    case 1:
      return FullBlock<1>(wb, steps, x, ldx, y, ldy, n_valid);
    case 2:
      return FullBlock<2>(wb, steps, x, ldx, y, ldy, n_valid);
    case 3:
      return FullBlock<3>(wb, steps, x, ldx, y, ldy, n_valid);
    case 4:
      return FullBlock<4>(wb, steps, x, ldx, y, ldy, n_valid);
    default:
      break;
  }
  // 5..8 rows: groups of up to 4 over chunks of the block small enough to stay in L1, so the
  // weights still come from memory once.
  alignas(64) float partial[kSkinnyMaxRows * 64] = {};
  for (int64_t s0 = 0; s0 < steps; s0 += kChunkSteps) {
    const int64_t s1 = std::min(steps, s0 + kChunkSteps);
    for (int64_t m0 = 0; m0 < rows; m0 += 4) {
      const uint16_t* xm = x + m0 * ldx;
      float* pm = partial + m0 * 64;
      switch (std::min<int64_t>(4, rows - m0)) {
        case 1:
          PartialBlock<1>(wb, s0, s1, xm, ldx, pm, m0 == 0);
          break;
        case 2:
          PartialBlock<2>(wb, s0, s1, xm, ldx, pm, m0 == 0);
          break;
        case 3:
          PartialBlock<3>(wb, s0, s1, xm, ldx, pm, m0 == 0);
          break;
        default:
          PartialBlock<4>(wb, s0, s1, xm, ldx, pm, m0 == 0);
          break;
      }
    }
  }
  for (int64_t m = 0; m < rows; ++m) {
    for (int j = 0; j < 4; ++j) {
      Store16(y + m * ldy + 16 * j, _mm512_loadu_ps(partial + m * 64 + 16 * j),
              TailMask(n_valid - 16 * j));
    }
  }
}

#endif  // __AVX512BF16__

}  // namespace

bool SkinnyGemmBf16Available() {
#if defined(__AVX512BF16__)
  static const bool ok = CpuHasAvx512Bf16();
  return ok;
#else
  return false;
#endif
}

bool SkinnyGemmWins(int64_t rows) {
  return rows >= 1 && rows <= kSkinnyMaxRows && rows != 5 && rows != 6 && SkinnyGemmBf16Available();
}

void SkinnyGemmBf16(const PackedMatrix& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                    int64_t ldy) {
#if defined(__AVX512BF16__)
  const int64_t n_blocks = w.n_pad / kPackN;
  const int64_t steps = w.k_pad / 2;
  const int64_t block_elems = w.k_pad * kPackN;
  const uint16_t* base = w.data.as<uint16_t>();
#pragma omp parallel for schedule(static) if (n_blocks > 1)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t n_valid = std::min<int64_t>(kPackN, w.n - b * kPackN);
    BlockRows(base + b * block_elems, steps, x, ldx, rows, y + b * kPackN, ldy, n_valid);
  }
#else
  (void)w, (void)x, (void)ldx, (void)rows, (void)y, (void)ldy;
#endif
}

}  // namespace cb::cpu

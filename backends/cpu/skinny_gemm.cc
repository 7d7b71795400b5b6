#include "backends/cpu/skinny_gemm.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/host_info.h"
#include "backends/cpu/vec_math.h"
#if defined(__AVX512BF16__)
#include "backends/cpu/bf16_block.h"
#endif

namespace cb::cpu {
namespace {

#if defined(__AVX512BF16__)

/// Reduction steps per chunk when more than 4 rows share one pass over a block: 128 steps of
/// 256 bytes = 32 KiB, so the second group of rows re-reads the chunk from L1.
constexpr int64_t kChunkSteps = 128;

/// Pointers to rows [0, M) of x.
template <int M>
struct RowPtrs {
  const uint16_t* p[M];
  RowPtrs(const uint16_t* x, int64_t ldx) {
    for (int m = 0; m < M; ++m) p[m] = x + m * ldx;
  }
};

/// Rows [0, M) of one block over all steps, accumulators in registers.
template <int M>
inline void FullBlock(const uint16_t* wb, int64_t steps, const uint16_t* x, int64_t ldx, float* y,
                      int64_t ldy, int64_t n_valid) {
  __m512 acc[M][4];
  DotBlockBf16<M>(wb, steps, RowPtrs<M>(x, ldx).p, M > 1, acc);
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
  const RowPtrs<M> rows(x, ldx);
  if (first) {
    AccumulateBf16<M, true>(wb, s0, s1, rows.p, acc);
  } else {
    AccumulateBf16<M, false>(wb, s0, s1, rows.p, acc);
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

/// Rows [r0, r0 + M) of one block against all its steps, stored to y rows.
template <int M>
void StoreGroup(const uint16_t* wb, int64_t steps, const uint16_t* x, int64_t ldx, int64_t r0,
                float* y, int64_t ldy, int64_t n_valid, bool prefetch) {
  __m512 acc[M][4];
  DotBlockBf16<M>(wb, steps, RowPtrs<M>(x + r0 * ldx, ldx).p, prefetch, acc);
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) {
      Store16(y + (r0 + m) * ldy + 16 * j, acc[m][j], TailMask(n_valid - 16 * j));
    }
  }
}

#endif  // __AVX512BF16__

/// Rows [r0, r0 + M) of one fp32 block ([k_pad][64]) against all its k, stored to y rows.
template <int M>
void StoreGroupF32(const float* wb, int64_t k_pad, const float* x, int64_t ldx, int64_t r0,
                   float* y, int64_t ldy, int64_t n_valid) {
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_ps();
  }
  const float* xr = x + r0 * ldx;
  for (int64_t c = 0; c < k_pad; ++c) {
    const float* wc = wb + c * kPackN;
    const __m512 w0 = _mm512_load_ps(wc), w1 = _mm512_load_ps(wc + 16),
                 w2 = _mm512_load_ps(wc + 32), w3 = _mm512_load_ps(wc + 48);
    for (int m = 0; m < M; ++m) {
      const __m512 xv = _mm512_set1_ps(xr[m * ldx + c]);
      acc[m][0] = _mm512_fmadd_ps(xv, w0, acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(xv, w1, acc[m][1]);
      acc[m][2] = _mm512_fmadd_ps(xv, w2, acc[m][2]);
      acc[m][3] = _mm512_fmadd_ps(xv, w3, acc[m][3]);
    }
  }
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) {
      Store16(y + (r0 + m) * ldy + 16 * j, acc[m][j], TailMask(n_valid - 16 * j));
    }
  }
}

/// The work of a grouped GEMM: items (group g, 64-column block b) in parallel, each item's
/// rows four at a time: f.template operator()<M>(g, b, r0, n_valid) for M = min(4, rows - r0).
template <typename F>
void ForGroupedBlocks(const PackedView* w, int64_t groups, int64_t rows, F&& f) {
  if (groups <= 0 || rows <= 0) return;
  const int64_t blocks = w[0].n_pad / kPackN;
#pragma omp parallel for schedule(static) if (groups * blocks > 1)
  for (int64_t item = 0; item < groups * blocks; ++item) {
    const int64_t g = item / blocks, b = item % blocks;
    const int64_t n_valid = std::min<int64_t>(kPackN, w[g].n - b * kPackN);
    for (int64_t r0 = 0; r0 < rows; r0 += 4) {
      switch (std::min<int64_t>(4, rows - r0)) {
        case 1:
          f.template operator()<1>(g, b, r0, n_valid);
          break;
        case 2:
          f.template operator()<2>(g, b, r0, n_valid);
          break;
        case 3:
          f.template operator()<3>(g, b, r0, n_valid);
          break;
        default:
          f.template operator()<4>(g, b, r0, n_valid);
          break;
      }
    }
  }
}

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

void SkinnyGemmBf16(const PackedView& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                    int64_t ldy) {
#if defined(__AVX512BF16__)
  const int64_t n_blocks = w.n_pad / kPackN;
  const int64_t steps = w.k_pad / 2;
  const int64_t block_elems = w.k_pad * kPackN;
  const uint16_t* base = static_cast<const uint16_t*>(w.data);
#pragma omp parallel for schedule(static) if (n_blocks > 1)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t n_valid = std::min<int64_t>(kPackN, w.n - b * kPackN);
    BlockRows(base + b * block_elems, steps, x, ldx, rows, y + b * kPackN, ldy, n_valid);
  }
#else
  (void)w, (void)x, (void)ldx, (void)rows, (void)y, (void)ldy;
#endif
}

void GroupedGemmBf16(const PackedView* w, int64_t groups, const uint16_t* x, int64_t x_stride,
                     int64_t ldx, int64_t rows, float* y, int64_t y_stride, int64_t ldy) {
#if defined(__AVX512BF16__)
  const int64_t steps = w[0].k_pad / 2;
  ForGroupedBlocks(w, groups, rows, [&]<int M>(int64_t g, int64_t b, int64_t r0, int64_t n_valid) {
    const uint16_t* wb = static_cast<const uint16_t*>(w[g].data) + b * w[g].BlockElems();
    StoreGroup<M>(wb, steps, x + g * x_stride, ldx, r0, y + g * y_stride + b * kPackN, ldy, n_valid,
                  /*prefetch=*/r0 == 0 && rows > 1);
  });
#else
  (void)w, (void)groups, (void)x, (void)x_stride, (void)ldx, (void)rows, (void)y, (void)y_stride,
      (void)ldy;
#endif
}

void GroupedGemmF32(const PackedView* w, int64_t groups, const float* x, int64_t x_stride,
                    int64_t ldx, int64_t rows, float* y, int64_t y_stride, int64_t ldy) {
  const int64_t k_pad = w[0].k_pad;
  ForGroupedBlocks(w, groups, rows, [&]<int M>(int64_t g, int64_t b, int64_t r0, int64_t n_valid) {
    const float* wb = static_cast<const float*>(w[g].data) + b * w[g].BlockElems();
    StoreGroupF32<M>(wb, k_pad, x + g * x_stride, ldx, r0, y + g * y_stride + b * kPackN, ldy,
                     n_valid);
  });
}

}  // namespace cb::cpu

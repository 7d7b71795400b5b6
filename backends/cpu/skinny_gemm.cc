#include "backends/cpu/skinny_gemm.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/host_info.h"
#include "backends/cpu/vec_math.h"

namespace cb::cpu {
namespace {

/// Reduction steps per chunk when more than 4 rows share one pass over a block: 128 steps of
/// 256 bytes = 32 KiB, so the second group of rows re-reads the chunk from L1.
constexpr int64_t kChunkSteps = 128;

/// One reduction step of a 64-column block: 4 vectors of weights (256 bytes) against one
/// broadcast of each row's input. bf16: a step covers 2 k (vdpbf16ps takes pairs); fp32: 1 k.
template <typename T>
struct Step;

#if defined(__AVX512BF16__)
template <>
struct Step<uint16_t> {
  static constexpr int64_t kElems = 128;  ///< weight elements per step
  static constexpr int64_t kK = 2;        ///< k per step
  static __m512 Bcast(const uint16_t* x) {
    int32_t v;
    std::memcpy(&v, x, sizeof v);
    return _mm512_castsi512_ps(_mm512_set1_epi32(v));
  }
  static __m512 Fma(__m512 acc, __m512i w, __m512 x) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(w), reinterpret_cast<__m512bh>(x));
  }
};
#endif

template <>
struct Step<float> {
  static constexpr int64_t kElems = 64;
  static constexpr int64_t kK = 1;
  static __m512 Bcast(const float* x) { return _mm512_set1_ps(*x); }
  static __m512 Fma(__m512 acc, __m512i w, __m512 x) {
    return _mm512_fmadd_ps(_mm512_castsi512_ps(w), x, acc);
  }
};

/// acc[m][0..4) += steps [s0, s1) of block `wb` against rows x[m].
template <typename T, int M>
inline void Accumulate(const T* wb, int64_t s0, int64_t s1, const T* x, int64_t ldx,
                       __m512 (&acc)[M][4]) {
  using S = Step<T>;
  for (int64_t s = s0; s < s1; ++s) {
    const __m512i* wp = reinterpret_cast<const __m512i*>(wb + s * S::kElems);
    const __m512i w0 = _mm512_load_si512(wp), w1 = _mm512_load_si512(wp + 1);
    const __m512i w2 = _mm512_load_si512(wp + 2), w3 = _mm512_load_si512(wp + 3);
    for (int m = 0; m < M; ++m) {
      const __m512 xb = S::Bcast(x + m * ldx + s * S::kK);
      acc[m][0] = S::Fma(acc[m][0], w0, xb);
      acc[m][1] = S::Fma(acc[m][1], w1, xb);
      acc[m][2] = S::Fma(acc[m][2], w2, xb);
      acc[m][3] = S::Fma(acc[m][3], w3, xb);
    }
  }
}

/// Rows [0, M) of one block over all steps, accumulators in registers.
template <typename T, int M>
inline void FullBlock(const T* wb, int64_t steps, const T* x, int64_t ldx, float* y, int64_t ldy,
                      int64_t n_valid) {
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_ps();
  }
  Accumulate<T, M>(wb, 0, steps, x, ldx, acc);
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j)
      Store16(y + m * ldy + 16 * j, acc[m][j], TailMask(n_valid - 16 * j));
  }
}

/// Rows [0, M) of one block over steps [s0, s1), accumulators kept in `partial` [M][64].
template <typename T, int M>
inline void PartialBlock(const T* wb, int64_t s0, int64_t s1, const T* x, int64_t ldx,
                         float* partial) {
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_loadu_ps(partial + m * 64 + 16 * j);
  }
  Accumulate<T, M>(wb, s0, s1, x, ldx, acc);
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) _mm512_storeu_ps(partial + m * 64 + 16 * j, acc[m][j]);
  }
}

template <typename T>
void BlockRows(const T* wb, int64_t steps, const T* x, int64_t ldx, int64_t rows, float* y,
               int64_t ldy, int64_t n_valid) {
  switch (rows) {
    case 1:
      return FullBlock<T, 1>(wb, steps, x, ldx, y, ldy, n_valid);
    case 2:
      return FullBlock<T, 2>(wb, steps, x, ldx, y, ldy, n_valid);
    case 3:
      return FullBlock<T, 3>(wb, steps, x, ldx, y, ldy, n_valid);
    case 4:
      return FullBlock<T, 4>(wb, steps, x, ldx, y, ldy, n_valid);
    default:
      break;
  }
  // 5..8 rows: groups of up to 4 over chunks of the block small enough to stay in L1, so the
  // weights still come from memory once.
  alignas(64) float partial[kSkinnyMaxRows * 64] = {};
  for (int64_t s0 = 0; s0 < steps; s0 += kChunkSteps) {
    const int64_t s1 = std::min(steps, s0 + kChunkSteps);
    for (int64_t m0 = 0; m0 < rows; m0 += 4) {
      const T* xm = x + m0 * ldx;
      float* pm = partial + m0 * 64;
      switch (std::min<int64_t>(4, rows - m0)) {
        case 1:
          PartialBlock<T, 1>(wb, s0, s1, xm, ldx, pm);
          break;
        case 2:
          PartialBlock<T, 2>(wb, s0, s1, xm, ldx, pm);
          break;
        case 3:
          PartialBlock<T, 3>(wb, s0, s1, xm, ldx, pm);
          break;
        default:
          PartialBlock<T, 4>(wb, s0, s1, xm, ldx, pm);
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

template <typename T>
void SkinnyGemm(const PackedMatrix& w, const T* x, int64_t ldx, int64_t rows, float* y,
                int64_t ldy) {
  const int64_t n_blocks = w.n_pad / kPackN;
  const int64_t steps = w.k_pad / Step<T>::kK;
  const int64_t block_elems = w.k_pad * kPackN;
  const T* base = w.data.as<T>();
#pragma omp parallel for schedule(static) if (n_blocks > 1)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t n_valid = std::min<int64_t>(kPackN, w.n - b * kPackN);
    BlockRows<T>(base + b * block_elems, steps, x, ldx, rows, y + b * kPackN, ldy, n_valid);
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

void SkinnyGemmBf16(const PackedMatrix& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                    int64_t ldy) {
#if defined(__AVX512BF16__)
  SkinnyGemm<uint16_t>(w, x, ldx, rows, y, ldy);
#else
  (void)w, (void)x, (void)ldx, (void)rows, (void)y, (void)ldy;
#endif
}

void SkinnyGemmF32(const PackedMatrix& w, const float* x, int64_t ldx, int64_t rows, float* y,
                   int64_t ldy) {
  SkinnyGemm<float>(w, x, ldx, rows, y, ldy);
}

}  // namespace cb::cpu

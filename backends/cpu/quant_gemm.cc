#include "backends/cpu/quant_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/host_info.h"
#include "backends/cpu/quant_codes.h"
#include "backends/cpu/vec_math.h"
#include "harness/core/dtype.h"
#include "workloads/quant.h"

namespace cb::cpu {
namespace {

/// Rows of one int8 pass over a block (24 int32 accumulators of 64 columns).
constexpr int kInt8Rows = 6;
/// Rows of one fp8 pass (a block's and a running accumulator per row: 24 registers).
constexpr int kFp8Rows = 3;
/// Bytes one int8 step (64 columns x 4 k) and one fp8 step (64 columns x 2 k) read.
constexpr int64_t kInt8Step = 4 * kPackN, kFp8Step = 2 * kPackN;
constexpr int64_t kPrefetchBytes = 2048;

/// acc[m][j] += x[m] quad q . step q's weights (columns 16j..16j+15) for q in [q0, q1).
template <int M>
inline void Int8Steps(const int8_t* wb, int64_t q0, int64_t q1, int64_t stride, const uint8_t* x,
                      int64_t ldx, __m512i (&acc)[M][4]) {
  for (int64_t q = q0; q < q1; q += stride) {
    const __m512i* wp = reinterpret_cast<const __m512i*>(wb + q * kInt8Step);
    if constexpr (M > 1) {
      _mm_prefetch(reinterpret_cast<const char*>(wp) + kPrefetchBytes, _MM_HINT_T0);
    }
    const __m512i w0 = _mm512_load_si512(wp), w1 = _mm512_load_si512(wp + 1);
    const __m512i w2 = _mm512_load_si512(wp + 2), w3 = _mm512_load_si512(wp + 3);
    for (int m = 0; m < M; ++m) {
      int32_t quad;
      std::memcpy(&quad, x + m * ldx + 4 * q, sizeof quad);
      const __m512i xb = _mm512_set1_epi32(quad);
      acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], xb, w0);
      acc[m][1] = _mm512_dpbusd_epi32(acc[m][1], xb, w1);
      acc[m][2] = _mm512_dpbusd_epi32(acc[m][2], xb, w2);
      acc[m][3] = _mm512_dpbusd_epi32(acc[m][3], xb, w3);
    }
  }
}

template <int M>
void Int8Block(const int8_t* wb, int64_t quads, const uint8_t* x, int64_t ldx,
               __m512i (&acc)[M][4]) {
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_si512();
  }
  if constexpr (M == 1) {
    // One row: even and odd quads into separate accumulators (8 independent chains).
    __m512i odd[1][4] = {{_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                          _mm512_setzero_si512()}};
    for (int64_t q = 0; q + 1 < quads; q += 2) {
      Int8Steps<1>(wb, q, q + 1, 1, x, ldx, acc);
      Int8Steps<1>(wb, q + 1, q + 2, 1, x, ldx, odd);
    }
    if (quads % 2) Int8Steps<1>(wb, quads - 1, quads, 1, x, ldx, acc);
    for (int j = 0; j < 4; ++j) acc[0][j] = _mm512_add_epi32(acc[0][j], odd[0][j]);
  } else {
    Int8Steps<M>(wb, 0, quads, 1, x, ldx, acc);
  }
}

/// Rows [0, M) of one int8 block, dequantised into y.
template <int M>
void Int8Rows(const PackedView& w, int64_t b, const uint8_t* x, const float* sx, float* y,
              int64_t ldy) {
  __m512i acc[M][4];
  Int8Block<M>(static_cast<const int8_t*>(w.data) + b * w.BlockElems(), w.k_pad / 4, x, w.k_pad,
               acc);
  const int64_t n0 = b * kPackN, n_valid = std::min<int64_t>(kPackN, w.n - n0);
  for (int j = 0; j < 4; ++j) {
    const __m512i comp = _mm512_loadu_si512(w.comp + n0 + 16 * j);
    const __m512 sw = _mm512_loadu_ps(w.scales + n0 + 16 * j);
    for (int m = 0; m < M; ++m) {
      const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[m][j], comp));
      Store16(y + m * ldy + n0 + 16 * j, _mm512_mul_ps(v, _mm512_mul_ps(_mm512_set1_ps(sx[m]), sw)),
              TailMask(n_valid - 16 * j));
    }
  }
}

/// e4m3 codes in the low byte of each 16-bit lane (high byte 0) as bf16, exactly: normal codes
/// move their exponent (bias 7 -> 127), subnormals (exponent 0: m x 2^-9) come from a table.
inline __m512i Fp8WordsToBf16(__m512i w) {
  const __m512i mag = _mm512_and_si512(w, _mm512_set1_epi16(0x7f));
  __m512i r = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(120 << 7));
  const __m512i sub =
      _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                       0x3C60, 0x3C40, 0x3C20, 0x3C00, 0x3BC0, 0x3B80, 0x3B00, 0);
  r = _mm512_mask_permutexvar_epi16(r, _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(8)), mag,
                                    sub);
  return _mm512_or_si512(r, _mm512_slli_epi16(_mm512_and_si512(w, _mm512_set1_epi16(0x80)), 8));
}

/// 64 bytes of a step (32 rows x 2 k, packed_matrix.h's Fp8StepOffset) as the bf16 pairs of
/// rows [0, 16) and [16, 32) of the half, exactly.
inline void ExactHalf(__m512i v, __m512i* lo, __m512i* hi) {
  *lo = Fp8WordsToBf16(_mm512_and_si512(v, _mm512_set1_epi16(0xff)));
  *hi = Fp8WordsToBf16(_mm512_srli_epi16(v, 8));
}

/// The same as value x 2^-120 in 7 operations: the code's 7 magnitude bits placed under the
/// bf16 exponent and mantissa unchanged (e4m3's exponent field becomes bf16's, so normal codes
/// are normal bf16 numbers 2^-120 times their value). Subnormal codes become bf16 subnormals,
/// which vdpbf16ps reads as zero: SubnormalMask finds them for a correction.
inline void ScaledHalf(__m512i v, __m512i* lo, __m512i* hi) {
  const __m512i mag = _mm512_set1_epi16(0x07f0), sign = _mm512_set1_epi16(-0x8000);
  constexpr int kAOrBAndC = 0xf8;  // a | (b & c)
  *lo = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_slli_epi16(v, 4), mag),
                                  _mm512_slli_epi16(v, 8), sign, kAOrBAndC);
  *hi =
      _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(v, 4), mag), v, sign, kAOrBAndC);
}

/// Bytes of `v` that are subnormal codes (exponent 0, mantissa not 0).
inline __mmask64 SubnormalMask(__m512i v) {
  return _mm512_testn_epi8_mask(v, _mm512_set1_epi8(0x78)) &
         _mm512_test_epi8_mask(v, _mm512_set1_epi8(0x07));
}

/// Exact bf16 pairs of only the subnormal codes of a half (zero elsewhere).
inline void SubnormalHalf(__m512i v, __m512i* lo, __m512i* hi) {
  const __m512i w[2] = {_mm512_and_si512(v, _mm512_set1_epi16(0xff)), _mm512_srli_epi16(v, 8)};
  __m512i* out[2] = {lo, hi};
  for (int i = 0; i < 2; ++i) {
    const __mmask32 m = _mm512_testn_epi16_mask(w[i], _mm512_set1_epi16(0x78)) &
                        _mm512_test_epi16_mask(w[i], _mm512_set1_epi16(0x07));
    *out[i] = _mm512_maskz_mov_epi16(m, Fp8WordsToBf16(w[i]));
  }
}

/// Decode inputs are multiplied by 2^kXShift (exact in bf16) to meet ScaledHalf's 2^-120:
/// products are w x 2^-20, far from fp32's limits for any activation below 2^28.
constexpr int kXShift = 100, kProductShift = 120 - kXShift;

inline __m512bh Bcast(const uint16_t* x, int64_t s) {
  int32_t pair;
  std::memcpy(&pair, x + 2 * s, sizeof pair);
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
}

/// One 128-column group of rows [0, M) against one fp8 block. Converted block (`bf16`): its
/// exact pairs times x. Otherwise the scaled conversion times xs (x x 2^kXShift) into `part`,
/// and the exact products of subnormal codes times x into `corr` (rare, kept in memory).
template <int M>
inline void Fp8Group(const uint8_t* wb, const uint16_t* bf16, int64_t s0, int64_t s1,
                     const uint16_t* x, const uint16_t* xs, int64_t ldx, __m512 (&part)[M][4],
                     float (&corr)[M][64], bool* any_corr) {
  for (int64_t s = s0; s < s1; ++s) {
    __m512i wv[4];
    if (bf16 != nullptr) {
      for (int j = 0; j < 4; ++j) wv[j] = _mm512_loadu_si512(bf16 + s * kFp8Step + 32 * j);
    } else {
      for (int h = 0; h < 2; ++h) {
        const __m512i v = _mm512_load_si512(wb + s * kFp8Step + 64 * h);
        ScaledHalf(v, &wv[2 * h], &wv[2 * h + 1]);
        if (SubnormalMask(v) == 0) continue;
        __m512i lo, hi;
        SubnormalHalf(v, &lo, &hi);
        for (int m = 0; m < M; ++m) {
          const __m512bh xb = Bcast(x + m * ldx, s);
          for (int j = 0; j < 2; ++j) {
            float* c = corr[m] + 16 * (2 * h + j);
            const __m512bh wj = reinterpret_cast<__m512bh>(j == 0 ? lo : hi);
            _mm512_storeu_ps(c, _mm512_dpbf16_ps(_mm512_loadu_ps(c), wj, xb));
          }
        }
        *any_corr = true;
      }
    }
    for (int m = 0; m < M; ++m) {
      const __m512bh xb = Bcast((bf16 != nullptr ? x : xs) + m * ldx, s);
      for (int j = 0; j < 4; ++j) {
        part[m][j] = _mm512_dpbf16_ps(part[m][j], reinterpret_cast<__m512bh>(wv[j]), xb);
      }
    }
  }
}

/// Rows [0, M) of one fp8 block into y; `bf16`: the block already converted exactly (many
/// rows), else `xs` holds the rows times 2^kXShift.
template <int M>
void Fp8Rows(const PackedView& w, int64_t b, const uint16_t* bf16, const uint16_t* x,
             const uint16_t* xs, int64_t ldx, float* y, int64_t ldy) {
  const uint8_t* wb = static_cast<const uint8_t*>(w.data) + b * w.BlockElems();
  const int64_t groups = w.k_pad / kFp8Block;
  const float unscale = bf16 != nullptr ? 1.0f : std::ldexp(1.0f, kProductShift);
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < groups; ++g) {
    __m512 part[M][4];
    alignas(64) float corr[M][64] = {};
    bool any_corr = false;
    for (int m = 0; m < M; ++m) {
      for (int j = 0; j < 4; ++j) part[m][j] = _mm512_setzero_ps();
    }
    const int64_t s0 = g * kFp8Block / 2;
    Fp8Group<M>(wb, bf16, s0, s0 + kFp8Block / 2, x, xs, ldx, part, corr, &any_corr);
    const float scale = w.scales[b * groups + g];
    const __m512 sc = _mm512_set1_ps(scale * unscale), sc_corr = _mm512_set1_ps(scale);
    for (int m = 0; m < M; ++m) {
      for (int j = 0; j < 4; ++j) {
        acc[m][j] = _mm512_fmadd_ps(part[m][j], sc, acc[m][j]);
        if (any_corr)
          acc[m][j] = _mm512_fmadd_ps(_mm512_load_ps(corr[m] + 16 * j), sc_corr, acc[m][j]);
      }
    }
  }
  const int64_t n0 = b * kPackN, n_valid = std::min<int64_t>(kPackN, w.n - n0);
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j)
      Store16(y + m * ldy + n0 + 16 * j, acc[m][j], TailMask(n_valid - 16 * j));
  }
}

template <int kMax, typename F>
void ForRowGroups(int64_t rows, F&& f) {
  for (int64_t r0 = 0; r0 < rows; r0 += kMax) f(r0, std::min<int64_t>(kMax, rows - r0));
}

}  // namespace

bool Int8GemmAvailable() {
  static const bool ok = __builtin_cpu_supports("avx512vnni") && CpuHasAvx512();
  return ok;
}

bool Fp8GemmAvailable() {
  static const bool ok = CpuHasAvx512Bf16();
  return ok;
}

void QuantizeRowsU8(const float* x, int64_t ldx, int64_t rows, int64_t k, int64_t k_pad,
                    uint8_t* xu, float* scale) {
  const __m512 lo = _mm512_set1_ps(-kInt8Max), hi = _mm512_set1_ps(kInt8Max);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    const float s = AbsMaxScaleOf(xr, k, kInt8Max);
    scale[r] = s;
    const __m512 sv = _mm512_set1_ps(s);
    uint8_t* out = xu + r * k_pad;
    for (int64_t c = 0; c < k_pad; c += 16) {
      const __mmask16 m = TailMask(k - c);
      __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, xr + c), sv),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
      const __m512i u = _mm512_add_epi32(_mm512_cvtps_epi32(q), _mm512_set1_epi32(128));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c), _mm512_cvtepi32_epi8(u));
    }
  }
}

void Int8Epilogue(const PackedView& w, const float* scale, int64_t rows, float* y, int64_t ldy) {
#pragma omp parallel for schedule(static) if (rows * w.n > (1 << 16))
  for (int64_t m = 0; m < rows; ++m) {
    float* row = y + m * ldy;
    const __m512 sx = _mm512_set1_ps(scale[m]);
    for (int64_t n = 0; n < w.n; n += 16) {
      const __mmask16 k = TailMask(w.n - n);
      const __m512i acc = _mm512_maskz_loadu_epi32(k, row + n);
      const __m512 v =
          _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_maskz_loadu_epi32(k, w.comp + n)));
      Store16(row + n, _mm512_mul_ps(v, _mm512_mul_ps(sx, _mm512_maskz_loadu_ps(k, w.scales + n))),
              k);
    }
  }
}

namespace {

/// Rows [0, rows) of block b of w (any count, in groups of up to kInt8Rows).
void Int8BlockRows(const PackedView& w, int64_t b, const uint8_t* xu, const float* scale,
                   int64_t rows, float* y, int64_t ldy) {
  ForRowGroups<kInt8Rows>(rows, [&](int64_t r0, int64_t m) {
    const uint8_t* x = xu + r0 * w.k_pad;
    float* yr = y + r0 * ldy;
    switch (m) {
      case 1:
        return Int8Rows<1>(w, b, x, scale + r0, yr, ldy);
      case 2:
        return Int8Rows<2>(w, b, x, scale + r0, yr, ldy);
      case 3:
        return Int8Rows<3>(w, b, x, scale + r0, yr, ldy);
      case 4:
        return Int8Rows<4>(w, b, x, scale + r0, yr, ldy);
      case 5:
        return Int8Rows<5>(w, b, x, scale + r0, yr, ldy);
      default:
        return Int8Rows<6>(w, b, x, scale + r0, yr, ldy);
    }
  });
}

}  // namespace

void Int8Gemm(const PackedView& w, const uint8_t* xu, const float* scale, int64_t rows, float* y,
              int64_t ldy) {
  const int64_t blocks = w.n_pad / kPackN;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) Int8BlockRows(w, b, xu, scale, rows, y, ldy);
}

void Int8GemmGrouped(const PackedView* w, int64_t groups, const int64_t* offset, const uint8_t* xu,
                     const float* scale, float* y, int64_t ldy) {
  if (groups <= 0) return;
  const int64_t blocks = w[0].n_pad / kPackN, k_pad = w[0].k_pad;
#pragma omp parallel for schedule(static) if (groups * blocks > 1)
  for (int64_t item = 0; item < groups * blocks; ++item) {
    const int64_t g = item / blocks, b = item % blocks, r0 = offset[g];
    Int8BlockRows(w[g], b, xu + r0 * k_pad, scale + r0, offset[g + 1] - r0, y + r0 * ldy, ldy);
  }
}

void Fp8WeightOnlyGemm(const PackedView& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                       int64_t ldy) {
  const int64_t blocks = w.n_pad / kPackN;
  // Few rows (decode): each step converted in registers (ScaledHalf), inputs scaled once here.
  // More rows than one pass takes: each block converted exactly to bf16 once, into a
  // per-thread buffer the passes then read from cache.
  const bool convert = rows > kFp8Rows;
  thread_local std::vector<uint16_t> scaled;
  if (!convert) {
    scaled.resize(static_cast<size_t>(rows * ldx));
    const float f = std::ldexp(1.0f, kXShift);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < w.k_pad; ++c) {
        scaled[r * ldx + c] = FloatToBf16(Bf16ToFloat(x[r * ldx + c]) * f);  // exact
      }
    }
  }
  const uint16_t* xs = scaled.data();
#pragma omp parallel if (blocks > 1)
  {
    std::vector<uint16_t> block(convert ? static_cast<size_t>(w.BlockElems()) : 0);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const uint16_t* bf16 = nullptr;
      if (convert) {
        const uint8_t* wb = static_cast<const uint8_t*>(w.data) + b * w.BlockElems();
        for (int64_t i = 0; i < w.BlockElems(); i += 64) {  // half-steps, in the pairs' order
          __m512i lo, hi;
          ExactHalf(_mm512_load_si512(wb + i), &lo, &hi);
          _mm512_storeu_si512(block.data() + i, lo);
          _mm512_storeu_si512(block.data() + i + 32, hi);
        }
        bf16 = block.data();
      }
      ForRowGroups<kFp8Rows>(rows, [&](int64_t r0, int64_t m) {
        const uint16_t* xr = x + r0 * ldx;
        const uint16_t* xsr = xs + r0 * ldx;
        float* yr = y + r0 * ldy;
        switch (m) {
          case 1:
            return Fp8Rows<1>(w, b, bf16, xr, xsr, ldx, yr, ldy);
          case 2:
            return Fp8Rows<2>(w, b, bf16, xr, xsr, ldx, yr, ldy);
          default:
            return Fp8Rows<3>(w, b, bf16, xr, xsr, ldx, yr, ldy);
        }
      });
    }
  }
}

}  // namespace cb::cpu

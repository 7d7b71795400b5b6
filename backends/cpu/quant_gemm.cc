#include "backends/cpu/quant_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/host_info.h"
#include "backends/cpu/vec_math.h"
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

template <int M>
void Int8Block(const int8_t* wb, int64_t quads, const uint8_t* x, int64_t ldx,
               __m512i (&acc)[M][4]) {
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_si512();
  }
  for (int64_t q = 0; q < quads; ++q) {
    const __m512i* wp = reinterpret_cast<const __m512i*>(wb + q * kInt8Step);
    if constexpr (M > 1)
      _mm_prefetch(reinterpret_cast<const char*>(wp) + kPrefetchBytes, _MM_HINT_T0);
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

/// An e4m3 code per 16-bit lane (32 codes) as bf16: exact. Normal codes move their exponent
/// (bias 7 -> 127), subnormals (exponent 0: m x 2^-9) come from a table.
inline __m512i Fp8ToBf16(__m256i codes) {
  const __m512i w = _mm512_cvtepu8_epi16(codes);
  const __m512i mag = _mm512_and_si512(w, _mm512_set1_epi16(0x7f));
  __m512i r = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(120 << 7));
  const __m512i sub =
      _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                       0x3C60, 0x3C40, 0x3C20, 0x3C00, 0x3BC0, 0x3B80, 0x3B00, 0);
  r = _mm512_mask_permutexvar_epi16(r, _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(8)), mag,
                                    sub);
  return _mm512_or_si512(r, _mm512_slli_epi16(_mm512_and_si512(w, _mm512_set1_epi16(0x80)), 8));
}

/// The weights of one step (64 columns x 2 k) as 4 vectors of bf16 pairs: converted from the
/// fp8 block, or loaded from a block converted before (`bf16`).
inline void StepWeights(const uint8_t* wb, const uint16_t* bf16, int64_t s, __m512bh (&wv)[4]) {
  if (bf16 != nullptr) {
    for (int j = 0; j < 4; ++j) {
      wv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(bf16 + s * kFp8Step + 32 * j));
    }
    return;
  }
  const __m256i* wp = reinterpret_cast<const __m256i*>(wb + s * kFp8Step);
  for (int j = 0; j < 4; ++j) {
    wv[j] = reinterpret_cast<__m512bh>(Fp8ToBf16(_mm256_load_si256(wp + j)));
  }
}

/// Rows [0, M) of one fp8 block into y; `bf16`: the block already converted (many rows).
template <int M>
void Fp8Rows(const PackedView& w, int64_t b, const uint16_t* bf16, const uint16_t* x, int64_t ldx,
             float* y, int64_t ldy) {
  const uint8_t* wb = static_cast<const uint8_t*>(w.data) + b * w.BlockElems();
  const int64_t groups = w.k_pad / kFp8Block;
  __m512 acc[M][4];
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < groups; ++g) {
    __m512 part[M][4];
    for (int m = 0; m < M; ++m) {
      for (int j = 0; j < 4; ++j) part[m][j] = _mm512_setzero_ps();
    }
    for (int64_t s = g * kFp8Block / 2; s < (g + 1) * kFp8Block / 2; ++s) {
      __m512bh wv[4];
      StepWeights(wb, bf16, s, wv);
      for (int m = 0; m < M; ++m) {
        int32_t pair;
        std::memcpy(&pair, x + m * ldx + 2 * s, sizeof pair);
        const __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
        for (int j = 0; j < 4; ++j) part[m][j] = _mm512_dpbf16_ps(part[m][j], wv[j], xb);
      }
    }
    const __m512 sc = _mm512_set1_ps(w.scales[b * groups + g]);
    for (int m = 0; m < M; ++m) {
      for (int j = 0; j < 4; ++j) acc[m][j] = _mm512_fmadd_ps(part[m][j], sc, acc[m][j]);
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
    __m512 mx = _mm512_setzero_ps();
    for (int64_t c = 0; c < k; c += 16) {
      mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_maskz_loadu_ps(TailMask(k - c), xr + c)));
    }
    const float amax = _mm512_reduce_max_ps(mx);
    const float s = amax > 0 ? amax / kInt8Max : 1.0f;  // AbsMaxScale
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

void Int8Gemm(const PackedView& w, const uint8_t* xu, const float* scale, int64_t rows, float* y,
              int64_t ldy) {
  const int64_t blocks = w.n_pad / kPackN;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
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
}

void Fp8WeightOnlyGemm(const PackedView& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                       int64_t ldy) {
  const int64_t blocks = w.n_pad / kPackN;
  // More rows than one pass takes: each block is converted to bf16 once, into a per-thread
  // buffer the passes then read from cache.
  const bool convert = rows > kFp8Rows;
#pragma omp parallel if (blocks > 1)
  {
    std::vector<uint16_t> block(convert ? static_cast<size_t>(w.BlockElems()) : 0);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const uint16_t* bf16 = nullptr;
      if (convert) {
        const uint8_t* wb = static_cast<const uint8_t*>(w.data) + b * w.BlockElems();
        for (int64_t i = 0; i < w.BlockElems(); i += 32) {
          const __m256i codes = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + i));
          _mm512_storeu_si512(block.data() + i, Fp8ToBf16(codes));
        }
        bf16 = block.data();
      }
      ForRowGroups<kFp8Rows>(rows, [&](int64_t r0, int64_t m) {
        const uint16_t* xr = x + r0 * ldx;
        float* yr = y + r0 * ldy;
        switch (m) {
          case 1:
            return Fp8Rows<1>(w, b, bf16, xr, ldx, yr, ldy);
          case 2:
            return Fp8Rows<2>(w, b, bf16, xr, ldx, yr, ldy);
          default:
            return Fp8Rows<3>(w, b, bf16, xr, ldx, yr, ldy);
        }
      });
    }
  }
}

}  // namespace cb::cpu

#include "backends/cpu/kernels.h"

#include <cmath>
#include <limits>

#include "backends/cpu/vec_math.h"

namespace cb::cpu {
namespace {

/// Below this many elements an op runs on one thread: a parallel region costs more.
constexpr int64_t kParallelElems = int64_t{1} << 15;

template <typename TO>
void EmbeddingPlainT(const int32_t* tokens, int64_t count, const void* table, DType table_dtype,
                     int64_t n, TO* out) {
#pragma omp parallel for schedule(static) if (count * n >= kParallelElems)
  for (int64_t t = 0; t < count; ++t) {
    const int64_t id = tokens[t];
    if (table_dtype == DType::kBF16) {
      CopyRow(static_cast<const bf16_t*>(table) + id * n, out + t * n, n);
    } else {
      CopyRow(static_cast<const float*>(table) + id * n, out + t * n, n);
    }
  }
}

template <typename TO>
void EmbeddingPackedT(const int32_t* tokens, int64_t count, const PackedMatrix& w, TO* out) {
  const int64_t n = w.k;
#pragma omp parallel for schedule(static) if (count * n >= kParallelElems)
  for (int64_t t = 0; t < count; ++t) {
    const int64_t id = tokens[t];
    TO* o = out + t * n;
    for (int64_t c = 0; c < n; ++c) {
      const int64_t off = w.Offset(id, c);
      const float v =
          w.dtype == DType::kBF16 ? Bf16ToFloat(w.data.as<bf16_t>()[off]) : w.data.as<float>()[off];
      if constexpr (sizeof(TO) == 2) {
        o[c] = FloatToBf16(v);
      } else {
        o[c] = v;
      }
    }
  }
}

template <typename TI, typename TO>
inline void RmsNormRow(const TI* x, TO* out, int64_t n, const float* gain, float eps) {
  __m512 ss = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = Load16(x + i, TailMask(n - i));
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  const float inv = 1.0f / std::sqrt(_mm512_reduce_add_ps(ss) / static_cast<float>(n) + eps);
  const __m512 s = _mm512_set1_ps(inv);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    Store16(out + i, _mm512_mul_ps(_mm512_mul_ps(Load16(x + i, m), s), Load16(gain + i, m)), m);
  }
}

template <typename TI, typename TO>
void RmsNormT(const TI* in, TO* out, int64_t rows, int64_t n, const float* gain, float eps) {
#pragma omp parallel for schedule(static) if (rows * n >= kParallelElems)
  for (int64_t r = 0; r < rows; ++r) RmsNormRow(in + r * n, out + r * n, n, gain, eps);
}

template <typename TO>
void SwiGluT(const float* gate_up, TO* out, int64_t rows, int64_t f) {
#pragma omp parallel for schedule(static) if (rows * f >= kParallelElems)
  for (int64_t t = 0; t < rows; ++t) {
    const float* g = gate_up + t * 2 * f;
    const float* u = g + f;
    for (int64_t i = 0; i < f; i += 16) {
      const __mmask16 m = TailMask(f - i);
      Store16(out + t * f + i, _mm512_mul_ps(Silu16(Load16(g + i, m)), Load16(u + i, m)), m);
    }
  }
}

}  // namespace

void EmbeddingPlain(const int32_t* tokens, int64_t count, const void* table, DType table_dtype,
                    int64_t n, View out) {
  if (out.dtype == DType::kBF16) {
    EmbeddingPlainT(tokens, count, table, table_dtype, n, static_cast<bf16_t*>(out.data));
  } else {
    EmbeddingPlainT(tokens, count, table, table_dtype, n, static_cast<float*>(out.data));
  }
}

void EmbeddingPacked(const int32_t* tokens, int64_t count, const PackedMatrix& table, View out) {
  if (out.dtype == DType::kBF16) {
    EmbeddingPackedT(tokens, count, table, static_cast<bf16_t*>(out.data));
  } else {
    EmbeddingPackedT(tokens, count, table, static_cast<float*>(out.data));
  }
}

void RmsNorm(View in, View out, int64_t rows, int64_t n, const float* gain, float eps) {
  const bool ib = in.dtype == DType::kBF16, ob = out.dtype == DType::kBF16;
  if (ib && ob) {
    RmsNormT(static_cast<const bf16_t*>(in.data), static_cast<bf16_t*>(out.data), rows, n, gain,
             eps);
  } else if (ib) {
    RmsNormT(static_cast<const bf16_t*>(in.data), static_cast<float*>(out.data), rows, n, gain,
             eps);
  } else if (ob) {
    RmsNormT(static_cast<const float*>(in.data), static_cast<bf16_t*>(out.data), rows, n, gain,
             eps);
  } else {
    RmsNormT(static_cast<const float*>(in.data), static_cast<float*>(out.data), rows, n, gain, eps);
  }
}

void QkNorm(float* qkv, int64_t rows, int64_t width, int64_t q_heads, int64_t k_heads,
            int64_t head_dim, const float* q_gain, const float* k_gain, float eps) {
  const int64_t heads = q_heads + k_heads;
#pragma omp parallel for schedule(static) if (rows * heads * head_dim >= kParallelElems)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      float* x = qkv + r * width + h * head_dim;
      RmsNormRow(x, x, head_dim, h < q_heads ? q_gain : k_gain, eps);
    }
  }
}

void Rope(float* qkv, int64_t rows, int64_t width, int64_t heads, int64_t head_dim,
          const int32_t* positions, const float* cos_sin) {
  const int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static) if (rows * heads * head_dim >= kParallelElems)
  for (int64_t r = 0; r < rows; ++r) {
    const float* cs = cos_sin + static_cast<int64_t>(positions[r]) * head_dim;
    for (int64_t h = 0; h < heads; ++h) {
      float* x = qkv + r * width + h * head_dim;
      for (int64_t i = 0; i < half; i += 16) {
        const __mmask16 m = TailMask(half - i);
        const __m512 c = Load16(cs + i, m), s = Load16(cs + half + i, m);
        const __m512 x1 = Load16(x + i, m), x2 = Load16(x + half + i, m);
        Store16(x + i, _mm512_fmsub_ps(x1, c, _mm512_mul_ps(x2, s)), m);
        Store16(x + half + i, _mm512_fmadd_ps(x2, c, _mm512_mul_ps(x1, s)), m);
      }
    }
  }
}

void SwiGlu(const float* gate_up, View out, int64_t rows, int64_t f) {
  if (out.dtype == DType::kBF16) {
    SwiGluT(gate_up, static_cast<bf16_t*>(out.data), rows, f);
  } else {
    SwiGluT(gate_up, static_cast<float*>(out.data), rows, f);
  }
}

void AddInPlace(float* out, const float* in, int64_t count) {
#pragma omp parallel for schedule(static) if (count >= 4 * kParallelElems)
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 m = TailMask(count - i);
    Store16(out + i, _mm512_add_ps(Load16(out + i, m), Load16(in + i, m)), m);
  }
}

int32_t ArgMax(const float* values, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 best = ninf;
  for (int64_t i = 0; i < n; i += 16) {
    // vmaxps returns its second operand when either is NaN: NaN lanes keep `best`.
    best = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, TailMask(n - i), values + i), best);
  }
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(best));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    const __mmask16 eq =
        _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, values + i), top, _CMP_EQ_OQ);
    if (eq != 0) return static_cast<int32_t>(i + __builtin_ctz(eq));
  }
  return -1;
}

Status MakeRopeTable(int64_t positions, int64_t dim, double theta, AlignedBuffer* out,
                     const char* what) {
  CB_RETURN_IF_ERROR(out->Allocate(static_cast<size_t>(positions * dim) * sizeof(float), what));
  const int64_t half = dim / 2;
  for (int64_t p = 0; p < positions; ++p) {
    float* row = out->as<float>() + p * dim;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * std::pow(theta, -2.0 * i / dim);
      row[i] = static_cast<float>(std::cos(angle));
      row[half + i] = static_cast<float>(std::sin(angle));
    }
  }
  return Status::Ok();
}

}  // namespace cb::cpu

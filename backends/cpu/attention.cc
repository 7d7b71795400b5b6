#include "backends/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "backends/cpu/vec_math.h"

namespace cb::cpu {
namespace {

/// Query heads whose scores are computed together from one load of each K row.
constexpr int64_t kHeadChunk = 8;

/// In place: s[0, len) = softmax numerators exp(s - max); returns 1 / their sum.
float SoftmaxNumerators(float* s, int64_t len) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
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

/// Attention of one new row for the query heads of kv head `g` over positions [0, len).
template <typename TC, typename TO>
void AttendRow(const float* qkv_row, int64_t g, int64_t len, const AttentionShape& shape,
               const TC* kb, const TC* vb, TO* out_row, float* scratch, int64_t max_context) {
  const int64_t hd = shape.head_dim, group = shape.heads / shape.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* q = qkv_row + g * group * hd;
  float* scores = scratch;                     // [group][len]
  float* acc = scratch + group * max_context;  // [group][hd]
  float* inv_sum = acc + group * hd;           // [group]

  for (int64_t i0 = 0; i0 < group; i0 += kHeadChunk) {
    const int64_t ic = std::min(kHeadChunk, group - i0);
    for (int64_t t = 0; t < len; ++t) {
      const TC* kt = kb + t * hd;
      __m512 a[kHeadChunk];
      for (int64_t i = 0; i < ic; ++i) a[i] = _mm512_setzero_ps();
      for (int64_t d = 0; d < hd; d += 16) {
        const __mmask16 m = TailMask(hd - d);
        const __m512 kv = Load16(kt + d, m);
        for (int64_t i = 0; i < ic; ++i) {
          a[i] = _mm512_fmadd_ps(Load16(q + (i0 + i) * hd + d, m), kv, a[i]);
        }
      }
      for (int64_t i = 0; i < ic; ++i)
        scores[(i0 + i) * len + t] = _mm512_reduce_add_ps(a[i]) * scale;
    }
  }

  for (int64_t i = 0; i < group; ++i) inv_sum[i] = SoftmaxNumerators(scores + i * len, len);

  std::fill(acc, acc + group * hd, 0.0f);
  for (int64_t t = 0; t < len; ++t) {
    const TC* vt = vb + t * hd;
    for (int64_t d = 0; d < hd; d += 16) {
      const __mmask16 m = TailMask(hd - d);
      const __m512 v = Load16(vt + d, m);
      for (int64_t i = 0; i < group; ++i) {
        float* a = acc + i * hd + d;
        Store16(a, _mm512_fmadd_ps(_mm512_set1_ps(scores[i * len + t]), v, Load16(a, m)), m);
      }
    }
  }
  for (int64_t i = 0; i < group; ++i) {
    const __m512 s = _mm512_set1_ps(inv_sum[i]);
    TO* o = out_row + (g * group + i) * hd;
    for (int64_t d = 0; d < hd; d += 16) {
      const __mmask16 m = TailMask(hd - d);
      Store16(o + d, _mm512_mul_ps(Load16(acc + i * hd + d, m), s), m);
    }
  }
}

template <typename TC, typename TO>
void AttentionT(const float* qkv, int64_t rows, const RowPos* row_pos, const AttentionShape& shape,
                KvCache& cache, int layer, TO* out, AttentionScratch& scratch) {
  const int64_t hd = shape.head_dim, heads = shape.heads, kvh = shape.kv_heads;
  const int64_t width = (heads + 2 * kvh) * hd, out_w = heads * hd;
  const int64_t max_context = cache.max_context();

  // 1. Append the step's K and V (every row first: later rows of a sequence attend to them).
#pragma omp parallel for collapse(2) schedule(static) if (rows * kvh * hd >= 8192)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < kvh; ++g) {
      const float* src = qkv + r * width;
      const int64_t at = static_cast<int64_t>(row_pos[r].pos) * hd;
      CopyRow(src + (heads + g) * hd, static_cast<TC*>(cache.K(layer, row_pos[r].slot, g)) + at,
              hd);
      CopyRow(src + (heads + kvh + g) * hd,
              static_cast<TC*>(cache.V(layer, row_pos[r].slot, g)) + at, hd);
    }
  }

  // 2. Attend: one task per (row, kv head); causal rows differ in length, so dynamic.
  const int64_t tasks = rows * kvh;
#pragma omp parallel for schedule(dynamic, 1) num_threads(scratch.threads()) if (tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t r = task / kvh, g = task % kvh;
    const RowPos& rp = row_pos[r];
    AttendRow<TC, TO>(qkv + r * width, g, static_cast<int64_t>(rp.pos) + 1, shape,
                      static_cast<const TC*>(cache.K(layer, rp.slot, g)),
                      static_cast<const TC*>(cache.V(layer, rp.slot, g)), out + r * out_w,
                      scratch.For(omp_get_thread_num()), max_context);
  }
}

}  // namespace

Status KvCache::Allocate(int layers, int64_t slots, int64_t kv_heads, int64_t max_context,
                         int64_t head_dim, DType dtype) {
  dtype_ = dtype;
  slots_ = slots;
  kv_heads_ = kv_heads;
  max_context_ = max_context;
  head_dim_ = head_dim;
  const size_t bytes =
      static_cast<size_t>(layers * slots * kv_heads * max_context * head_dim) * DTypeBytes(dtype);
  CB_RETURN_IF_ERROR(k_.Allocate(bytes, "the K cache"));
  CB_RETURN_IF_ERROR(v_.Allocate(bytes, "the V cache"));
  valid_.assign(static_cast<size_t>(layers * slots), 0);
  return Status::Ok();
}

Status AttentionScratch::Allocate(int threads, const AttentionShape& shape, int64_t max_context) {
  const int64_t group = shape.heads / shape.kv_heads;
  threads_ = std::max(threads, 1);
  // Scores [group][max_context], accumulators [group][head_dim] and 1 / sum [group], rounded
  // up to whole cache lines.
  per_thread_ = (group * (max_context + shape.head_dim + 1) + 15) / 16 * 16;
  return buf_.Allocate(static_cast<size_t>(threads_ * per_thread_) * sizeof(float),
                       "attention scratch");
}

void Attention(const float* qkv, int64_t rows, const RowPos* row_pos, const AttentionShape& shape,
               KvCache& cache, int layer, View out, AttentionScratch& scratch) {
  const bool cache_bf16 = cache.dtype() == DType::kBF16, out_bf16 = out.dtype == DType::kBF16;
  if (cache_bf16 && out_bf16) {
    AttentionT<bf16_t, bf16_t>(qkv, rows, row_pos, shape, cache, layer,
                               static_cast<bf16_t*>(out.data), scratch);
  } else if (cache_bf16) {
    AttentionT<bf16_t, float>(qkv, rows, row_pos, shape, cache, layer,
                              static_cast<float*>(out.data), scratch);
  } else if (out_bf16) {
    AttentionT<float, bf16_t>(qkv, rows, row_pos, shape, cache, layer,
                              static_cast<bf16_t*>(out.data), scratch);
  } else {
    AttentionT<float, float>(qkv, rows, row_pos, shape, cache, layer, static_cast<float*>(out.data),
                             scratch);
  }
}

}  // namespace cb::cpu

#include "backends/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "backends/cpu/vec_math.h"

namespace cb::cpu {
namespace {

/// Query heads whose scores are computed from one pass over the K tiles.
constexpr int64_t kScoreHeads = 4;

inline void StoreScalar(float* p, float v) { *p = v; }
inline void StoreScalar(bf16_t* p, float v) { *p = FloatToBf16(v); }

/// scores[i * stride + t] = scale * q_i . K[t], t < len, for IC heads q_i = q + i * hd: per
/// tile of 16 positions, one K vector per d against a broadcast of each head's q[d].
template <typename TC, int IC>
void ScoreHeads(const float* q, int64_t hd, const TC* k, int64_t len, float scale, float* scores,
                int64_t stride) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t t0 = 0; t0 < len; t0 += kKTile) {
    const TC* tile = k + t0 * hd;  // tile t0 / 16 starts at (t0 / 16) * hd * 16
    __m512 a[IC];
    for (int i = 0; i < IC; ++i) a[i] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) {
      const __m512 kv = Load16(tile + d * kKTile);
      for (int i = 0; i < IC; ++i) a[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[i * hd + d]), kv, a[i]);
    }
    const __mmask16 m = TailMask(len - t0);
    for (int i = 0; i < IC; ++i) Store16(scores + i * stride + t0, _mm512_mul_ps(a[i], sc), m);
  }
}

template <typename TC>
void Scores(const float* q, int64_t group, int64_t hd, const TC* k, int64_t len, float scale,
            float* scores, int64_t stride) {
  for (int64_t i0 = 0; i0 < group; i0 += kScoreHeads) {
    const float* qi = q + i0 * hd;
    float* si = scores + i0 * stride;
    switch (std::min(kScoreHeads, group - i0)) {
      case 1:
        ScoreHeads<TC, 1>(qi, hd, k, len, scale, si, stride);
        break;
      case 2:
        ScoreHeads<TC, 2>(qi, hd, k, len, scale, si, stride);
        break;
      case 3:
        ScoreHeads<TC, 3>(qi, hd, k, len, scale, si, stride);
        break;
      default:
        ScoreHeads<TC, 4>(qi, hd, k, len, scale, si, stride);
        break;
    }
  }
}

/// out_i = inv_sum[i] * sum_t p_i[t] V[t] for head_dim = 16 NV: accumulators of up to
/// 16 / NV heads stay in registers while V streams past once per group of heads.
template <typename TC, typename TO, int NV>
void WeightedSumRegs(const float* p, int64_t stride, const float* inv_sum, int64_t group,
                     int64_t len, const TC* v, TO* out) {
  constexpr int64_t hd = 16 * NV;
  constexpr int64_t kHeads = NV >= 16 ? 1 : 16 / NV;
  for (int64_t i0 = 0; i0 < group; i0 += kHeads) {
    const int64_t ic = std::min(kHeads, group - i0);
    const float* pi[kHeads];  // heads past `ic` repeat the last one and are not stored
    for (int64_t i = 0; i < kHeads; ++i) pi[i] = p + (i0 + std::min(i, ic - 1)) * stride;
    __m512 acc[kHeads][NV];
    for (int64_t i = 0; i < kHeads; ++i) {
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    for (int64_t t = 0; t < len; ++t) {
      __m512 vt[NV];
      for (int j = 0; j < NV; ++j) vt[j] = Load16(v + t * hd + 16 * j);
      for (int64_t i = 0; i < kHeads; ++i) {
        const __m512 w = _mm512_set1_ps(pi[i][t]);
        for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(w, vt[j], acc[i][j]);
      }
    }
    for (int64_t i = 0; i < ic; ++i) {
      const __m512 s = _mm512_set1_ps(inv_sum[i0 + i]);
      for (int j = 0; j < NV; ++j)
        Store16(out + (i0 + i) * hd + 16 * j, _mm512_mul_ps(acc[i][j], s));
    }
  }
}

/// The same for any head_dim, accumulating in memory (`acc`: group * hd floats).
template <typename TC, typename TO>
void WeightedSumAny(const float* p, int64_t stride, const float* inv_sum, int64_t group,
                    int64_t len, int64_t hd, const TC* v, TO* out, float* acc) {
  std::fill(acc, acc + group * hd, 0.0f);
  for (int64_t t = 0; t < len; ++t) {
    for (int64_t d = 0; d < hd; d += 16) {
      const __mmask16 m = TailMask(hd - d);
      const __m512 vt = Load16(v + t * hd + d, m);
      for (int64_t i = 0; i < group; ++i) {
        float* a = acc + i * hd + d;
        Store16(a, _mm512_fmadd_ps(_mm512_set1_ps(p[i * stride + t]), vt, Load16(a, m)), m);
      }
    }
  }
  for (int64_t i = 0; i < group; ++i) {
    const __m512 s = _mm512_set1_ps(inv_sum[i]);
    for (int64_t d = 0; d < hd; d += 16) {
      const __mmask16 m = TailMask(hd - d);
      Store16(out + i * hd + d, _mm512_mul_ps(Load16(acc + i * hd + d, m), s), m);
    }
  }
}

template <typename TC, typename TO>
void WeightedSum(const float* p, int64_t stride, const float* inv_sum, int64_t group, int64_t len,
                 int64_t hd, const TC* v, TO* out, float* acc) {
  switch (hd) {
    case 16:
      return WeightedSumRegs<TC, TO, 1>(p, stride, inv_sum, group, len, v, out);
    case 32:
      return WeightedSumRegs<TC, TO, 2>(p, stride, inv_sum, group, len, v, out);
    case 64:
      return WeightedSumRegs<TC, TO, 4>(p, stride, inv_sum, group, len, v, out);
    case 128:
      return WeightedSumRegs<TC, TO, 8>(p, stride, inv_sum, group, len, v, out);
    default:
      return WeightedSumAny(p, stride, inv_sum, group, len, hd, v, out, acc);
  }
}

/// Attention of one new row for the `group` query heads of kv head `g` over positions
/// [0, len).
template <typename TC, typename TO>
void AttendRow(const float* qkv_row, int64_t g, int64_t len, const AttentionShape& shape,
               const TC* k, const TC* v, TO* out_row, float* scratch, int64_t stride) {
  const int64_t hd = shape.head_dim, group = shape.heads / shape.kv_heads;
  float* scores = scratch;                // [group][stride]
  float* acc = scratch + group * stride;  // [group][hd]
  float* inv_sum = acc + group * hd;      // [group]
  Scores(qkv_row + g * group * hd, group, hd, k, len, 1.0f / std::sqrt(static_cast<float>(hd)),
         scores, stride);
  for (int64_t i = 0; i < group; ++i) inv_sum[i] = SoftmaxNumerators(scores + i * stride, len);
  WeightedSum(scores, stride, inv_sum, group, len, hd, v, out_row + g * group * hd, acc);
}

template <typename TC, typename TO>
void AttentionT(const float* qkv, int64_t rows, const RowPos* row_pos, const AttentionShape& shape,
                KvCache& cache, int layer, TO* out, AttentionScratch& scratch) {
  const int64_t hd = shape.head_dim, heads = shape.heads, kvh = shape.kv_heads;
  const int64_t width = (heads + 2 * kvh) * hd, out_w = heads * hd;
  const int64_t stride = cache.capacity();

  // 1. Append the step's K (into its tile, transposed) and V (every row first: later rows of
  //    a sequence attend to earlier ones of the same step).
#pragma omp parallel for collapse(2) schedule(static) if (rows * kvh * hd >= 8192)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < kvh; ++g) {
      const float* src = qkv + r * width;
      const int64_t pos = row_pos[r].pos;
      TC* kt = static_cast<TC*>(cache.K(layer, row_pos[r].slot, g)) + (pos / kKTile) * hd * kKTile +
               pos % kKTile;
      const float* ks = src + (heads + g) * hd;
      for (int64_t d = 0; d < hd; ++d) StoreScalar(kt + d * kKTile, ks[d]);
      CopyRow(src + (heads + kvh + g) * hd,
              static_cast<TC*>(cache.V(layer, row_pos[r].slot, g)) + pos * hd, hd);
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
                      scratch.For(omp_get_thread_num()), stride);
  }
}

}  // namespace

Status KvCache::Allocate(int layers, int64_t slots, int64_t kv_heads, int64_t max_context,
                         int64_t head_dim, DType dtype) {
  dtype_ = dtype;
  slots_ = slots;
  kv_heads_ = kv_heads;
  capacity_ = (max_context + kKTile - 1) / kKTile * kKTile;
  head_dim_ = head_dim;
  const size_t bytes =
      static_cast<size_t>(layers * slots * kv_heads * capacity_ * head_dim) * DTypeBytes(dtype);
  CB_RETURN_IF_ERROR(k_.Allocate(bytes, "the K cache"));
  CB_RETURN_IF_ERROR(v_.Allocate(bytes, "the V cache"));
  valid_.assign(static_cast<size_t>(layers * slots), 0);
  return Status::Ok();
}

Status AttentionScratch::Allocate(int threads, const AttentionShape& shape, int64_t max_context) {
  const int64_t group = shape.heads / shape.kv_heads;
  threads_ = std::max(threads, 1);
  // Scores [group][capacity], accumulators [group][head_dim] and 1 / sum [group], rounded up
  // to whole cache lines; capacity is max_context rounded up to whole K tiles.
  const int64_t capacity = (max_context + kKTile - 1) / kKTile * kKTile;
  per_thread_ = (group * (capacity + shape.head_dim + 1) + 15) / 16 * 16;
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

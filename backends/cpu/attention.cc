#include "backends/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "backends/cpu/quant_codes.h"
#include "backends/cpu/vec_math.h"

namespace cb::cpu {
namespace {

/// Query heads whose scores are computed from one pass over the K tiles.
constexpr int64_t kScoreHeads = 4;

inline void StoreScalar(float* p, float v) { *p = v; }
inline void StoreScalar(bf16_t* p, float v) { *p = FloatToBf16(v); }

/// An 8-bit cache (codes and scales) and its dtype.
template <typename TC>
inline constexpr bool kCodes = std::is_same_v<TC, int8_t> || std::is_same_v<TC, fp8_t>;
template <typename TC>
inline constexpr DType kCodeDType = std::is_same_v<TC, int8_t> ? DType::kInt8 : DType::kFP8;

/// Appends one token's K (`ks`, into its tile, transposed) and V (`vs`, a row) of kv head `g`.
template <typename TC>
void AppendKv(const float* ks, const float* vs, int64_t hd, int64_t pos, KvCache& cache, int layer,
              int64_t slot, int64_t g) {
  TC* kt = static_cast<TC*>(cache.K(layer, slot, g)) + (pos / kKTile) * hd * kKTile + pos % kKTile;
  TC* vr = static_cast<TC*>(cache.V(layer, slot, g)) + pos * hd;
  if constexpr (kCodes<TC>) {
    constexpr DType kv = kCodeDType<TC>;
    const float k_scale = AbsMaxScaleOf(ks, hd, KvQuantMax(kv));
    cache.KScale(layer, slot, g)[pos] = k_scale;
    constexpr int64_t kChunk = 64;
    uint8_t codes[kChunk];
    for (int64_t d0 = 0; d0 < hd; d0 += kChunk) {
      const int64_t n = std::min(kChunk, hd - d0);
      EncodeCodes(kv, ks + d0, n, k_scale, codes);
      for (int64_t d = 0; d < n; ++d) kt[(d0 + d) * kKTile] = static_cast<TC>(codes[d]);
    }
    cache.VScale(layer, slot, g)[pos] = EncodeKvHead(kv, vs, hd, reinterpret_cast<uint8_t*>(vr));
  } else {
    for (int64_t d = 0; d < hd; ++d) StoreScalar(kt + d * kKTile, ks[d]);
    CopyRow(vs, vr, hd);
  }
}

/// scores[i * stride + t] = scale * q_i . K[t], t < len, for IC heads q_i = q + i * hd: per
/// tile of 16 positions, one K vector per d against a broadcast of each head's q[d]. An 8-bit
/// cache's dot products are of the codes, then times each position's scale (`k_scale`).
template <typename TC, int IC>
void ScoreHeads(const float* q, int64_t hd, const TC* k, const float* k_scale, int64_t len,
                float scale, float* scores, int64_t stride) {
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
    __m512 st = sc;
    if constexpr (kCodes<TC>) st = _mm512_mul_ps(sc, Load16(k_scale + t0, m));
    for (int i = 0; i < IC; ++i) Store16(scores + i * stride + t0, _mm512_mul_ps(a[i], st), m);
  }
}

template <typename TC>
void Scores(const float* q, int64_t group, int64_t hd, const TC* k, const float* k_scale,
            int64_t len, float scale, float* scores, int64_t stride) {
  for (int64_t i0 = 0; i0 < group; i0 += kScoreHeads) {
    const float* qi = q + i0 * hd;
    float* si = scores + i0 * stride;
    switch (std::min(kScoreHeads, group - i0)) {
      case 1:
        ScoreHeads<TC, 1>(qi, hd, k, k_scale, len, scale, si, stride);
        break;
      case 2:
        ScoreHeads<TC, 2>(qi, hd, k, k_scale, len, scale, si, stride);
        break;
      case 3:
        ScoreHeads<TC, 3>(qi, hd, k, k_scale, len, scale, si, stride);
        break;
      default:
        ScoreHeads<TC, 4>(qi, hd, k, k_scale, len, scale, si, stride);
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

/// p[i * stride + t] *= v_scale[t] for the `group` rows of softmax numerators: an 8-bit
/// cache's V rows are then sums of codes.
void ScaleWeights(float* p, int64_t stride, int64_t group, int64_t len, const float* v_scale) {
  for (int64_t t = 0; t < len; t += 16) {
    const __mmask16 m = TailMask(len - t);
    const __m512 vs = Load16(v_scale + t, m);
    for (int64_t i = 0; i < group; ++i) {
      float* pi = p + i * stride + t;
      Store16(pi, _mm512_mul_ps(Load16(pi, m), vs), m);
    }
  }
}

/// One (layer, slot, kv head) of the cache: its K tiles and V rows, with an 8-bit cache's
/// per-position scales.
template <typename TC>
struct KvHead {
  const TC *k = nullptr, *v = nullptr;
  const float *k_scale = nullptr, *v_scale = nullptr;
};

/// Attention of one new row for the `group` query heads of kv head `g` over positions
/// [0, len).
template <typename TC, typename TO>
void AttendRow(const float* qkv_row, int64_t g, int64_t len, const AttentionShape& shape,
               const KvHead<TC>& kv, TO* out_row, float* scratch, int64_t stride) {
  const int64_t hd = shape.head_dim, group = shape.heads / shape.kv_heads;
  float* scores = scratch;                // [group][stride]
  float* acc = scratch + group * stride;  // [group][hd]
  float* inv_sum = acc + group * hd;      // [group]
  Scores(qkv_row + g * group * hd, group, hd, kv.k, kv.k_scale, len,
         1.0f / std::sqrt(static_cast<float>(hd)), scores, stride);
  for (int64_t i = 0; i < group; ++i) inv_sum[i] = SoftmaxNumerators(scores + i * stride, len);
  if constexpr (kCodes<TC>) ScaleWeights(scores, stride, group, len, kv.v_scale);
  WeightedSum(scores, stride, inv_sum, group, len, hd, kv.v, out_row + g * group * hd, acc);
}

template <typename TC, typename TO>
void AttentionT(const float* qkv, int64_t rows, const RowPos* row_pos, const AttentionShape& shape,
                KvCache& cache, int layer, TO* out, AttentionScratch& scratch) {
  const int64_t hd = shape.head_dim, heads = shape.heads, kvh = shape.kv_heads;
  const int64_t width = (heads + 2 * kvh) * hd, out_w = heads * hd;
  const int64_t stride = cache.capacity();

  // 1. Append the step's K and V (every row first: later rows of a sequence attend to earlier
  //    ones of the same step).
#pragma omp parallel for collapse(2) schedule(static) if (rows * kvh * hd >= 8192)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < kvh; ++g) {
      const float* src = qkv + r * width;
      AppendKv<TC>(src + (heads + g) * hd, src + (heads + kvh + g) * hd, hd, row_pos[r].pos, cache,
                   layer, row_pos[r].slot, g);
    }
  }

  // 2. Attend: one task per (row, kv head); causal rows differ in length, so dynamic.
  const int64_t tasks = rows * kvh;
#pragma omp parallel for schedule(dynamic, 1) num_threads(scratch.threads()) if (tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t r = task / kvh, g = task % kvh;
    const RowPos& rp = row_pos[r];
    const KvHead<TC> kv{static_cast<const TC*>(cache.K(layer, rp.slot, g)),
                        static_cast<const TC*>(cache.V(layer, rp.slot, g)),
                        cache.KScale(layer, rp.slot, g), cache.VScale(layer, rp.slot, g)};
    AttendRow<TC, TO>(qkv + r * width, g, static_cast<int64_t>(rp.pos) + 1, shape, kv,
                      out + r * out_w, scratch.For(omp_get_thread_num()), stride);
  }
}

/// AttentionT for a cache of TC, into fp32 or bf16 output rows.
template <typename TC>
void AttentionOut(const float* qkv, int64_t rows, const RowPos* row_pos,
                  const AttentionShape& shape, KvCache& cache, int layer, View out,
                  AttentionScratch& scratch) {
  if (out.dtype == DType::kBF16) {
    AttentionT<TC, bf16_t>(qkv, rows, row_pos, shape, cache, layer, static_cast<bf16_t*>(out.data),
                           scratch);
  } else {
    AttentionT<TC, float>(qkv, rows, row_pos, shape, cache, layer, static_cast<float*>(out.data),
                          scratch);
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
  const size_t positions = static_cast<size_t>(layers * slots * kv_heads * capacity_);
  const size_t bytes = positions * static_cast<size_t>(head_dim) * DTypeBytes(dtype);
  CB_RETURN_IF_ERROR(k_.Allocate(bytes, "the K cache"));
  CB_RETURN_IF_ERROR(v_.Allocate(bytes, "the V cache"));
  k_scale_.Reset();
  v_scale_.Reset();
  if (IsQuantized(dtype)) {
    CB_RETURN_IF_ERROR(k_scale_.Allocate(positions * sizeof(float), "the K cache's scales"));
    CB_RETURN_IF_ERROR(v_scale_.Allocate(positions * sizeof(float), "the V cache's scales"));
  }
  valid_.assign(static_cast<size_t>(layers * slots), 0);
  return Status::Ok();
}

float EncodeKvHead(DType kv, const float* x, int64_t n, uint8_t* codes) {
  const float s = AbsMaxScaleOf(x, n, KvQuantMax(kv));
  EncodeCodes(kv, x, n, s, codes);
  return s;
}

void DecodeKvCodes(DType kv, const uint8_t* codes, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    Store16(out + i,
            kv == DType::kInt8 ? Load16(reinterpret_cast<const int8_t*>(codes + i), m)
                               : Load16(reinterpret_cast<const fp8_t*>(codes + i), m),
            m);
  }
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
  switch (cache.dtype()) {
    case DType::kBF16:
      return AttentionOut<bf16_t>(qkv, rows, row_pos, shape, cache, layer, out, scratch);
    case DType::kInt8:
      return AttentionOut<int8_t>(qkv, rows, row_pos, shape, cache, layer, out, scratch);
    case DType::kFP8:
      return AttentionOut<fp8_t>(qkv, rows, row_pos, shape, cache, layer, out, scratch);
    default:
      return AttentionOut<float>(qkv, rows, row_pos, shape, cache, layer, out, scratch);
  }
}

}  // namespace cb::cpu

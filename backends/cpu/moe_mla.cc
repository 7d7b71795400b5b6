#include "backends/cpu/moe_mla.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "workloads/moe_routing.h"
#include "workloads/op_stream.h"

namespace cb::cpu {

void RouteTokens(const MoeSpec& moe, double zipf_s, const float* logits, int64_t rows,
                 const float* bias, float* route) {
  const int64_t e = moe.num_experts, k = moe.experts_per_token;
  std::vector<float> skew(e);
  for (int64_t i = 0; i < e; ++i) skew[i] = RoutingSkewBias(zipf_s, i);
  const bool softmax = moe.scoring == "softmax";
#pragma omp parallel if (rows >= 16)
  {
    std::vector<float> scores(e), sel, weights(k);
    std::vector<char> eligible;
    std::vector<int64_t> ids(k);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < rows; ++t) {
      const float* l = logits + t * e;
      float mx = -INFINITY;
      for (int64_t i = 0; i < e; ++i) mx = std::max(mx, scores[i] = l[i] + skew[i]);
      if (softmax) {
        float sum = 0;
        for (int64_t i = 0; i < e; ++i) sum += scores[i] = std::exp(scores[i] - mx);
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < e; ++i) scores[i] *= inv;
      } else {
        for (int64_t i = 0; i < e; ++i) scores[i] = 1.0f / (1.0f + std::exp(-scores[i]));
      }
      SelectExperts<float>(moe, scores.data(), bias, ids.data(), weights.data(), sel, eligible);
      for (int64_t j = 0; j < k; ++j) {
        route[t * 2 * k + j] = static_cast<float>(ids[j]);
        route[t * 2 * k + k + j] = weights[j];
      }
    }
  }
}

void ExpertDispatch::Build(const float* route, int64_t rows, int64_t top_k, int64_t begin,
                           int64_t count) {
  offset.assign(count + 1, 0);
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t e = static_cast<int64_t>(route[t * 2 * top_k + j]) - begin;
      if (e >= 0 && e < count) ++offset[e + 1];
    }
  }
  for (int64_t e = 0; e < count; ++e) offset[e + 1] += offset[e];
  token.resize(offset[count]);
  weight.resize(offset[count]);
  std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t e = static_cast<int64_t>(route[t * 2 * top_k + j]) - begin;
      if (e < 0 || e >= count) continue;
      token[fill[e]] = static_cast<int32_t>(t);
      weight[fill[e]++] = route[t * 2 * top_k + top_k + j];
    }
  }
}

void LatentNorm(float* kva, int64_t rows, int64_t width, int64_t n, const float* gain, float eps) {
#pragma omp parallel for schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) {
    float* x = kva + t * width;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] * inv * gain[i];
  }
}

namespace {

inline void RotateHalf(float* x, int64_t half, const float* cs) {
  const float* sn = cs + half;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * cs[i] - x2 * sn[i];
    x[i + half] = x2 * cs[i] + x1 * sn[i];
  }
}

inline float Load(const void* p, DType dt, int64_t i) {
  return dt == DType::kBF16 ? Bf16ToFloat(static_cast<const uint16_t*>(p)[i])
                            : static_cast<const float*>(p)[i];
}

}  // namespace

void MlaRope(float* q, float* kva, int64_t rows, int64_t heads, int64_t qk, int64_t rope,
             int64_t kv_lora, const int32_t* positions, const float* cos_sin) {
  const int64_t half = rope / 2, nope = qk - rope, kv_w = kv_lora + rope;
#pragma omp parallel for schedule(static) if (rows >= 16)
  for (int64_t t = 0; t < rows; ++t) {
    const float* cs = cos_sin + static_cast<int64_t>(positions[t]) * rope;
    for (int64_t h = 0; h < heads; ++h) RotateHalf(q + t * heads * qk + h * qk + nope, half, cs);
    RotateHalf(kva + t * kv_w + kv_lora, half, cs);
  }
}

Status LatentCache::Allocate(int layers, int64_t slots, int64_t max_context, int64_t width,
                             DType dtype) {
  dtype_ = dtype;
  slots_ = slots;
  capacity_ = max_context;
  width_ = width;
  valid_.assign(static_cast<size_t>(layers * slots), 0);
  return mem_.Allocate(
      static_cast<size_t>(layers * slots * max_context * width) * DTypeBytes(dtype),
      "the MLA latent cache");
}

void MlaAttention(const float* q, const float* kva, int64_t rows, const RowPos* row_pos,
                  const MlaShape& s, const float* kv_b, LatentCache& cache, int layer, View out,
                  float* scratch, int64_t scratch_per_thread) {
  const int64_t lora = s.kv_lora, c_w = s.kv_lora + s.rope, qk = s.nope + s.rope;
  const DType dt = cache.dtype();
  // Append the step's latent rows first: a row may attend to rows of the same step.
  for (int64_t r = 0; r < rows; ++r) {
    void* dst = cache.Row(layer, row_pos[r].slot, row_pos[r].pos);
    const float* src = kva + r * c_w;
    if (dt == DType::kBF16) {
      for (int64_t i = 0; i < c_w; ++i) static_cast<uint16_t*>(dst)[i] = FloatToBf16(src[i]);
    } else {
      std::memcpy(dst, src, c_w * sizeof(float));
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(qk));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < s.heads; ++h) {
      float* q_lat = scratch + omp_get_thread_num() * scratch_per_thread;
      float* o_lat = q_lat + lora;
      float* score = o_lat + lora;
      const float* qh = q + r * s.heads * qk + h * qk;
      const float* w_uk = kv_b + h * (s.nope + s.v) * lora;
      const float* w_uv = w_uk + s.nope * lora;
      std::fill(q_lat, q_lat + lora, 0.0f);
      for (int64_t j = 0; j < s.nope; ++j) {
        const float qj = qh[j];
#pragma omp simd
        for (int64_t i = 0; i < lora; ++i) q_lat[i] += qj * w_uk[j * lora + i];
      }
      const int64_t pos = row_pos[r].pos;
      float mx = -INFINITY;
      for (int64_t t = 0; t <= pos; ++t) {
        const void* c = cache.Row(layer, row_pos[r].slot, t);
        float dot = 0;
        if (dt == DType::kBF16) {
          const uint16_t* cb = static_cast<const uint16_t*>(c);
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < lora; ++i) dot += q_lat[i] * Bf16ToFloat(cb[i]);
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < s.rope; ++i) dot += qh[s.nope + i] * Bf16ToFloat(cb[lora + i]);
        } else {
          const float* cf = static_cast<const float*>(c);
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < lora; ++i) dot += q_lat[i] * cf[i];
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < s.rope; ++i) dot += qh[s.nope + i] * cf[lora + i];
        }
        score[t] = dot * scale;
        mx = std::max(mx, score[t]);
      }
      float sum = 0;
      for (int64_t t = 0; t <= pos; ++t) sum += score[t] = std::exp(score[t] - mx);
      const float inv = 1.0f / sum;
      std::fill(o_lat, o_lat + lora, 0.0f);
      for (int64_t t = 0; t <= pos; ++t) {
        const void* c = cache.Row(layer, row_pos[r].slot, t);
        const float p = score[t] * inv;
#pragma omp simd
        for (int64_t i = 0; i < lora; ++i) o_lat[i] += p * Load(c, dt, i);
      }
      for (int64_t j = 0; j < s.v; ++j) {
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < lora; ++i) acc += o_lat[i] * w_uv[j * lora + i];
        const int64_t o = r * s.heads * s.v + h * s.v + j;
        if (out.dtype == DType::kBF16) {
          static_cast<uint16_t*>(out.data)[o] = FloatToBf16(acc);
        } else {
          static_cast<float*>(out.data)[o] = acc;
        }
      }
    }
  }
}

}  // namespace cb::cpu

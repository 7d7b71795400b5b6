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

}  // namespace cb::cpu

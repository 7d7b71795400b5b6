#pragma once

#include <cstdint>
#include <vector>

#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/model_spec.h"

namespace cb::cpu {

// The element-wise parts of MoE and MLA: routing after the gate's matmul, the dispatch plan,
// the latent norm and MLA's RoPE.

/// Router tail: from the gate's logits (fp32 [rows, experts], already computed by a matmul)
/// to kRoute rows [ids ascending, weights] with the model's scoring, skew bias, selection
/// bias, group limit, top-k, normalisation and scaling. Parallel over rows.
void RouteTokens(const MoeSpec& moe, double zipf_s, const float* logits, int64_t rows,
                 const float* bias, float* route);

/// Plan of one step's dispatch: the rows of each local expert, grouped.
struct ExpertDispatch {
  std::vector<int64_t> offset;  ///< [local_experts + 1] into token / weight
  std::vector<int32_t> token;   ///< token row of each (token, expert) pair, grouped by expert
  std::vector<float> weight;    ///< its combine weight
  /// Groups the kRoute rows by local expert (experts outside [begin, begin + count) are
  /// another rank's and skipped).
  void Build(const float* route, int64_t rows, int64_t top_k, int64_t begin, int64_t count);
};

/// In place on rows of `kva` (row width `width`): RMSNorm of the first n columns.
void LatentNorm(float* kva, int64_t rows, int64_t width, int64_t n, const float* gain, float eps);

/// Half-split RoPE in place: the last `rope` columns of each of `heads` heads of q (head width
/// qk, row width heads * qk) and the `rope` columns at kv_lora of each kva row (width
/// kv_lora + rope); cos_sin is [position][rope / 2 cosines, rope / 2 sines].
void MlaRope(float* q, float* kva, int64_t rows, int64_t heads, int64_t qk, int64_t rope,
             int64_t kv_lora, const int32_t* positions, const float* cos_sin);

}  // namespace cb::cpu

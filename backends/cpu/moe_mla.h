#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/attention.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/model_spec.h"

namespace cb::cpu {

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

/// The compressed MLA cache: per (layer, slot) max_context rows of kv_lora + rope values in
/// the session dtype.
class LatentCache {
 public:
  Status Allocate(int layers, int64_t slots, int64_t max_context, int64_t width, DType dtype);
  void* Row(int layer, int64_t slot, int64_t pos) const {
    return static_cast<char*>(mem_.data()) +
           static_cast<size_t>(((layer * slots_ + slot) * capacity_ + pos) * width_) *
               DTypeBytes(dtype_);
  }
  DType dtype() const { return dtype_; }
  int64_t& Valid(int layer, int64_t slot) { return valid_[layer * slots_ + slot]; }
  uint64_t AllocatedBytes() const { return mem_.size(); }

 private:
  DType dtype_ = DType::kF32;
  int64_t slots_ = 0, capacity_ = 0, width_ = 0;
  AlignedBuffer mem_;
  std::vector<int64_t> valid_;
};

struct MlaShape {
  int64_t heads = 0, nope = 0, rope = 0, v = 0, kv_lora = 0;
};

/// Appends the step's kva rows to `layer` of the cache, then attention of each new row over
/// its sequence in the absorbed form: q_nope is taken into the latent space through each
/// head's W_uk (rows of kv_b), scores are latent . q_lat + k_rope . q_rope, the output is the
/// softmax-weighted latent taken out through W_uv. kv_b is fp32 [heads * (nope + v), kv_lora].
/// `scratch` holds per thread 2 * kv_lora + max_context floats.
void MlaAttention(const float* q, const float* kva, int64_t rows, const RowPos* row_pos,
                  const MlaShape& shape, const float* kv_b, LatentCache& cache, int layer, View out,
                  float* scratch, int64_t scratch_per_thread);

}  // namespace cb::cpu

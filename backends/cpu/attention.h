#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/kernels.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb::cpu {

/// Positions per K tile.
inline constexpr int64_t kKTile = 16;

/// K and V of every layer in the cache dtype, per (layer, slot, kv head):
///  - K in tiles of 16 positions, each tile transposed: [pos / 16][head_dim][16], so the scores
///    of 16 positions are 16 lanes of one FMA chain with no horizontal reductions;
///  - V as rows: [pos][head_dim], so the output is a sum of rows scaled by the softmax weights.
/// fp32 and bf16 hold the values; int8 and fp8 hold 1-byte codes in the same layout plus one
/// fp32 scale per (layer, slot, kv head, pos) for K and one for V (workloads/quant.h's
/// QuantizeKvHead), which the kernel applies to a whole score and to a softmax weight.
class KvCache {
 public:
  Status Allocate(int layers, int64_t slots, int64_t kv_heads, int64_t max_context,
                  int64_t head_dim, DType dtype);

  DType dtype() const { return dtype_; }
  /// Positions per (layer, slot): max_context rounded up to whole tiles.
  int64_t capacity() const { return capacity_; }
  void* K(int layer, int64_t slot, int64_t head) const { return At(k_, layer, slot, head); }
  void* V(int layer, int64_t slot, int64_t head) const { return At(v_, layer, slot, head); }
  /// An 8-bit cache's scales of (layer, slot, head), one per position (null otherwise).
  float* KScale(int layer, int64_t slot, int64_t head) const {
    return ScaleAt(k_scale_, layer, slot, head);
  }
  float* VScale(int layer, int64_t slot, int64_t head) const {
    return ScaleAt(v_scale_, layer, slot, head);
  }
  /// Positions of (layer, slot) written so far.
  int64_t& Valid(int layer, int64_t slot) { return valid_[layer * slots_ + slot]; }
  uint64_t AllocatedBytes() const {
    return k_.size() + v_.size() + k_scale_.size() + v_scale_.size();
  }

 private:
  int64_t Index(int layer, int64_t slot, int64_t head) const {
    return (layer * slots_ + slot) * kv_heads_ + head;
  }
  void* At(const AlignedBuffer& b, int layer, int64_t slot, int64_t head) const {
    return static_cast<char*>(b.data()) +
           static_cast<size_t>(Index(layer, slot, head) * capacity_ * head_dim_) *
               DTypeBytes(dtype_);
  }
  float* ScaleAt(const AlignedBuffer& b, int layer, int64_t slot, int64_t head) const {
    return b.empty() ? nullptr : b.as<float>() + Index(layer, slot, head) * capacity_;
  }

  DType dtype_ = DType::kF32;
  int64_t slots_ = 0, kv_heads_ = 0, capacity_ = 0, head_dim_ = 0;
  AlignedBuffer k_, v_, k_scale_, v_scale_;
  std::vector<int64_t> valid_;
};

/// The 8-bit KV quantiser (int8 or fp8 `kv`) of one head's n values, vectorised: the codes
/// and the returned scale are bit for bit those of workloads/quant.h's QuantizeKvHead.
float EncodeKvHead(DType kv, const float* x, int64_t n, uint8_t* codes);

/// The values the attention kernel reads from n codes of an 8-bit cache (its vector loads,
/// 16 codes at a time), without their scale: for its tests.
void DecodeKvCodes(DType kv, const uint8_t* codes, int64_t n, float* out);

/// One row (new token) of a step: its sequence's KV slot and its position.
struct RowPos {
  int64_t slot = 0;
  int32_t pos = 0;
};

struct AttentionShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
};

/// Per-thread working memory of Attention(): scores and output accumulators of one group of
/// query heads.
class AttentionScratch {
 public:
  Status Allocate(int threads, const AttentionShape& shape, int64_t max_context);
  int threads() const { return threads_; }
  float* For(int thread) const { return buf_.as<float>() + thread * per_thread_; }
  uint64_t AllocatedBytes() const { return buf_.size(); }

 private:
  int threads_ = 0;
  int64_t per_thread_ = 0;
  AlignedBuffer buf_;
};

/// Appends K and V of the `rows` new rows of `qkv` (fp32 [rows, (heads + 2 kv_heads) hd]) to
/// `layer` of the cache, then computes causal GQA attention of each new row over its
/// sequence's positions [0, pos]: out[row, h * hd + d]. Parallel over (row, kv head).
void Attention(const float* qkv, int64_t rows, const RowPos* row_pos, const AttentionShape& shape,
               KvCache& cache, int layer, View out, AttentionScratch& scratch);

}  // namespace cb::cpu

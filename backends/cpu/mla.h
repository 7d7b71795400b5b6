#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/attention.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/packed_matrix.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb::cpu {

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

/// kv_b [heads * (nope + v), kv_lora] of one layer split per head for the absorbed form, packed
/// in `dtype` (the dtype MLA's matmuls run in; with `bf16_values`, fp32 holding bf16 values, as
/// an int8 session, whose activations are fp32, holds its unquantised weights): W_uk^T (n =
/// kv_lora, k = nope: takes q_nope into the latent space) and W_uv (n = v, k = kv_lora: takes the
/// attended latent out). Every head's matrix is a run of 64-row blocks of one stacked matrix (one
/// allocation, huge pages, one stream).
struct MlaWeights {
  PackedMatrix uk_t, uv;
  std::vector<PackedView> uk_t_heads, uv_heads;
  uint64_t AllocatedBytes() const { return uk_t.data.size() + uv.data.size(); }
};
Status PackMlaWeights(const WeightDesc& kv_b, const MlaShape& shape, DType dtype, bool bf16_values,
                      const WeightSource& source, MlaWeights* out);

/// Working memory of MlaAttention for up to `rows` new tokens.
class MlaScratch {
 public:
  Status Allocate(int64_t rows, const MlaShape& shape, int64_t max_context, DType dtype);
  uint64_t AllocatedBytes() const;
  int64_t rows() const { return rows_; }

 private:
  friend class MlaKernel;
  int64_t rows_ = 0, nope_pad_ = 0, lora_pad_ = 0, per_thread_ = 0;
  AlignedBuffer q_nope_;  ///< [heads][rows][nope_pad] session dtype
  AlignedBuffer q_lat_;   ///< [heads][rows][kv_lora] fp32
  AlignedBuffer o_lat_;   ///< [heads][rows][lora_pad] session dtype
  AlignedBuffer y_;       ///< [rows][heads * v] fp32
  AlignedBuffer scores_;  ///< per thread [4 heads][max_context] fp32
};

/// Appends the step's kva rows to `layer` of the cache, then attention of each new row over
/// its sequence in the absorbed form: q_nope taken into the latent space through each head's
/// W_uk (one grouped GEMM over the heads), scores latent . q_lat + k_rope . q_rope against the
/// compressed cache (four heads per pass over it), the softmax-weighted latent taken out
/// through W_uv (a second grouped GEMM). The weights are read once per step whatever the
/// number of rows, so a decode step streams them at memory bandwidth.
Status MlaAttention(const float* q, const float* kva, int64_t rows, const RowPos* row_pos,
                    const MlaShape& shape, const MlaWeights& w, MatmulRunner& matmul,
                    LatentCache& cache, int layer, View out, MlaScratch& scratch);

}  // namespace cb::cpu

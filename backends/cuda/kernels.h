#pragma once

// Launchers of the CUDA backend's kernels (kernels.cu, attention_kernels.cu,
// flash_attention.cu, skinny_gemm.cu). Plain C++ declarations: the session (.cc, compiled by
// the host compiler) calls them. Every launcher enqueues on `stream` and returns the launch
// error (cudaGetLastError), never synchronises. Shapes and tilings are planned on the host
// (launch_plan.h).
//
// Storage types: `DType` picks float, __nv_bfloat16 or __half for buffers the session keeps
// in the session dtype; the residual stream, projections and logits are fp32, QKV and gate/up
// fp32 or (narrow) the session dtype: kernels that read them take their type at run time.

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/launch_plan.h"
#include "harness/core/dtype.h"

namespace cb::cuda {

struct AttentionArgs {
  const void* qkv = nullptr;  ///< [rows, qkv_width]: Q | K | V (K and V already cached)
  DType qkv_type = DType::kF32;
  int64_t qkv_width = 0;
  const void* k_cache = nullptr;  ///< this layer: [slots][kv_heads][max_context][head_dim]
  const void* v_cache = nullptr;
  int64_t slot_stride = 0;         ///< elements per slot (kv_heads * max_context * head_dim)
  int64_t head_stride = 0;         ///< elements per KV head (max_context * head_dim)
  const int32_t* tiles = nullptr;  ///< [num_tiles][4]: first row, rows, slot, position of row 0
  int num_tiles = 0;
  const int32_t* row_slot = nullptr;   ///< decode kernel: slot of each row
  const int32_t* positions = nullptr;  ///< decode kernel: position of each row
  int heads = 0, kv_heads = 0, head_dim = 0;
  AttentionTiling tiling;
  int splits = 1;            ///< > 1: partial results, then the combine kernel
  void* out = nullptr;       ///< [rows, heads * head_dim] in `dtype`
  float* partial = nullptr;  ///< [splits][partial_rows][heads][head_dim + 2] (o, max, sum)
  int64_t partial_rows = 0;
  int64_t rows = 0;  ///< rows of the step
  float scale = 1.0f;
  DType dtype = DType::kBF16;
};

struct SkinnyArgs {
  const void* w = nullptr;  ///< [n, k] row-major in `type`
  DType type = DType::kBF16;
  int64_t rows = 0, n = 0, k = 0;
  Prologue prologue = Prologue::kNone;
  /// kNone: [rows, in_ld] in `type`; kRmsNorm: fp32 [rows, in_ld]; kSwiGlu: gate | up rows
  /// (gate at column c, up at c + k) in `in_type`, in_ld apart.
  const void* in = nullptr;
  int64_t in_ld = 0;
  DType in_type = DType::kF32;
  const float* gain = nullptr;  ///< kRmsNorm
  float eps = 0;
  void* out = nullptr;  ///< [rows, out_ld] in `out_type`
  int64_t out_ld = 0;
  DType out_type = DType::kF32;
  bool accumulate = false;  ///< fp32 out += the product (the fused residual add)
};

/// QK-norm (gains not null), RoPE and the KV append of each new row in one pass: Q and K
/// rotated in place, K and V written to the cache of the row's slot at its position.
struct RopeAppendArgs {
  void* qkv = nullptr;
  DType qkv_type = DType::kF32;
  int64_t rows = 0, width = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  const float* q_gain = nullptr;
  const float* k_gain = nullptr;
  float eps = 0;
  const int32_t* positions = nullptr;
  const int32_t* row_slot = nullptr;
  const float* table = nullptr;  ///< [max_context][head_dim]: cosines, then sines
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  DType cache_type = DType::kBF16;
  int64_t slot_stride = 0, head_stride = 0;
};

/// Rounds an fp32 value to the precision of `t` (bf16 or fp16, round to nearest even) and back.
float RoundToDType(DType t, float v);
/// Host conversions between fp32 and the storage of `t` (bf16, fp16: round to nearest even).
void FromFloatHost(const float* src, DType t, size_t n, void* dst);
void ToFloatHost(const void* src, DType t, size_t n, float* dst);

cudaError_t LaunchConvertF32(const float* src, void* dst, DType dst_type, int64_t n,
                             cudaStream_t stream);
/// dst (fp32) = src (in `src_type`), for reading buffers back.
cudaError_t LaunchToF32(const void* src, DType src_type, float* dst, int64_t n,
                        cudaStream_t stream);
/// Uniform values in [-scale, scale) from a counter-based hash of (seed, index), in `type`:
/// ceilings are measured on data like the model's, not on zeros.
cudaError_t LaunchFillUniform(void* dst, DType type, int64_t n, uint64_t seed, float scale,
                              cudaStream_t stream);
cudaError_t LaunchEmbedding(const int32_t* tokens, int64_t rows, const void* table, DType type,
                            int64_t width, float* out, cudaStream_t stream);
/// out = in / rms(in) * gain, rows of width n; `residual` (when not null) is first added
/// into `in` (in += residual, written back): the fused residual add + RMSNorm.
cudaError_t LaunchRmsNorm(float* in, const float* residual, void* out, DType out_type,
                          const float* gain, int64_t rows, int64_t n, float eps,
                          cudaStream_t stream);
cudaError_t LaunchQkNorm(void* qkv, DType qkv_type, int64_t rows, int64_t width, int64_t heads,
                         int64_t kv_heads, int64_t head_dim, const float* q_gain,
                         const float* k_gain, float eps, cudaStream_t stream);
/// Rotates the first `rot_heads` heads of each row; table: [max_context][head_dim], the
/// head_dim / 2 cosines then the sines of each position.
cudaError_t LaunchRope(void* qkv, DType qkv_type, int64_t rows, int64_t width, int64_t rot_heads,
                       int64_t head_dim, const int32_t* positions, const float* table,
                       cudaStream_t stream);
/// Writes K and V of each new row into the cache of its slot at its position.
cudaError_t LaunchKvAppend(const void* qkv, DType qkv_type, int64_t rows, int64_t width,
                           int64_t heads, int64_t kv_heads, int64_t head_dim,
                           const int32_t* row_slot, const int32_t* positions, void* k_cache,
                           void* v_cache, DType type, int64_t slot_stride, int64_t head_stride,
                           cudaStream_t stream);
cudaError_t LaunchRopeAppend(const RopeAppendArgs& args, cudaStream_t stream);
cudaError_t LaunchSwiGlu(const void* gate_up, DType gate_up_type, void* out, DType out_type,
                         int64_t rows, int64_t ffn, cudaStream_t stream);
cudaError_t LaunchAdd(float* acc, const float* in, int64_t n, cudaStream_t stream);
cudaError_t LaunchSelectLast(const float* x, float* out, const int32_t* last_row, int64_t seqs,
                             int64_t n, cudaStream_t stream);
/// out[s] = argmax of row s (lowest index on ties, NaN ignored, -1 when all NaN).
cudaError_t LaunchArgmax(const float* logits, int32_t* out, int64_t seqs, int64_t n,
                         cudaStream_t stream);
/// After an allgather of [rows, local] shards rank by rank into `gathered`, lays them out as
/// [rows, tp * local] in `out`.
cudaError_t LaunchGatherReorder(const float* gathered, float* out, int tp, int64_t rows,
                                int64_t local, cudaStream_t stream);
/// dst [rows, cols] (in `type`, dense) = the first `cols` columns of src [rows, src_ld] (fp32).
cudaError_t LaunchConvertRows(const float* src, int64_t src_ld, void* dst, DType type, int64_t rows,
                              int64_t cols, cudaStream_t stream);

/// The tiled attention kernel (any step; `tiles` with tiling.rows_per_tile rows), then the
/// split-K combine when splits > 1.
cudaError_t LaunchAttention(const AttentionArgs& args, cudaStream_t stream);
/// The decode attention kernel: one block per (row, KV head, head chunk, split); reads
/// row_slot and positions instead of tiles. Then the combine when splits > 1.
cudaError_t LaunchDecodeAttention(const AttentionArgs& args, const DecodeAttnPlan& plan,
                                  cudaStream_t stream);
/// The flash prefill kernel on tensor cores (bf16/fp16; FlashEligible): `tiles` with at most
/// kFlashRows rows, one block per (tile, query head).
cudaError_t LaunchFlashAttention(const AttentionArgs& args, cudaStream_t stream);
/// Causal softmax of `batch` score matrices s [batch][n][len] (fp32, unscaled): row i sees
/// keys [0, past + i]; p (in `type`, same layout) = softmax(scale * s), 0 beyond the mask.
cudaError_t LaunchCausalSoftmax(const float* s, void* p, DType type, int64_t batch, int64_t n,
                                int64_t len, int64_t past, float scale, cudaStream_t stream);

/// The skinny GEMM (PlanSkinny said ok): fp32 accumulation over k.
cudaError_t LaunchSkinnyGemm(const SkinnyArgs& args, const SkinnyPlan& plan, cudaStream_t stream);

}  // namespace cb::cuda

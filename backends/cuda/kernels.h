#pragma once

// Launchers of the CUDA backend's kernels (kernels.cu). Plain C++ declarations: the session
// (.cc, compiled by the host compiler) calls them. Every launcher enqueues on `stream` and
// returns the launch error (cudaGetLastError), never synchronises.
//
// Storage types: `DType` picks float, __nv_bfloat16 or __half for buffers the session keeps
// in the session dtype; the residual stream, QKV, gate/up, projections and logits are fp32.

#include <cuda_runtime.h>

#include <cstdint>

#include "harness/core/dtype.h"

namespace cb::cuda {

/// The attention kernel's shape limits and tiling.
inline constexpr int kAttnWarps = 4;         ///< warps per block
inline constexpr int kAttnItemsPerWarp = 4;  ///< (query row, head) pairs each warp holds
inline constexpr int kAttnItems = kAttnWarps * kAttnItemsPerWarp;
inline constexpr int kAttnKeys = 32;          ///< keys per shared-memory tile (one per lane)
inline constexpr int kAttnMaxHeadDim = 128;   ///< head_dim the kernel supports
inline constexpr int kAttnMaxSplits = 32;     ///< most split-K chunks of one query tile
inline constexpr int kAttnMaxSplitRows = 64;  ///< split-K only for steps of at most these rows

/// How query heads and rows are grouped into blocks: a block serves `heads_per_block` query
/// heads of one KV head (they share K and V) for `rows_per_tile` consecutive rows of one
/// sequence.
struct AttentionTiling {
  int group = 1;  ///< query heads per KV head
  int heads_per_block = 1;
  int head_chunks = 1;  ///< blocks per KV head
  int rows_per_tile = 1;
};
AttentionTiling MakeAttentionTiling(int64_t heads, int64_t kv_heads);

struct AttentionArgs {
  const float* qkv = nullptr;  ///< [rows, qkv_width]: Q | K | V (K and V already cached)
  int64_t qkv_width = 0;
  const void* k_cache = nullptr;  ///< this layer: [slots][kv_heads][max_context][head_dim]
  const void* v_cache = nullptr;
  int64_t slot_stride = 0;         ///< elements per slot (kv_heads * max_context * head_dim)
  int64_t head_stride = 0;         ///< elements per KV head (max_context * head_dim)
  const int32_t* tiles = nullptr;  ///< [num_tiles][4]: first row, rows, slot, position of row 0
  int num_tiles = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  AttentionTiling tiling;
  int splits = 1;            ///< > 1: partial results, then the combine kernel
  void* out = nullptr;       ///< [rows, heads * head_dim] in `dtype`
  float* partial = nullptr;  ///< [splits][partial_rows][heads][head_dim + 2] (o, max, sum)
  int64_t partial_rows = 0;
  int64_t rows = 0;  ///< rows of the step (for the combine kernel)
  float scale = 1.0f;
  DType dtype = DType::kBF16;
};

/// Split-K chunks for a step: more chunks where there are too few blocks to fill `sms`
/// multiprocessors and keys (up to `max_len`) to spread; 1 for long steps.
int ChooseAttentionSplits(int64_t blocks, int64_t max_len, int64_t rows, int sms);

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
cudaError_t LaunchEmbedding(const int32_t* tokens, int64_t rows, const void* table, DType type,
                            int64_t width, float* out, cudaStream_t stream);
/// out = in / rms(in) * gain, rows of width n; `residual` (when not null) is first added
/// into `in` (in += residual, written back): the fused residual add + RMSNorm.
cudaError_t LaunchRmsNorm(float* in, const float* residual, void* out, DType out_type,
                          const float* gain, int64_t rows, int64_t n, float eps,
                          cudaStream_t stream);
cudaError_t LaunchQkNorm(float* qkv, int64_t rows, int64_t width, int64_t heads, int64_t kv_heads,
                         int64_t head_dim, const float* q_gain, const float* k_gain, float eps,
                         cudaStream_t stream);
/// Rotates the first `rot_heads` heads of each row; table: [max_context][head_dim], the
/// head_dim / 2 cosines then the sines of each position.
cudaError_t LaunchRope(float* qkv, int64_t rows, int64_t width, int64_t rot_heads, int64_t head_dim,
                       const int32_t* positions, const float* table, cudaStream_t stream);
/// Writes K and V of each new row into the cache of its slot at its position.
cudaError_t LaunchKvAppend(const float* qkv, int64_t rows, int64_t width, int64_t heads,
                           int64_t kv_heads, int64_t head_dim, const int32_t* row_slot,
                           const int32_t* positions, void* k_cache, void* v_cache, DType type,
                           int64_t slot_stride, int64_t head_stride, cudaStream_t stream);
cudaError_t LaunchAttention(const AttentionArgs& args, cudaStream_t stream);
/// dst [rows, cols] (in `type`, dense) = the first `cols` columns of src [rows, src_ld] (fp32).
cudaError_t LaunchConvertRows(const float* src, int64_t src_ld, void* dst, DType type, int64_t rows,
                              int64_t cols, cudaStream_t stream);
/// Causal softmax of `batch` score matrices s [batch][n][len] (fp32, unscaled): row i sees
/// keys [0, past + i]; p (in `type`, same layout) = softmax(scale * s), 0 beyond the mask.
cudaError_t LaunchCausalSoftmax(const float* s, void* p, DType type, int64_t batch, int64_t n,
                                int64_t len, int64_t past, float scale, cudaStream_t stream);
cudaError_t LaunchSwiGlu(const float* gate_up, void* out, DType out_type, int64_t rows, int64_t ffn,
                         cudaStream_t stream);
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

}  // namespace cb::cuda

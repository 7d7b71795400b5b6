#pragma once

// Host-side planning of the CUDA backend's kernel launches: shape limits, tilings, split-K
// choice, which kernel a shape is eligible for, and the per-step metadata the kernels read.
// No CUDA calls here, so all of it is unit-tested without a GPU (tests/gpu/*_host_test.cc).

#include <cstdint>
#include <string>
#include <vector>

#include "harness/core/dtype.h"
#include "workloads/step_io.h"

namespace cb::cuda {

// The tiled attention kernel (prefill chunks and mixed steps).
inline constexpr int kAttnWarps = 4;         ///< warps per block
inline constexpr int kAttnItemsPerWarp = 4;  ///< (query row, head) pairs each warp holds
inline constexpr int kAttnItems = kAttnWarps * kAttnItemsPerWarp;
inline constexpr int kAttnKeys = 32;          ///< keys per shared-memory tile (one per lane)
inline constexpr int kAttnMaxHeadDim = 128;   ///< head_dim every attention kernel supports
inline constexpr int kAttnMaxSplits = 32;     ///< most split-K chunks of one query tile
inline constexpr int kAttnMaxSplitRows = 64;  ///< split-K only for steps of at most these rows

// The decode attention kernel: one query row per block, keys spread over 8 warps.
inline constexpr int kDecodeWarps = 8;
inline constexpr int kDecodeMaxHeads = 8;          ///< query heads of one KV head per block
inline constexpr int kDecodeMinKeysPerSplit = 64;  ///< split-K chunks hold at least these keys

// The flash (tensor-core) prefill attention: 64 query rows of one head per block of 4 warps.
inline constexpr int kFlashRows = 64;
inline constexpr int kFlashKeys = 64;
inline constexpr int kFlashWarps = 4;

// The skinny GEMM: out[rows, n] = in[rows, k] x W^T for rows <= kSkinnyMaxRows.
inline constexpr int kSkinnyMaxRows = 8;
inline constexpr int kSkinnyThreads = 256;
inline constexpr int kSkinnyColsPerWarp = 4;
inline constexpr int kSkinnyColsPerBlock = kSkinnyThreads / 32 * kSkinnyColsPerWarp;
/// Most shared memory the staged input rows of a fused prologue may take (fits sm_80 too).
inline constexpr uint64_t kSkinnyStageCap = 144ull << 10;

/// How query heads and rows are grouped into blocks of the tiled kernel: a block serves
/// `heads_per_block` query heads of one KV head (they share K and V) for `rows_per_tile`
/// consecutive rows of one sequence.
struct AttentionTiling {
  int group = 1;  ///< query heads per KV head
  int heads_per_block = 1;
  int head_chunks = 1;  ///< blocks per KV head
  int rows_per_tile = 1;
};
AttentionTiling MakeAttentionTiling(int64_t heads, int64_t kv_heads);

/// Split-K chunks for a step: more chunks where there are too few blocks to fill `sms`
/// multiprocessors and keys (up to `max_len`, at least `min_keys` a chunk) to spread; 1 for
/// steps of more than kAttnMaxSplitRows rows.
int ChooseAttentionSplits(int64_t blocks, int64_t max_len, int64_t rows, int sms,
                          int64_t min_keys = 128);

/// What the skinny GEMM reads as its input rows.
enum class Prologue {
  kNone,     ///< the matmul's input buffer, in the weights' dtype
  kRmsNorm,  ///< RMSNorm of fp32 rows with a gain, rounded to the weights' dtype
  kSwiGlu,   ///< silu(gate) * up of [rows, 2k] gate | up rows, rounded to the weights' dtype
};

struct SkinnyPlan {
  bool ok = false;
  std::string why;       ///< why not, when !ok
  int vec = 1;           ///< elements per 16-byte load
  bool vector = false;   ///< 16-byte loads of weights and inputs (else one element a lane)
  int64_t stage_ld = 0;  ///< row stride of the staged input in shared memory (0: not staged)
  uint64_t smem = 0;     ///< dynamic shared memory bytes
  unsigned blocks = 0;   ///< grid size (blocks stride over the column groups)
  int cols_per_block = kSkinnyColsPerBlock;
};
/// Whether and how the skinny kernel runs out[rows, n] = in[rows, k] x W^T with weights and
/// inputs in `type`, input rows `in_ld` elements apart; a prologue stages its input rows in
/// shared memory (at most kSkinnyStageCap).
SkinnyPlan PlanSkinny(int64_t rows, int64_t n, int64_t k, int64_t in_ld, DType type,
                      Prologue prologue, int sms);

struct DecodeAttnPlan {
  bool ok = false;
  std::string why;
  int vec = 1;              ///< head_dim elements per 16-byte load
  int lanes_per_key = 1;    ///< lanes that share one key (a power of two)
  int keys_per_warp = 32;   ///< keys a warp scores at once
  int heads_per_block = 1;  ///< query heads of one KV head a block serves
  int head_chunks = 1;      ///< blocks per KV head
  int max_heads = 1;        ///< the kernel's compiled head count (1, 2, 4 or 8)
  uint64_t smem = 0;        ///< the cross-warp merge buffers
};
DecodeAttnPlan PlanDecodeAttention(int64_t heads, int64_t kv_heads, int64_t head_dim, DType type);

/// Whether the flash kernel runs this head_dim and dtype (bf16/fp16; head_dim 16, 32, 64 or
/// 128), else why not.
bool FlashEligible(int64_t head_dim, DType type, std::string* why);
uint64_t FlashSmemBytes(int64_t head_dim);

/// The metadata of one step as the kernels read it, one int32 array copied to the device:
/// per row its position and slot, per sequence its last row, and two tile lists of
/// [first row, rows, slot, position of the first row]: the tiled kernel's (rows_per_tile rows)
/// and the flash kernel's (kFlashRows rows, the tiles with the most keys first).
struct StepMeta {
  std::vector<int32_t> data;
  int64_t pos = 0, slot = 0, last = 0, tiles = 0, flash = 0;  ///< offsets into data
  int64_t tokens = 0, seqs = 0, num_tiles = 0, num_flash = 0, max_len = 0;
  bool decode = false;        ///< every sequence brings one token
  std::vector<int64_t> row0;  ///< first row of each sequence
};
void BuildStepMeta(const std::vector<SeqStep>& seqs, int rows_per_tile, StepMeta* m);
/// Most int32 elements a StepMeta holds for steps within these limits.
int64_t StepMetaCapacity(int64_t max_step_tokens, int64_t max_sequences);

}  // namespace cb::cuda

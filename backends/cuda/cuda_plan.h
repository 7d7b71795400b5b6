#pragma once

// What a CUDA session will hold on the device, worked out on the host before anything is
// allocated (no CUDA calls here, so it is unit-tested without a GPU).

#include <cstdint>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_paths.h"

namespace cb::cuda {

/// Constants of the session's device memory.
inline constexpr uint64_t kCublasWorkspaceBytes = 32ull << 20;
inline constexpr uint64_t kStagingFloats = 16ull << 20;  ///< weight upload staging (64 MiB)
inline constexpr uint64_t kReserveBytes = 512ull << 20;  ///< left free for cuBLAS, graphs, NCCL

/// Prefill attention through cuBLAS (S = Q K^T, causal softmax, O = P V) for steps whose every
/// sequence brings at least kGemmAttnMinRows tokens, with at most this much score scratch.
inline constexpr int64_t kGemmAttnMinRows = 128;
inline constexpr uint64_t kGemmAttnScratchCap = 1ull << 30;

/// Whether prefill attention may go through cuBLAS: the gemm_attn path is on and the flash
/// kernel is off or cannot run the model's heads.
bool GemmAttnUsed(const LocalDims& d, const SessionConfig& c, const CudaPaths& paths);
/// Bytes of the GEMM attention's score scratch (fp32 scores + probabilities in the session
/// dtype) and of its query copy in the session dtype; 0 when steps are too short to use it.
uint64_t GemmAttnScratchBytes(const LocalDims& d, const SessionConfig& c);
uint64_t GemmAttnQueryBytes(const LocalDims& d, const SessionConfig& c);

/// Storage type of an activation buffer: the matmul inputs (normalised rows, attention and
/// SwiGLU outputs) in the session dtype, and with `narrow` also QKV and gate/up; everything
/// else fp32, token ids int32.
DType BufDType(Buf b, DType session, bool narrow);
bool BufIsIds(Buf b);

/// Whether the session runs `stream` in `dtype`: every op is one it implements, with the
/// buffers, widths and weights its kernels expect (kUnsupported / kInvalidInput otherwise).
Status CheckCudaStream(const OpStream& stream, DType dtype, bool narrow);

/// Key of a matmul's weight group (its weights concatenated along n).
std::string MatmulGroupKey(const Op& op);
/// Identity of a weight's values: an embedding and a tied LM head share one.
std::string WeightIdentity(const WeightDesc& w);
/// Index of the matmul op whose single weight holds the same values as embedding `op`
/// (a tied LM head on one rank), or -1.
int64_t TiedMatmulOf(const OpStream& s, const Op& embedding);

/// Rows of the step that may use split-K attention scratch.
int64_t SplitRows(const SessionConfig& c);

struct MemoryNeed {
  uint64_t weights = 0;      ///< matmul matrices, untied embeddings, norm gains
  uint64_t kv_cache = 0;     ///< K and V: layers x max_sequences x max_context
  uint64_t activations = 0;  ///< step buffers, attention scratch, rotary table, step metadata
  uint64_t workspace = 0;    ///< cuBLAS workspace and the weight-upload staging buffer
  uint64_t Total() const { return weights + kv_cache + activations + workspace; }
};

/// Everything CudaSession::Load allocates for `stream` under `config` with `paths` (saturating:
/// absurd configurations give huge figures, never an overflow).
MemoryNeed PlanMemory(const OpStream& stream, const SessionConfig& config, const CudaPaths& paths);

/// kResourceExhausted, naming the model, what it needs (and of what) and the free bytes, when
/// need + kReserveBytes exceeds `free_bytes`.
Status CheckMemoryBudget(const std::string& model, const SessionConfig& config,
                         const MemoryNeed& need, uint64_t free_bytes, uint64_t total_bytes);

std::string FormatBytes(uint64_t bytes);

}  // namespace cb::cuda

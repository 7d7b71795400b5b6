#pragma once

// The CUDA backend's switchable paths: each fast path keeps the path it replaced as the
// fallback, so one that fails conformance on a GPU can be turned off and the rest still run.
// All are on by default; $CB_CUDA_DISABLE lists those to turn off (docs/cuda.md, "Switches").

#include <cstdint>
#include <map>
#include <string>

#include "harness/core/status.h"

namespace cb::cuda {

enum class Path {
  kGraphs,        ///< decode steps captured once per shape and replayed as CUDA graphs
  kSkinnyGemm,    ///< matmuls of at most kSkinnyMaxRows rows on the skinny kernel, not cuBLAS
  kFuseNorm,      ///< RMSNorm computed in the prologue of the skinny matmul that reads it
  kFuseSwiGlu,    ///< SwiGLU computed in the prologue of the skinny down projection
  kFuseResidual,  ///< residual add in the producing matmul's epilogue (skinny, or cuBLAS beta 1)
  kFuseRope,      ///< QK-norm, RoPE and the KV-cache append in one kernel
  kDecodeAttn,    ///< decode attention on the 8-warp kernel with 16-byte loads
  kFlashAttn,     ///< prefill attention on tensor cores, causal tiles, no score matrix
  kGemmAttn,      ///< prefill attention through cuBLAS (S = Q K^T, softmax, O = P V)
  kNarrow,        ///< QKV and gate/up stored in the session dtype instead of fp32
  kCount,
};
inline constexpr int kPathCount = static_cast<int>(Path::kCount);

/// Name of a path in CB_CUDA_DISABLE and in reports ("skinny", "flash_attn", ...).
const char* PathName(Path p);

struct CudaPaths {
  bool on[kPathCount];
  CudaPaths() {
    for (bool& b : on) b = true;
  }
  bool operator()(Path p) const { return on[static_cast<int>(p)]; }
  void Set(Path p, bool value) { on[static_cast<int>(p)] = value; }
  /// "graphs,skinny,..." of the paths that are on ("none" when all are off).
  std::string EnabledList() const;
};

/// Parses a CB_CUDA_DISABLE value: comma-separated path names, "new" (every path added for
/// the first GPU window: the backend as it was before them) or "all". Null or empty disables
/// nothing. An unknown name is kInvalidInput naming the allowed ones.
Status ParseDisabledPaths(const char* value, CudaPaths* out);

/// The session's paths from $CB_CUDA_DISABLE.
Status PathsFromEnvironment(CudaPaths* out);

/// How often each route ran (ops enqueued eagerly or into a graph capture, by route name).
using PathCounts = std::map<std::string, int64_t>;

}  // namespace cb::cuda

#pragma once

// Which ops of a run range the CUDA session launches together, worked out on the host (no
// CUDA calls, unit-tested without a GPU). A fusion only joins ops that are adjacent inside the
// range, and only skips writing a buffer that no later op reads before overwriting it.

#include <cstdint>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_paths.h"
#include "backends/cuda/launch_plan.h"

namespace cb::cuda {

/// Per op of the stream, bit b set when buffer Buf(b) is dead after the op: the next op that
/// touches it (further down the stream, then from the top for the next step) overwrites it
/// without reading it, or none does. Ops outside the dense decoder count as reading every
/// buffer.
std::vector<uint32_t> DeadAfter(const OpStream& s);

enum class GroupKind {
  kOp,             ///< one op on its own
  kAddNorm,        ///< residual add + RMSNorm in one pass
  kMatMul,         ///< a matmul with its prologue (norm, SwiGLU) and epilogue (residual add)
  kRopeAttention,  ///< [QK-norm +] RoPE + KV append in one kernel, then the attention
};

struct LaunchGroup {
  GroupKind kind = GroupKind::kOp;
  size_t first = 0;  ///< first op of the group
  size_t count = 1;  ///< ops it covers
  size_t op = 0;     ///< the matmul (kMatMul) or the attention (kRopeAttention)
  bool skinny = false;
  Prologue prologue = Prologue::kNone;
  bool accumulate = false;  ///< the matmul adds into the residual add's output
};

/// What the planner needs to know of the step and the session.
struct FusionContext {
  int64_t token_rows = 0, seq_rows = 0;
  DType dtype = DType::kBF16;
  CudaPaths paths;
  int sms = 1;
  LocalDims dims;
  const std::vector<uint32_t>* dead_after = nullptr;  ///< DeadAfter of the stream
};

/// The launch groups of ops[range], in order, covering every op once.
std::vector<LaunchGroup> PlanLaunches(const OpStream& s, OpRange range, const FusionContext& c);

}  // namespace cb::cuda

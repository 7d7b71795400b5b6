#include "backends/cuda/cuda_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "backends/cuda/launch_plan.h"

namespace cb::cuda {
namespace {

constexpr int kBufCount = static_cast<int>(Buf::kNextTokens) + 1;

/// a * b * ... as a double, clamped to what a uint64 holds.
uint64_t Bytes(double v) {
  if (!(v >= 0)) return 0;
  return v >= 1.8e19 ? static_cast<uint64_t>(1.8e19) : static_cast<uint64_t>(v);
}

}  // namespace

DType BufDType(Buf b, DType session, bool narrow) {
  switch (b) {
    case Buf::kH:
    case Buf::kAttn:
    case Buf::kAct:
    case Buf::kHLast:
      return session;
    case Buf::kQkv:
    case Buf::kGateUp:
      return narrow ? session : DType::kF32;
    default:
      return DType::kF32;
  }
}

bool BufIsIds(Buf b) { return b == Buf::kTokens || b == Buf::kNextTokens; }

std::string MatmulGroupKey(const Op& op) {
  std::string s;
  for (const auto& n : op.weights) s += n + ";";
  return s;
}

std::string WeightIdentity(const WeightDesc& w) {
  return (w.key.empty() ? w.name : w.key) + "|" + std::to_string(w.rows) + "x" +
         std::to_string(w.cols) + "@" + std::to_string(w.row_offset) + "," +
         std::to_string(w.col_offset) + "/" + std::to_string(w.global_cols) + "|" +
         std::to_string(static_cast<int>(w.init)) + "|" + std::to_string(w.scale);
}

int64_t TiedMatmulOf(const OpStream& s, const Op& embedding) {
  const WeightDesc* e = s.FindWeight(embedding.weights.at(0));
  if (e == nullptr) return -1;
  for (size_t j = 0; j < s.ops.size(); ++j) {
    const Op& m = s.ops[j];
    if (m.kind != OpKind::kMatMul || m.weights.size() != 1) continue;
    const WeightDesc* w = s.FindWeight(m.weights[0]);
    if (w != nullptr && WeightIdentity(*w) == WeightIdentity(*e)) return static_cast<int64_t>(j);
  }
  return -1;
}

bool GemmAttnUsed(const LocalDims& d, const SessionConfig& c, const CudaPaths& paths) {
  if (!paths(Path::kGemmAttn) || c.max_step_tokens < kGemmAttnMinRows) return false;
  return !paths(Path::kFlashAttn) || !FlashEligible(d.head_dim, c.dtype, nullptr);
}

uint64_t GemmAttnScratchBytes(const LocalDims& d, const SessionConfig& c) {
  if (c.max_step_tokens < kGemmAttnMinRows) return 0;
  const double want = static_cast<double>(d.kv_heads) * static_cast<double>(c.max_step_tokens) *
                      static_cast<double>(c.max_context) * (4.0 + DTypeBytes(c.dtype));
  return std::min<uint64_t>(Bytes(want) + 256, kGemmAttnScratchCap);
}

uint64_t GemmAttnQueryBytes(const LocalDims& d, const SessionConfig& c) {
  if (c.max_step_tokens < kGemmAttnMinRows) return 0;
  return Bytes(static_cast<double>(c.max_step_tokens) * d.heads * d.head_dim * DTypeBytes(c.dtype));
}

int64_t SplitRows(const SessionConfig& c) {
  return std::min<int64_t>(c.max_step_tokens, kAttnMaxSplitRows);
}

MemoryNeed PlanMemory(const OpStream& s, const SessionConfig& c, const CudaPaths& paths) {
  MemoryNeed need;
  const double wbytes = static_cast<double>(DTypeBytes(c.dtype));
  std::set<std::string> groups, gains;
  double weights = 0;
  for (const Op& op : s.ops) {
    if (op.kind == OpKind::kMatMul && groups.insert(MatmulGroupKey(op)).second) {
      weights += static_cast<double>(op.n) * op.k * wbytes;
    } else if (op.kind == OpKind::kEmbedding && TiedMatmulOf(s, op) < 0) {
      const WeightDesc* w = s.FindWeight(op.weights.at(0));
      if (w != nullptr) weights += static_cast<double>(w->Elements()) * wbytes;
    } else if (op.kind == OpKind::kRmsNorm || op.kind == OpKind::kQkNorm) {
      for (const auto& name : op.weights) {
        const WeightDesc* w = s.FindWeight(name);
        if (w != nullptr && gains.insert(name).second) weights += w->Elements() * 4.0;
      }
    }
  }
  need.weights = Bytes(weights);

  const LocalDims& d = s.dims;
  need.kv_cache = Bytes(2.0 * std::max(s.layers, 1) * static_cast<double>(c.max_sequences) *
                        static_cast<double>(c.max_context) * d.kv_heads * d.head_dim * wbytes);

  double act = 0;
  for (int b = 1; b < kBufCount; ++b) {
    const Buf buf = static_cast<Buf>(b);
    const double rows = BufferRows(buf) == Rows::kTokenRows ? c.max_step_tokens : c.max_sequences;
    const double elem =
        BufIsIds(buf)
            ? 4.0
            : static_cast<double>(DTypeBytes(BufDType(buf, c.dtype, paths(Path::kNarrow))));
    act += rows * static_cast<double>(BufferWidth(d, buf)) * elem;
  }
  // Split-K partials, the rotary table, the step metadata, the allgather receive buffer.
  act += static_cast<double>(kAttnMaxSplits) * SplitRows(c) * d.heads * (d.head_dim + 2) * 4.0;
  act += static_cast<double>(c.max_context) * d.head_dim * 4.0;
  act += static_cast<double>(StepMetaCapacity(c.max_step_tokens, c.max_sequences)) * 4.0;
  if (s.shard.tp_size > 1) act += static_cast<double>(c.max_sequences) * d.vocab_full * 4.0;
  if (GemmAttnUsed(d, c, paths)) {
    act += static_cast<double>(GemmAttnScratchBytes(d, c)) + GemmAttnQueryBytes(d, c);
  }
  need.activations = Bytes(act);
  need.workspace = kCublasWorkspaceBytes + kStagingFloats * sizeof(float);
  return need;
}

std::string FormatBytes(uint64_t bytes) {
  char buf[48];
  const double gib = static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
  if (gib >= 1.0) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", gib);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  }
  return buf;
}

Status CheckMemoryBudget(const std::string& model, const SessionConfig& c, const MemoryNeed& need,
                         uint64_t free_bytes, uint64_t total_bytes) {
  const uint64_t total = need.Total();
  if (total <= free_bytes && free_bytes - total >= kReserveBytes) return Status::Ok();
  return Status::Exhausted(
      "cuda: " + model + " does not fit in GPU memory: it needs " + FormatBytes(total) +
      " (weights " + FormatBytes(need.weights) + ", KV cache " + FormatBytes(need.kv_cache) +
      " for " + std::to_string(c.max_sequences) + " sequences x " + std::to_string(c.max_context) +
      " tokens, activations " + FormatBytes(need.activations) + ", workspace " +
      FormatBytes(need.workspace) + ") plus " + FormatBytes(kReserveBytes) +
      " reserve, and the GPU has " + FormatBytes(free_bytes) + " free of " +
      FormatBytes(total_bytes) +
      "; use a smaller --batch or shorter prompts and generation, fewer --layers, or split the "
      "model over more GPUs with --tp");
}

}  // namespace cb::cuda

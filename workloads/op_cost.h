#pragma once

#include <vector>

#include "harness/core/dtype.h"
#include "workloads/op_stream.h"
#include "workloads/step_io.h"

namespace cb {

/// Work of an op or a step: floating-point operations and the bytes an ideal implementation
/// must move to or from memory (weights once, KV cache once, activations in and out).
/// MFU and MBU, and the simulated backend's roofline, are computed from these.
struct OpCost {
  double flops = 0;
  double bytes = 0;
  double weight_bytes = 0;  ///< part of `bytes` that is weights
  double kv_bytes = 0;      ///< part of `bytes` that is KV cache

  OpCost& operator+=(const OpCost& o) {
    flops += o.flops;
    bytes += o.bytes;
    weight_bytes += o.weight_bytes;
    kv_bytes += o.kv_bytes;
    return *this;
  }
};

/// Expected share of the routed (token, expert) pairs each expert gets under the workload's
/// routing law: uniform, or for --routing zipf:S proportional to exp(-S ln(e + 1)).
std::vector<double> ExpectedExpertShares(const ModelSpec& m);

/// Expected routed work of a MoE layer on this rank for a step of `tokens` tokens.
struct MoeStepLoad {
  double assignments = 0;       ///< (token, local expert) pairs
  double distinct_experts = 0;  ///< local experts at least one token is routed to
};
MoeStepLoad ExpectedMoeLoad(const OpStream& stream, double tokens);

/// What the cost of a step depends on: its new tokens and sequences, and for attention the
/// positions attended (over every new token, the cached and new positions it sees) and the
/// cached positions read (per sequence: past + new tokens).
struct StepSummary {
  double tokens = 0, seqs = 0, attended = 0, cached = 0;
};
StepSummary SummarizeStep(const StepIO& io);
/// Adds one sequence's part of a step: `new_tokens` after `past` cached ones, each attending
/// to the positions before it and itself.
void AddSequence(double new_tokens, double past, StepSummary* s);

/// Cost of one op for a step; `kv_dtype` is the KV cache's element type (an 8-bit cache also
/// reads a scale per cached token and KV head, workloads/quant.h's KvHeadBytes).
OpCost CostOfOp(const OpStream& stream, const Op& op, const StepSummary& step, DType dtype,
                DType kv_dtype);
/// Cost of one op for the step described by `io` (its seqs; tokens need not be filled), with
/// the KV cache in DefaultKvDType(dtype).
OpCost CostOfOp(const OpStream& stream, const Op& op, const StepIO& io, DType dtype);

/// Cost of ops [begin, end) of the stream for one step (the KV cache in `kv_dtype`, or in
/// DefaultKvDType(dtype)).
OpCost CostOfOps(const OpStream& stream, size_t begin, size_t end, const StepIO& io, DType dtype);
OpCost CostOfOps(const OpStream& stream, size_t begin, size_t end, const StepIO& io, DType dtype,
                 DType kv_dtype);

}  // namespace cb

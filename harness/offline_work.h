#pragma once

#include <cstdint>
#include <vector>

#include "harness/parallel.h"
#include "workloads/op_cost.h"
#include "workloads/op_stream.h"
#include "workloads/step_io.h"
#include "workloads/workload_spec.h"

namespace cb {

/// The steps of the offline scenario and the work they do, computed before anything is timed.

/// The op ranges of one step: before the layers, each layer, after the layers.
struct Segments {
  OpRange head, tail;
  std::vector<OpRange> layers;
};
Segments SplitByLayer(const OpStream& s);

/// Work (FLOPs, bytes) of one step of the whole model: every layer of `stream` times the model
/// layers it stands for (stream.plan: per kind, the kind's count / its layers run), the same
/// way step times are extrapolated; a full stream counts each layer once. The KV cache in
/// `kv_dtype` (the 3-argument form: DefaultKvDType(dtype)).
OpCost ExtrapolatedCost(const OpStream& stream, const StepIO& io, DType dtype, DType kv_dtype);
inline OpCost ExtrapolatedCost(const OpStream& stream, const StepIO& io, DType dtype) {
  return ExtrapolatedCost(stream, io, dtype, DefaultKvDType(dtype));
}

/// Prompts of sequences [first, first + count) of the workload, in cache slots 0..count-1.
StepIO PrefillIO(const WorkloadSpec& w, int64_t vocab, int64_t first, int64_t count);

/// Turns `io` (after a step) into the next decode step: each sequence feeds back its sample.
void AdvanceToDecode(StepIO& io);

/// The work of one repetition for the whole job (all shards, all replicas) on `full`, the
/// unsharded stream. Each replica reads its own copy of the weights, so the work is summed
/// replica by replica; under expert parallelism each expert is read once per step.
void JobWork(const WorkloadSpec& w, const OpStream& full, int64_t vocab, const ParallelContext& par,
             OpCost* prefill_cost, OpCost* decode_cost);

}  // namespace cb

#pragma once

#include <optional>

#include "backends/backend.h"
#include "results/run_record.h"
#include "workloads/workload_spec.h"

namespace cb {

/// Largest error, relative to max |reference logit|, accepted for a dtype (and a KV-cache
/// dtype; unset: DefaultKvDType). A wrong kernel gives errors of order 1; these bounds leave
/// room for bf16 rounding over many layers.
double VerifyTolerance(DType dtype, bool weight_only = false, bool mla = false,
                       std::optional<DType> kv_dtype = std::nullopt);

/// Largest router-logit error accepted beside a logits tolerance `tolerance`: an 8-bit
/// weight-only session's router reads its layer's input as stored, in bf16, so a last-ulp
/// difference upstream can move an input by a bf16 rounding step (its gate logits left the
/// reference's by up to 1.27e-2 over 400 conformance runs, its model logits stayed within
/// 1e-2): at least 2.5e-2 there; else `tolerance`.
double RouteLogitTolerance(DType dtype, bool weight_only, double tolerance);

/// "int8 (W8A8)", "fp8 (W8A8)" or "fp8 (weight-only)"; empty for unquantised dtypes.
std::string PrecisionLabel(DType dtype, bool weight_only);

/// Sequences and teacher-forced positions a verification of `w` uses.
struct VerifyShape {
  int64_t sequences = 1;
  int64_t prefill_len = 1;   ///< tokens given by prefill
  int64_t decode_steps = 0;  ///< teacher-forced decode steps after it
};
VerifyShape VerifyShapeFor(const WorkloadSpec& w);

/// Runs a teacher-forced prefix through `session` and through the reference backend on the
/// same weights, and compares the last-position logits of every step. MoE models: the
/// reference replays the backend's expert choices, and a choice that differs from its own
/// fails verification unless it is a near-tie within the dtype's rounding (FlipWithinMargin). The
/// reference session exists only inside this call. `session` must have been opened for at least the
/// workload's batch and context. Under tensor parallelism every rank of `group` runs the backend's
/// steps (they are collective) and only the group's rank 0 runs the reference and compares; the
/// outcome is then broadcast to the group. `group` may be null for a single rank.
/// A quantised dtype (int8, fp8) is compared with the reference quantised the same way
/// (`weight_only`: weights only, SessionConfig::weight_only); with `accuracy`, the backend's
/// logits are also compared with the unquantised (bf16) reference's (AccuracyOf).
Status VerifyAgainstReference(const WorkloadSpec& w, const OpStream& stream, Session& session,
                              const WeightSource& weights, Communicator* group, Verification* out,
                              bool weight_only = false, AccuracyRecord* accuracy = nullptr);

/// Top-1 agreement and mean KL(baseline || run) of the softmax of each row of `vocab` logits;
/// both are lists of steps of rows.
AccuracyRecord AccuracyOf(const std::vector<std::vector<float>>& baseline,
                          const std::vector<std::vector<float>>& run, int64_t vocab);

}  // namespace cb

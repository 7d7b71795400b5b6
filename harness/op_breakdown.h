#pragma once

#include <cstdint>

#include "backends/backend.h"
#include "harness/core/status.h"
#include "results/op_breakdown_record.h"
#include "workloads/op_stream.h"
#include "workloads/workload_spec.h"

namespace cb {

/// `--op-breakdown`: after the measured window, one prefill and up to kOpBreakdownDecodeSteps
/// decode steps of the workload run op by op, each op timed between synchronisations. Per op
/// kind (matmuls by their first weight), the time per step, every layer's ops weighted by the
/// model layers that layer stands for (as step times are extrapolated), and its share of the
/// step's summed op times. Single-rank runs on a real device only.
inline constexpr int kOpBreakdownDecodeSteps = 8;

Status MeasureOpBreakdown(Session& session, Clock& clock, const OpStream& stream,
                          const WorkloadSpec& w, int64_t vocab, int64_t first_seq,
                          int64_t sequences, OpBreakdownRecord* out);

}  // namespace cb

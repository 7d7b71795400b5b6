#pragma once

#include <vector>

#include "harness/parallel.h"
#include "results/run_record.h"
#include "workloads/op_cost.h"
#include "workloads/workload_spec.h"

namespace cb {

/// Throughput, latency, MFU/MBU, overhead and (several ranks) communication figures from the
/// timings of every rank. A repetition of the job takes as long as its slowest rank; TTFT
/// and TPOT come from every replica's own steps. `prefill_cost`/`decode_cost` are the work of
/// the whole job (all shards and replicas); MFU/MBU divide by the ceilings of every device.
void AddThroughputMetrics(const WorkloadSpec& w, const std::vector<RankTimings>& ranks,
                          const OpCost& prefill_cost, const OpCost& decode_cost,
                          const Ceilings& ceilings, Provenance how, RunRecord* rec);

ClusterRecord MakeClusterRecord(const ParallelContext& ctx, const std::vector<RankTimings>& ranks);

}  // namespace cb

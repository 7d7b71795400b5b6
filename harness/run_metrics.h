#pragma once

#include <vector>

#include "harness/parallel.h"
#include "results/run_record.h"
#include "workloads/op_cost.h"
#include "workloads/workload_spec.h"

namespace cb {

/// What MFU and MBU of a job divide by (harness/ceiling_check.h chooses it).
struct UtilisationBasis {
  double matmul_flops_per_s = 0;    ///< the job's matmul peak in the run's dtype; 0: no MFU
  double mem_read_bytes_per_s = 0;  ///< the job's memory read bandwidth; 0: no MBU
  /// False for a phase whose step fits in the cache: memory bandwidth does not bound it, so
  /// it gets no MBU.
  bool mbu_prefill = true, mbu_decode = true;
};

/// Throughput, latency, MFU/MBU, overhead and (several ranks) communication figures from the
/// timings of every rank. A repetition of the job takes as long as its slowest rank; TTFT
/// and TPOT come from every replica's own steps. `prefill_cost`/`decode_cost` are the work of
/// the whole job (all shards and replicas); MFU/MBU divide by `basis`, the job's ceilings.
void AddThroughputMetrics(const WorkloadSpec& w, const std::vector<RankTimings>& ranks,
                          const OpCost& prefill_cost, const OpCost& decode_cost,
                          const UtilisationBasis& basis, Provenance how, RunRecord* rec);

ClusterRecord MakeClusterRecord(const ParallelContext& ctx, const std::vector<RankTimings>& ranks);

}  // namespace cb

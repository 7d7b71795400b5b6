#pragma once

#include "harness/deployment/sim_target.h"
#include "harness/runner.h"
#include "results/run_record.h"

namespace cb {

/// Serves a single-stream or server workload on a simulated deployment. Several devices, or
/// multi-token prediction: the pool serving simulation (harness/deployment/pool_serving.h) of
/// a sample of attention groups at their share of the traffic (ServingRecord::replicas: the
/// sample stands for that many such sets; throughput, tokens and energy are the deployment's),
/// KV per rank from its memory after its weights (RankMemoryOf). One device without MTP: the
/// serving runner drives the simulated device as a measured one (and verifies small models).
Status RunSimulatedServing(const WorkloadSpec& w, const SimTarget& t, RunnerOptions opts,
                           RunRecord* rec);

/// The attention groups a serving pass on several devices simulates, standing for `replicas`
/// such sets: of separate pools, the fewest whose traffic both pools share evenly (prefill
/// groups : decode groups as the pools' groups); of a mixed pool, up to 8 (a divisor of its
/// groups) stepping together; a single stream is one stream: one group of each pool.
struct ServingGroupSample {
  std::vector<int> groups;  ///< per pool
  int64_t replicas = 1;
};
ServingGroupSample SampleServingGroups(const WorkloadSpec& w, const SimTarget& t);

}  // namespace cb

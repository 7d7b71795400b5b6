#pragma once

#include <string>

#include "harness/deployment/sim_target.h"
#include "harness/runner.h"
#include "results/run_record.h"

namespace cb {

/// The serving scenarios run on a simulated pool of one kind: one mixed pool without
/// multi-token prediction (disaggregated pools and MTP are modelled in the offline scenario
/// and compare-hardware). kInvalidInput naming the field otherwise.
Status CheckSimServing(const WorkloadSpec& w, const SimTarget& t, const std::string& where);

/// Serves a single-stream or server workload on a simulated deployment: the continuous
/// batcher drives one attention group of the pool (the step model of one of its ranks, the
/// slowest) with that group's share of the traffic: batch / groups slots, rate / groups (or
/// concurrency / groups), every request of the workload. The group stands for every group of
/// the pool (ServingRecord::replicas): throughput, tokens and energy are the pool's. KV pages
/// come from the rank's memory after its weights (RankMemoryOf).
Status RunSimulatedServing(const WorkloadSpec& w, const SimTarget& t, RunnerOptions opts,
                           RunRecord* rec);

}  // namespace cb

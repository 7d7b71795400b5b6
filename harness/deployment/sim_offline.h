#pragma once

#include <vector>

#include "backends/sim/step_model.h"
#include "harness/deployment/sim_target.h"
#include "harness/runner.h"
#include "results/run_record.h"

namespace cb {

/// One phase (prefill or decode) of one rank of a pool, step by step.
struct SimPhase {
  double seconds = 0;       ///< the whole phase on the rank's clock
  double busy_seconds = 0;  ///< utilisation-weighted (power model)
  double compute_seconds = 0, comm_seconds = 0;
  OpCost work;                 ///< what the rank computed and read
  std::vector<double> step_s;  ///< each step
  std::vector<double> done_s;  ///< prefill: when each of its sequences' prompt finished
  bool cancelled = false;      ///< Ctrl-C: the phase stopped early
};

/// Prefill of `seqs` prompts of `prompt` tokens on one rank of `m`'s pool, `chunk` prompt
/// tokens per step (chunked prefill; a chunk may span prompts), throughput all-to-alls.
SimPhase SimulatePrefill(const sim::StepModel& m, int64_t seqs, int64_t prompt, int64_t chunk);

/// Decode of `seqs` sequences from context `prompt` until `gen` tokens each, `tokens_per_step`
/// tokens per sequence per step (1 + accepted drafts under MTP; the step verifies 1 + mtp
/// tokens and runs the MTP module), low-latency all-to-alls.
SimPhase SimulateDecode(const sim::StepModel& m, int64_t seqs, int64_t prompt, int64_t gen,
                        double tokens_per_step);

/// Runs an offline workload on a simulated deployment: B prompts prefilled by the prefill
/// (or mixed) pool in chunks, their KV caches moved to the decode pool when the deployment
/// is disaggregated, then G tokens each decoded. Each phase is the slowest rank's (the most
/// sequences, the most loaded experts); distinct step shapes are costed once. Fills the
/// record like RunOffline (every figure `modelled`), plus the `deployment` section, the
/// modelled energy of every pool and the cluster layout; the cost section is the caller's
/// (EnergyCostPlanner::Finish, then FinishSimCost). Verification runs the op stream on one
/// simulated device through the reference when the workload asks and the model is small.
Status RunSimulatedOffline(const WorkloadSpec& w, const SimTarget& t, const RunnerOptions& opts,
                           RunRecord* rec);

/// The power model's energy of every pool over `window` seconds: each device idles and adds
/// (TDP - idle) over its rank's busy time (utilisation-weighted), the prefill pool's
/// `prefill_busy_s`, the decode pool's `decode_busy_s`, a mixed pool's both.
EnergyRecord PoolsEnergy(const SimTarget& t, double window, double prefill_busy_s,
                         double decode_busy_s);

/// After the cost model: the deployment's devices (every pool), and for disaggregated pools
/// the prefill pool pricing input tokens and the decode pool pricing output tokens.
void FinishSimCost(const SimTarget& t, RunRecord* rec);

/// The deployment section of a simulated run: layout, per-rank memory, figures and sources
/// (the pools' busy and communication times are the caller's).
DeploymentRecord DescribeDeployment(const WorkloadSpec& w, const SimTarget& t);

/// The step models of `t`'s pools for `w` (prefill first; one when the pool is mixed).
Status MakeStepModels(const WorkloadSpec& w, const SimTarget& t,
                      std::vector<std::unique_ptr<sim::StepModel>>* out);

}  // namespace cb

#pragma once

#include <string>
#include <vector>

#include "harness/core/status.h"
#include "results/run_record.h"
#include "workloads/workload_spec.h"

namespace cb {

/// How `clusterbench run` executes a plan (everything but the workloads and the sinks).
struct PlanRunOptions {
  std::string results_dir = "results";  ///< the ceilings cache lives here
  std::string out_dir;                  ///< run files; empty: RESULTS_DIR/runs
  bool remeasure_ceilings = false;
  bool quiet = false;
  std::string inject_fault;  ///< test only (harness/fault_injection.h)
  /// The MPI job's layout (a launcher started several ranks): tp x dp ranks, ep over dp.
  int tp = 1, dp = 0, ep = 1;
  double collective_timeout_s = 300;
  std::string catalog_dir;      ///< device catalog; empty: backends/devices
  std::string energy = "auto";  ///< energy source (harness/cost/run_energy_cost.h)
  std::string cluster_name;     ///< the measured runs' cluster name (RunRecord::cluster_name)
};

/// What a plan produced. Records are rank 0's (other ranks return none).
struct PlanRunResult {
  std::vector<RunRecord> records;
  bool any_bad = false;  ///< a run failed or was invalid, or a file could not be written
  bool rank0 = true;
  std::string out_dir;
};

/// A one-line description of a workload for progress lines and errors.
std::string DescribeWorkload(const WorkloadSpec& w);
/// The run file's name: run id, model, backend, dtype, batch, scenario; only [A-Za-z0-9._-]
/// (a '/', ' ', ':' of `sim:DEVICE` or `zipf:S`, and anything else become '_').
std::string RunFileName(const RunRecord& r);

/// Runs a plan: pre-flight (every backend opens; every workload fits; simulated deployments
/// resolve against the catalog: bad input is found before anything runs), the ceilings,
/// then each workload with its energy and cost, writing one JSON file per run atomically.
/// Returns non-OK for bad input (nothing ran), cancellation (kCancelled: finished runs are on
/// disk) or a failure that ends an MPI job; a failed or invalid run is recorded and the plan
/// goes on.
Status RunPlan(std::vector<WorkloadSpec> plan, const PlanRunOptions& options, PlanRunResult* out);

}  // namespace cb

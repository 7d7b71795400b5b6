#pragma once

#include <string>
#include <utility>
#include <vector>

#include "harness/micro/ceiling_probe.h"
#include "harness/parallel.h"
#include "harness/run_metrics.h"
#include "harness/runner.h"
#include "results/run_record.h"
#include "workloads/op_cost.h"
#include "workloads/workload_spec.h"

namespace cb {

/// Measurement validity on noisy hosts. A ratio to a ceiling holds only when the ceiling is
/// sampled right beside the window it judges, and a ratio above 1 is a measurement defect, not
/// news. So an offline run on a real device samples its ceilings (CeilingProbe) right before
/// the first measured repetition and right after the last, in the same process; MFU and MBU
/// divide by the higher of the two samples (the best the device showed beside the window, as a
/// ceiling is a best achievable figure); and the run is labelled `unstable` (kept, not
/// published as valid) when a ratio exceeds 1 (`ceiling_exceeded`) or the two samples of a
/// ceiling are further apart than the margin (`ceiling_drift`). Without probes (the cuda
/// backend, or --no-ceiling-probes) the cached ceilings are used and ratios are still judged.
/// Simulated devices are modelled: no probes, no judgement.

/// Probes further apart than this are a drift: |before - after| / max(before, after). Two
/// probes a few seconds apart on a quiet host agree within a few percent (docs/architecture.md,
/// "Ceilings"); this VM's bandwidth moved by 2x within an hour.
inline constexpr double kDefaultMaxCeilingDrift = 0.15;
/// A ratio above this exceeds the ceiling.
inline constexpr double kMaxCeilingRatio = 1.0;

/// The workload's margin (suite field `max_ceiling_drift`, flag --max-ceiling-drift).
double MaxCeilingDrift(const WorkloadSpec& w);

/// Samples the ceilings beside the measured window, before it (`before`) or after it, when
/// `opts.ceiling_probe` is set and the workload keeps probes on. A failed probe is kept in
/// `probes->error` (the run then falls back on the cached ceilings). Returns a progress line,
/// empty when nothing was sampled; `window` names what the probes frame.
std::string SampleCeilingsBeside(const WorkloadSpec& w, DType matmul_dtype,
                                 const RunnerOptions& opts, bool before, WindowProbes* probes,
                                 const char* window = "the window");

/// The dtype whose matmul peak a run's MFU is judged against: bf16 for a weight-only run (its
/// 8-bit weights become bf16 in registers and it computes in bf16; Support::weight_only),
/// else the run's dtype.
DType MatmulDType(DType dtype, bool weight_only);

/// What PlanCeilings needs.
struct CeilingPlanInput {
  Ceilings cached;  ///< per device: the micro-suite's cached ceilings (or a GPU's)
  DType dtype = DType::kBF16;
  int devices = 1;
  bool simulated = false;
  double max_drift = kDefaultMaxCeilingDrift;
  std::string method;      ///< how the probes were taken, or why there were none
  double cache_bytes = 0;  ///< last-level cache per device; 0: unknown
  double prefill_step_bytes = 0, decode_step_bytes = 0;  ///< bytes of one step, per device
  std::vector<std::pair<int, WindowProbes>> ranks;       ///< (world rank, its probes)
};

/// The ceilings MFU/MBU of an offline job divide by, and for a real device the record of where
/// they came from (`check`, not yet judged).
struct CeilingPlan {
  UtilisationBasis basis;
  std::optional<CeilingCheckRecord> check;
};

/// Per ceiling: the sums over ranks of the probes before and after the window, and their
/// drift, when every rank has both samples; the figure used is the higher sum, else the cached
/// ceiling x devices. A phase whose step moves no more bytes per device than the last-level
/// cache holds gets no MBU (memory bandwidth does not bound it; a note says so).
CeilingPlan PlanCeilings(const CeilingPlanInput& in);

/// Judges the run's MFU and MBU (`metrics`) against `check`: a ratio above max_ratio is a
/// `ceiling_exceeded`; a probed ceiling whose samples are further apart than max_drift a
/// `ceiling_drift`. Either makes the verdict `unstable`; reasons give the figures.
void JudgeCeilings(const std::vector<Metric>& metrics, CeilingCheckRecord* check);

/// For RunOffline on rank 0: plans the ceilings from every rank's probes, adds the throughput,
/// latency and MFU/MBU metrics (AddThroughputMetrics) and judges them into rec->ceiling_check.
void AddJudgedMetrics(const WorkloadSpec& w, const RunnerOptions& opts, bool simulated,
                      DType matmul_dtype, const std::vector<RankTimings>& ranks,
                      const OpCost& prefill_cost, const OpCost& decode_cost, Provenance how,
                      RunRecord* rec);

}  // namespace cb

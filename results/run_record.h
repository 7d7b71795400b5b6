#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "results/ceiling_check_record.h"
#include "results/cluster_record.h"
#include "results/deployment_record.h"
#include "results/endpoint_record.h"
#include "results/energy_cost_record.h"
#include "results/op_breakdown_record.h"
#include "results/serving_record.h"
#include "workloads/layer_plan.h"
#include "workloads/workload_spec.h"

namespace cb {

/// 1.1 added energy and cost; 1.2 the fp8/int8 dtypes, kv_dtype and the simulated deployment
/// (and, optional within 1.2, a quantised run's `precision` and `accuracy`).
inline constexpr const char* kSchemaVersion = "1.2";

/// How a figure was obtained. Every metric in a result carries one.
enum class Provenance { kMeasured, kModelled, kExtrapolated };
std::string_view ProvenanceName(Provenance p);

/// Summary of a set of samples (seconds, tokens/s, ...).
struct Distribution {
  size_t count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0, stddev = 0;
  double cv = 0;  ///< stddev / mean
};

/// A named figure with its unit and provenance. Names are a public interface (see README).
struct Metric {
  std::string name;  ///< e.g. "decode_tokens_per_second"
  std::string unit;  ///< e.g. "tokens/s", "s", "ratio"
  Provenance how = Provenance::kMeasured;
  double value = 0;  ///< the headline figure (median for per-repetition figures)
  bool has_distribution = false;
  Distribution dist;  ///< over repetitions (throughput) or steps (latency)
};

/// Raw timings of one measured repetition, in seconds of the device clock.
struct RepetitionSample {
  double prefill_s = 0;               ///< prefill step (= TTFT of every sequence in offline)
  std::vector<double> decode_step_s;  ///< each decode step
  double e2e_s = 0;                   ///< prefill + all decode steps
  double backend_s = 0;               ///< time inside Session::Run/Synchronize calls
};

struct Verification {
  std::string status = "not_run";  ///< "passed", "failed", "not_run"
  std::string message;
  int64_t sequences = 0;
  int64_t positions = 0;        ///< teacher-forced positions compared per sequence
  double max_abs_error = 0;     ///< max |backend - reference| over compared logits
  double max_rel_error = 0;     ///< max_abs_error / max |reference|
  double tolerance = 0;         ///< bound on max_rel_error for this dtype
  double argmax_agreement = 0;  ///< share of positions whose argmax agrees
  bool nan_found = false;
  /// MoE: routing decisions compared, and those where the backend chose other experts than
  /// the reference would have (each a near-tie its logits' deviation explains, or verification
  /// failed); the largest deviation of its gate logits, relative to the largest logit.
  int64_t route_decisions = 0, route_flips = 0;
  double route_logit_error = 0;
};

/// What a quantised run's precision costs: its next-token distributions against the
/// unquantised model's (the reference in `baseline_dtype`) on the verification's teacher-forced
/// prefix.
struct AccuracyRecord {
  std::string baseline_dtype = "bf16";
  int64_t positions = 0;          ///< distributions compared (sequences x positions)
  double top1_agreement = 0;      ///< share whose argmax is the baseline's
  double mean_kl_divergence = 0;  ///< mean KL(baseline || run) in nats
};

/// A device's ceilings (matmul peak per dtype, memory read bandwidth). In a record: the
/// micro-suite's cached figures for the host (or a GPU's, measured in the process), the
/// reference figure; MFU and MBU divide by the figures `ceiling_check` says were used.
struct Ceilings {
  double matmul_flops_per_s[kDTypeCount] = {0, 0, 0};
  double mem_read_bytes_per_s = 0;
  std::string source;       ///< e.g. "clusterbench micro, cached results/ceilings/HOST.json"
  std::string measured_at;  ///< ISO-8601 UTC
};

/// Everything one run produced. Serialised to one JSON file (results/schema/run.schema.json).
struct RunRecord {
  std::string schema_version = kSchemaVersion;
  std::string run_id;      ///< unique per run, never used as a Prometheus label
  std::string start_time;  ///< ISO-8601 UTC
  std::string end_time;
  std::string host;
  std::string git_commit;
  std::string tool_version;
  /// The cluster's name (`run --cluster-name`; optional in the file, schema 1.2): the
  /// Prometheus `cluster` label. Empty: derived (results/prometheus ClusterName()).
  std::string cluster_name;
  std::string status = "ok";  ///< "ok", "invalid", "failed", "skipped"
  std::string status_message;

  WorkloadSpec workload;
  DeviceProps device;
  int layers_run = 0;
  /// The model layers that ran and their kinds (empty in records written before it existed).
  LayerPlan layer_plan;
  bool extrapolated = false;
  std::string extrapolation_method;  ///< how a partial-layer run was scaled, empty otherwise

  Ceilings ceilings;
  std::vector<Metric> metrics;
  std::vector<RepetitionSample> samples;
  Verification verification;
  /// How a quantised dtype ran: "int8 (W8A8)", "fp8 (W8A8)", "fp8 (weight-only)"; empty for
  /// other dtypes.
  std::string precision;
  std::optional<AccuracyRecord> accuracy;  ///< quantised runs that verified
  std::vector<int32_t> generated_tokens;   ///< greedy tokens of the first sequence, last rep
  std::optional<EnergyRecord> energy;      ///< absent when no meter ran (failed runs, --energy off)
  std::optional<CostRecord> cost;          ///< absent when the run is not ok
  std::optional<ClusterRecord> cluster;    ///< layout and per-rank figures of an MPI run
  std::optional<ServingRecord> serving;    ///< single-stream and server runs
  std::optional<ValidityRecord> validity;  ///< where validity rules were applied
  std::optional<SweepRecord> sweep;        ///< a point of a sweep
  std::optional<DeploymentRecord> deployment;  ///< a simulated deployment's layout and figures
  std::optional<EndpointRecord> endpoint;      ///< a run against an OpenAI-compatible server
  /// Offline runs on real devices: the ceilings MFU/MBU were judged against, sampled beside
  /// the measured window, and the verdict (harness/ceiling_check.h).
  std::optional<CeilingCheckRecord> ceiling_check;
  /// `--op-breakdown`: where a step's time goes, op kind by op kind (harness/op_breakdown.h).
  std::optional<OpBreakdownRecord> op_breakdown;

  /// True when the run may be published as a valid result: status ok and, where validity
  /// rules were applied, labelled valid (not shortened or unstable).
  bool Publishable() const { return status == "ok" && (!validity || validity->label == "valid"); }

  /// nullptr when absent.
  const Metric* FindMetric(const std::string& name) const;
};

}  // namespace cb

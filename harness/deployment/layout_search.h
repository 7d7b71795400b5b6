#pragma once

#include <string>
#include <vector>

#include "backends/devices/catalog.h"
#include "harness/deployment/sim_target.h"
#include "workloads/workload_spec.h"

namespace cb {

/// What a team asks of a system: serve `model` with prompts of `prompt_len` and outputs of
/// `gen_len` tokens within the latency objectives, as cheaply as possible.
struct SearchRequest {
  WorkloadSpec base;           ///< model, prompt/gen lengths, routing, kv_dtype, cost inputs
  std::vector<DType> dtypes;   ///< candidates; empty: every one the device runs natively
  double slo_tpot_s = 0;       ///< 0: none
  double slo_ttft_s = 0;       ///< 0: none
  bool disaggregation = true;  ///< also try prefill/decode pools
  /// Serve the cheapest points meeting the objectives at this share of their steady-state
  /// request rate and keep the first whose p99 TTFT and TPOT still meet them (0: no serving).
  double serve_load = 0;
  int64_t serve_requests = 600;  ///< requests per served check, at least
  /// Points served at most, in cost order (those a leaner point of their deployment already
  /// missed served are passed over without counting).
  int serve_tries = 12;
};

/// How a layout of compare-hardware serves under load: the serving simulation of the layout
/// (harness/deployment/sim_serving) with Poisson arrivals at `load` x the request rate its
/// steady state sustains. The steady state has no queueing; this says what queueing does to
/// the latencies.
struct ServedFigures {
  double load = 0;  ///< share of the steady state's request rate offered
  double offered_requests_per_s = 0, served_requests_per_s = 0;
  double ttft_p50_s = 0, ttft_p99_s = 0, tpot_p50_s = 0, tpot_p99_s = 0;
  bool meets_slo = false;  ///< p99 TTFT and p99 TPOT within the objectives that are set
  std::string skipped;     ///< why the layout was not served (empty: it was)
};

/// One evaluated configuration at its steady state: decode ranks hold `seqs_per_rank`
/// sequences; prefill (chunked into the decode steps of a mixed pool, or on its own pool)
/// keeps up with them or, for separate pools, the slower pool sets the request rate.
struct LayoutPoint {
  DType dtype = DType::kBF16;
  Deployment deployment;
  int64_t seqs_per_rank = 0;
  /// Prompt tokens per rank per step: the prefill pool's chunk; in a mixed pool what each
  /// step prefills to keep the batch full (the steady state's budget).
  int64_t prefill_chunk = 0;
  double tpot_s = 0, ttft_s = 0;
  double output_tokens_per_s = 0;  ///< the system's, steady state
  double input_tokens_per_s = 0;
  double usd_per_mtok_output = 0;  ///< every device's cost over the output tokens
  double usd_per_mtok_input = 0;   ///< the prefill pool's (mixed: every device's) over input
  double joules_per_output_token_all_in = 0;
  double output_tokens_per_s_per_mw = 0;
  bool meets_slo = false;
  ServedFigures served;  ///< when the search served it (SearchRequest::serve_load)
  bool Served() const { return served.load > 0 && served.skipped.empty(); }
  std::string Layout() const;  ///< e.g. "fp8 prefill ep32 x 32 + decode ep72 x 72, 256/rank"
};

/// `base` run in `dtype` as the search runs it: an fp8 KV cache only with fp8 compute.
WorkloadSpec InDType(const WorkloadSpec& base, DType dtype);

/// Per system: the cheapest point meeting the objectives (`best`; with serve_load, also when
/// served under load), or why there is none.
struct SystemResult {
  std::string system, device, name;
  int devices = 0;
  std::string status = "ok";  ///< "ok", "no_layout_meets_slo", "cannot_hold_model"
  std::string message;
  LayoutPoint best;
  std::vector<LayoutPoint> points;  ///< every evaluated point (the frontier's material)
  int served_checks = 0;            ///< points served under load by the search
  int served_passed_over = 0;       ///< ... passed over: a leaner one of their deployment missed
  double cost_per_device_hour_usd = 0;
  double all_in_power_w = 0;  ///< per device
  std::string cost_basis;
};

/// Searches `system`'s layouts for `r`: dtypes the device supports natively, one mixed pool
/// (TP within a scale-up domain, or for MoE models EP with redundant experts as needed) or
/// prefill/decode pools, two-batch overlap on or off, MTP on models that have it, sequences
/// per decode rank from 1 up to what memory holds. Every point is costed with the simulator's
/// step model (modelled); the best is the lowest $/Mtok output among points meeting the SLO.
Status SearchSystem(const SearchRequest& r, const DeviceCatalog& catalog,
                    const CatalogEntry& system, SystemResult* out);

}  // namespace cb

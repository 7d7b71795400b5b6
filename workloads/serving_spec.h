#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cb {

/// Settings of the serving scenarios (single-stream, server), their validity rules and of
/// sweeps. Suite fields and flags of the same names (docs/scenarios.md); a negative or zero
/// value means "the scenario's default" where the comment says so.
struct ServingSpec {
  double rate = 0;                  ///< server: mean arrival rate, requests/s (0: closed loop)
  int64_t concurrency = 0;          ///< server: requests kept in flight (0: open loop at `rate`)
  std::string arrival = "poisson";  ///< "poisson" or "gamma:CV" (bursty inter-arrivals)
  std::string prompt_dist;  ///< "fixed:N", "uniform:A-B", "lognormal:MEAN,SIGMA"; empty: prompt_len
  std::string output_dist;  ///< the same for output tokens; empty: gen_len
  int64_t requests = 0;     ///< measured requests (0: the scenario's min_requests)
  int64_t warmup_requests = 2;  ///< run first, excluded from every figure
  /// Prompt tokens per step (chunked prefill budget); 0: the default, 512 on measured
  /// backends and 16,384 per rank on simulated accelerators (EffectiveMaxPrefillTokens).
  int64_t max_prefill_tokens = 0;
  int64_t kv_page_tokens = 16;  ///< tokens per KV page of the admission allocator
  int64_t kv_pages = 0;         ///< pool size (0: from the memory budget)
  double slo_ttft = 0;          ///< s; 0: no TTFT objective
  double slo_tpot = 0;          ///< s; 0: no TPOT objective
  // Validity rules (harness/scenarios/validity.h); negative: the scenario's default.
  double min_duration = -1;  ///< s
  int64_t min_requests = -1;
  double max_cv = -1;
  bool strict = false;  ///< a shortened or unstable run is invalid instead of labelled
  /// Offline runs on real devices (harness/ceiling_check.h): sample the ceilings right before
  /// and after the measured window, and the margin by which those samples may disagree
  /// (|before - after| / max; 0 or negative: the default 0.15) before the run is unstable.
  bool ceiling_probes = true;
  double max_ceiling_drift = -1;
  // Sweeps: the plan expands a "sweep" workload into one ordinary run per point.
  std::vector<int64_t> sweep_batches;
  std::vector<double> sweep_rates;
  std::string sweep_scenario;   ///< points' scenario; empty: offline for batches, server for rates
  double at_interactivity = 0;  ///< tokens/s per user to interpolate at (0: none)
  std::string sweep_group;      ///< set on each point by the plan: which sweep it belongs to
  std::string sweep_axis;       ///< "batch" or "rate"
  double sweep_value = 0;       ///< the point's batch or rate
};

}  // namespace cb

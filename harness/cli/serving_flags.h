#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/core/status.h"

namespace cb {

/// `run`'s flags of the scenarios (docs/scenarios.md): --scenario, the server's load, the
/// continuous-batching limits, SLOs, validity rules and sweeps. Each is a suite field of the
/// same name with '_' for '-'.
struct ServingFlags {
  std::string scenario, arrival, prompt_dist, output_dist, sweep_scenario, batches, rates;
  std::string rate, concurrency;  ///< lists: "1,2,4" expands into a run per value, as --batch
  double slo_ttft = 0, slo_tpot = 0, min_duration = 0, max_cv = 0, at_interactivity = 0;
  int64_t requests = 0, warmup_requests = 0, max_prefill_tokens = 0, kv_page_tokens = 0,
          kv_pages = 0, min_requests = 0;
  bool strict = false;
  double max_ceiling_drift = 0;    ///< --max-ceiling-drift (suite field max_ceiling_drift)
  bool no_ceiling_probes = false;  ///< --no-ceiling-probes (suite field ceiling_probes: false)
  std::map<std::string, CLI::Option*> given;  ///< suite field -> its option
};

void AddServingFlags(CLI::App* cmd, ServingFlags* f);

/// Adds the flags the user gave to `overrides` under their suite field names.
Status ServingFlagsToOverrides(const ServingFlags& f, nlohmann::json* overrides);

}  // namespace cb

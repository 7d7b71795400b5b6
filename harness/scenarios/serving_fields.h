#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "workloads/json_fields.h"
#include "workloads/workload_spec.h"

namespace cb {

/// Lowest open-loop arrival rate, requests/s (lower would wait hours between arrivals).
inline constexpr double kMinRate = 1e-3;

/// The chunked-prefill budget a serving pass uses: the workload's, else 512 tokens per step.
int64_t EffectiveMaxPrefillTokens(const WorkloadSpec& w);

/// Suite fields of the serving scenarios, validity rules (with the offline ceiling check's,
/// harness/ceiling_check.h) and sweeps (docs/scenarios.md). (A table by hand: clang-format
/// lays out a list of more than 20 items one per line.)
// clang-format off
inline constexpr const char* kServingFields[] = {
    "rate",           "concurrency",       "arrival",         "prompt_dist",
    "output_dist",    "requests",          "warmup_requests", "max_prefill_tokens",
    "kv_page_tokens", "kv_pages",          "slo_ttft",        "slo_tpot",
    "min_duration",   "min_requests",      "max_cv",          "strict",
    "batches",        "rates",             "sweep_scenario",  "at_interactivity",
    "ceiling_probes", "max_ceiling_drift"};
// clang-format on

/// Fields whose value is itself an array (not a list to expand into several workloads).
bool IsArrayValuedField(const std::string& key);

Status ReadServingFields(const nlohmann::json& obj, const FieldReader& f, ServingSpec* out);

/// Checks the scenario and its settings; errors name `where` and the field.
Status ValidateScenario(const WorkloadSpec& w, const std::string& where);

/// A "sweep" workload becomes one ordinary workload per point (offline at each batch, or
/// server at each rate), tagged with `group`; any other workload is returned as is.
void ExpandSweep(const WorkloadSpec& w, const std::string& group, std::vector<WorkloadSpec>* out);

}  // namespace cb

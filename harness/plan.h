#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "workloads/workload_spec.h"

namespace cb {

/// Workload fields a suite entry (or the command line) may set. Those marked "list" in
/// docs/suites.md may be JSON arrays; an entry expands to the cartesian product of its lists.
inline constexpr const char* kWorkloadFields[] = {
    "model", "backend", "scenario", "dtype", "batch", "prompt_len", "gen_len", "layers", "seed",
    "repetitions", "warmup", "verify", "verify_len", "routing", "kv_dtype", "op_breakdown",
    // the simulated backend's deployment (workloads/deployment.h)
    "system", "devices", "tp", "dp", "ep", "disaggregate", "redundant_experts", "mtp",
    "mtp_acceptance", "overlap",
    // cost-model inputs (workloads/cost_overrides.h)
    "price_per_hour", "capex", "amortization_years", "electricity_price", "pue", "catalog_device"};

/// Expands a suite document: every entry of "workloads" merged over "defaults", then over
/// `overrides` (flags the user gave explicitly), then expanded and validated.
Status ExpandSuite(const nlohmann::json& suite, const nlohmann::json& overrides,
                   const std::string& origin, std::vector<WorkloadSpec>* out);

/// Reads and expands a suite file (see ExpandSuite).
Status LoadSuiteFile(const std::string& path, const nlohmann::json& overrides,
                     std::vector<WorkloadSpec>* out);

/// Checks a resolved workload against its model (shapes, context length, counts).
Status ValidateWorkload(const WorkloadSpec& w, const std::string& origin);

}  // namespace cb

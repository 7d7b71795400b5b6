#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "harness/core/status.h"

namespace cb {

/// The `energy` section of a result: what the meter read around the measured repetitions,
/// and what the energy metrics were divided by.
struct EnergyRecord {
  EnergyReading reading;
  double tokens = 0;        ///< input + output tokens processed in the window
  double attributed_s = 0;  ///< seconds the energy metrics cover: the measured repetitions'
                            ///< end-to-end time (extrapolated when the run is)
};

/// The `cost` section: every input of the cost model, where each came from, and the
/// throughputs the prices were computed from, so anyone can recompute them (README, "Cost").
struct CostRecord {
  std::string basis;  ///< "rental", "owned", or "none" (inputs missing: no cost metrics)
  int64_t devices = 1;
  /// A disaggregated deployment prices input tokens by its prefill pool and output tokens by
  /// its decode pool (0: `devices` for both, as for one pool).
  int64_t input_devices = 0, output_devices = 0;
  double cost_per_device_hour_usd = 0;  ///< NaN when basis is "none"
  // Inputs; NaN where not set / unknown.
  double rental_usd_per_hour = 0;
  double capex_usd = 0;
  double amortization_years = 0;
  double all_in_power_w = 0;
  double pue = 0;
  double electricity_usd_per_kwh = 0;
  std::map<std::string, std::string> sources;  ///< input name -> where its value came from
  std::vector<std::string> overridden;         ///< inputs given on the command line or suite
  std::string catalog_id, catalog_name, catalog_file, catalog_matched_by;
  double input_tokens_per_second = 0;    ///< prefill_tokens_per_second
  double output_tokens_per_second = 0;   ///< decode_tokens_per_second
  double blended_tokens_per_second = 0;  ///< batch x (prompt + gen) / median end-to-end time
  std::vector<std::string> notes;
};

nlohmann::json EnergyRecordToJson(const EnergyRecord& e);
nlohmann::json CostRecordToJson(const CostRecord& c);
/// Errors name `origin` and the field (kInvalidInput).
Status EnergyRecordFromJson(const nlohmann::json& j, const std::string& origin, EnergyRecord* out);
Status CostRecordFromJson(const nlohmann::json& j, const std::string& origin, CostRecord* out);

}  // namespace cb

#pragma once

#include "results/run_record.h"

namespace cb {

/// Metric names (a public interface, see README "Metrics").
inline constexpr const char* kEnergyJoules = "energy_joules";
inline constexpr const char* kEnergyJoulesPerToken = "energy_joules_per_token";
inline constexpr const char* kAveragePowerWatts = "average_power_watts";
inline constexpr const char* kTokensPerKwh = "tokens_per_kwh";
inline constexpr const char* kCostInput = "cost_usd_per_million_input_tokens";
inline constexpr const char* kCostOutput = "cost_usd_per_million_output_tokens";
inline constexpr const char* kCostBlended = "cost_usd_per_million_tokens";

/// Fills rec->energy's tokens and attributed seconds from the workload and samples, and adds
/// the energy metrics. `how`: measured for counters (extrapolated when the run is), modelled
/// for the power model. average_power_watts is joules / window of the reading; the other
/// figures cover the measured repetitions' end-to-end time (the extrapolated time when the
/// run is extrapolated, at the measured average power). No-op without rec->energy.
void AddEnergyMetrics(RunRecord* rec);

/// Fills rec->cost's throughputs from the record's metrics and (re)computes the cost metrics
/// (always `modelled`); removes them when the basis is "none". No-op without rec->cost.
void AddCostMetrics(RunRecord* rec);

}  // namespace cb

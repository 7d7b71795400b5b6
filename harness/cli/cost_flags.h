#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/core/status.h"

namespace cb {

/// The cost-model and energy flags shared by `run` and `cost`.
struct CostFlags {
  double price_per_hour = 0, capex = 0, amortization_years = 0, electricity_price = 0, pue = 0;
  std::string catalog_device, catalog_dir, energy = "auto";
  std::map<std::string, CLI::Option*> given;  ///< suite field name -> its option
};

/// Registers --price-per-hour, --capex, --amortization-years, --electricity-price, --pue,
/// --catalog-device, --catalog and (for run) --energy.
void AddCostFlags(CLI::App* cmd, CostFlags* f, bool with_energy);

/// Adds the cost flags the user gave to `overrides` under their suite field names, after
/// checking them (negative prices, zero amortization, pue < 1: kInvalidInput, exit code 2).
Status CostFlagsToOverrides(const CostFlags& f, nlohmann::json* overrides);

}  // namespace cb

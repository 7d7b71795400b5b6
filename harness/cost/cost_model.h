#pragma once

#include <map>
#include <string>

#include "backends/devices/catalog.h"
#include "results/energy_cost_record.h"
#include "workloads/cost_overrides.h"

namespace cb {

/// Defaults of the inputs the catalog does not give (assumptions; override them).
inline constexpr double kDefaultAmortizationYears = 4;
inline constexpr double kDefaultElectricityUsdPerKwh = 0.10;
inline constexpr double kDefaultPue = 1.0;
inline constexpr double kHoursPerYear = 8760;

/// The inputs that apply before overrides: from a catalog entry, or from a stored result.
struct CostBaseline {
  double rental_usd_per_hour = 0;  ///< NaN where none
  double capex_usd = 0;            ///< NaN where unknown
  double amortization_years = kDefaultAmortizationYears;
  double all_in_power_w = 0;
  double pue = kDefaultPue;
  double electricity_usd_per_kwh = kDefaultElectricityUsdPerKwh;
  int64_t devices = 1;
  std::map<std::string, std::string> sources;
  std::string catalog_id, catalog_name, catalog_file, catalog_matched_by;
};

/// Baseline of one device of `entry` (a system entry is priced per device: its purchase
/// price and all-in power divided by its device count).
CostBaseline BaselineFromCatalog(const CatalogEntry& entry, const std::string& matched_by);
/// Baseline from the cost section of a stored result (`origin` names the file in sources).
CostBaseline BaselineFromRecord(const CostRecord& stored, const std::string& origin);

/// Applies `overrides` (the `via` text says where they came from, e.g. "command line") and
/// picks the basis: a given price per hour -> rental; else any given ownership input ->
/// owned; else the catalog's rental price if it has one; else owned. Owned needs a purchase
/// price: without one the basis is "none" and a note says what to give. Throughputs are left 0.
CostRecord ResolveCost(const CostBaseline& base, const CostOverrides& overrides,
                       const std::string& via);

/// rental, or capex / (years x 8760) + all_in_power_kw x pue x electricity (NaN for "none").
double CostPerDeviceHour(const CostRecord& c);
/// cost_per_device_hour x devices / (tokens_per_second x 3600) x 1e6; NaN if tokens/s <= 0.
double UsdPerMillionTokens(double cost_per_device_hour, int64_t devices, double tokens_per_second);

}  // namespace cb

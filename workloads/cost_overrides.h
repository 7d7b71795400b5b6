#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "workloads/json_fields.h"

namespace cb {

/// Cost-model inputs a suite entry or the command line sets (README, "Cost"); unset fields
/// come from the device catalog and the defaults.
struct CostOverrides {
  std::optional<double> price_per_hour;      ///< USD per device-hour (rental)
  std::optional<double> capex;               ///< USD purchase price per device
  std::optional<double> amortization_years;  ///< years the purchase is spread over
  std::optional<double> electricity_price;   ///< USD per kWh
  std::optional<double> pue;                 ///< power usage effectiveness, >= 1
  std::string catalog_device;                ///< catalog entry id; empty: auto-detected

  /// True when an input of the owned-hardware formula was given.
  bool AnyOwnership() const {
    return capex.has_value() || amortization_years.has_value() || electricity_price.has_value() ||
           pue.has_value();
  }
};

/// Suite and command-line field names (also in kWorkloadFields).
inline constexpr const char* kCostFields[] = {"price_per_hour",    "capex", "amortization_years",
                                              "electricity_price", "pue",   "catalog_device"};

/// Reads and checks the cost fields of a suite entry: prices and capex >= 0, amortization
/// years > 0, pue >= 1. Errors name the origin and field (exit code 2).
inline Status ReadCostOverrides(const FieldReader& f, CostOverrides* out) {
  struct Num {
    const char* field;
    std::optional<double>* slot;
    double min;
    bool strict;  ///< > min rather than >= min
    const char* rule;
  };
  const Num nums[] = {
      {"price_per_hour", &out->price_per_hour, 0, false, "must be >= 0 (USD per device-hour)"},
      {"capex", &out->capex, 0, false, "must be >= 0 (USD per device)"},
      {"amortization_years", &out->amortization_years, 0, true, "must be > 0 (years)"},
      {"electricity_price", &out->electricity_price, 0, false, "must be >= 0 (USD per kWh)"},
      {"pue", &out->pue, 1, false, "must be >= 1 (power usage effectiveness)"},
  };
  for (const Num& n : nums) {
    if (!f.Has(n.field)) continue;
    double v = 0;
    CB_RETURN_IF_ERROR(f.Double(n.field, false, &v));
    if (!std::isfinite(v) || (n.strict ? v <= n.min : v < n.min)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", v);
      return f.Error(n.field, std::string(n.rule) + ", got " + buf);
    }
    *n.slot = v;
  }
  CB_RETURN_IF_ERROR(f.String("catalog_device", false, &out->catalog_device));
  if (f.Has("catalog_device") && out->catalog_device.empty()) {
    return f.Error("catalog_device", "must name a catalog entry (an id in backends/devices/)");
  }
  return Status::Ok();
}

}  // namespace cb

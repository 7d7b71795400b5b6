#include "harness/cost/cost_model.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "harness/core/fmt.h"

namespace cb {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string CatalogSource(const CatalogEntry& e, const CatalogFigure& f) {
  return "catalog " + e.id + ": " + f.source;
}

}  // namespace

CostBaseline BaselineFromCatalog(const CatalogEntry& e, const std::string& matched_by) {
  CostBaseline b;
  b.catalog_id = e.id;
  b.catalog_name = e.name;
  b.catalog_file = e.file;
  b.catalog_matched_by = matched_by;
  const double n = e.type == "system" ? static_cast<double>(e.device_count) : 1.0;
  const std::string per =
      e.type == "system" ? " (divided by its " + Fmt(n, "%g") + " devices)" : "";
  b.rental_usd_per_hour = e.rental_usd_per_hour.known() ? e.rental_usd_per_hour.value / n : kNaN;
  b.sources["rental_usd_per_hour"] = CatalogSource(e, e.rental_usd_per_hour) + per;
  b.capex_usd = e.purchase_usd.known() ? e.purchase_usd.value / n : kNaN;
  b.sources["capex_usd"] = CatalogSource(e, e.purchase_usd) + per;
  b.all_in_power_w = e.all_in_power_w.value / n;
  b.sources["all_in_power_w"] = CatalogSource(e, e.all_in_power_w) + per;
  b.sources["amortization_years"] =
      "default: assumed " + Fmt(kDefaultAmortizationYears, "%g") + "-year depreciation";
  b.sources["pue"] =
      "default: 1.0, because the catalog's all-in power already includes the cooling share";
  b.sources["electricity_usd_per_kwh"] =
      "default: assumed $" + Fmt(kDefaultElectricityUsdPerKwh, "%g") + "/kWh (industrial rate)";
  return b;
}

CostBaseline BaselineFromRecord(const CostRecord& c, const std::string& origin) {
  CostBaseline b;
  b.rental_usd_per_hour = c.basis == "rental" ? c.rental_usd_per_hour : kNaN;
  b.capex_usd = c.capex_usd;
  b.amortization_years = c.amortization_years;
  b.all_in_power_w = c.all_in_power_w;
  b.pue = c.pue;
  b.electricity_usd_per_kwh = c.electricity_usd_per_kwh;
  b.devices = c.devices;
  for (const auto& [k, v] : c.sources) b.sources[k] = "as stored in " + origin + " (" + v + ")";
  b.catalog_id = c.catalog_id;
  b.catalog_name = c.catalog_name;
  b.catalog_file = c.catalog_file;
  b.catalog_matched_by = c.catalog_matched_by;
  return b;
}

CostRecord ResolveCost(const CostBaseline& b, const CostOverrides& o, const std::string& via) {
  CostRecord c;
  c.devices = b.devices;
  c.rental_usd_per_hour = b.rental_usd_per_hour;
  c.capex_usd = b.capex_usd;
  c.amortization_years = b.amortization_years;
  c.all_in_power_w = b.all_in_power_w;
  c.pue = b.pue;
  c.electricity_usd_per_kwh = b.electricity_usd_per_kwh;
  c.sources = b.sources;
  c.catalog_id = b.catalog_id;
  c.catalog_name = b.catalog_name;
  c.catalog_file = b.catalog_file;
  c.catalog_matched_by = b.catalog_matched_by;
  auto apply = [&](const std::optional<double>& v, const char* flag, const char* input,
                   double* slot) {
    if (!v) return;
    *slot = *v;
    c.sources[input] = "given: " + std::string(flag) + " " + Fmt(*v, "%g") + " (" + via + ")";
    c.overridden.push_back(input);
  };
  apply(o.price_per_hour, "price_per_hour", "rental_usd_per_hour", &c.rental_usd_per_hour);
  apply(o.capex, "capex", "capex_usd", &c.capex_usd);
  apply(o.amortization_years, "amortization_years", "amortization_years", &c.amortization_years);
  apply(o.electricity_price, "electricity_price", "electricity_usd_per_kwh",
        &c.electricity_usd_per_kwh);
  apply(o.pue, "pue", "pue", &c.pue);

  if (o.price_per_hour) {
    c.basis = "rental";
  } else if (o.AnyOwnership()) {
    c.basis = "owned";
    c.rental_usd_per_hour = kNaN;  // ownership inputs were given: price as owned hardware
  } else if (std::isfinite(c.rental_usd_per_hour)) {
    c.basis = "rental";
  } else {
    c.basis = "owned";
  }
  if (c.basis == "owned" && (!std::isfinite(c.capex_usd) || !std::isfinite(c.all_in_power_w))) {
    c.basis = "none";
    c.notes.push_back("no rental price and no purchase price for " +
                      (c.catalog_id.empty() ? std::string("this device") : c.catalog_id) +
                      ": give --price-per-hour or --capex (suite fields price_per_hour, capex)");
  }
  c.cost_per_device_hour_usd = CostPerDeviceHour(c);
  return c;
}

double CostPerDeviceHour(const CostRecord& c) {
  if (c.basis == "rental") return c.rental_usd_per_hour;
  if (c.basis == "owned") {
    return c.capex_usd / (c.amortization_years * kHoursPerYear) +
           c.all_in_power_w / 1000.0 * c.pue * c.electricity_usd_per_kwh;
  }
  return kNaN;
}

double UsdPerMillionTokens(double cost_per_device_hour, int64_t devices, double tokens_per_second) {
  if (!(tokens_per_second > 0) || !std::isfinite(cost_per_device_hour)) return kNaN;
  return cost_per_device_hour * static_cast<double>(devices) / (tokens_per_second * 3600.0) * 1e6;
}

}  // namespace cb

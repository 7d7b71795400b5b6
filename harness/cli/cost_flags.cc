#include "harness/cli/cost_flags.h"

#include "workloads/cost_overrides.h"

namespace cb {

void AddCostFlags(CLI::App* cmd, CostFlags* f, bool with_energy) {
  const std::string group = "Cost model (README: Cost)";
  auto& g = f->given;
  g["price_per_hour"] = cmd->add_option("--price-per-hour", f->price_per_hour,
                                        "Rental price, USD per device-hour (overrides the catalog)")
                            ->group(group);
  g["capex"] = cmd->add_option("--capex", f->capex,
                               "Purchase price per device, USD (prices as owned hardware)")
                   ->group(group);
  g["amortization_years"] = cmd->add_option("--amortization-years", f->amortization_years,
                                            "Years the purchase price is spread over (default 4)")
                                ->group(group);
  g["electricity_price"] = cmd->add_option("--electricity-price", f->electricity_price,
                                           "Electricity, USD per kWh (default 0.10)")
                               ->group(group);
  g["pue"] = cmd->add_option("--pue", f->pue,
                             "Power usage effectiveness applied to the all-in power (default 1.0)")
                 ->group(group);
  g["catalog_device"] =
      cmd->add_option("--catalog-device", f->catalog_device,
                      "Device catalog entry to price and model (default: detected from the device)")
          ->group(group);
  cmd->add_option("--catalog", f->catalog_dir,
                  "Device catalog directory (default backends/devices)")
      ->group(group);
  if (with_energy) {
    cmd->add_option("--energy", f->energy,
                    "Energy source: auto (RAPL/NVML, else the power model), rapl, nvml, model, off")
        ->default_val("auto")
        ->group(group);
  }
}

Status CostFlagsToOverrides(const CostFlags& f, nlohmann::json* overrides) {
  nlohmann::json given = nlohmann::json::object();
  const std::pair<const char*, double> nums[] = {{"price_per_hour", f.price_per_hour},
                                                 {"capex", f.capex},
                                                 {"amortization_years", f.amortization_years},
                                                 {"electricity_price", f.electricity_price},
                                                 {"pue", f.pue}};
  for (const auto& [key, value] : nums) {
    if (f.given.at(key)->count()) given[key] = value;
  }
  if (f.given.at("catalog_device")->count()) given["catalog_device"] = f.catalog_device;
  CostOverrides check;
  if (Status s = ReadCostOverrides(FieldReader(given, "command line"), &check); !s.ok()) {
    // Name the flag, not the suite field: "field 'price_per_hour'" -> "--price-per-hour".
    std::string m = s.message();
    const size_t a = m.find("field '");
    const size_t b = a == std::string::npos ? a : m.find('\'', a + 7);
    if (b != std::string::npos) {
      std::string flag = "--" + m.substr(a + 7, b - a - 7);
      for (char& c : flag) c = c == '_' ? '-' : c;
      m = m.substr(0, a) + flag + m.substr(b + 1);
    }
    return Status(s.code(), m);
  }
  for (auto it = given.begin(); it != given.end(); ++it) (*overrides)[it.key()] = it.value();
  return Status::Ok();
}

}  // namespace cb

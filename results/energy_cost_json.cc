#include <cmath>
#include <limits>

#include "results/energy_cost_record.h"
#include "results/json_number.h"

namespace cb {
namespace {

using nlohmann::json;

constexpr const char* kCostFormula =
    "cost_per_device_hour_usd = rental_usd_per_hour if basis is rental, else capex_usd / "
    "(amortization_years x 8760) + all_in_power_w / 1000 x pue x electricity_usd_per_kwh; "
    "cost_usd_per_million_<kind>_tokens = cost_per_device_hour_usd x devices / "
    "(<kind> tokens_per_second x 3600) x 1e6";

/// Typed reads; every error names the origin and the dotted path.
class R {
 public:
  R(const std::string& origin, std::string base) : origin_(origin), base_(std::move(base)) {}
  Status Error(const std::string& field, const std::string& what) const {
    return Status::InvalidInput(origin_ + ": field '" + base_ + "." + field + "': " + what);
  }
  const json* Get(const json& o, const std::string& path, const char* key, Status* s) const {
    auto it = o.find(key);
    if (it == o.end()) {
      *s = Error(path.empty() ? key : path + "." + key, "missing");
      return nullptr;
    }
    return &*it;
  }
  Status Number(const json& o, const std::string& path, const char* key, double* out) const {
    Status s;
    const json* v = Get(o, path, key, &s);
    if (!v) return s;
    if (v->is_null()) {
      *out = std::numeric_limits<double>::quiet_NaN();
      return Status::Ok();
    }
    if (!v->is_number())
      return Error(P(path, key), "expected number, got " + std::string(v->type_name()));
    *out = v->get<double>();
    return Status::Ok();
  }
  Status String(const json& o, const std::string& path, const char* key, std::string* out) const {
    Status s;
    const json* v = Get(o, path, key, &s);
    if (!v) return s;
    if (!v->is_string())
      return Error(P(path, key), "expected string, got " + std::string(v->type_name()));
    *out = v->get<std::string>();
    return Status::Ok();
  }
  Status Strings(const json& o, const std::string& path, const char* key,
                 std::vector<std::string>* out) const {
    Status s;
    const json* v = Get(o, path, key, &s);
    if (!v) return s;
    if (!v->is_array())
      return Error(P(path, key), "expected array, got " + std::string(v->type_name()));
    out->clear();
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) {
        return Error(P(path, key) + "[" + std::to_string(i) + "]", "expected string");
      }
      out->push_back((*v)[i].get<std::string>());
    }
    return Status::Ok();
  }
  Status Object(const json& o, const std::string& path, const char* key, const json** out) const {
    Status s;
    *out = Get(o, path, key, &s);
    if (!*out) return s;
    if (!(*out)->is_object()) return Error(P(path, key), "expected object");
    return Status::Ok();
  }
  static std::string P(const std::string& path, const char* key) {
    return path.empty() ? key : path + "." + key;
  }

 private:
  const std::string& origin_;
  std::string base_;
};

}  // namespace

json EnergyRecordToJson(const EnergyRecord& e) {
  const EnergyReading& r = e.reading;
  json domains = json::array();
  for (const EnergyDomain& d : r.domains) {
    domains.push_back(json{{"name", d.name}, {"id", d.id}, {"joules", FiniteOrNull(d.joules)}});
  }
  return json{{"source", r.source},
              {"joules", FiniteOrNull(r.joules)},
              {"window_s", FiniteOrNull(r.window_s)},
              {"sampling_interval_s", FiniteOrNull(r.sampling_interval_s)},
              {"valid", r.valid},
              {"notes", r.notes},
              {"domains", std::move(domains)},
              {"tokens", FiniteOrNull(e.tokens)},
              {"attributed_s", FiniteOrNull(e.attributed_s)}};
}

json CostRecordToJson(const CostRecord& c) {
  json sources = json::object();
  for (const auto& [k, v] : c.sources) sources[k] = v;
  json out{{"basis", c.basis},
           {"devices", c.devices},
           {"cost_per_device_hour_usd", FiniteOrNull(c.cost_per_device_hour_usd)},
           {"formula", kCostFormula},
           {"inputs", json{{"rental_usd_per_hour", FiniteOrNull(c.rental_usd_per_hour)},
                           {"capex_usd", FiniteOrNull(c.capex_usd)},
                           {"amortization_years", FiniteOrNull(c.amortization_years)},
                           {"all_in_power_w", FiniteOrNull(c.all_in_power_w)},
                           {"pue", FiniteOrNull(c.pue)},
                           {"electricity_usd_per_kwh", FiniteOrNull(c.electricity_usd_per_kwh)}}},
           {"sources", std::move(sources)},
           {"overridden", c.overridden},
           {"catalog", json{{"id", c.catalog_id},
                            {"name", c.catalog_name},
                            {"file", c.catalog_file},
                            {"matched_by", c.catalog_matched_by}}},
           {"tokens_per_second", json{{"input", FiniteOrNull(c.input_tokens_per_second)},
                                      {"output", FiniteOrNull(c.output_tokens_per_second)},
                                      {"blended", FiniteOrNull(c.blended_tokens_per_second)}}},
           {"notes", c.notes}};
  if (c.input_devices > 0) out["input_devices"] = c.input_devices;
  if (c.output_devices > 0) out["output_devices"] = c.output_devices;
  return out;
}

Status EnergyRecordFromJson(const json& j, const std::string& origin, EnergyRecord* out) {
  const R r(origin, "energy");
  if (!j.is_object()) return Status::InvalidInput(origin + ": field 'energy': expected object");
  EnergyRecord e;
  EnergyReading& g = e.reading;
  CB_RETURN_IF_ERROR(r.String(j, "", "source", &g.source));
  if (g.source != "rapl" && g.source != "nvml" && g.source != "model") {
    return r.Error("source", "unknown value '" + g.source + "'; allowed values: rapl, nvml, model");
  }
  CB_RETURN_IF_ERROR(r.Number(j, "", "joules", &g.joules));
  CB_RETURN_IF_ERROR(r.Number(j, "", "window_s", &g.window_s));
  CB_RETURN_IF_ERROR(r.Number(j, "", "sampling_interval_s", &g.sampling_interval_s));
  Status s;
  const json* valid = r.Get(j, "", "valid", &s);
  if (!valid) return s;
  if (!valid->is_boolean()) return r.Error("valid", "expected boolean");
  g.valid = valid->get<bool>();
  CB_RETURN_IF_ERROR(r.Strings(j, "", "notes", &g.notes));
  const json* domains = r.Get(j, "", "domains", &s);
  if (!domains) return s;
  if (!domains->is_array()) return r.Error("domains", "expected array");
  for (size_t i = 0; i < domains->size(); ++i) {
    const std::string p = "domains[" + std::to_string(i) + "]";
    const json& d = (*domains)[i];
    if (!d.is_object()) return r.Error(p, "expected object");
    EnergyDomain dom;
    CB_RETURN_IF_ERROR(r.String(d, p, "name", &dom.name));
    CB_RETURN_IF_ERROR(r.String(d, p, "id", &dom.id));
    CB_RETURN_IF_ERROR(r.Number(d, p, "joules", &dom.joules));
    g.domains.push_back(std::move(dom));
  }
  CB_RETURN_IF_ERROR(r.Number(j, "", "tokens", &e.tokens));
  CB_RETURN_IF_ERROR(r.Number(j, "", "attributed_s", &e.attributed_s));
  *out = std::move(e);
  return Status::Ok();
}

Status CostRecordFromJson(const json& j, const std::string& origin, CostRecord* out) {
  const R r(origin, "cost");
  if (!j.is_object()) return Status::InvalidInput(origin + ": field 'cost': expected object");
  CostRecord c;
  CB_RETURN_IF_ERROR(r.String(j, "", "basis", &c.basis));
  if (c.basis != "rental" && c.basis != "owned" && c.basis != "none") {
    return r.Error("basis", "unknown value '" + c.basis + "'; allowed values: rental, owned, none");
  }
  Status s;
  const json* devices = r.Get(j, "", "devices", &s);
  if (!devices) return s;
  if (!devices->is_number_integer() || devices->get<int64_t>() < 1) {
    return r.Error("devices", "expected a positive integer, got " + devices->dump());
  }
  c.devices = devices->get<int64_t>();
  for (auto [key, dst] : {std::pair{"input_devices", &c.input_devices},
                          std::pair{"output_devices", &c.output_devices}}) {
    if (!j.contains(key)) continue;  // schema 1.2, disaggregated deployments only
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1) {
      return r.Error(key, "expected a positive integer, got " + j[key].dump());
    }
    *dst = j[key].get<int64_t>();
  }
  CB_RETURN_IF_ERROR(r.Number(j, "", "cost_per_device_hour_usd", &c.cost_per_device_hour_usd));
  const json* in;
  CB_RETURN_IF_ERROR(r.Object(j, "", "inputs", &in));
  CB_RETURN_IF_ERROR(r.Number(*in, "inputs", "rental_usd_per_hour", &c.rental_usd_per_hour));
  CB_RETURN_IF_ERROR(r.Number(*in, "inputs", "capex_usd", &c.capex_usd));
  CB_RETURN_IF_ERROR(r.Number(*in, "inputs", "amortization_years", &c.amortization_years));
  CB_RETURN_IF_ERROR(r.Number(*in, "inputs", "all_in_power_w", &c.all_in_power_w));
  CB_RETURN_IF_ERROR(r.Number(*in, "inputs", "pue", &c.pue));
  CB_RETURN_IF_ERROR(
      r.Number(*in, "inputs", "electricity_usd_per_kwh", &c.electricity_usd_per_kwh));
  const json* sources;
  CB_RETURN_IF_ERROR(r.Object(j, "", "sources", &sources));
  for (auto it = sources->begin(); it != sources->end(); ++it) {
    if (!it->is_string()) return r.Error("sources." + it.key(), "expected string");
    c.sources[it.key()] = it->get<std::string>();
  }
  CB_RETURN_IF_ERROR(r.Strings(j, "", "overridden", &c.overridden));
  const json* cat;
  CB_RETURN_IF_ERROR(r.Object(j, "", "catalog", &cat));
  CB_RETURN_IF_ERROR(r.String(*cat, "catalog", "id", &c.catalog_id));
  CB_RETURN_IF_ERROR(r.String(*cat, "catalog", "name", &c.catalog_name));
  CB_RETURN_IF_ERROR(r.String(*cat, "catalog", "file", &c.catalog_file));
  CB_RETURN_IF_ERROR(r.String(*cat, "catalog", "matched_by", &c.catalog_matched_by));
  const json* tps;
  CB_RETURN_IF_ERROR(r.Object(j, "", "tokens_per_second", &tps));
  CB_RETURN_IF_ERROR(r.Number(*tps, "tokens_per_second", "input", &c.input_tokens_per_second));
  CB_RETURN_IF_ERROR(r.Number(*tps, "tokens_per_second", "output", &c.output_tokens_per_second));
  CB_RETURN_IF_ERROR(r.Number(*tps, "tokens_per_second", "blended", &c.blended_tokens_per_second));
  CB_RETURN_IF_ERROR(r.Strings(j, "", "notes", &c.notes));
  *out = std::move(c);
  return Status::Ok();
}

}  // namespace cb

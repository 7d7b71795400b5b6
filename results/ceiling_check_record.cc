#include "results/ceiling_check_record.h"

#include <cmath>
#include <limits>

#include "results/json_number.h"

namespace cb {
namespace {

using nlohmann::json;

json FigureJson(const CeilingFigure& f) {
  return {{"before", FiniteOrNull(f.before)}, {"after", FiniteOrNull(f.after)},
          {"drift", FiniteOrNull(f.drift)},   {"used", FiniteOrNull(f.used)},
          {"cached", FiniteOrNull(f.cached)}, {"source", f.source}};
}

CeilingFigure FigureOf(const json& j) {
  CeilingFigure f;
  f.before = NumberOrNaN(j.at("before"));
  f.after = NumberOrNaN(j.at("after"));
  f.drift = NumberOrNaN(j.at("drift"));
  f.used = NumberOrNaN(j.at("used"));
  f.cached = NumberOrNaN(j.at("cached"));
  j.at("source").get_to(f.source);
  return f;
}

}  // namespace

json CeilingCheckRecordToJson(const CeilingCheckRecord& c) {
  json probes = json::array();
  for (const CeilingProbeRecord& p : c.probes) {
    probes.push_back({{"rank", p.rank},
                      {"when", p.when},
                      {"mem_read_bytes_per_s", FiniteOrNull(p.mem_read_bytes_per_s)},
                      {"matmul_flops_per_s", FiniteOrNull(p.matmul_flops_per_s)},
                      {"mem_read_s", FiniteOrNull(p.mem_read_s)},
                      {"matmul_s", FiniteOrNull(p.matmul_s)}});
  }
  return {{"method", c.method},
          {"dtype", c.dtype},
          {"devices", c.devices},
          {"max_drift", FiniteOrNull(c.max_drift)},
          {"max_ratio", FiniteOrNull(c.max_ratio)},
          {"cache_bytes", FiniteOrNull(c.cache_bytes)},
          {"probes", std::move(probes)},
          {"memory", FigureJson(c.memory)},
          {"matmul", FigureJson(c.matmul)},
          {"verdict", c.verdict},
          {"findings", c.findings},
          {"reasons", c.reasons},
          {"notes", c.notes}};
}

Status CeilingCheckRecordFromJson(const json& j, const std::string& origin,
                                  CeilingCheckRecord* out) {
  try {
    CeilingCheckRecord c;
    j.at("method").get_to(c.method);
    j.at("dtype").get_to(c.dtype);
    j.at("devices").get_to(c.devices);
    c.max_drift = NumberOrNaN(j.at("max_drift"));
    c.max_ratio = NumberOrNaN(j.at("max_ratio"));
    c.cache_bytes = NumberOrNaN(j.at("cache_bytes"));
    for (const json& p : j.at("probes")) {
      CeilingProbeRecord r;
      p.at("rank").get_to(r.rank);
      p.at("when").get_to(r.when);
      r.mem_read_bytes_per_s = NumberOrNaN(p.at("mem_read_bytes_per_s"));
      r.matmul_flops_per_s = NumberOrNaN(p.at("matmul_flops_per_s"));
      r.mem_read_s = NumberOrNaN(p.at("mem_read_s"));
      r.matmul_s = NumberOrNaN(p.at("matmul_s"));
      c.probes.push_back(std::move(r));
    }
    c.memory = FigureOf(j.at("memory"));
    c.matmul = FigureOf(j.at("matmul"));
    j.at("verdict").get_to(c.verdict);
    j.at("findings").get_to(c.findings);
    j.at("reasons").get_to(c.reasons);
    j.at("notes").get_to(c.notes);
    if (c.verdict != "ok" && c.verdict != "unstable") {
      return Status::InvalidInput(origin + ": field 'ceiling_check.verdict': unknown value '" +
                                  c.verdict + "'; allowed values: ok, unstable");
    }
    *out = std::move(c);
  } catch (const json::exception& e) {
    return Status::InvalidInput(origin + ": field 'ceiling_check': " + e.what());
  }
  return Status::Ok();
}

}  // namespace cb

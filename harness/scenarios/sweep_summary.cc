#include "harness/scenarios/sweep_summary.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "harness/cost/energy_cost.h"

namespace cb {
namespace {

double Value(const RunRecord& r, const char* name) {
  const Metric* m = r.FindMetric(name);
  return m != nullptr && std::isfinite(m->value) ? m->value : 0;
}

std::string Label(const RunRecord& r) {
  char buf[64];
  if (r.sweep->axis == "rate") {
    std::snprintf(buf, sizeof buf, "rate %g/s", r.sweep->value);
  } else {
    std::snprintf(buf, sizeof buf, "batch %g", r.sweep->value);
  }
  return buf;
}

nlohmann::json PointJson(const FrontierPoint& p) {
  auto num = [](double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"label", p.label},
          {"interactivity_tokens_per_second_per_user", p.interactivity},
          {"output_tokens_per_second_per_device", p.throughput_per_device},
          {"usd_per_million_output_tokens", num(p.usd_per_million_tokens)},
          {"joules_per_token", num(p.joules_per_token)},
          {"interpolated", p.interpolated}};
}

std::string Cell(double v, const char* fmt) {
  if (!(v > 0)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

FrontierPoint PointOf(const RunRecord& rec) {
  FrontierPoint p;
  const double tpot = Value(rec, "tpot_seconds");
  p.interactivity = tpot > 0 ? 1.0 / tpot : NAN;
  if (rec.serving) {
    p.throughput_per_device = Value(rec, "output_tokens_per_second_per_device");
  } else {
    const double devices = rec.cluster ? std::max(1, rec.cluster->world_size) : 1;
    p.throughput_per_device = Value(rec, "decode_tokens_per_second") / devices;
  }
  p.usd_per_million_tokens = Value(rec, kCostOutput);
  p.joules_per_token = Value(rec, kEnergyJoulesPerToken);
  p.label = rec.sweep ? Label(rec) : rec.run_id;
  return p;
}

std::vector<SweepSummary> SummarizeSweeps(const std::vector<RunRecord>& records) {
  std::map<std::string, SweepSummary> by_group;
  std::vector<std::string> order;
  for (const RunRecord& r : records) {
    if (!r.sweep) continue;
    auto [it, fresh] = by_group.try_emplace(r.sweep->group);
    SweepSummary& s = it->second;
    if (fresh) {
      order.push_back(r.sweep->group);
      s.group = r.sweep->group;
      s.axis = r.sweep->axis;
      s.at_interactivity = r.sweep->at_interactivity;
    }
    if (!r.Publishable()) {
      s.excluded.push_back(Label(r) + ": " + (r.status != "ok" ? r.status : r.validity->label) +
                           (r.status_message.empty() ? "" : " (" + r.status_message + ")"));
      continue;
    }
    const Metric* m = r.FindMetric("decode_tokens_per_second");
    const std::string how = m ? std::string(ProvenanceName(m->how)) : "measured";
    if (s.how.empty()) {
      s.how = how;
    } else if (s.how != how) {
      s.how = "mixed";
    }
    s.points.push_back(PointOf(r));
  }
  std::vector<SweepSummary> out;
  for (const std::string& g : order) {
    SweepSummary s = std::move(by_group[g]);
    s.frontier = ParetoFrontier(s.points);
    if (s.at_interactivity > 0) {
      if (auto at = InterpolateAt(s.frontier, s.at_interactivity)) {
        s.has_at = true;
        s.at = *at;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

nlohmann::json SweepSummaryToJson(const SweepSummary& s) {
  nlohmann::json points = nlohmann::json::array(), frontier = nlohmann::json::array();
  for (const FrontierPoint& p : s.points) points.push_back(PointJson(p));
  for (const FrontierPoint& p : s.frontier) frontier.push_back(PointJson(p));
  nlohmann::json j = {
      {"group", s.group},
      {"axis", s.axis},
      {"how", s.how.empty() ? "measured" : s.how},
      {"points", points},
      {"excluded", s.excluded},
      {"frontier", frontier},
      {"at_interactivity",
       s.at_interactivity > 0 ? nlohmann::json(s.at_interactivity) : nlohmann::json(nullptr)}};
  if (s.at_interactivity > 0) {
    j["at"] = s.has_at ? PointJson(s.at) : nlohmann::json(nullptr);
    j["at_note"] = s.has_at ? (s.at.interpolated ? "interpolated linearly between the two "
                                                   "neighbouring frontier points"
                                                 : "a measured frontier point")
                            : "outside the frontier's interactivity range: not extrapolated";
  }
  return j;
}

std::string FormatSweepSummary(const SweepSummary& s) {
  std::string out = "sweep " + s.group + " over " + s.axis + " (" +
                    (s.how.empty() ? "measured" : s.how) +
                    "): interactivity = 1/TPOT (tokens/s per user)\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-22s %14s %16s %12s %10s %9s\n", "point", "tok/s/user",
                "out tok/s/device", "$/Mtok out", "J/token", "frontier");
  out += line;
  for (const FrontierPoint& p : s.points) {
    bool on = false;
    for (const FrontierPoint& f : s.frontier) on |= f.label == p.label;
    std::snprintf(line, sizeof line, "  %-22s %14s %16s %12s %10s %9s\n", p.label.c_str(),
                  Cell(p.interactivity, "%.2f").c_str(),
                  Cell(p.throughput_per_device, "%.2f").c_str(),
                  Cell(p.usd_per_million_tokens, "%.4g").c_str(),
                  Cell(p.joules_per_token, "%.4g").c_str(), on ? "yes" : "");
    out += line;
  }
  for (const std::string& e : s.excluded) out += "  excluded: " + e + "\n";
  if (s.at_interactivity > 0) {
    if (s.has_at) {
      std::snprintf(line, sizeof line,
                    "  at %.2f tok/s/user (%s): %s out tok/s/device, %s $/Mtok out, %s J/token\n",
                    s.at_interactivity,
                    s.at.interpolated ? ("interpolated " + s.at.label).c_str()
                                      : ("measured point " + s.at.label).c_str(),
                    Cell(s.at.throughput_per_device, "%.2f").c_str(),
                    Cell(s.at.usd_per_million_tokens, "%.4g").c_str(),
                    Cell(s.at.joules_per_token, "%.4g").c_str());
      out += line;
    } else {
      std::snprintf(line, sizeof line,
                    "  at %.2f tok/s/user: outside the frontier's range, not extrapolated\n",
                    s.at_interactivity);
      out += line;
    }
  }
  return out;
}

}  // namespace cb

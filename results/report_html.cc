#include "results/report_html.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "results/compare.h"
#include "results/report_assets.h"
#include "results/run_status.h"

namespace cb {
namespace {

using nlohmann::json;

/// The figure and provenance of a metric, null when absent or not finite.
json MetricJson(const RunRecord& r, const std::string& name) {
  const Metric* m = r.FindMetric(name);
  if (!m || !std::isfinite(m->value)) return nullptr;
  return {{"value", m->value}, {"unit", m->unit}, {"how", ProvenanceName(m->how)}};
}

int Devices(const RunRecord& r) {
  if (r.cost && r.cost->devices > 0) return r.cost->devices;
  if (r.cluster && r.cluster->world_size > 0) return r.cluster->world_size;
  return 1;
}

std::string ModelName(const RunRecord& r) {
  const WorkloadSpec& w = r.workload;
  return w.model.name.empty() ? w.model_ref : w.model.name;
}

/// The line a point belongs to on its model's chart: device, dtype and backend.
std::string SeriesName(const RunRecord& r) {
  std::string device = r.device.name.empty() ? r.device.backend : r.device.name;
  return device + " · " + std::string(DTypeName(r.workload.dtype)) + " (" + r.workload.backend +
         ")";
}

/// A point's visible label: the layout of a multi-device deployment, the batch or the load.
std::string PointLabel(const RunRecord& r) {
  std::string what = "b" + std::to_string(r.workload.batch);
  if (r.serving) {
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.4g/s", r.serving->target_rate);
    what = r.serving->concurrency > 0 ? "c" + std::to_string(r.serving->concurrency) : rate;
    if (r.workload.scenario == "single-stream") what = "1 stream";
  }
  if (r.deployment) {
    std::string layout;
    for (const PoolRecord& p : r.deployment->pools) {
      if (p.devices <= 1 && p.tp <= 1 && p.ep <= 1) continue;
      layout += (layout.empty() ? "" : "+") + (p.role == "mixed" ? "" : p.role.substr(0, 1)) +
                (p.ep > 1 ? "ep" + std::to_string(p.ep) : "tp" + std::to_string(p.tp)) + "x" +
                std::to_string(p.devices);
    }
    if (!layout.empty()) what += " " + layout;
  }
  return what;
}

/// Provenance of a frontier point: the weaker of its figures.
std::string PointHow(const RunRecord& r) {
  for (const char* name :
       {"tpot_seconds", "decode_tokens_per_second", "interactivity_tokens_per_second_per_user",
        "output_tokens_per_second_per_device"}) {
    const Metric* m = r.FindMetric(name);
    if (m && m->how != Provenance::kMeasured) return std::string(ProvenanceName(m->how));
  }
  return "measured";
}

json Num(double v) { return std::isfinite(v) && v > 0 ? json(v) : json(nullptr); }

/// The newest publishable run of each series (CompareKey), oldest first.
std::vector<const RunRecord*> NewestPublishable(const std::vector<LoadedRun>& runs) {
  std::map<std::string, const RunRecord*> newest;
  for (const LoadedRun& run : runs) {
    if (!run.record.Publishable()) continue;
    const RunRecord*& slot = newest[CompareKey(run.record)];
    if (!slot || RunTimeSeconds(run.record) >= RunTimeSeconds(*slot)) slot = &run.record;
  }
  std::vector<const RunRecord*> out;
  for (const auto& [key, r] : newest) out.push_back(r);
  return out;
}

/// One chart per model, one line per device/dtype/backend, the newest run of each series a
/// point (InferenceX style).
json Frontiers(const std::vector<const RunRecord*>& newest) {
  std::map<std::string, std::map<std::string, std::vector<const RunRecord*>>> models;
  for (const RunRecord* r : newest) {
    if (RunFrontierPoint(*r)) models[ModelName(*r)][SeriesName(*r)].push_back(r);
  }
  json out = json::array();
  for (const auto& [model, lines] : models) {
    json series = json::array();
    for (const auto& [name, records] : lines) {
      std::vector<FrontierPoint> plain;
      for (const RunRecord* r : records) plain.push_back(*RunFrontierPoint(*r));
      const std::vector<FrontierPoint> frontier = ParetoFrontier(plain);
      json pts = json::array(), line = json::array();
      std::string how = "measured";
      for (size_t i = 0; i < records.size(); ++i) {
        const FrontierPoint& p = plain[i];
        bool on = false;
        for (const auto& f : frontier) on |= f.label == p.label;
        const std::string point_how = PointHow(*records[i]);
        if (point_how != "measured") how = point_how;
        pts.push_back({{"x", p.interactivity},
                       {"y", p.throughput_per_device},
                       {"usd", Num(p.usd_per_million_tokens)},
                       {"jpt", Num(p.joules_per_token)},
                       {"label", PointLabel(*records[i])},
                       {"run_id", records[i]->run_id},
                       {"how", point_how},
                       {"on_frontier", on}});
      }
      for (const auto& f : frontier) {
        line.push_back({{"x", f.interactivity}, {"y", f.throughput_per_device}});
      }
      series.push_back({{"name", name}, {"how", how}, {"points", pts}, {"frontier", line}});
    }
    out.push_back({{"model", model}, {"series", series}});
  }
  return out;
}

std::string Cell(const json& metric) {
  if (metric.is_null()) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", metric["value"].get<double>());
  std::string s = buf;
  const std::string how = metric["how"];
  if (how == "modelled") s += "^";
  if (how == "extrapolated") s += "~";
  return s;
}

std::string RunsTable(const json& data) {
  std::string h =
      "<table id=\"runs\">\n<tr><th>start</th><th>run</th><th>status</th><th>how</th>"
      "<th>series</th><th>decode tok/s</th><th>TTFT s</th><th>TPOT s</th><th>USD/Mtok out</th>"
      "<th>J/token</th></tr>\n";
  for (const json& r : data["runs"]) {
    const std::string status = r["status"];
    h += "<tr><td class=\"text\">" + HtmlEscape(r["start_time"]) + "</td><td class=\"text\">" +
         HtmlEscape(r["run_id"]) + "</td><td class=\"text " +
         (status == "ok" ? "status-ok" : "status-bad") + "\" title=\"" +
         HtmlEscape(r["status_message"]) + "\">" + HtmlEscape(status) + "</td><td class=\"text\">" +
         HtmlEscape(r["how"]) + "</td><td class=\"text\" title=\"" + HtmlEscape(r["file"]) + "\">" +
         HtmlEscape(r["series"]) + "</td><td>" + HtmlEscape(Cell(r["decode_tokens_per_second"])) +
         "</td><td>" + HtmlEscape(Cell(r["ttft_seconds"])) + "</td><td>" +
         HtmlEscape(Cell(r["tpot_seconds"])) + "</td><td>" +
         HtmlEscape(Cell(r["cost_usd_per_million_output_tokens"])) + "</td><td>" +
         HtmlEscape(Cell(r["energy_joules_per_token"])) + "</td></tr>\n";
  }
  return h + "</table>\n";
}

}  // namespace

std::optional<FrontierPoint> RunFrontierPoint(const RunRecord& r) {
  if (!r.Publishable()) return std::nullopt;
  FrontierPoint p;
  if (const Metric* m = r.FindMetric("interactivity_tokens_per_second_per_user")) {
    p.interactivity = m->value;
  } else if (const Metric* tpot = r.FindMetric("tpot_seconds"); tpot && tpot->value > 0) {
    p.interactivity = 1 / tpot->value;
  }
  if (const Metric* m = r.FindMetric("output_tokens_per_second_per_device")) {
    p.throughput_per_device = m->value;
  } else if (const Metric* m = r.FindMetric("decode_tokens_per_second_per_device")) {
    p.throughput_per_device = m->value;
  } else if (const Metric* d = r.FindMetric("decode_tokens_per_second")) {
    p.throughput_per_device = d->value / Devices(r);
  }
  if (!(p.interactivity > 0) || !(p.throughput_per_device > 0) || !std::isfinite(p.interactivity) ||
      !std::isfinite(p.throughput_per_device)) {
    return std::nullopt;
  }
  if (const Metric* m = r.FindMetric("cost_usd_per_million_output_tokens")) {
    p.usd_per_million_tokens = m->value;
  }
  if (const Metric* m = r.FindMetric("energy_joules_per_token")) p.joules_per_token = m->value;
  p.label = r.run_id;
  return p;
}

json ReportData(const std::vector<LoadedRun>& runs, const std::string& source) {
  json doc = {{"source", source}, {"run_files", runs.size()}};
  const std::vector<const RunRecord*> newest = NewestPublishable(runs);
  doc["frontiers"] = Frontiers(newest);
  size_t points = 0;
  for (const json& f : doc["frontiers"]) {
    for (const json& s : f["series"]) points += s["points"].size();
  }
  doc["runs_without_frontier_point"] = runs.size() - points;

  // Bars: the newest publishable run of each series.
  json usd = json::array(), joules = json::array();
  for (const RunRecord* r : newest) {
    const std::string series = SeriesLabel(*r);
    for (auto [name, list] :
         {std::pair<const char*, json*>{"cost_usd_per_million_output_tokens", &usd},
          {"energy_joules_per_token", &joules}}) {
      const Metric* m = r->FindMetric(name);
      if (m && std::isfinite(m->value) && m->value > 0) {
        list->push_back({{"series", series}, {"value", m->value}, {"how", ProvenanceName(m->how)}});
      }
    }
  }
  doc["usd_bars"] = std::move(usd);
  doc["joules_bars"] = std::move(joules);
  doc["nights"] = SinceLastNight(runs);

  json table = json::array();
  for (const LoadedRun& run : runs) {
    const RunRecord& r = run.record;
    const json decode = MetricJson(r, "decode_tokens_per_second");
    table.push_back({{"run_id", r.run_id},
                     {"start_time", r.start_time},
                     {"status", RunStatusLabel(r)},
                     {"status_message", r.status_message},
                     {"how", decode.is_null() ? "-" : decode["how"]},
                     {"series", SeriesLabel(r)},
                     {"file", run.path},
                     {"decode_tokens_per_second", decode},
                     {"ttft_seconds", MetricJson(r, "ttft_seconds")},
                     {"tpot_seconds", MetricJson(r, "tpot_seconds")},
                     {"cost_usd_per_million_output_tokens",
                      MetricJson(r, "cost_usd_per_million_output_tokens")},
                     {"energy_joules_per_token", MetricJson(r, "energy_joules_per_token")}});
  }
  doc["runs"] = std::move(table);
  return doc;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string ScriptSafeJson(const json& doc) {
  // ensure_ascii: U+2028/2029 and every other non-ASCII character become \u escapes too.
  const std::string text = doc.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    // These only occur inside JSON strings, where \u escapes mean the same characters.
    if (c == '<')
      out += "\\u003c";
    else if (c == '>')
      out += "\\u003e";
    else if (c == '&')
      out += "\\u0026";
    else
      out += c;
  }
  return out;
}

std::string RenderReportHtml(const std::vector<LoadedRun>& runs, const std::string& source) {
  const json data = ReportData(runs, source);
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<title>clusterbench report: " + HtmlEscape(source) + "</title>\n";
  h += "<style>" + std::string(kReportStyle) + "</style>\n</head>\n<body>\n";
  h += "<h1>clusterbench report</h1>\n<p class=\"note\">" + std::to_string(runs.size()) +
       " run files from <code>" + HtmlEscape(source) +
       "</code>. Every figure says how it was obtained: filled marks and solid lines are "
       "measured, hollow marks and dashed lines modelled (simulated), ~ extrapolated; in the "
       "table ^ modelled, ~ extrapolated. Self-contained page: the charts are drawn by the "
       "script below from the embedded data, no network.</p>\n";
  h += "<noscript><p>The charts need JavaScript; the tables do not.</p></noscript>\n";
  h += NightsHtml(data["nights"]);
  h += "<h2>Interactivity frontier per model</h2>\n<p class=\"note\">x: tokens/s per user = 1 / "
       "TPOT; y: output tokens/s per device. One chart per model, every device on it; each "
       "point is the newest ok run of a series, labelled with its batch, load or layout; the "
       "line joins a device's Pareto frontier (up and to the right is better). " +
       std::to_string(data["runs_without_frontier_point"].get<size_t>()) +
       " runs have no point (not ok, an older run of a series, or no TPOT or throughput).</p>\n"
       "<div id=\"frontiers\"></div>\n";
  h += "<h2>Cost against interactivity</h2>\n<p class=\"note\">x: tokens/s per user; y: USD per "
       "million output tokens from the cost model each result records (lower is better).</p>\n"
       "<div id=\"cost-frontiers\"></div>\n";
  h += "<h2>Cost: USD per million output tokens</h2>\n<p class=\"note\">The newest ok run of each "
       "series (lighter bars: modelled).</p>\n<div id=\"usd\"></div>\n";
  h += "<h2>Energy: joules per token</h2>\n<p class=\"note\">The newest ok run of each series "
       "(lighter bars: modelled, e.g. a power model where no meter was readable).</p>\n"
       "<div id=\"joules\"></div>\n";
  h += "<h2>All runs</h2>\n" + RunsTable(data);
  h += "<script type=\"application/json\" id=\"cb-data\">" + ScriptSafeJson(data) + "</script>\n";
  h += "<script>" + std::string(kReportScript) + "</script>\n</body>\n</html>\n";
  return h;
}

}  // namespace cb

#include "results/report_html.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "results/compare.h"

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

std::string GroupName(const RunRecord& r) {
  const WorkloadSpec& w = r.workload;
  std::string device = r.device.name.empty() ? r.device.backend : r.device.name;
  return device + " · " + (w.model.name.empty() ? w.model_ref : w.model.name) + " · " +
         std::string(DTypeName(w.dtype));
}

std::string PointLabel(const RunRecord& r) {
  std::string what = r.workload.scenario + " batch " + std::to_string(r.workload.batch);
  if (r.serving) {
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.4g", r.serving->target_rate);
    what = r.workload.scenario + (r.serving->concurrency > 0
                                      ? " concurrency " + std::to_string(r.serving->concurrency)
                                      : " rate " + std::string(rate) + "/s");
  }
  return what + " (" + r.run_id + ")";
}

/// Provenance of a frontier point: the weaker of its two figures.
std::string PointHow(const RunRecord& r) {
  for (const char* name :
       {"tpot_seconds", "decode_tokens_per_second", "interactivity_tokens_per_second_per_user",
        "output_tokens_per_second_per_device"}) {
    const Metric* m = r.FindMetric(name);
    if (m && m->how != Provenance::kMeasured) return std::string(ProvenanceName(m->how));
  }
  return "measured";
}

constexpr const char* kStyle = R"CSS(
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td.text { text-align: left; }
.status-ok { color: #1a7f37; } .status-bad { color: #b42318; font-weight: bold; }
.note { color: #555; font-size: 0.85em; }
svg { background: #fff; border: 1px solid #ddd; margin: 0.5em 0; }
svg text { font-size: 11px; fill: #333; }
.axis line, .axis path { stroke: #888; }
.frontier-line { fill: none; stroke: #d1495b; stroke-width: 2; }
.point { fill: #00798c; fill-opacity: 0.75; } .point.on-frontier { fill: #d1495b; }
.bar { fill: #00798c; } .bar.modelled { fill: #8fc1c8; } .bar.extrapolated { fill: #edae49; }
#cb-error { color: #b42318; border: 2px solid #b42318; padding: 0.5em; }
)CSS";

/// Draws the charts from the embedded JSON with SVG; any exception ends up in #cb-error.
constexpr const char* kScript = R"JS(
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, attrs) {
    var t = el('text', Object.assign({x: x, y: y}, attrs || {}), parent);
    t.textContent = s;
    return t;
  }
  function fmt(v) {
    if (v === 0) return '0';
    var a = Math.abs(v);
    if (a >= 1e4 || a < 1e-3) return v.toExponential(2);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toPrecision(3);
  }
  function ticks(max, n) {
    var out = [];
    for (var i = 0; i <= n; i++) out.push(max * i / n);
    return out;
  }
  function scatter(container, f) {
    var W = 640, H = 380, L = 70, R = 20, T = 20, B = 50;
    var svg = el('svg', {width: W, height: H, 'class': 'frontier-chart',
                         'data-group': f.group, role: 'img'}, container);
    var maxX = 0, maxY = 0;
    f.points.forEach(function (p) { maxX = Math.max(maxX, p.x); maxY = Math.max(maxY, p.y); });
    maxX = maxX * 1.1 || 1; maxY = maxY * 1.1 || 1;
    function sx(x) { return L + (W - L - R) * x / maxX; }
    function sy(y) { return H - B - (H - T - B) * y / maxY; }
    var axis = el('g', {'class': 'axis'}, svg);
    el('line', {x1: L, y1: H - B, x2: W - R, y2: H - B}, axis);
    el('line', {x1: L, y1: T, x2: L, y2: H - B}, axis);
    ticks(maxX, 5).forEach(function (v) {
      el('line', {x1: sx(v), y1: H - B, x2: sx(v), y2: H - B + 4}, axis);
      text(axis, sx(v), H - B + 16, fmt(v), {'text-anchor': 'middle'});
    });
    ticks(maxY, 5).forEach(function (v) {
      el('line', {x1: L - 4, y1: sy(v), x2: L, y2: sy(v)}, axis);
      text(axis, L - 6, sy(v) + 4, fmt(v), {'text-anchor': 'end'});
    });
    text(svg, (L + W - R) / 2, H - 12, 'interactivity: tokens/s per user (1 / TPOT)',
         {'text-anchor': 'middle'});
    text(svg, 14, (T + H - B) / 2, 'output tokens/s per device',
         {'text-anchor': 'middle', transform: 'rotate(-90 14 ' + (T + H - B) / 2 + ')'});
    if (f.frontier.length > 0) {
      var d = f.frontier.map(function (p, i) {
        return (i ? 'L' : 'M') + sx(p.x).toFixed(1) + ' ' + sy(p.y).toFixed(1);
      }).join(' ');
      el('path', {d: d, 'class': 'frontier-line'}, svg);
    }
    f.points.forEach(function (p) {
      var c = el('circle', {cx: sx(p.x), cy: sy(p.y), r: 4,
                            'class': 'point' + (p.on_frontier ? ' on-frontier' : '')}, svg);
      el('title', {}, c).textContent = p.label + ': ' + fmt(p.x) + ' tok/s/user, ' +
          fmt(p.y) + ' tok/s/device (' + p.how + ')';
    });
  }
  function bars(container, id, rows, unit) {
    var rowH = 22, L = 330, R = 110, W = 760, T = 10;
    var H = T * 2 + rowH * Math.max(rows.length, 1);
    var svg = el('svg', {width: W, height: H, id: id, 'class': 'bar-chart'}, container);
    if (rows.length === 0) {
      text(svg, 10, T + 14, 'no run recorded this figure');
      return;
    }
    var max = 0;
    rows.forEach(function (r) { max = Math.max(max, r.value); });
    max = max || 1;
    rows.forEach(function (r, i) {
      var y = T + i * rowH;
      text(svg, L - 6, y + 15, r.series, {'text-anchor': 'end'});
      var w = Math.max(1, (W - L - R) * r.value / max);
      var bar = el('rect', {x: L, y: y + 3, width: w, height: rowH - 6,
                            'class': 'bar ' + r.how}, svg);
      el('title', {}, bar).textContent = r.series + ': ' + fmt(r.value) + ' ' + unit + ' (' +
          r.how + ')';
      text(svg, L + w + 4, y + 15, fmt(r.value) + (r.how === 'measured' ? '' : ' ' + r.how));
    });
  }
  try {
    var data = JSON.parse(document.getElementById('cb-data').textContent);
    var fr = document.getElementById('frontiers');
    if (data.frontiers.length === 0) {
      fr.appendChild(document.createTextNode('No ok run has both TPOT and throughput.'));
    }
    data.frontiers.forEach(function (f) {
      var h = document.createElement('h3');
      h.textContent = f.group;
      fr.appendChild(h);
      scatter(fr, f);
    });
    bars(document.getElementById('usd'), 'usd-bars', data.usd_bars, 'USD/Mtok');
    bars(document.getElementById('joules'), 'joules-bars', data.joules_bars, 'J/token');
    document.body.setAttribute('data-rendered', 'ok');
  } catch (e) {
    var div = document.createElement('div');
    div.id = 'cb-error';
    div.textContent = 'report script error: ' + (e && e.stack ? e.stack : e);
    document.body.insertBefore(div, document.body.firstChild);
  }
})();
)JS";

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
  p.label = PointLabel(r);
  return p;
}

json ReportData(const std::vector<LoadedRun>& runs, const std::string& source) {
  json doc = {{"source", source}, {"run_files", runs.size()}};
  // Frontier per device, model and dtype.
  std::map<std::string, std::vector<std::pair<FrontierPoint, std::string>>> groups;
  size_t without_point = 0;
  for (const LoadedRun& run : runs) {
    auto p = RunFrontierPoint(run.record);
    if (!p) {
      ++without_point;
      continue;
    }
    groups[GroupName(run.record)].emplace_back(*p, PointHow(run.record));
  }
  json frontiers = json::array();
  for (const auto& [group, points] : groups) {
    std::vector<FrontierPoint> plain;
    for (const auto& [p, how] : points) plain.push_back(p);
    const std::vector<FrontierPoint> frontier = ParetoFrontier(plain);
    json pts = json::array(), line = json::array();
    for (const auto& [p, how] : points) {
      bool on = false;
      for (const auto& f : frontier) on |= f.label == p.label;
      pts.push_back({{"x", p.interactivity},
                     {"y", p.throughput_per_device},
                     {"label", p.label},
                     {"how", how},
                     {"on_frontier", on}});
    }
    for (const auto& f : frontier) {
      line.push_back({{"x", f.interactivity}, {"y", f.throughput_per_device}, {"label", f.label}});
    }
    frontiers.push_back({{"group", group}, {"points", pts}, {"frontier", line}});
  }
  doc["frontiers"] = std::move(frontiers);
  doc["runs_without_frontier_point"] = without_point;

  // Bars: the newest ok run of each series.
  std::map<std::string, const RunRecord*> newest;
  for (const LoadedRun& run : runs) {
    if (!run.record.Publishable()) continue;
    const RunRecord*& slot = newest[CompareKey(run.record)];
    if (!slot || RunTimeSeconds(run.record) >= RunTimeSeconds(*slot)) slot = &run.record;
  }
  json usd = json::array(), joules = json::array();
  for (const auto& [key, r] : newest) {
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

  json table = json::array();
  for (const LoadedRun& run : runs) {
    const RunRecord& r = run.record;
    table.push_back({{"run_id", r.run_id},
                     {"start_time", r.start_time},
                     {"status", r.status},
                     {"status_message", r.status_message},
                     {"series", SeriesLabel(r)},
                     {"file", run.path},
                     {"decode_tokens_per_second", MetricJson(r, "decode_tokens_per_second")},
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
  h += "<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
  h += "<h1>clusterbench report</h1>\n<p class=\"note\">" + std::to_string(runs.size()) +
       " run files from <code>" + HtmlEscape(source) +
       "</code>. Figures are measured unless marked: ^ modelled, ~ extrapolated. Self-contained "
       "page: the charts are drawn by the script below from the embedded data, no network.</p>\n";
  h += "<noscript><p>The charts need JavaScript; the table below does not.</p></noscript>\n";
  h +=
      "<h2>Interactivity frontier per device</h2>\n<p class=\"note\">x: tokens/s per user = 1 / "
      "TPOT; y: output tokens/s per device. Every ok run of a device, model and dtype is a "
      "point; the line joins the Pareto frontier (no other run has both higher interactivity "
      "and higher throughput). " +
      std::to_string(data["runs_without_frontier_point"].get<size_t>()) +
      " runs have no point (not ok, or no TPOT or throughput).</p>\n<div id=\"frontiers\"></div>\n";
  h += "<h2>Cost: USD per million output tokens</h2>\n<p class=\"note\">The newest ok run of each "
       "series; from the cost model recorded in each result (lighter bars: modelled).</p>\n"
       "<div id=\"usd\"></div>\n";
  h += "<h2>Energy: joules per generated token</h2>\n<p class=\"note\">The newest ok run of each "
       "series (lighter bars: modelled, e.g. a CPU power model where no meter was readable).</p>\n"
       "<div id=\"joules\"></div>\n";
  h += "<h2>All runs</h2>\n<table id=\"runs\">\n<tr><th>start</th><th>run</th><th>status</th>"
       "<th>series</th><th>decode tok/s</th><th>TTFT s</th><th>TPOT s</th><th>USD/Mtok out</th>"
       "<th>J/token</th></tr>\n";
  for (const json& r : data["runs"]) {
    const std::string status = r["status"];
    h += "<tr><td class=\"text\">" + HtmlEscape(r["start_time"]) + "</td><td class=\"text\">" +
         HtmlEscape(r["run_id"]) + "</td><td class=\"text " +
         (status == "ok" ? "status-ok" : "status-bad") + "\" title=\"" +
         HtmlEscape(r["status_message"]) + "\">" + HtmlEscape(status) +
         "</td><td class=\"text\" title=\"" + HtmlEscape(r["file"]) + "\">" +
         HtmlEscape(r["series"]) + "</td><td>" + HtmlEscape(Cell(r["decode_tokens_per_second"])) +
         "</td><td>" + HtmlEscape(Cell(r["ttft_seconds"])) + "</td><td>" +
         HtmlEscape(Cell(r["tpot_seconds"])) + "</td><td>" +
         HtmlEscape(Cell(r["cost_usd_per_million_output_tokens"])) + "</td><td>" +
         HtmlEscape(Cell(r["energy_joules_per_token"])) + "</td></tr>\n";
  }
  h += "</table>\n";
  h += "<script type=\"application/json\" id=\"cb-data\">" + ScriptSafeJson(data) + "</script>\n";
  h += "<script>" + std::string(kScript) + "</script>\n</body>\n</html>\n";
  return h;
}

}  // namespace cb

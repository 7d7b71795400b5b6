// The report's "Since last night" section: the latest night of a ci/nightly results root
// against the one before, with clusterbench compare's matching, noise test and verdicts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "results/compare.h"
#include "results/report_html.h"

namespace cb {
namespace {

using nlohmann::json;

/// "2026-01-02T02-30-00Z" of ".../nights/2026-01-02T02-30-00Z/runs/x.json"; "" outside nights.
std::string NightOf(const std::string& path) {
  const size_t at = path.rfind("nights/");
  if (at == std::string::npos || (at > 0 && path[at - 1] != '/')) return "";
  const size_t start = at + 7, end = path.find('/', start);
  return end == std::string::npos ? "" : path.substr(start, end - start);
}

/// The metrics a morning reader looks at first; any other is shown when it regressed or
/// improved.
bool Headline(const std::string& name) {
  static const std::set<std::string> kNames = {"decode_tokens_per_second",
                                               "output_tokens_per_second_per_device",
                                               "ttft_seconds",
                                               "tpot_seconds",
                                               "cost_usd_per_million_output_tokens",
                                               "energy_joules_per_token",
                                               "goodput_requests_per_second"};
  return kNames.count(name) > 0;
}

json Value(bool present, double v) { return present && std::isfinite(v) ? json(v) : json(nullptr); }

std::string Fig(const json& v) {
  if (v.is_null()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v.get<double>());
  return buf;
}

}  // namespace

json SinceLastNight(const std::vector<LoadedRun>& runs) {
  std::map<std::string, std::vector<LoadedRun>> nights;
  for (const LoadedRun& r : runs) {
    const std::string night = NightOf(r.path);
    if (!night.empty()) nights[night].push_back(r);
  }
  if (nights.size() < 2) return nullptr;
  const auto latest = std::prev(nights.end()), previous = std::prev(latest);
  const CompareReport rep = CompareRuns(previous->second, latest->second, CompareOptions{});
  json series = json::array();
  for (const SeriesComparison& s : rep.series) {
    json metrics = json::array();
    for (const MetricComparison& m : s.metrics) {
      if (!Headline(m.name) && !m.regression && !m.improvement) continue;
      metrics.push_back({{"name", m.name},
                         {"unit", m.unit},
                         {"how", m.new_how.empty() ? m.base_how : m.new_how},
                         {"base", Value(m.in_base, m.base_value)},
                         {"new", Value(m.in_new, m.new_value)},
                         {"change_pct", m.in_base && m.in_new ? json(m.change_pct) : json(nullptr)},
                         {"better", BetterName(m.better)},
                         {"verdict", m.verdict}});
    }
    series.push_back({{"label", s.label},
                      {"base_status", s.base_status},
                      {"new_status", s.new_status},
                      {"regressions", s.regressions},
                      {"improvements", s.improvements},
                      {"metrics", metrics}});
  }
  // The morning reader's order: series with regressions first, then improvements.
  std::stable_sort(series.begin(), series.end(), [](const json& a, const json& b) {
    return std::pair(a["regressions"].get<int>(), a["improvements"].get<int>()) >
           std::pair(b["regressions"].get<int>(), b["improvements"].get<int>());
  });
  json only_base = json::array(), only_new = json::array();
  for (const UnmatchedSeries& u : rep.only_base) only_base.push_back(u.label);
  for (const UnmatchedSeries& u : rep.only_new) only_new.push_back(u.label);
  return {{"base", previous->first},
          {"new", latest->first},
          {"threshold_pct", rep.options.threshold_pct},
          {"regressions", rep.regressions},
          {"improvements", rep.improvements},
          {"series", series},
          {"only_base", only_base},
          {"only_new", only_new}};
}

std::string NightsHtml(const json& n) {
  if (n.is_null()) return "";
  const int regressions = n["regressions"], improvements = n["improvements"];
  std::string h =
      "<h2 id=\"since-last-night\">Since last night</h2>\n<p class=\"note\">Night <code>" +
      HtmlEscape(n["new"]) + "</code> against <code>" + HtmlEscape(n["base"]) +
      "</code>: <span class=\"" + (regressions ? "status-bad" : "status-ok") + "\">" +
      std::to_string(regressions) + " regression" + (regressions == 1 ? "" : "s") + "</span>, " +
      std::to_string(improvements) + " improvement" + (improvements == 1 ? "" : "s") +
      " (clusterbench compare: beyond the noise and worse than " + Fig(n["threshold_pct"]) +
      "%). Modelled figures do not vary by night; measured ones do.</p>\n";
  h += "<table id=\"nights\">\n<tr><th>series</th><th>metric</th><th>how</th><th>last night</th>"
       "<th>tonight</th><th>change</th><th>verdict</th></tr>\n";
  for (const json& s : n["series"]) {
    for (const json& m : s["metrics"]) {
      const std::string verdict = m["verdict"];
      const std::string cls = verdict == "regression"    ? "regression"
                              : verdict == "improvement" ? "improvement"
                                                         : "text";
      char change[32] = "-";
      if (!m["change_pct"].is_null()) {
        std::snprintf(change, sizeof change, "%+.1f%%", m["change_pct"].get<double>());
      }
      h += "<tr class=\"" + cls + "\"><td class=\"text\">" + HtmlEscape(s["label"]) +
           "</td><td class=\"text\">" + HtmlEscape(m["name"]) + "</td><td class=\"text\">" +
           HtmlEscape(m["how"]) + "</td><td>" + Fig(m["base"]) + "</td><td>" + Fig(m["new"]) +
           "</td><td>" + change + "</td><td class=\"text\">" + HtmlEscape(verdict) + "</td></tr>\n";
    }
  }
  h += "</table>\n";
  for (auto [key, what] :
       {std::pair{"only_base", "ran last night, not tonight"}, {"only_new", "new tonight"}}) {
    for (const json& label : n[key]) {
      h += "<p class=\"note\">" + HtmlEscape(label) + ": " + what + "</p>\n";
    }
  }
  return h;
}

}  // namespace cb

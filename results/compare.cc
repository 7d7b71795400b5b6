#include "results/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "harness/core/fmt.h"
#include "results/prometheus/metrics_mapping.h"
#include "results/welch.h"

namespace cb {
namespace {

/// Which way each metric improves: the first rule whose pattern occurs in the metric's name
/// (or, for unit rules, equals its unit) decides. Metrics no rule covers are shown, not judged.
struct DirectionRule {
  const char* pattern;
  bool by_unit;
  Better better;
};
constexpr DirectionRule kDirectionRules[] = {
    {"average_power_watts", false, Better::kNeither},  // lower power may just mean less work
    // A check of the measurement, not a figure of the system under test; its values are tiny
    // (1e-5) and their relative changes large and meaningless.
    {"harness_overhead", false, Better::kNeither},
    {"goodput", false, Better::kHigher},
    {"slo_attainment", false, Better::kHigher},
    {"interactivity", false, Better::kHigher},
    {"tokens_per_kwh", false, Better::kHigher},
    {"mfu_", false, Better::kHigher},
    {"mbu_", false, Better::kHigher},
    {"cost_usd", false, Better::kLower},
    {"joules", false, Better::kLower},
    {"latency", false, Better::kLower},
    {"per_second", false, Better::kHigher},  // tokens, FLOP, bytes, requests per second
    {"s", true, Better::kLower},             // ttft_seconds, tpot_seconds, ...
    {"tokens/s", true, Better::kHigher},
    {"USD/Mtok", true, Better::kLower},
    {"J", true, Better::kLower},
    {"J/token", true, Better::kLower},
};

/// Distributions that stand for the noise of a metric recorded without one, tried in order:
/// a phase's figures vary like that phase's throughput, whole-run figures like E2E latency.
std::vector<std::string> SpreadSources(const std::string& name) {
  // Energy is power over the whole measured window, whatever it is divided by.
  if (name.find("joules") != std::string::npos || name.find("kwh") != std::string::npos ||
      name.find("watts") != std::string::npos) {
    return {"e2e_latency_seconds", "decode_tokens_per_second", "output_tokens_per_second"};
  }
  if (name.find("prefill") != std::string::npos || name.find("input") != std::string::npos) {
    return {"prefill_tokens_per_second", "ttft_seconds", "e2e_latency_seconds"};
  }
  if (name.find("decode") != std::string::npos || name.find("output") != std::string::npos ||
      name.find("per_token") != std::string::npos ||
      name.find("tokens_per_kwh") != std::string::npos) {
    return {"decode_tokens_per_second", "output_tokens_per_second", "tpot_seconds",
            "e2e_latency_seconds"};
  }
  return {"e2e_latency_seconds", "decode_tokens_per_second", "output_tokens_per_second"};
}

/// Raw samples behind a metric, from the run's per-repetition timings, in the metric's unit:
/// offline runs only (other scenarios time requests, not repetitions). Empty otherwise.
std::vector<double> RawSamples(const RunRecord& r, const std::string& name) {
  std::vector<double> out;
  if (r.workload.scenario != "offline") return out;
  const double batch = static_cast<double>(r.workload.batch);
  for (const RepetitionSample& s : r.samples) {
    double decode = 0;
    for (double step : s.decode_step_s) decode += step;
    if (name == "ttft_seconds") {
      out.push_back(s.prefill_s);
    } else if (name == "tpot_seconds") {
      out.insert(out.end(), s.decode_step_s.begin(), s.decode_step_s.end());
    } else if (name == "e2e_latency_seconds") {
      out.push_back(s.e2e_s);
    } else if (name == "prefill_tokens_per_second" && s.prefill_s > 0) {
      out.push_back(batch * static_cast<double>(r.workload.prompt_len) / s.prefill_s);
    } else if (name == "decode_tokens_per_second" && decode > 0) {
      out.push_back(batch * static_cast<double>(s.decode_step_s.size()) / decode);
    } else {
      return {};
    }
  }
  return out;
}

/// Mann-Whitney needs this many samples a side to be able to reach p < 0.05.
constexpr size_t kMinRankSamples = 4;

bool HasSpread(const Metric* m) {
  return m && m->has_distribution && m->dist.count >= 2 && std::isfinite(m->dist.stddev) &&
         std::isfinite(m->dist.mean);
}

struct NoiseTest {
  std::string test = "none";  ///< "mann-whitney", "welch" or "none"
  double p_value = -1;
  bool significant = false;
};

/// The metric's own noise test: Mann-Whitney on the raw samples of both runs where there are
/// enough, else Welch's t-test on both recorded distributions, else none.
NoiseTest TestSamples(const RunRecord& base, const RunRecord& next, const std::string& name,
                      const CompareOptions& opt) {
  NoiseTest t;
  const std::vector<double> raw_b = RawSamples(base, name), raw_n = RawSamples(next, name);
  const Metric* b = base.FindMetric(name);
  const Metric* n = next.FindMetric(name);
  if (raw_b.size() >= kMinRankSamples && raw_n.size() >= kMinRankSamples) {
    t.test = "mann-whitney";
    t.p_value = MannWhitneyTwoSidedP(raw_b, raw_n);
  } else if (HasSpread(b) && HasSpread(n)) {
    t.test = "welch";
    t.p_value = WelchTwoSidedP(b->dist.mean, b->dist.stddev, static_cast<double>(b->dist.count),
                               n->dist.mean, n->dist.stddev, static_cast<double>(n->dist.count));
  } else {
    return t;
  }
  t.significant = t.p_value < opt.alpha;
  return t;
}

std::string Signed(double pct) {
  if (!std::isfinite(pct)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.1f%%", pct);
  return buf;
}

/// The newest run of each series, with the number of runs the series had.
struct Newest {
  const LoadedRun* run = nullptr;
  double time = -1;
  int runs = 0;
};

std::map<std::string, Newest> NewestBySeries(const std::vector<LoadedRun>& runs) {
  std::map<std::string, Newest> out;
  for (const LoadedRun& r : runs) {
    Newest& n = out[CompareKey(r.record)];
    ++n.runs;
    const double t = RunTimeSeconds(r.record);
    // Ties (same timestamp) go to the later path, which sorts after for run-id named files.
    if (!n.run || t >= n.time) {
      n.run = &r;
      n.time = t;
    }
  }
  return out;
}

MetricComparison CompareMetric(const std::string& name, const RunRecord& base,
                               const RunRecord& next, bool judge, const CompareOptions& opt) {
  MetricComparison c;
  c.name = name;
  const Metric* b = base.FindMetric(name);
  const Metric* n = next.FindMetric(name);
  c.in_base = b != nullptr;
  c.in_new = n != nullptr;
  const Metric* any = b ? b : n;
  c.unit = any->unit;
  c.better = BetterDirection(name, c.unit);
  if (b) {
    c.base_value = b->value;
    c.base_how = std::string(ProvenanceName(b->how));
  }
  if (n) {
    c.new_value = n->value;
    c.new_how = std::string(ProvenanceName(n->how));
  }
  if (!b || !n) {
    c.test = "none";
    c.verdict = b ? "not judged: only in base" : "not judged: only in new";
    return c;
  }
  const bool base_zero = c.base_value == 0;
  c.change_pct = base_zero ? 0 : (c.new_value - c.base_value) / std::fabs(c.base_value) * 100;

  // Noise: a test on the metric's own samples; else, for a figure derived from another (MFU,
  // cost, energy per token), that metric's test; else the spread of a related distribution;
  // else none (the threshold alone decides).
  const NoiseTest own = TestSamples(base, next, name, opt);
  if (own.test != "none") {
    c.test = own.test;
    c.p_value = own.p_value;
    c.significant = own.significant;
  } else {
    c.test = "none";
    for (const std::string& source : SpreadSources(name)) {
      const NoiseTest related = TestSamples(base, next, source, opt);
      if (related.test == "none") continue;
      c.test = related.test;
      c.p_value = related.p_value;
      c.significant = related.significant;
      c.spread_of = source;
      break;
    }
    for (const std::string& source : SpreadSources(name)) {
      if (c.test != "none") break;
      const Metric* sb = base.FindMetric(source);
      const Metric* sn = next.FindMetric(source);
      if (!HasSpread(sb) && !HasSpread(sn)) continue;
      const double cvb = HasSpread(sb) ? std::fabs(sb->dist.cv) : 0;
      const double cvn = HasSpread(sn) ? std::fabs(sn->dist.cv) : 0;
      c.test = "spread";
      c.spread_of = source;
      c.noise_pct = 2 * std::sqrt(cvb * cvb + cvn * cvn) * 100;
      c.significant = std::fabs(c.change_pct) > c.noise_pct;
    }
    if (c.test == "none") c.significant = c.base_value != c.new_value;
  }
  c.worse = (c.better == Better::kHigher && c.new_value < c.base_value) ||
            (c.better == Better::kLower && c.new_value > c.base_value);

  if (b->how != n->how) {
    c.verdict = "not judged: " + c.base_how + " in base, " + c.new_how + " in new";
  } else if (!judge) {
    c.verdict = "not judged: a run is not ok";
  } else if (c.better == Better::kNeither) {
    c.verdict = "not judged: no better direction";
  } else if (base_zero && c.new_value != 0) {
    c.verdict = "not judged: base is 0";
  } else if (c.new_value == c.base_value) {
    c.verdict = "unchanged";
  } else if (!c.significant) {
    c.verdict = "within noise";
  } else if (std::fabs(c.change_pct) <= opt.threshold_pct) {
    c.verdict = "below threshold";
  } else if (c.worse) {
    c.verdict = "regression";
    c.regression = true;
  } else {
    c.verdict = "improvement";
    c.improvement = true;
  }
  return c;
}

SeriesComparison CompareSeries(const std::string& key, const Newest& base, const Newest& next,
                               const CompareOptions& opt) {
  const RunRecord& b = base.run->record;
  const RunRecord& n = next.run->record;
  SeriesComparison s;
  s.key = key;
  s.label = SeriesLabel(n);
  s.base_path = base.run->path;
  s.new_path = next.run->path;
  s.base_status = b.status;
  s.new_status = n.status;
  s.base_run_id = b.run_id;
  s.new_run_id = n.run_id;
  s.base_runs = base.runs;
  s.new_runs = next.runs;
  // Shortened or unstable runs (validity rules) are shown like invalid ones, not judged.
  const bool both_ok = b.Publishable() && n.Publishable();
  auto note = [&](const char* side, const RunRecord& r) {
    if (r.Publishable()) return;
    std::string what = r.status;
    std::string why = r.status_message;
    if (r.status == "ok" && r.validity) {
      what = r.validity->label;
      why.clear();
      for (const std::string& reason : r.validity->reasons)
        why += (why.empty() ? "" : "; ") + reason;
    }
    s.notes.push_back(std::string(side) + " run is " + what + (why.empty() ? "" : ": ") + why +
                      " (its figures are not judged)");
  };
  note("base", b);
  note("new", n);
  if (b.status == "ok" && n.status == "failed") {
    s.notes.push_back("regression: the series ran in base and fails in new");
    ++s.regressions;
  }
  if (b.extrapolated != n.extrapolated) {
    s.notes.push_back(std::string("one side is extrapolated from a partial-layer run: ") +
                      (b.extrapolated ? "base" : "new"));
  }
  std::set<std::string> names;
  for (const Metric& m : b.metrics) names.insert(m.name);
  for (const Metric& m : n.metrics) names.insert(m.name);
  std::vector<std::string> mismatched;
  for (const std::string& name : names) {
    MetricComparison c = CompareMetric(name, b, n, both_ok, opt);
    if (c.in_base && c.in_new && c.base_how != c.new_how) mismatched.push_back(name);
    s.regressions += c.regression;
    s.improvements += c.improvement;
    s.metrics.push_back(std::move(c));
  }
  if (!mismatched.empty()) {
    std::string list;
    for (const auto& m : mismatched) list += (list.empty() ? "" : ", ") + m;
    s.notes.push_back("provenance differs (modelled vs measured), not judged: " + list);
  }
  return s;
}

std::string MdEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|' || c == '*' || c == '`' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string TestText(const MetricComparison& c) {
  const std::string of = c.spread_of.empty() ? "" : " (" + c.spread_of + ")";
  if (c.test == "welch") return "Welch p=" + Fmt(c.p_value, "%.2g") + of;
  if (c.test == "mann-whitney") return "Mann-Whitney p=" + Fmt(c.p_value, "%.2g") + of;
  if (c.test == "spread") return "spread ±" + Fmt(c.noise_pct, "%.1f") + "% (" + c.spread_of + ")";
  return c.in_base && c.in_new ? "none recorded" : "-";
}

}  // namespace

std::string_view BetterName(Better b) {
  switch (b) {
    case Better::kHigher:
      return "higher";
    case Better::kLower:
      return "lower";
    default:
      return "neither";
  }
}

Better BetterDirection(const std::string& name, const std::string& unit) {
  for (const DirectionRule& r : kDirectionRules) {
    if (r.by_unit ? unit == r.pattern : name.find(r.pattern) != std::string::npos) return r.better;
  }
  return Better::kNeither;
}

std::string CompareKey(const RunRecord& r) {
  std::string key = prom::SeriesKey(r);
  // The host and device UUID are not series labels (clusterbench_run_info carries them), but
  // results of different machines are not the same measurement.
  key += "host=" + r.host + "\x1f" + "uuid=" + r.device.uuid + "\x1f";
  key += "layers_run=" + std::to_string(r.layers_run) + "\x1f";
  if (r.layer_plan.kinds.size() > 1) {  // which layers of a mixed model (older files: unknown)
    key += "layers=";
    for (int l : r.layer_plan.layers) key += std::to_string(l) + ",";
    key += "\x1f";
  }
  if (r.serving) {
    key += "load=" + r.serving->load + "\x1f" + "rate=" + Fmt(r.serving->target_rate, "%.17g") +
           "\x1f" + "concurrency=" + std::to_string(r.serving->concurrency) + "\x1f";
  }
  if (r.sweep) key += "sweep=" + r.sweep->axis + ":" + Fmt(r.sweep->value, "%.17g") + "\x1f";
  if (r.cluster) {
    key += "tp=" + std::to_string(r.cluster->tp) + "\x1f" + "dp=" + std::to_string(r.cluster->dp) +
           "\x1f" + "ep=" + std::to_string(r.cluster->ep) + "\x1f";
  }
  return key;
}

std::string SeriesLabel(const RunRecord& r) {
  const WorkloadSpec& w = r.workload;
  std::string label = w.model.name.empty() ? w.model_ref : w.model.name;
  label += " " + (w.backend.empty() ? r.device.backend : w.backend);
  if (!r.device.name.empty()) label += " (" + r.device.name + ")";
  label += " " + std::string(DTypeName(w.dtype)) + " " + w.scenario + " b" +
           std::to_string(w.batch) + " p" + std::to_string(w.prompt_len) + " g" +
           std::to_string(w.gen_len);
  if (r.layers_run > 0 && r.layers_run != w.model.num_layers) {
    label += " layers " + std::to_string(r.layers_run);
  }
  if (r.serving) {
    label += r.serving->concurrency > 0 ? " concurrency " + std::to_string(r.serving->concurrency)
                                        : " rate " + Fmt(r.serving->target_rate, "%.4g") + "/s";
  }
  if (r.cluster) {
    label += " tp" + std::to_string(r.cluster->tp) + "xdp" + std::to_string(r.cluster->dp);
    if (r.cluster->ep > 1) label += " ep" + std::to_string(r.cluster->ep);
  }
  if (!r.host.empty()) label += " @" + r.host;
  return label;
}

CompareReport CompareRuns(const std::vector<LoadedRun>& base, const std::vector<LoadedRun>& next,
                          const CompareOptions& options) {
  CompareReport report;
  report.options = options;
  report.base_files = base.size();
  report.new_files = next.size();
  const auto b = NewestBySeries(base);
  const auto n = NewestBySeries(next);
  for (const auto& [key, nb] : b) {
    auto it = n.find(key);
    if (it == n.end()) {
      report.only_base.push_back(
          {SeriesLabel(nb.run->record), nb.run->path, nb.run->record.status});
      continue;
    }
    SeriesComparison s = CompareSeries(key, nb, it->second, options);
    report.regressions += s.regressions;
    report.improvements += s.improvements;
    report.series.push_back(std::move(s));
  }
  for (const auto& [key, nn] : n) {
    if (!b.count(key)) {
      report.only_new.push_back({SeriesLabel(nn.run->record), nn.run->path, nn.run->record.status});
    }
  }
  std::sort(report.series.begin(), report.series.end(),
            [](const SeriesComparison& x, const SeriesComparison& y) { return x.label < y.label; });
  return report;
}

std::string CompareToMarkdown(const CompareReport& r) {
  std::string out = "# clusterbench compare\n\n";
  out += "- BASE: `" + r.base_source + "` (" + std::to_string(r.base_files) + " result files)\n";
  out += "- NEW: `" + r.new_source + "` (" + std::to_string(r.new_files) + " result files)\n";
  out += "- A regression is a change beyond the noise (significance level " + Fmt(r.options.alpha) +
         ") and worse by more than " + Fmt(r.options.threshold_pct) + "%.\n\n";
  out += "**" + std::to_string(r.regressions) + " regression" + (r.regressions == 1 ? "" : "s") +
         ", " + std::to_string(r.improvements) + " improvement" + (r.improvements == 1 ? "" : "s") +
         "** in " + std::to_string(r.series.size()) + " matched series; " +
         std::to_string(r.only_base.size()) + " only in BASE, " +
         std::to_string(r.only_new.size()) + " only in NEW.\n";
  for (const SeriesComparison& s : r.series) {
    out += "\n## " + MdEscape(s.label) + "\n\n";
    out += "BASE `" + s.base_path + "` (" + s.base_status + ", " + std::to_string(s.base_runs) +
           " run" + (s.base_runs == 1 ? "" : "s") + " of this series, newest used); NEW `" +
           s.new_path + "` (" + s.new_status + ", " + std::to_string(s.new_runs) + " run" +
           (s.new_runs == 1 ? "" : "s") + ")\n\n";
    out += "| metric | unit | how | base | new | change | better | noise test | verdict |\n";
    out += "|---|---|---|---:|---:|---:|---|---|---|\n";
    for (const MetricComparison& c : s.metrics) {
      const std::string how = c.base_how == c.new_how || c.base_how.empty() || c.new_how.empty()
                                  ? (c.base_how.empty() ? c.new_how : c.base_how)
                                  : c.base_how + " → " + c.new_how;
      std::string verdict = MdEscape(c.verdict);
      if (c.regression || c.improvement) verdict = "**" + verdict + "**";
      out += "| " + MdEscape(c.name) + " | " + MdEscape(c.unit) + " | " + how + " | " +
             (c.in_base ? Fmt(c.base_value) : "-") + " | " + (c.in_new ? Fmt(c.new_value) : "-") +
             " | " + (c.in_base && c.in_new ? Signed(c.change_pct) : "-") + " | " +
             std::string(BetterName(c.better)) + " | " + TestText(c) + " | " + verdict + " |\n";
    }
    if (!s.notes.empty()) {
      out += "\n";
      for (const std::string& note : s.notes) out += "- " + MdEscape(note) + "\n";
    }
  }
  auto unmatched = [&](const char* title, const std::vector<UnmatchedSeries>& list) {
    if (list.empty()) return;
    out += std::string("\n## ") + title + "\n\n";
    for (const auto& u : list) {
      out += "- " + MdEscape(u.label) + " (" + u.status + ", `" + u.path + "`)\n";
    }
  };
  unmatched("Only in BASE (not compared)", r.only_base);
  unmatched("Only in NEW (not compared)", r.only_new);
  return out;
}

nlohmann::json CompareToJson(const CompareReport& r) {
  using nlohmann::json;
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json doc = {{"base", {{"source", r.base_source}, {"result_files", r.base_files}}},
              {"new", {{"source", r.new_source}, {"result_files", r.new_files}}},
              {"threshold_pct", r.options.threshold_pct},
              {"alpha", r.options.alpha},
              {"regressions", r.regressions},
              {"improvements", r.improvements},
              {"exit_code", r.HasRegression() ? 1 : 0}};
  json series = json::array();
  for (const SeriesComparison& s : r.series) {
    json metrics = json::array();
    for (const MetricComparison& c : s.metrics) {
      json m = {
          {"name", c.name},
          {"unit", c.unit},
          {"better", BetterName(c.better)},
          {"base",
           c.in_base ? json{{"value", num(c.base_value)}, {"how", c.base_how}} : json(nullptr)},
          {"new", c.in_new ? json{{"value", num(c.new_value)}, {"how", c.new_how}} : json(nullptr)},
          {"change_pct", c.in_base && c.in_new ? num(c.change_pct) : json(nullptr)},
          {"test", c.test},
          {"significant", c.significant},
          {"worse", c.worse},
          {"regression", c.regression},
          {"improvement", c.improvement},
          {"verdict", c.verdict}};
      if (c.test == "welch" || c.test == "mann-whitney") m["p_value"] = num(c.p_value);
      if (c.test == "spread") m["noise_pct"] = num(c.noise_pct);
      if (!c.spread_of.empty()) m["test_of"] = c.spread_of;
      metrics.push_back(std::move(m));
    }
    series.push_back({{"label", s.label},
                      {"base",
                       {{"path", s.base_path},
                        {"run_id", s.base_run_id},
                        {"status", s.base_status},
                        {"runs", s.base_runs}}},
                      {"new",
                       {{"path", s.new_path},
                        {"run_id", s.new_run_id},
                        {"status", s.new_status},
                        {"runs", s.new_runs}}},
                      {"regressions", s.regressions},
                      {"improvements", s.improvements},
                      {"notes", s.notes},
                      {"metrics", std::move(metrics)}});
  }
  doc["series"] = std::move(series);
  auto unmatched = [](const std::vector<UnmatchedSeries>& list) {
    json a = json::array();
    for (const auto& u : list)
      a.push_back({{"label", u.label}, {"path", u.path}, {"status", u.status}});
    return a;
  };
  doc["only_base"] = unmatched(r.only_base);
  doc["only_new"] = unmatched(r.only_new);
  return doc;
}

}  // namespace cb

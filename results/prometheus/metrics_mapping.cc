#include "results/prometheus/metrics_mapping.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <set>
#include <sstream>

#include "results/run_status.h"
#include "workloads/moe_routing.h"

namespace cb::prom {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr const char* kLatency = "clusterbench_latency_seconds";

ClientMetric::Label L(const std::string& n, const std::string& v) { return {n, v}; }

std::vector<ClientMetric::Label> ToLabels(const LabelList& list) {
  std::vector<ClientMetric::Label> out;
  out.reserve(list.size());
  for (const auto& [n, v] : list) out.push_back(L(n, v));
  return out;
}

LabelList With(LabelList base, std::initializer_list<std::pair<std::string, std::string>> more) {
  for (const auto& p : more) {
    if (!p.first.empty()) base.push_back(p);
  }
  return base;
}

std::string How(Provenance p) { return std::string(ProvenanceName(p)); }

}  // namespace

double RunEndSeconds(const RunRecord& r) {
  const double end = ParseIso8601(r.end_time);
  return std::isnan(end) ? ParseIso8601(r.start_time) : end;
}

std::vector<SeriesLatest> LatestPerSeries(const std::vector<const RunRecord*>& runs) {
  std::vector<SeriesLatest> out;
  std::vector<double> latest_end;
  std::map<std::string, size_t> index;
  for (const RunRecord* r : runs) {
    double end = RunEndSeconds(*r);
    if (std::isnan(end)) end = 0;
    auto [it, fresh] = index.emplace(SeriesKey(*r), out.size());
    if (fresh) {
      out.push_back({r, -1});
      latest_end.push_back(end);
    } else if (end >= latest_end[it->second]) {
      out[it->second].latest = r;
      latest_end[it->second] = end;
    }
    if (r->Publishable()) {
      out[it->second].last_success_s = std::max(out[it->second].last_success_s, end);
    }
  }
  return out;
}

std::vector<SeriesLatest> LatestPerSeries(const std::vector<RunRecord>& runs) {
  std::vector<const RunRecord*> ptrs;
  ptrs.reserve(runs.size());
  for (const RunRecord& r : runs) ptrs.push_back(&r);
  return LatestPerSeries(ptrs);
}

std::string ClusterName(const RunRecord& r) {
  if (!r.cluster_name.empty()) return r.cluster_name;
  if (r.deployment && !r.deployment->system.empty()) return r.deployment->system;
  if (r.device.simulated && !r.workload.deployment.system.empty()) {
    return r.workload.deployment.system;
  }
  return r.device.host.empty() ? r.host : r.device.host;
}

static std::string ServerLoad(const WorkloadSpec& w, bool rate) {
  if (w.scenario != "server") return "";
  if (rate) {
    if (!(w.serving.rate > 0)) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", w.serving.rate);
    return buf;
  }
  return w.serving.concurrency > 0 ? std::to_string(w.serving.concurrency) : "";
}

LabelList SeriesLabels(const RunRecord& r) {
  const WorkloadSpec& w = r.workload;
  LabelList l = {{"model", w.model.name},
                 {"backend", w.backend.empty() ? r.device.backend : w.backend},
                 {"device", r.device.name},
                 {"dtype", std::string(DTypeName(w.dtype))},
                 {"batch", std::to_string(w.batch)},
                 {"prompt_len", std::to_string(w.prompt_len)},
                 {"gen_len", std::to_string(w.gen_len)},
                 {"scenario", w.scenario},
                 // MoE runs with skewed routing (absent for uniform routing and dense models).
                 {"routing", RoutingName(w.model)},
                 // Server runs: the offered load (absent, as empty labels are, elsewhere).
                 {"rate", ServerLoad(w, true)},
                 {"concurrency", ServerLoad(w, false)},
                 {"cluster", ClusterName(r)}};
  LabelList out;
  for (auto& p : l) {
    if (!p.second.empty()) out.push_back(std::move(p));
  }
  return out;
}

std::string SeriesKey(const RunRecord& r) {
  std::string key;
  for (const auto& [n, v] : SeriesLabels(r)) key += n + "=" + v + "\x1f";
  return key;
}

MetricFamily& FamilySet::Family(const std::string& name, const std::string& help, MetricType type) {
  auto it = index_.find(name);
  if (it != index_.end()) return families_[it->second];
  index_[name] = families_.size();
  families_.push_back(MetricFamily{name, help, type, {}});
  return families_.back();
}

void FamilySet::AddValue(const std::string& name, const std::string& help, const LabelList& labels,
                         double value) {
  AddGauge(name, help, labels, value);
}

void FamilySet::AddGauge(const std::string& name, const std::string& help, const LabelList& labels,
                         double value) {
  ClientMetric m;
  m.label = ToLabels(labels);
  m.gauge.value = value;
  Family(name, help, MetricType::Gauge).metric.push_back(std::move(m));
}

void FamilySet::AddCounter(const std::string& name, const std::string& help,
                           const LabelList& labels, double value) {
  ClientMetric m;
  m.label = ToLabels(labels);
  m.counter.value = value;
  Family(name, help, MetricType::Counter).metric.push_back(std::move(m));
}

void FamilySet::AddLatency(const Metric& metric, const char* kind, const LabelList& labels,
                           bool nan) {
  ClientMetric m;
  m.label = ToLabels(With(labels, {{"kind", kind}, {"how", How(metric.how)}}));
  const Distribution& d = metric.dist;
  if (nan) {
    m.summary.sample_count = 0;
    m.summary.sample_sum = kNaN;
    for (double q : {0.0, 0.5, 0.9, 0.99, 1.0}) m.summary.quantile.push_back({q, kNaN});
  } else if (metric.has_distribution && d.count > 0) {
    m.summary.sample_count = d.count;
    m.summary.sample_sum = d.mean * static_cast<double>(d.count);
    m.summary.quantile = {{0.0, d.min}, {0.5, d.p50}, {0.9, d.p90}, {0.99, d.p99}, {1.0, d.max}};
  } else {  // a single figure: one observation
    m.summary.sample_count = 1;
    m.summary.sample_sum = metric.value;
    m.summary.quantile = {{0.5, metric.value}};
  }
  Family(kLatency, FamilyHelp(kLatency), MetricType::Summary).metric.push_back(std::move(m));
}

void FamilySet::AddStatus(const RunRecord& r, const LabelList& base) {
  const std::string label = RunStatusLabel(r);
  LabelList info = With(base, {{"version", r.tool_version},
                               {"git_commit", r.git_commit},
                               {"device_kind", r.device.kind},
                               {"Hostname", r.host},
                               {"UUID", r.device.uuid}});
  std::erase_if(info, [](const auto& p) { return p.second.empty(); });
  AddGauge("clusterbench_run_info",
           "Always 1: what produced the latest run of the series: tool version, git commit, "
           "device kind, and the host (Hostname) and device UUID as DCGM-exporter spells them, "
           "for joins. Not series labels: a job that moves to another node updates its series.",
           info, 1);
  AddGauge("clusterbench_run_valid",
           "1 when the latest run of the series may be published as valid (status ok: verified, "
           "no NaN, not shortened or unstable), else 0; equals "
           "clusterbench_run_status{status=\"ok\"}.",
           base, label == "ok" ? 1 : 0);
  for (const char* s : kRunStatusLabels) {
    AddGauge("clusterbench_run_status",
             "1 for the outcome of the latest run of the series, 0 for the others: ok, "
             "shortened or unstable (ok but below the validity rules' minimums or too noisy), "
             "invalid, failed, skipped.",
             With(base, {{"status", s}}), label == s ? 1 : 0);
  }
}

void FamilySet::AddNaNFigures(const RunRecord& r, const LabelList& base) {
  const Provenance how = r.extrapolated ? Provenance::kExtrapolated : Provenance::kMeasured;
  for (const KnownMetric& k : KnownMetrics()) {
    if (!ScopeApplies(k.scope, r)) continue;
    Metric placeholder;
    placeholder.how = how;
    if (std::string(k.family) == kLatency) {
      AddLatency(placeholder, k.label_value, base, true);
    } else {
      AddValue(k.family, FamilyHelp(k.family),
               With(base, {{k.label_name, k.label_value}, {"how", How(how)}}), kNaN);
    }
  }
}

void FamilySet::AddFigures(const RunRecord& r, const LabelList& base) {
  std::set<std::string> known_names, known_records;
  for (const KnownMetric& k : KnownMetrics()) {
    known_names.insert(k.family);
    known_records.insert(k.record_name);
  }
  for (const KnownMetric& k : KnownMetrics()) {
    const Metric* m = r.FindMetric(k.record_name);
    if (!m) continue;
    if (std::string(k.family) == kLatency) {
      AddLatency(*m, k.label_value, base, false);
    } else {
      AddValue(k.family, FamilyHelp(k.family),
               With(base, {{k.label_name, k.label_value}, {"how", How(m->how)}}),
               m->value * k.scale);
    }
  }
  // Metrics the mapping does not know yet: exported generically instead of dropped.
  std::set<std::string> seen;
  for (const Metric& m : r.metrics) {
    if (known_records.count(m.name) || !seen.insert(m.name).second) continue;
    std::string name = "clusterbench_" + SanitizeName(m.name);
    for (const char* reserved : {"_total", "_count", "_sum", "_bucket"}) {
      if (name.ends_with(reserved)) name.resize(name.size() - std::string(reserved).size());
    }
    if (known_names.count(name) || name.starts_with("clusterbench_run_") ||
        name.starts_with("clusterbench_last_") || name.starts_with("clusterbench_verification_")) {
      name = "clusterbench_result_" + SanitizeName(m.name);
    }
    AddValue(name,
             "The result file's metric '" + m.name + "' (" + (m.unit.empty() ? "?" : m.unit) +
                 "), exported as is until it has a dedicated mapping.",
             With(base, {{"how", How(m.how)}}), m.value);
  }
}

void FamilySet::AddRun(const RunRecord& r, const AddOptions& opts) {
  const LabelList base = SeriesLabels(r);
  // Identity and status: always, whatever happened to the run.
  AddStatus(r, base);
  // A shortened or unstable run (validity rules) is kept out of the valid series like an
  // invalid one.
  const bool ok = r.Publishable();
  const double end = RunEndSeconds(r);
  if (!std::isnan(end)) {
    AddGauge("clusterbench_last_run_timestamp_seconds",
             "When the latest run of the series ended, successful or not (Unix time).", base, end);
  }
  const double start = ParseIso8601(r.start_time);
  if (!std::isnan(start) && !std::isnan(end) && end >= start) {
    AddGauge("clusterbench_run_duration_seconds",
             "Wall time of the latest run of the series: verification, warm-up and repetitions.",
             With(base, {{"how", "measured"}}), end - start);
  }
  const double last_success = opts.last_success_s >= 0 ? opts.last_success_s : (ok ? end : -1);
  if (last_success >= 0 && !std::isnan(last_success)) {
    AddGauge("clusterbench_last_success_timestamp_seconds",
             "When the latest successful (status ok) run of the series ended (Unix time). A "
             "failed run leaves it alone.",
             base, last_success);
  }
  if (r.verification.status != "not_run") {
    const LabelList v = With(base, {{"how", "measured"}});
    AddGauge("clusterbench_verification_max_rel_error",
             "Largest |backend - reference| over the compared logits / largest |reference| "
             "logit.",
             v, r.verification.max_rel_error);
    AddGauge("clusterbench_verification_tolerance",
             "Bound on clusterbench_verification_max_rel_error for the run's dtype.", v,
             r.verification.tolerance);
  }
  // Performance figures: only of a run that is ok; a bad run's figures are never shown.
  if (ok) {
    AddFigures(r, base);
  } else if (opts.nan_for_invalid) {
    AddNaNFigures(r, base);
  }
}

std::string SerializeText(const std::vector<MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

double ParseIso8601(const std::string& text) {
  int y, mo, d, h, mi;
  double s;
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%c", &y, &mo, &d, &h, &mi, &s, &z) < 6)
    return kNaN;
  if (z != 0 && z != 'Z') return kNaN;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = 0;
  const time_t t = timegm(&tm);
  if (t == static_cast<time_t>(-1)) return kNaN;
  return static_cast<double>(t) + s;
}

std::string SanitizeName(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  if (out.empty() || (out[0] >= '0' && out[0] <= '9')) out = "_" + out;
  return out;
}

}  // namespace cb::prom

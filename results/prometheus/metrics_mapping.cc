#include "results/prometheus/metrics_mapping.h"

#include <prometheus/text_serializer.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <set>
#include <sstream>

#include "workloads/moe_routing.h"

namespace cb::prom {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr const char* kThroughput = "clusterbench_throughput_tokens_per_second";
constexpr const char* kLatency = "clusterbench_latency_seconds";
constexpr const char* kFlops = "clusterbench_achieved_flops_per_second";
constexpr const char* kBytes = "clusterbench_achieved_memory_bytes_per_second";
constexpr const char* kMfu = "clusterbench_mfu_ratio";
constexpr const char* kMbu = "clusterbench_mbu_ratio";
constexpr const char* kOverhead = "clusterbench_harness_overhead_ratio";
constexpr const char* kEnergy = "clusterbench_energy_joules";
constexpr const char* kEnergyPerToken = "clusterbench_energy_joules_per_token";
constexpr const char* kPower = "clusterbench_average_power_watts";
constexpr const char* kTokensPerJoule = "clusterbench_tokens_per_joule";
constexpr const char* kCost = "clusterbench_cost_usd_per_million_tokens";

/// Help text of every family this file produces (the README table says the same).
const std::map<std::string, std::string>& HelpTexts() {
  static const std::map<std::string, std::string> help = {
      {kThroughput,
       "Tokens per second of the run's median repetition; phase=prefill counts prompt (input) "
       "tokens, phase=decode generated (output) tokens."},
      {kLatency,
       "Latency of the run: kind=ttft time to first token (per repetition), kind=tpot time per "
       "output token (every decode step), kind=e2e end to end (per repetition), kind=itl "
       "inter-token latency (endpoint runs: gaps between streamed chunks). Mean is "
       "_sum / _count; quantile 0 and 1 are min and max."},
      {kFlops, "Achieved FLOP/s of the prefill step (FLOPs of a step / median step time)."},
      {kBytes, "Achieved memory traffic in bytes/s of the decode steps."},
      {kMfu, "Model FLOPs utilisation: achieved FLOP/s / this host's measured matmul peak."},
      {kMbu, "Memory bandwidth utilisation: achieved bytes/s / measured memory read bandwidth."},
      {kOverhead, "Share of a repetition's measured window spent outside backend calls."},
      {kEnergy, "Energy the devices used in the measured window, in joules."},
      {kEnergyPerToken, "Energy per generated token, in joules."},
      {kPower, "Average power of the devices over the measured window, in watts."},
      {kTokensPerJoule, "Tokens per joule (the result file's tokens_per_kwh / 3.6e6)."},
      {kCost,
       "Cost in USD per million tokens: kind=input (prefill), output (decode) or blended, "
       "from the cost model whose inputs the result file records."},
  };
  return help;
}

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

double EndTime(const RunRecord& r) {
  const double end = ParseIso8601(r.end_time);
  return std::isnan(end) ? ParseIso8601(r.start_time) : end;
}

}  // namespace

std::string ClusterName(const RunRecord& r) {
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
                 {"cluster", ClusterName(r)},
                 {"Hostname", r.host},
                 {"UUID", r.device.uuid}};
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

const std::vector<KnownMetric>& KnownMetrics() {
  static const std::vector<KnownMetric> table = {
      {"prefill_tokens_per_second", kThroughput, "phase", "prefill", 1},
      {"decode_tokens_per_second", kThroughput, "phase", "decode", 1},
      {"ttft_seconds", kLatency, "kind", "ttft", 1},
      {"tpot_seconds", kLatency, "kind", "tpot", 1},
      {"e2e_latency_seconds", kLatency, "kind", "e2e", 1},
      {"itl_seconds", kLatency, "kind", "itl", 1},
      {"prefill_flops_per_second", kFlops, "phase", "prefill", 1},
      {"decode_bytes_per_second", kBytes, "phase", "decode", 1},
      {"mfu_prefill_ratio", kMfu, "phase", "prefill", 1},
      {"mfu_decode_ratio", kMfu, "phase", "decode", 1},
      {"mbu_prefill_ratio", kMbu, "phase", "prefill", 1},
      {"mbu_decode_ratio", kMbu, "phase", "decode", 1},
      {"harness_overhead_ratio", kOverhead, "", "", 1},
      {"energy_joules", kEnergy, "", "", 1},
      {"energy_joules_per_token", kEnergyPerToken, "", "", 1},
      {"average_power_watts", kPower, "", "", 1},
      {"tokens_per_kwh", kTokensPerJoule, "", "", 1.0 / 3.6e6},
      {"cost_usd_per_million_input_tokens", kCost, "kind", "input", 1},
      {"cost_usd_per_million_output_tokens", kCost, "kind", "output", 1},
      {"cost_usd_per_million_tokens", kCost, "kind", "blended", 1},
  };
  return table;
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
  Family(kLatency, HelpTexts().at(kLatency), MetricType::Summary).metric.push_back(std::move(m));
}

void FamilySet::AddRun(const RunRecord& r, const AddOptions& opts) {
  const LabelList base = SeriesLabels(r);
  // A shortened or unstable run (validity rules) is kept out of the valid series like an
  // invalid one.
  const bool ok = r.Publishable();

  // Identity and status: always, whatever happened to the run.
  AddGauge("clusterbench_info",
           "Always 1: what produced the series (tool version, git commit, device kind).",
           With(base, {{"version", r.tool_version},
                       {"git_commit", r.git_commit},
                       {"device_kind", r.device.kind}}),
           1);
  AddGauge("clusterbench_run_valid",
           "1 when the latest run of the series finished with status ok (verified, no NaN), "
           "else 0.",
           base, ok ? 1 : 0);
  for (const char* s : {"ok", "invalid", "failed", "skipped"}) {
    AddGauge("clusterbench_run_status",
             "1 for the status of the latest run of the series (ok, invalid, failed, skipped), "
             "0 for the others.",
             With(base, {{"status", s}}), r.status == s ? 1 : 0);
  }
  const double end = EndTime(r);
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
  if (!ok) {
    if (!opts.nan_for_invalid) return;
    const Provenance how = r.extrapolated ? Provenance::kExtrapolated : Provenance::kMeasured;
    for (const KnownMetric& k : KnownMetrics()) {
      Metric placeholder;
      placeholder.how = how;
      if (std::string(k.family) == kLatency) {
        AddLatency(placeholder, k.label_value, base, true);
      } else {
        AddValue(k.family, HelpTexts().at(k.family),
                 With(base, {{k.label_name, k.label_value}, {"how", How(how)}}), kNaN);
      }
    }
    return;
  }
  std::set<std::string> known_names;
  for (const KnownMetric& k : KnownMetrics()) known_names.insert(k.family);
  for (const KnownMetric& k : KnownMetrics()) {
    const Metric* m = r.FindMetric(k.record_name);
    if (!m) continue;
    if (std::string(k.family) == kLatency) {
      AddLatency(*m, k.label_value, base, false);
    } else {
      AddValue(k.family, HelpTexts().at(k.family),
               With(base, {{k.label_name, k.label_value}, {"how", How(m->how)}}),
               m->value * k.scale);
    }
  }
  // Metrics the mapping does not know yet: exported generically instead of dropped.
  std::set<std::string> seen;
  for (const Metric& m : r.metrics) {
    bool known = false;
    for (const KnownMetric& k : KnownMetrics()) known |= m.name == k.record_name;
    if (known || !seen.insert(m.name).second) continue;
    std::string name = "clusterbench_" + SanitizeName(m.name);
    for (const char* reserved : {"_total", "_count", "_sum", "_bucket"}) {
      if (name.ends_with(reserved)) name.resize(name.size() - std::string(reserved).size());
    }
    if (known_names.count(name) || name.starts_with("clusterbench_run_") ||
        name.starts_with("clusterbench_last_") || name == "clusterbench_info" ||
        name.starts_with("clusterbench_verification_")) {
      name = "clusterbench_result_" + SanitizeName(m.name);
    }
    AddValue(name,
             "The result file's metric '" + m.name + "' (" + (m.unit.empty() ? "?" : m.unit) +
                 "), exported as is until it has a dedicated mapping.",
             With(base, {{"how", How(m.how)}}), m.value);
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

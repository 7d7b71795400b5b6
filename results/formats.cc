#include "results/formats.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>

#include "harness/core/fmt.h"
#include "results/record_json.h"
#include "results/run_status.h"
#include "results/text_table.h"
#include "workloads/moe_routing.h"

namespace cb {
namespace {

constexpr char kExtrapolatedMark = '~';
constexpr char kModelledMark = '^';
constexpr const char* kMissing = "-";
constexpr const char* kLegend =
    "Figures are measured unless marked: ~ extrapolated, ^ modelled; - not available "
    "(invalid, failed and skipped runs show no figures; SHORTENED and UNSTABLE runs show "
    "theirs, labelled, not to be published).";

/// Metrics that get columns in every CSV, in this order; others follow sorted by name.
const std::vector<std::string>& KnownMetrics() {
  static const std::vector<std::string> kNames = {"prefill_tokens_per_second",
                                                  "decode_tokens_per_second",
                                                  "ttft_seconds",
                                                  "tpot_seconds",
                                                  "e2e_latency_seconds",
                                                  "mfu_prefill_ratio",
                                                  "mfu_decode_ratio",
                                                  "mbu_prefill_ratio",
                                                  "mbu_decode_ratio",
                                                  "harness_overhead_ratio",
                                                  "prefill_flops_per_second",
                                                  "decode_bytes_per_second",
                                                  "energy_joules",
                                                  "energy_joules_per_token",
                                                  "average_power_watts",
                                                  "tokens_per_kwh",
                                                  "cost_usd_per_million_input_tokens",
                                                  "cost_usd_per_million_output_tokens",
                                                  "cost_usd_per_million_tokens"};
  return kNames;
}

bool IsOk(const RunRecord& r) { return r.status == "ok"; }

/// A human-readable figure: at least three significant digits, no false precision on large
/// values (12346, 45.3, 4.53, 0.0453), exponent only for extremes.
std::string Figure(double v) {
  if (!std::isfinite(v)) return kMissing;
  const double a = std::fabs(v);
  char buf[64];
  if (a == 0) return "0";
  if (a >= 1e9 || a < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  const int decimals = a >= 100  ? 0
                       : a >= 10 ? 1
                       : a >= 1  ? 2
                                 : 2 - static_cast<int>(std::floor(std::log10(a)));
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// Shortest text that reads back as the same double (CSV keeps raw values).
std::string RawNumber(double v) {
  if (!std::isfinite(v)) return "";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string Upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  return s;
}

std::string ModelName(const RunRecord& r) {
  if (!r.workload.model.name.empty()) {
    const std::string routing = RoutingName(r.workload.model);
    return routing.empty() ? r.workload.model.name : r.workload.model.name + " " + routing;
  }
  return r.workload.model_ref.empty() ? kMissing : r.workload.model_ref;
}

std::string BackendName(const RunRecord& r) {
  if (!r.workload.backend.empty()) return r.workload.backend;
  return r.device.backend.empty() ? kMissing : r.device.backend;
}

std::string DeviceName(const RunRecord& r) {
  std::string name = r.device.name.empty() ? kMissing : r.device.name;
  if (r.device.simulated && name.find("sim") == std::string::npos) name += " (sim)";
  return name;
}

int LayersRun(const RunRecord& r) {
  return r.layers_run > 0 ? r.layers_run : r.workload.LayersRun();
}

std::string LayersCell(const RunRecord& r) {
  const int run = LayersRun(r);
  const int64_t total = r.workload.model.num_layers;
  if (r.extrapolated) return std::to_string(run) + "/" + std::to_string(total) + "*";
  if (total > 0) return std::to_string(total);
  return run > 0 ? std::to_string(run) : kMissing;
}

/// A run that is ok but not valid by its scenario's rules shows its label (SHORTENED, UNSTABLE).
std::string StatusCell(const RunRecord& r) {
  const std::string label = RunStatusLabel(r);
  return label == "ok" ? label : Upper(label);
}

/// How the row's performance figures were obtained: measured, modelled or extrapolated (the
/// throughput's provenance; J/token and $/Mtok carry their own marks).
std::string HowCell(const RunRecord& r) {
  if (!IsOk(r)) return kMissing;
  for (const char* name : {"decode_tokens_per_second", "output_tokens_per_second",
                           "prefill_tokens_per_second", "tpot_seconds"}) {
    if (const Metric* m = r.FindMetric(name)) return std::string(ProvenanceName(m->how));
  }
  return kMissing;
}

std::string VerifyCell(const RunRecord& r) {
  const std::string& s = r.verification.status;
  if (s == "failed") return "FAILED";
  if (s == "not_run") return "not run";
  return s.empty() ? kMissing : s;
}

/// The dtype, with how a quantised one ran: "fp8 (weight-only)".
std::string DTypeCell(const RunRecord& r) {
  return r.precision.empty() ? std::string(DTypeName(r.workload.dtype)) : r.precision;
}

/// A quantised run's accuracy against the unquantised model: "top1 94% KL 0.0031".
std::string AccuracyCell(const RunRecord& r) {
  if (!r.accuracy) return kMissing;
  char s[64];
  std::snprintf(s, sizeof s, "top1 %.0f%% KL %.2g", 100 * r.accuracy->top1_agreement,
                r.accuracy->mean_kl_divergence);
  return s;
}

enum class Pick { kValue, kP50, kP99 };

/// A metric figure for table and md: "-" when the run is not ok, the metric is missing or not
/// finite; otherwise the figure times `scale` with its provenance mark.
std::string MetricCell(const RunRecord& r, const std::string& name, Pick pick, double scale) {
  if (!IsOk(r)) return kMissing;
  const Metric* m = r.FindMetric(name);
  if (m == nullptr) return kMissing;
  double v = m->value;
  if (pick != Pick::kValue) {
    if (!m->has_distribution) return kMissing;
    v = pick == Pick::kP50 ? m->dist.p50 : m->dist.p99;
  }
  if (!std::isfinite(v)) return kMissing;
  std::string s = Figure(v * scale);
  if (m->how == Provenance::kExtrapolated) s += kExtrapolatedMark;
  if (m->how == Provenance::kModelled) s += kModelledMark;
  return s;
}

struct Column {
  std::string header;
  bool numeric;
  std::function<std::string(const RunRecord&)> cell;
};

/// The scenario, with a server run's offered load: "offline", "server 20/s", "server c8".
std::string ScenarioCell(const RunRecord& r) {
  const WorkloadSpec& w = r.workload;
  if (w.scenario != "server") return w.scenario.empty() ? kMissing : w.scenario;
  if (w.serving.concurrency > 0) return "server c" + std::to_string(w.serving.concurrency);
  char rate[32];
  std::snprintf(rate, sizeof rate, "server %g/s", w.serving.rate);
  return rate;
}

std::vector<Column> SummaryColumns() {
  auto metric = [](const char* header, const char* name, Pick pick, double scale) {
    return Column{header, true,
                  [=](const RunRecord& r) { return MetricCell(r, name, pick, scale); }};
  };
  return {
      {"model", false, ModelName},
      {"backend", false, BackendName},
      {"device", false, DeviceName},
      {"dtype", false, DTypeCell},
      {"scenario", false, ScenarioCell},
      {"batch", true, [](const RunRecord& r) { return std::to_string(r.workload.batch); }},
      {"prompt/gen", true,
       [](const RunRecord& r) {
         return std::to_string(r.workload.prompt_len) + "/" + std::to_string(r.workload.gen_len);
       }},
      {"layers", true, LayersCell},
      {"status", false, StatusCell},
      {"how", false, HowCell},
      metric("prefill tok/s", "prefill_tokens_per_second", Pick::kValue, 1),
      metric("decode tok/s", "decode_tokens_per_second", Pick::kValue, 1),
      metric("TTFT p50 ms", "ttft_seconds", Pick::kP50, 1e3),
      metric("TTFT p99 ms", "ttft_seconds", Pick::kP99, 1e3),
      metric("TPOT p50 ms", "tpot_seconds", Pick::kP50, 1e3),
      metric("TPOT p99 ms", "tpot_seconds", Pick::kP99, 1e3),
      metric("MFU prefill %", "mfu_prefill_ratio", Pick::kValue, 100),
      metric("MBU decode %", "mbu_decode_ratio", Pick::kValue, 100),
      metric("J/token", "energy_joules_per_token", Pick::kValue, 1),
      metric("$/Mtok in", "cost_usd_per_million_input_tokens", Pick::kValue, 1),
      metric("$/Mtok out", "cost_usd_per_million_output_tokens", Pick::kValue, 1),
      {"verify", false, VerifyCell},
      {"accuracy vs bf16", false, AccuracyCell},
  };
}

/// Where J/token and $/Mtok come from: one line per distinct energy source and cost basis.
std::vector<std::string> EnergyCostNotes(const std::vector<RunRecord>& runs) {
  std::vector<std::string> lines;
  auto add = [&](const std::string& l) {
    if (std::find(lines.begin(), lines.end(), l) == lines.end()) lines.push_back(l);
  };
  for (const RunRecord& r : runs) {
    if (!IsOk(r)) continue;
    if (r.energy) {
      const EnergyReading& e = r.energy->reading;
      std::string l =
          "J/token: " + e.source +
          (e.source == "model" ? " (catalog power model, not measured)" : " (hardware counters)");
      if (!e.valid) l += "; INVALID reading: " + (e.notes.empty() ? "" : e.notes.back());
      add(l);
    }
    if (r.cost && r.cost->basis != "none") {
      const CostRecord& c = *r.cost;
      std::string l = "$/Mtok (modelled): " + c.basis + " at $" +
                      Figure(c.cost_per_device_hour_usd) + "/device-hour";
      if (c.basis == "owned") {
        l += " (capex $" + Figure(c.capex_usd) + " over " + Figure(c.amortization_years) + " y, " +
             Figure(c.all_in_power_w) + " W all-in x PUE " + Figure(c.pue) + " at $" +
             Figure(c.electricity_usd_per_kwh) + "/kWh)";
      }
      l += ", catalog " + (c.catalog_id.empty() ? std::string("-") : c.catalog_id) +
           "; re-price with clusterbench cost";
      add(l);
    } else if (r.cost) {
      // The first note says why (the price missing); later ones describe the devices.
      add("$/Mtok: not computed: " + (r.cost->notes.empty() ? "" : r.cost->notes.front()));
    }
  }
  return lines;
}

/// Lines under a table: the legend, the extrapolation footnote, why runs are not ok.
std::vector<std::string> Notes(const std::vector<RunRecord>& runs) {
  std::vector<std::string> notes = {kLegend};
  std::vector<std::string> extrapolations;
  for (const RunRecord& r : runs) {
    if (!r.extrapolated) continue;
    std::string e = "from " + std::to_string(LayersRun(r)) + " of " +
                    std::to_string(r.workload.model.num_layers) + " layers";
    if (!r.extrapolation_method.empty()) e += " (" + r.extrapolation_method + ")";
    if (std::find(extrapolations.begin(), extrapolations.end(), e) == extrapolations.end()) {
      extrapolations.push_back(e);
    }
  }
  if (!extrapolations.empty()) {
    std::string line = "* extrapolated ";
    for (size_t i = 0; i < extrapolations.size(); ++i) {
      line += (i ? "; " : "") + extrapolations[i];
    }
    notes.push_back(line);
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    if (IsOk(r) && r.Publishable()) continue;
    std::string line = "run " + std::to_string(i + 1) + " (" + ModelName(r) + ", " +
                       BackendName(r) + "): " + StatusCell(r);
    if (!r.status_message.empty()) line += ": " + r.status_message;
    if (IsOk(r)) {  // shortened or unstable: kept and shown, never published as valid
      const std::string own = r.validity->label + ": ";
      std::string sep = ": ";
      for (const std::string& reason : r.validity->reasons) {
        if (reason.rfind("note:", 0) == 0) continue;
        line += sep + (reason.rfind(own, 0) == 0 ? reason.substr(own.size()) : reason);
        sep = "; ";
      }
    }
    notes.push_back(line);
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    if (!r.op_breakdown) continue;
    // The ceilings sampled beside the op-by-op steps (not the measured window's).
    const OpBreakdownRecord& b = *r.op_breakdown;
    const double peak = b.Matmul(), bandwidth = b.MemRead();
    const bool roofline = peak > 0 && bandwidth > 0;
    const std::string run = "run " + std::to_string(i + 1) + " (" + ModelName(r) + ", " +
                            BackendName(r) + ") op breakdown, share of the step, ";
    notes.push_back(run + "prefill: " + OpSharesLine(r.op_breakdown->prefill, peak, bandwidth) +
                    " (measured, each op alone after the window; layers weighted by the model "
                    "layers they stand for" +
                    (roofline ? "; in brackets the share of the op's time its roofline explains, "
                                "max(FLOPs / matmul peak, bytes / read bandwidth) at the "
                                "ceilings sampled right before and after the op-by-op steps"
                              : "") +
                    ")");
    if (!r.op_breakdown->decode.empty()) {
      notes.push_back(run + "decode: " + OpSharesLine(r.op_breakdown->decode, peak, bandwidth));
    }
    if (AnyAboveRoofline(r.op_breakdown->prefill, peak, bandwidth) ||
        AnyAboveRoofline(r.op_breakdown->decode, peak, bandwidth)) {
      notes.push_back(run +
                      "(!): faster than its roofline: its data sat in cache, or the "
                      "ceilings moved between the probes and the op");
    }
    const double max_drift = r.ceiling_check ? r.ceiling_check->max_drift : 0.15;
    if (roofline && b.Drift() > max_drift) {
      notes.push_back(run + "its ceilings moved " + Fmt(100 * b.Drift(), "%.0f%%") +
                      " between the samples before and after it: the shares in brackets are "
                      "rough");
    }
  }
  // Endpoint runs that stayed valid despite failed requests say how many failed.
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    if (!IsOk(r) || !r.endpoint || r.endpoint->requests_failed == 0) continue;
    std::string failures;
    for (const auto& [outcome, n] : r.endpoint->failures) {
      failures += (failures.empty() ? "" : ", ") + std::to_string(n) + " " + outcome;
    }
    notes.push_back("run " + std::to_string(i + 1) + " (" + ModelName(r) + ", " + BackendName(r) +
                    "): " + std::to_string(r.endpoint->requests_failed) + " of " +
                    std::to_string(r.endpoint->requests_issued) + " requests failed (" + failures +
                    "), within --max-failure-ratio");
  }
  for (const std::string& n : EnergyCostNotes(runs)) notes.push_back(n);
  return notes;
}

/// Cells of the summary table, header first.
std::vector<std::vector<std::string>> SummaryCells(const std::vector<RunRecord>& runs,
                                                   const std::vector<Column>& cols) {
  std::vector<std::vector<std::string>> rows(1);
  for (const Column& c : cols) rows[0].push_back(c.header);
  for (const RunRecord& r : runs) {
    std::vector<std::string> row;
    for (const Column& c : cols) row.push_back(c.cell(r));
    rows.push_back(std::move(row));
  }
  return rows;
}

bool IsMark(char c) { return c == kExtrapolatedMark || c == kModelledMark || c == '*'; }

/// Pads marked numeric columns so that digits line up whether or not a cell carries a mark.
void AlignMarks(std::vector<std::vector<std::string>>& rows, const std::vector<Column>& cols) {
  for (size_t c = 0; c < cols.size(); ++c) {
    if (!cols[c].numeric) continue;
    bool any = false;
    for (size_t i = 1; i < rows.size(); ++i) {
      any = any || (!rows[i][c].empty() && IsMark(rows[i][c].back()));
    }
    if (!any) continue;
    for (size_t i = 1; i < rows.size(); ++i) {
      if (rows[i][c].empty() || !IsMark(rows[i][c].back())) rows[i][c] += ' ';
    }
  }
}

/// Table and md: the summary columns (marks aligned in table), the notes under them.
TextTable SummaryTable(const std::vector<RunRecord>& runs, bool align_marks) {
  const std::vector<Column> cols = SummaryColumns();
  auto rows = SummaryCells(runs, cols);
  if (align_marks) AlignMarks(rows, cols);
  TextTable t;
  t.columns = rows[0];
  for (const Column& c : cols) t.numeric.push_back(c.numeric);
  t.rows.assign(rows.begin() + 1, rows.end());
  t.notes = Notes(runs);
  return t;
}

std::string Bool(bool b) { return b ? "true" : "false"; }

std::string RenderCsv(const std::vector<RunRecord>& runs) {
  // Metric columns: the known names first, then any other name a run carries, sorted.
  std::vector<std::string> names = KnownMetrics();
  std::set<std::string> extra;
  std::set<std::string> with_dist;
  for (const RunRecord& r : runs) {
    for (const Metric& m : r.metrics) {
      if (std::find(names.begin(), names.end(), m.name) == names.end()) extra.insert(m.name);
      if (m.has_distribution) with_dist.insert(m.name);
    }
  }
  names.insert(names.end(), extra.begin(), extra.end());

  using CellFn = std::function<std::string(const RunRecord&)>;
  struct CsvColumn {
    std::string header;
    CellFn cell;
  };
  std::vector<CsvColumn> cols = {
      {"run_id", [](const RunRecord& r) { return r.run_id; }},
      {"start_time", [](const RunRecord& r) { return r.start_time; }},
      {"end_time", [](const RunRecord& r) { return r.end_time; }},
      {"host", [](const RunRecord& r) { return r.host; }},
      {"git_commit", [](const RunRecord& r) { return r.git_commit; }},
      {"status", [](const RunRecord& r) { return r.status; }},
      {"status_message", [](const RunRecord& r) { return r.status_message; }},
      {"model", [](const RunRecord& r) { return r.workload.model.name; }},
      {"model_ref", [](const RunRecord& r) { return r.workload.model_ref; }},
      {"scenario", [](const RunRecord& r) { return r.workload.scenario; }},
      {"backend", [](const RunRecord& r) { return r.workload.backend; }},
      {"device", [](const RunRecord& r) { return r.device.name; }},
      {"device_kind", [](const RunRecord& r) { return r.device.kind; }},
      {"simulated", [](const RunRecord& r) { return Bool(r.device.simulated); }},
      {"dtype", [](const RunRecord& r) { return std::string(DTypeName(r.workload.dtype)); }},
      {"batch", [](const RunRecord& r) { return std::to_string(r.workload.batch); }},
      {"prompt_len", [](const RunRecord& r) { return std::to_string(r.workload.prompt_len); }},
      {"gen_len", [](const RunRecord& r) { return std::to_string(r.workload.gen_len); }},
      {"layers_run", [](const RunRecord& r) { return std::to_string(LayersRun(r)); }},
      {"model_layers",
       [](const RunRecord& r) { return std::to_string(r.workload.model.num_layers); }},
      {"extrapolated", [](const RunRecord& r) { return Bool(r.extrapolated); }},
      {"extrapolation_method", [](const RunRecord& r) { return r.extrapolation_method; }},
      {"verification", [](const RunRecord& r) { return r.verification.status; }},
      {"verification_max_rel_error",
       [](const RunRecord& r) { return RawNumber(r.verification.max_rel_error); }},
      {"precision", [](const RunRecord& r) { return r.precision; }},
      {"accuracy_top1_agreement",
       [](const RunRecord& r) { return r.accuracy ? RawNumber(r.accuracy->top1_agreement) : ""; }},
      {"accuracy_mean_kl_divergence",
       [](const RunRecord& r) {
         return r.accuracy ? RawNumber(r.accuracy->mean_kl_divergence) : "";
       }},
      {"energy_source",
       [](const RunRecord& r) { return r.energy ? r.energy->reading.source : std::string(); }},
      {"energy_valid",
       [](const RunRecord& r) { return r.energy ? Bool(r.energy->reading.valid) : std::string(); }},
      {"cost_basis", [](const RunRecord& r) { return r.cost ? r.cost->basis : std::string(); }},
      {"cost_per_device_hour_usd",
       [](const RunRecord& r) {
         return r.cost ? RawNumber(r.cost->cost_per_device_hour_usd) : std::string();
       }},
  };
  // Figures of a run that is not ok are left empty, as are missing ones.
  auto metric = [](const std::string& name, std::function<std::string(const Metric&)> f) -> CellFn {
    return [name, f](const RunRecord& r) -> std::string {
      const Metric* m = IsOk(r) ? r.FindMetric(name) : nullptr;
      return m ? f(*m) : "";
    };
  };
  for (const std::string& n : names) {
    cols.push_back({n, metric(n, [](const Metric& m) { return RawNumber(m.value); })});
    cols.push_back({n + "_how",
                    metric(n, [](const Metric& m) { return std::string(ProvenanceName(m.how)); })});
    if (!with_dist.count(n)) continue;
    auto dist = [&](const char* suffix, std::function<std::string(const Distribution&)> f) {
      cols.push_back({n + "_" + suffix, metric(n, [f](const Metric& m) {
                        return m.has_distribution ? f(m.dist) : std::string();
                      })});
    };
    dist("count", [](const Distribution& d) { return std::to_string(d.count); });
    dist("mean", [](const Distribution& d) { return RawNumber(d.mean); });
    dist("p50", [](const Distribution& d) { return RawNumber(d.p50); });
    dist("p90", [](const Distribution& d) { return RawNumber(d.p90); });
    dist("p99", [](const Distribution& d) { return RawNumber(d.p99); });
    dist("min", [](const Distribution& d) { return RawNumber(d.min); });
    dist("max", [](const Distribution& d) { return RawNumber(d.max); });
    dist("stddev", [](const Distribution& d) { return RawNumber(d.stddev); });
    dist("cv", [](const Distribution& d) { return RawNumber(d.cv); });
  }

  std::string out;
  auto append_row = [&](auto&& field) {
    for (size_t c = 0; c < cols.size(); ++c) {
      if (c) out += ',';
      out += CsvField(field(cols[c]));
    }
    out += '\n';
  };
  append_row([](const CsvColumn& c) { return c.header; });
  for (const RunRecord& r : runs) append_row([&](const CsvColumn& c) { return c.cell(r); });
  return out;
}

std::string RenderJson(const std::vector<RunRecord>& runs, bool lines) {
  using nlohmann::json;
  if (lines) {
    std::string out;
    for (const RunRecord& r : runs)
      out += ToJson(r).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    return out;
  }
  json array = json::array();
  for (const RunRecord& r : runs) array.push_back(ToJson(r));
  return array.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

Status FormatRuns(const std::vector<RunRecord>& runs, const std::string& format, std::string* out) {
  if (format == "table" || format == "md") {
    return FormatTable(SummaryTable(runs, format == "table"), format, out);
  }
  if (format == "csv") {
    *out = RenderCsv(runs);
  } else if (format == "json" || format == "jsonl") {
    *out = RenderJson(runs, format == "jsonl");
  } else {
    return Status::InvalidInput("--format '" + format +
                                "': allowed values are table, md, csv, json, jsonl");
  }
  return Status::Ok();
}

}  // namespace cb

#pragma once

/// The one place where a RunRecord becomes Prometheus metrics. Names and labels are a public
/// interface (Grafana dashboards, alerts and `compare` depend on them): the README's
/// "Prometheus metrics" table lists every family this file produces.

#include <prometheus/metric_family.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "results/run_record.h"

namespace cb::prom {

/// Ordered (name, value) label pairs.
using LabelList = std::vector<std::pair<std::string, std::string>>;

/// The bounded labels that identify one series of runs: model, backend, device, dtype, batch,
/// prompt_len, gen_len, scenario, routing (skewed MoE routing only), rate or concurrency
/// (server runs only) and cluster. Never a run id, never the host or device UUID (they are
/// clusterbench_run_info's labels, so a job that lands on another node of the cluster updates
/// its series instead of starting a new one). Empty values are left out. These are also the
/// Pushgateway grouping key, with `job`.
LabelList SeriesLabels(const RunRecord& r);

/// The cluster a run belongs to, a name for its set of devices: `run --cluster-name` (the
/// record's cluster_name); else a simulated system's name; else the device's host ("simulated"
/// for other simulated devices); else the run's host.
std::string ClusterName(const RunRecord& r);

/// A stable text key of SeriesLabels(), for grouping runs of the same series.
std::string SeriesKey(const RunRecord& r);

/// The latest run of a series and when its latest publishable run ended (-1: none).
struct SeriesLatest {
  const RunRecord* latest = nullptr;
  double last_success_s = -1;
};
/// The latest run (by end time, else start time; ties: the later in `runs`) of each series,
/// in the order the series first appear, with the series' last success among `runs`.
std::vector<SeriesLatest> LatestPerSeries(const std::vector<const RunRecord*>& runs);
std::vector<SeriesLatest> LatestPerSeries(const std::vector<RunRecord>& runs);
/// The result points into `runs`: a temporary would leave it dangling.
std::vector<SeriesLatest> LatestPerSeries(std::vector<RunRecord>&& runs) = delete;

/// End time of a run in Unix seconds (its start time when the end is unknown; NaN when both are).
double RunEndSeconds(const RunRecord& r);

/// Which runs a metric of the mapping applies to (a run that is not ok sends NaN for the
/// figures of its kind, so that yesterday's do not stay on a Pushgateway).
enum class MetricScope { kEveryRun, kServing, kMultiDevice, kMoe };

/// One entry of the mapping table: a metric of the result file and the family it feeds.
struct KnownMetric {
  const char* record_name;  ///< e.g. "decode_tokens_per_second"
  const char* family;       ///< e.g. "clusterbench_throughput_tokens_per_second"
  const char* label_name;   ///< the label that tells the record metrics of a family apart, or ""
  const char* label_value;  ///< its value, e.g. "decode"
  double scale;             ///< family value = record value * scale (base units)
  MetricScope scope = MetricScope::kEveryRun;
};
const std::vector<KnownMetric>& KnownMetrics();

/// The help text of a family of the mapping (README's "Prometheus metrics" table says the same);
/// empty for a name that is not one.
const std::string& FamilyHelp(const std::string& family);

/// True when `scope` applies to run `r` (see MetricScope).
bool ScopeApplies(MetricScope scope, const RunRecord& r);

struct AddOptions {
  /// End time (seconds since the epoch) of the latest successful run of this series, for
  /// clusterbench_last_success_timestamp_seconds; < 0: the record's own end time when it is
  /// ok, and no such metric otherwise.
  double last_success_s = -1;
  /// For a run that is not ok: emit NaN for every performance family instead of leaving
  /// them out, so a Pushgateway POST replaces yesterday's figures instead of keeping them.
  bool nan_for_invalid = false;
};

/// Metric families of one or more runs; each family appears once, with the samples of
/// every run added, in a fixed order.
class FamilySet {
 public:
  void AddRun(const RunRecord& r, const AddOptions& opts = {});
  /// Adds one gauge sample (for the serve command's own metrics).
  void AddGauge(const std::string& name, const std::string& help, const LabelList& labels,
                double value);
  void AddCounter(const std::string& name, const std::string& help, const LabelList& labels,
                  double value);
  const std::vector<prometheus::MetricFamily>& Families() const { return families_; }
  bool empty() const { return families_.empty(); }

 private:
  prometheus::MetricFamily& Family(const std::string& name, const std::string& help,
                                   prometheus::MetricType type);
  void AddValue(const std::string& name, const std::string& help, const LabelList& labels,
                double value);
  void AddLatency(const Metric& m, const char* kind, const LabelList& labels, bool nan);
  /// clusterbench_run_info, _run_valid and _run_status.
  void AddStatus(const RunRecord& r, const LabelList& base);
  void AddFigures(const RunRecord& r, const LabelList& base);
  void AddNaNFigures(const RunRecord& r, const LabelList& base);

  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, size_t> index_;
};

/// The Prometheus text exposition format (version 0.0.4) of `families`.
std::string SerializeText(const std::vector<prometheus::MetricFamily>& families);

/// "2024-05-01T03:04:05.123Z" -> seconds since the epoch; NaN when malformed.
double ParseIso8601(const std::string& text);

/// A metric name made of [a-z0-9_] from any text (lower case, other characters become '_').
std::string SanitizeName(const std::string& text);

}  // namespace cb::prom

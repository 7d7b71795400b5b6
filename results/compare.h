#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results/run_files.h"

namespace cb {

/// Which way a metric improves, from its name and unit (BetterDirection's table).
enum class Better { kHigher, kLower, kNeither };
std::string_view BetterName(Better b);  ///< "higher", "lower", "neither"
Better BetterDirection(const std::string& name, const std::string& unit);

/// The identity runs are matched by between BASE and NEW: the Prometheus series key (model,
/// backend, device, dtype, batch, prompt and gen length, scenario, cluster, host, device UUID)
/// plus the layers run and the tensor/data-parallel layout.
std::string CompareKey(const RunRecord& r);
/// A short human-readable name of the series ("llama-3.2-1b cpu bf16 offline b8 p128 g16 ...").
std::string SeriesLabel(const RunRecord& r);

struct CompareOptions {
  double threshold_pct = 5;  ///< a regression must be worse by more than this
  double alpha = 0.05;       ///< significance level of the noise test
};

/// One metric of one matched series.
struct MetricComparison {
  std::string name, unit;
  bool in_base = false, in_new = false;
  std::string base_how, new_how;  ///< provenance on each side
  double base_value = 0, new_value = 0;
  double change_pct = 0;  ///< (new - base) / |base| x 100; 0 when base is 0 or a side is missing
  Better better = Better::kNeither;
  /// "mann-whitney": rank test on the raw per-repetition (per-step for TPOT) samples of both
  /// offline runs (>= 4 a side); "welch": Welch's t-test on both recorded distributions (mean,
  /// stddev, count). A figure without samples of its own (MFU, cost, energy per token) takes
  /// the test of the related metric it derives from (`spread_of`); failing that "spread":
  /// |change| against 2 x the combined coefficient of variation of the related distribution;
  /// "none": no spread recorded on either side, the threshold alone decides.
  std::string test;
  std::string spread_of;  ///< the related metric whose test or spread decided, if any
  double p_value = -1;    ///< welch and mann-whitney only
  double noise_pct = 0;   ///< spread only: the noise band in percent
  bool significant = false;
  bool worse = false;        ///< moved in the worse direction (any amount)
  bool regression = false;   ///< significant, worse by more than the threshold, both runs ok
  bool improvement = false;  ///< significant, better by more than the threshold, both runs ok
  /// "regression", "improvement", "within noise", "below threshold", "unchanged",
  /// "not judged: ..." (provenance differs, a run is not ok, no better direction, one side).
  std::string verdict;
};

/// A series present on both sides: the newest run of each.
struct SeriesComparison {
  std::string key, label;
  std::string base_path, new_path;
  std::string base_status, new_status;  ///< "ok", "invalid", "failed", "skipped"
  std::string base_run_id, new_run_id;
  int base_runs = 0, new_runs = 0;  ///< runs of this series on each side (the newest is used)
  std::vector<MetricComparison> metrics;
  std::vector<std::string> notes;  ///< why figures are not judged, provenance mismatches
  int regressions = 0, improvements = 0;
};

/// A series found on one side only.
struct UnmatchedSeries {
  std::string label, path, status;
};

struct CompareReport {
  CompareOptions options;
  std::string base_source, new_source;
  size_t base_files = 0, new_files = 0;
  std::vector<SeriesComparison> series;
  std::vector<UnmatchedSeries> only_base, only_new;
  int regressions = 0, improvements = 0;
  bool HasRegression() const { return regressions > 0; }
};

/// Matches the runs of BASE and NEW by CompareKey (the newest run of a series on each side)
/// and compares every metric.
CompareReport CompareRuns(const std::vector<LoadedRun>& base, const std::vector<LoadedRun>& next,
                          const CompareOptions& options);

std::string CompareToMarkdown(const CompareReport& report);
nlohmann::json CompareToJson(const CompareReport& report);

}  // namespace cb

#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results/frontier.h"
#include "results/run_record.h"

namespace cb {

/// One sweep's outcome: every point, the frontier of output tokens/s per device against
/// interactivity (1/TPOT), and the figures interpolated at the requested interactivity.
struct SweepSummary {
  std::string group, axis;
  double at_interactivity = 0;
  std::vector<FrontierPoint> points;    ///< valid points (published runs)
  std::vector<std::string> excluded;    ///< points left out, and why
  std::vector<FrontierPoint> frontier;  ///< ParetoFrontier(points)
  bool has_at = false;                  ///< an answer at at_interactivity exists
  FrontierPoint at;                     ///< InterpolateAt(frontier, at_interactivity)
  std::string how;                      ///< provenance of the points: measured, modelled...
};

/// The point of one run: interactivity = 1 / median TPOT, throughput per device (serving:
/// output_tokens_per_second_per_device; offline: decode tokens/s / devices), $/Mtok of output
/// tokens and J/token where known (0 = unknown).
FrontierPoint PointOf(const RunRecord& rec);

/// Groups the records that belong to sweeps (rec.sweep) and summarises each; only runs that
/// are Publishable() become points, the others are listed as excluded.
std::vector<SweepSummary> SummarizeSweeps(const std::vector<RunRecord>& records);

nlohmann::json SweepSummaryToJson(const SweepSummary& s);
/// A plain-text table of the points (frontier marked) and the interpolated line.
std::string FormatSweepSummary(const SweepSummary& s);

}  // namespace cb

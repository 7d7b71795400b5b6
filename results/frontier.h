#pragma once

#include <optional>
#include <string>
#include <vector>

namespace cb {

/// One operating point of a workload (a batch size, a request rate) on one device.
struct FrontierPoint {
  double interactivity = 0;           ///< tokens/s per user = 1 / TPOT(s) = 1000 / TPOT(ms)
  double throughput_per_device = 0;   ///< output tokens/s per device
  double usd_per_million_tokens = 0;  ///< 0 = unknown
  double joules_per_token = 0;        ///< 0 = unknown
  std::string label;                  ///< e.g. "batch 8" or "rate 4/s"
  /// Set by InterpolateAt: false when the answer is one of the frontier's points exactly.
  bool interpolated = false;
};

/// The points not dominated by another point (one with higher-or-equal interactivity AND
/// higher-or-equal throughput, one of them strictly), sorted by interactivity ascending.
/// Points with a non-finite or negative interactivity or throughput are dropped; of exact
/// duplicates the first is kept.
std::vector<FrontierPoint> ParetoFrontier(std::vector<FrontierPoint> points);

/// Linear interpolation along `frontier` (as ParetoFrontier returns it) at `interactivity`:
/// throughput, $/Mtok and J/token between the two neighbouring points. A cost or energy that
/// is unknown (0) at either neighbour stays unknown (0). std::nullopt outside the frontier's
/// interactivity range or for an empty frontier. The result's label names the neighbours and
/// its `interpolated` says whether it lies between points or on one.
std::optional<FrontierPoint> InterpolateAt(const std::vector<FrontierPoint>& frontier,
                                           double interactivity);

}  // namespace cb

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "results/run_record.h"
#include "workloads/workload_spec.h"

namespace cb {

/// The validity rules of one scenario after its defaults are applied (docs/scenarios.md).
struct ValidityRules {
  double min_duration_s = 0;
  int64_t min_requests = 0;
  double max_cv = 0;  ///< 0: not checked
  bool strict = false;
};
ValidityRules RulesFor(const WorkloadSpec& w);

/// The 1-based index u of the order statistic x_(u) of n samples that is a `confidence` upper
/// bound of the `percentile` (0-100): the smallest u with P(Binomial(n, p) <= u - 1) >=
/// confidence. 0 when no order statistic of n samples is such a bound (n too small).
int64_t UpperBoundOrderIndex(int64_t n, double percentile, double confidence = 0.95);
/// The fewest samples for which UpperBoundOrderIndex is not 0.
int64_t MinSamplesForBound(double percentile, double confidence = 0.95);

PercentileBound BoundPercentile(const std::string& metric, std::vector<double> samples,
                                double percentile);

/// What the measured part of a run looked like.
struct ValidityInput {
  double duration_s = 0;
  int64_t requests = 0;
  std::vector<double> cv_samples;  ///< repetitions' e2e times, or per-request TPOT
  std::string cv_of;
  std::vector<std::pair<std::string, std::vector<double>>> latencies;  ///< bounded at p90, p99
  /// Findings that make the run unstable whatever the rules (the ceiling check's reasons:
  /// "ceiling_exceeded: ...", "ceiling_drift: ..."; harness/ceiling_check.h).
  std::vector<std::string> unstable_reasons;
};

/// Applies `rules`: fills rec->validity, and under strict marks a shortened or unstable run
/// `invalid` (a run already not ok keeps its status).
void ApplyValidity(const ValidityRules& rules, const ValidityInput& in, RunRecord* rec);

}  // namespace cb

#pragma once

#include <vector>

#include "results/run_record.h"

namespace cb {

/// Percentile by linear interpolation between closest ranks (NumPy's default, "type 7"):
/// rank = q/100 * (n - 1). `q` in [0, 100]. Returns 0 for an empty sample.
double Percentile(std::vector<double> samples, double q);

double Median(const std::vector<double>& samples);

/// Count, mean, p50/p90/p99, min, max, sample standard deviation (n - 1) and coefficient of
/// variation (stddev / mean, 0 when the mean is 0 or there is one sample).
Distribution Summarize(const std::vector<double>& samples);

}  // namespace cb

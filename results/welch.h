#pragma once

#include <vector>

namespace cb {

/// Welch's unequal-variances t-test from summary statistics (mean, sample standard deviation,
/// number of samples) of two sets. Returns the two-sided p-value of "the means are equal";
/// 1 when either side has fewer than 2 samples, 0 when both spreads are 0 and the means differ.
double WelchTwoSidedP(double mean_a, double sd_a, double n_a, double mean_b, double sd_b,
                      double n_b);

/// Mann-Whitney U test (Wilcoxon rank-sum) of two samples: the two-sided p-value of "neither
/// tends to be larger", from the normal approximation with tie correction and continuity
/// correction. Rank-based, so robust to the long tails of timings on a busy machine. 1 when a
/// side is empty or every value is tied.
double MannWhitneyTwoSidedP(const std::vector<double>& a, const std::vector<double>& b);

/// Regularised incomplete beta function I_x(a, b), for the t distribution's tail.
double RegularizedIncompleteBeta(double a, double b, double x);

}  // namespace cb

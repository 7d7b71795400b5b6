#include "harness/stats.h"

#include <algorithm>
#include <cmath>

namespace cb {

double Percentile(std::vector<double> samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const double rank = std::clamp(q, 0.0, 100.0) / 100.0 * static_cast<double>(samples.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, samples.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return samples[lo] + (samples[hi] - samples[lo]) * frac;
}

double Median(const std::vector<double>& samples) { return Percentile(samples, 50); }

Distribution Summarize(const std::vector<double>& samples) {
  Distribution d;
  d.count = samples.size();
  if (samples.empty()) return d;
  double sum = 0;
  for (double s : samples) sum += s;
  d.mean = sum / static_cast<double>(d.count);
  double sq = 0;
  for (double s : samples) sq += (s - d.mean) * (s - d.mean);
  d.stddev = d.count > 1 ? std::sqrt(sq / static_cast<double>(d.count - 1)) : 0;
  d.cv = d.mean != 0 && d.count > 1 ? d.stddev / std::fabs(d.mean) : 0;
  d.p50 = Percentile(samples, 50);
  d.p90 = Percentile(samples, 90);
  d.p99 = Percentile(samples, 99);
  d.min = *std::min_element(samples.begin(), samples.end());
  d.max = *std::max_element(samples.begin(), samples.end());
  return d;
}

}  // namespace cb

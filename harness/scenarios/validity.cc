#include "harness/scenarios/validity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "harness/core/fmt.h"
#include "harness/stats.h"

namespace cb {
namespace {}  // namespace

ValidityRules RulesFor(const WorkloadSpec& w) {
  const ServingSpec& s = w.serving;
  ValidityRules r;
  // Defaults: serving scenarios need enough requests for stable percentiles; offline is only
  // checked when asked (its repetitions are few and its figures are medians).
  if (w.scenario == "single-stream") {
    r = {10.0, 64, 0.10, false};
  } else if (w.scenario == "server") {
    r = {30.0, 300, 0.50, false};
  } else {
    r = {0.0, 0, 0.0, false};
  }
  if (s.min_duration >= 0) r.min_duration_s = s.min_duration;
  if (s.min_requests >= 0) r.min_requests = s.min_requests;
  if (s.max_cv >= 0) r.max_cv = s.max_cv;
  r.strict = s.strict;
  return r;
}

int64_t UpperBoundOrderIndex(int64_t n, double percentile, double confidence) {
  const double p = percentile / 100.0;
  if (n < 1 || p <= 0 || p >= 1) return 0;
  // CDF of Binomial(n, p) from k = 0 upwards, pmf in log space.
  const double lp = std::log(p), lq = std::log1p(-p);
  const double ln_fact_n = std::lgamma(static_cast<double>(n) + 1);
  double cdf = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double kk = static_cast<double>(k);
    cdf += std::exp(ln_fact_n - std::lgamma(kk + 1) - std::lgamma(static_cast<double>(n - k) + 1) +
                    kk * lp + static_cast<double>(n - k) * lq);
    if (cdf >= confidence) return k + 1;
  }
  return 0;  // even x_(n) bounds the percentile with less than `confidence`
}

int64_t MinSamplesForBound(double percentile, double confidence) {
  // x_(n) is a bound with confidence 1 - p^n.
  const double p = percentile / 100.0;
  return static_cast<int64_t>(std::ceil(std::log(1 - confidence) / std::log(p) - 1e-9));
}

PercentileBound BoundPercentile(const std::string& metric, std::vector<double> samples,
                                double percentile) {
  PercentileBound b;
  b.metric = metric;
  b.percentile = percentile;
  b.samples = static_cast<int64_t>(samples.size());
  b.min_samples = MinSamplesForBound(percentile);
  const int64_t u = UpperBoundOrderIndex(b.samples, percentile);
  if (u > 0) {
    std::sort(samples.begin(), samples.end());
    b.bounded = true;
    b.upper_bound = samples[static_cast<size_t>(u - 1)];
  }
  return b;
}

void ApplyValidity(const ValidityRules& rules, const ValidityInput& in, RunRecord* rec) {
  ValidityRecord v;
  v.strict = rules.strict;
  v.min_duration_s = rules.min_duration_s;
  v.min_requests = rules.min_requests;
  v.max_cv = rules.max_cv;
  v.duration_s = in.duration_s;
  v.requests = in.requests;
  v.cv_of = in.cv_of;
  v.cv = Summarize(in.cv_samples).cv;
  if (in.duration_s < rules.min_duration_s) {
    v.shortened = true;
    v.reasons.push_back("shortened: measured for " + Fmt(in.duration_s, "%.3g") +
                        " s, below the minimum of " + Fmt(rules.min_duration_s, "%.3g") +
                        " s (--min-duration)");
  }
  if (in.requests < rules.min_requests) {
    v.shortened = true;
    v.reasons.push_back("shortened: " + std::to_string(in.requests) +
                        " measured requests, below the minimum of " +
                        std::to_string(rules.min_requests) + " (--min-requests)");
  }
  if (rules.max_cv > 0 && v.cv > rules.max_cv) {
    v.unstable = true;
    v.reasons.push_back("unstable: coefficient of variation of " + in.cv_of + " is " +
                        Fmt(v.cv, "%.3g") + ", above --max-cv " + Fmt(rules.max_cv, "%.3g"));
  }
  for (const std::string& reason : in.unstable_reasons) {
    v.unstable = true;
    v.reasons.push_back("unstable: " + reason);
  }
  for (const auto& [name, samples] : in.latencies) {
    for (double pct : {90.0, 99.0}) {
      PercentileBound b = BoundPercentile(name, samples, pct);
      if (!b.bounded) {
        v.reasons.push_back("note: p" + Fmt(pct, "%.0f") + " of " + name +
                            " cannot be bounded with 95% confidence from " +
                            std::to_string(b.samples) + " samples (needs " +
                            std::to_string(b.min_samples) + ")");
      }
      v.percentile_bounds.push_back(std::move(b));
    }
  }
  if (v.shortened || v.unstable) {
    v.label = rules.strict ? "invalid" : v.shortened ? "shortened" : "unstable";
  }
  if (rules.strict && (v.shortened || v.unstable) && rec->status == "ok") {
    rec->status = "invalid";
    std::string why;
    for (const std::string& r : v.reasons) {
      if (r.rfind("note:", 0) != 0) why += (why.empty() ? "" : "; ") + r;
    }
    rec->status_message +=
        (rec->status_message.empty() ? "" : "; ") + std::string("--strict: ") + why;
  }
  rec->validity = std::move(v);
}

}  // namespace cb

// Validity rules: percentile confidence bounds (order statistics, as LoadGen's early
// stopping), shortened and unstable labels, strict mode, defaults per scenario.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/scenarios/validity.h"

namespace cb {
namespace {

/// P(Binomial(n, p) <= k), summed directly.
double BinomCdf(int64_t n, double p, int64_t k) {
  double c = 0;
  for (int64_t i = 0; i <= k; ++i) {
    c += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) +
                  i * std::log(p) + (n - i) * std::log1p(-p));
  }
  return c;
}

TEST(PercentileBound, TooFewSamplesCannotBoundTheTail) {
  // x_(n) bounds the p-quantile with confidence 1 - p^n: p90 needs 29 samples, p99 299.
  EXPECT_EQ(MinSamplesForBound(90), 29);
  EXPECT_EQ(MinSamplesForBound(99), 299);
  EXPECT_EQ(UpperBoundOrderIndex(28, 90), 0);
  EXPECT_EQ(UpperBoundOrderIndex(29, 90), 29);
  EXPECT_EQ(UpperBoundOrderIndex(298, 99), 0);
  EXPECT_EQ(UpperBoundOrderIndex(299, 99), 299);
}

TEST(PercentileBound, OrderIndexIsTheSmallestWithNinetyFivePercentCoverage) {
  for (int64_t n : {50, 100, 400, 1000, 5000}) {
    for (double pct : {90.0, 99.0}) {
      const int64_t u = UpperBoundOrderIndex(n, pct);
      if (u == 0) continue;
      const double p = pct / 100;
      EXPECT_GE(BinomCdf(n, p, u - 1), 0.95) << n << " " << pct;
      EXPECT_LT(BinomCdf(n, p, u - 2), 0.95) << n << " " << pct;
      EXPECT_GT(u, static_cast<int64_t>(std::ceil(p * n)) - 1) << "a bound is above the estimate";
    }
  }
}

TEST(PercentileBound, BoundIsTheOrderStatistic) {
  std::vector<double> x;
  for (int i = 1; i <= 100; ++i) x.push_back(i);  // shuffled order must not matter
  std::swap(x[3], x[97]);
  const PercentileBound b = BoundPercentile("ttft_seconds", x, 90);
  ASSERT_TRUE(b.bounded);
  EXPECT_EQ(b.upper_bound, static_cast<double>(UpperBoundOrderIndex(100, 90)));
  EXPECT_GE(b.upper_bound, 90);
  EXPECT_FALSE(BoundPercentile("ttft_seconds", x, 99).bounded);
}

RunRecord OkRecord() {
  RunRecord r;
  r.status = "ok";
  return r;
}

TEST(Validity, EnoughOfEverythingIsValid) {
  ValidityInput in;
  in.duration_s = 12;
  in.requests = 500;
  in.cv_samples = {1.0, 1.01, 0.99, 1.0};
  in.cv_of = "per-request TPOT";
  RunRecord r = OkRecord();
  ApplyValidity({10, 300, 0.1, false}, in, &r);
  ASSERT_TRUE(r.validity.has_value());
  EXPECT_EQ(r.validity->label, "valid");
  EXPECT_TRUE(r.Publishable());
  EXPECT_EQ(r.status, "ok");
}

TEST(Validity, ShortRunsAreLabelledShortenedAndNotPublishable) {
  ValidityInput in;
  in.duration_s = 2;
  in.requests = 500;
  RunRecord r = OkRecord();
  ApplyValidity({10, 300, 0, false}, in, &r);
  EXPECT_EQ(r.validity->label, "shortened");
  EXPECT_TRUE(r.validity->shortened);
  EXPECT_EQ(r.status, "ok");  // kept, labelled
  EXPECT_FALSE(r.Publishable());
  in.duration_s = 20;
  in.requests = 12;
  RunRecord few = OkRecord();
  ApplyValidity({10, 300, 0, false}, in, &few);
  EXPECT_EQ(few.validity->label, "shortened");
  ASSERT_FALSE(few.validity->reasons.empty());
  EXPECT_NE(few.validity->reasons[0].find("--min-requests"), std::string::npos);
}

TEST(Validity, HighSpreadIsUnstableAndStrictMakesItInvalid) {
  ValidityInput in;
  in.duration_s = 20;
  in.requests = 400;
  in.cv_samples = {1, 2, 1, 2, 1, 3};
  in.cv_of = "repetitions";
  RunRecord r = OkRecord();
  ApplyValidity({10, 300, 0.1, false}, in, &r);
  EXPECT_EQ(r.validity->label, "unstable");
  EXPECT_GT(r.validity->cv, 0.1);
  RunRecord strict = OkRecord();
  ApplyValidity({10, 300, 0.1, true}, in, &strict);
  EXPECT_EQ(strict.validity->label, "invalid");
  EXPECT_EQ(strict.status, "invalid");
  EXPECT_NE(strict.status_message.find("unstable"), std::string::npos);
  // max_cv 0 turns the check off.
  RunRecord off = OkRecord();
  ApplyValidity({10, 300, 0, false}, in, &off);
  EXPECT_EQ(off.validity->label, "valid");
}

TEST(Validity, UnboundablePercentilesAreSaidInTheRecord) {
  ValidityInput in;
  in.duration_s = 20;
  in.requests = 50;
  in.latencies = {{"ttft_seconds", std::vector<double>(50, 0.1)}};
  RunRecord r = OkRecord();
  ApplyValidity({0, 0, 0, false}, in, &r);
  ASSERT_EQ(r.validity->percentile_bounds.size(), 2u);
  EXPECT_TRUE(r.validity->percentile_bounds[0].bounded);   // p90 from 50
  EXPECT_FALSE(r.validity->percentile_bounds[1].bounded);  // p99 from 50
  EXPECT_EQ(r.validity->percentile_bounds[1].min_samples, 299);
  bool said = false;
  for (const auto& reason : r.validity->reasons)
    said |= reason.find("p99 of ttft_seconds") != std::string::npos;
  EXPECT_TRUE(said);
  EXPECT_EQ(r.validity->label, "valid");  // a note, not a label
}

TEST(Validity, DefaultsPerScenarioAndOverrides) {
  WorkloadSpec w;
  w.scenario = "server";
  EXPECT_EQ(RulesFor(w).min_requests, 300);
  EXPECT_GT(RulesFor(w).min_duration_s, 0);
  w.scenario = "single-stream";
  EXPECT_GT(RulesFor(w).max_cv, 0);
  w.scenario = "offline";
  EXPECT_EQ(RulesFor(w).max_cv, 0);
  w.serving.max_cv = 0.2;
  w.serving.min_requests = 7;
  EXPECT_EQ(RulesFor(w).max_cv, 0.2);
  EXPECT_EQ(RulesFor(w).min_requests, 7);
}

}  // namespace
}  // namespace cb

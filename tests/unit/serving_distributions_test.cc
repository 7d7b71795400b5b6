// Arrival processes and length distributions of the serving scenarios: seeded samples
// against their expected moments, and parse errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "harness/scenarios/distributions.h"

namespace cb {
namespace {

struct Moments {
  double mean = 0, var = 0;
};

Moments Of(const std::vector<double>& x) {
  Moments m;
  for (double v : x) m.mean += v;
  m.mean /= static_cast<double>(x.size());
  for (double v : x) m.var += (v - m.mean) * (v - m.mean);
  m.var /= static_cast<double>(x.size() - 1);
  return m;
}

std::vector<double> Gaps(const std::string& arrival, double rate, int n, uint64_t seed) {
  ArrivalProcess p;
  EXPECT_TRUE(ArrivalProcess::Parse(arrival, rate, "--arrival", &p).ok());
  std::mt19937_64 rng(seed);
  std::vector<double> gaps(n);
  for (double& g : gaps) g = p.NextGap(rng);
  return gaps;
}

// 40000 exponential gaps: the sample mean has a relative standard error of 1/sqrt(n) = 0.5%
// and the variance about 1.1%; the bounds are 4-5 standard errors wide.
TEST(Arrivals, PoissonGapsHaveMeanOneOverRateAndVarianceOneOverRateSquared) {
  for (uint64_t seed : {1u, 7u, 42u}) {
    const double rate = 4.0;
    const Moments m = Of(Gaps("poisson", rate, 40000, seed));
    EXPECT_NEAR(m.mean, 1 / rate, 0.02 / rate) << "seed " << seed;
    EXPECT_NEAR(m.var, 1 / (rate * rate), 0.05 / (rate * rate)) << "seed " << seed;
  }
}

TEST(Arrivals, PoissonCountsInAWindowHaveEqualMeanAndVariance) {
  // Arrivals per 1 s window of a rate-10 Poisson process: mean = variance = 10.
  const std::vector<double> gaps = Gaps("poisson", 10, 60000, 3);
  std::vector<double> counts;
  double t = 0, window_end = 1;
  double c = 0;
  for (double g : gaps) {
    t += g;
    while (t >= window_end) {
      counts.push_back(c);
      c = 0;
      window_end += 1;
    }
    ++c;
  }
  const Moments m = Of(counts);
  EXPECT_NEAR(m.mean, 10, 0.3);
  EXPECT_NEAR(m.var, 10, 1.0);
}

TEST(Arrivals, GammaKeepsTheRateAndHasTheAskedCoefficientOfVariation) {
  for (double cv : {0.5, 2.0, 4.0}) {
    const Moments m = Of(Gaps("gamma:" + std::to_string(cv), 2.0, 80000, 11));
    EXPECT_NEAR(m.mean, 0.5, 0.5 * 0.05) << "cv " << cv;
    EXPECT_NEAR(std::sqrt(m.var) / m.mean, cv, cv * 0.1) << "cv " << cv;
  }
}

TEST(Arrivals, SameSeedSameGaps) {
  EXPECT_EQ(Gaps("poisson", 3, 100, 5), Gaps("poisson", 3, 100, 5));
  EXPECT_NE(Gaps("poisson", 3, 100, 5), Gaps("poisson", 3, 100, 6));
}

TEST(Arrivals, BadInputNamesTheFlagAndTheAllowedValues) {
  ArrivalProcess p;
  Status s = ArrivalProcess::Parse("burst", 1, "--arrival", &p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("--arrival"), std::string::npos);
  EXPECT_NE(s.message().find("gamma:CV"), std::string::npos);
  EXPECT_FALSE(ArrivalProcess::Parse("gamma:-1", 1, "--arrival", &p).ok());
  EXPECT_FALSE(ArrivalProcess::Parse("poisson", 0, "--rate", &p).ok());
}

TEST(LengthDist, FixedUniformAndLognormal) {
  std::mt19937_64 rng(9);
  LengthDist d;
  ASSERT_TRUE(LengthDist::Parse("fixed:17", "--prompt-dist", &d).ok());
  EXPECT_EQ(d.Sample(rng), 17);
  EXPECT_EQ(d.Max(), 17);

  ASSERT_TRUE(LengthDist::Parse("uniform:4-9", "--prompt-dist", &d).ok());
  std::vector<double> u;
  for (int i = 0; i < 20000; ++i) {
    const int64_t v = d.Sample(rng);
    ASSERT_GE(v, 4);
    ASSERT_LE(v, 9);
    u.push_back(static_cast<double>(v));
  }
  EXPECT_NEAR(Of(u).mean, 6.5, 0.05);
  EXPECT_EQ(d.Max(), 9);

  ASSERT_TRUE(LengthDist::Parse("lognormal:100,0.5", "--output-dist", &d).ok());
  std::vector<double> l;
  for (int i = 0; i < 40000; ++i) {
    const int64_t v = d.Sample(rng);
    ASSERT_GE(v, 1);
    ASSERT_LE(v, d.Max());
    l.push_back(static_cast<double>(v));
  }
  // The mean of the lengths is MEAN (the 99.9th-percentile clip removes ~0.2% of the mass).
  EXPECT_NEAR(Of(l).mean, 100, 2.0);
  // Log-space spread.
  std::vector<double> logs;
  for (double v : l) logs.push_back(std::log(v));
  EXPECT_NEAR(std::sqrt(Of(logs).var), 0.5, 0.03);
}

TEST(LengthDist, BadInputIsRejectedWithTheAllowedForms) {
  LengthDist d;
  for (const char* bad : {"17", "fixed:0", "uniform:9-4", "uniform:4", "lognormal:100",
                          "lognormal:100,-1", "zipf:3", "fixed:x"}) {
    const Status s = LengthDist::Parse(bad, "--prompt-dist", &d);
    EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << bad;
    EXPECT_NE(s.message().find("--prompt-dist"), std::string::npos) << bad;
    EXPECT_NE(s.message().find("uniform:A-B"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace cb

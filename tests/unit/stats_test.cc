#include "harness/stats.h"

#include <gtest/gtest.h>

namespace cb {
namespace {

TEST(Percentile, InterpolatesBetweenClosestRanks) {
  // Hand-computed (NumPy type 7): rank = q/100 * (n-1).
  const std::vector<double> s = {15, 20, 35, 40, 50};
  EXPECT_DOUBLE_EQ(Percentile(s, 0), 15);
  EXPECT_DOUBLE_EQ(Percentile(s, 50), 35);
  EXPECT_DOUBLE_EQ(Percentile(s, 40), 29);    // rank 1.6: 20 + 0.6 * 15
  EXPECT_DOUBLE_EQ(Percentile(s, 90), 46);    // rank 3.6: 40 + 0.6 * 10
  EXPECT_DOUBLE_EQ(Percentile(s, 99), 49.6);  // rank 3.96
  EXPECT_DOUBLE_EQ(Percentile(s, 100), 50);
}

TEST(Percentile, OrderOfSamplesDoesNotMatter) {
  EXPECT_DOUBLE_EQ(Percentile({50, 15, 40, 20, 35}, 90), 46);
  EXPECT_DOUBLE_EQ(Median({4, 1, 3, 2}), 2.5);
}

TEST(Percentile, EmptyAndSingle) {
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
}

TEST(Summarize, MomentsAndSpread) {
  const Distribution d = Summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(d.count, 8u);
  EXPECT_DOUBLE_EQ(d.mean, 5);
  EXPECT_NEAR(d.stddev, 2.138089935, 1e-9);  // sample stddev: sqrt(32 / 7)
  EXPECT_NEAR(d.cv, 2.138089935 / 5, 1e-9);
  EXPECT_DOUBLE_EQ(d.min, 2);
  EXPECT_DOUBLE_EQ(d.max, 9);
  EXPECT_DOUBLE_EQ(d.p50, 4.5);
}

TEST(Summarize, OneSampleHasNoSpread) {
  const Distribution d = Summarize({3});
  EXPECT_EQ(d.count, 1u);
  EXPECT_DOUBLE_EQ(d.stddev, 0);
  EXPECT_DOUBLE_EQ(d.cv, 0);
}

}  // namespace
}  // namespace cb

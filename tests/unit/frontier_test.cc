#include "results/frontier.h"

#include <gtest/gtest.h>

#include <random>

namespace cb {
namespace {

FrontierPoint P(double x, double y, std::string label, double usd = 0, double j = 0) {
  FrontierPoint p;
  p.interactivity = x;
  p.throughput_per_device = y;
  p.usd_per_million_tokens = usd;
  p.joules_per_token = j;
  p.label = std::move(label);
  return p;
}

std::vector<std::string> Labels(const std::vector<FrontierPoint>& f) {
  std::vector<std::string> out;
  for (const auto& p : f) out.push_back(p.label);
  return out;
}

TEST(FrontierTest, KeepsOnlyUndominatedPointsSortedByInteractivity) {
  // A batch sweep: interactivity falls, throughput rises; "b3" and "b5" are dominated.
  const std::vector<FrontierPoint> points = {P(20, 400, "b16"), P(50, 100, "b1"), P(40, 220, "b4"),
                                             P(30, 150, "b3"),  P(45, 160, "b2"), P(25, 300, "b8"),
                                             P(24, 290, "b5")};
  const auto f = ParetoFrontier(points);
  EXPECT_EQ(Labels(f), (std::vector<std::string>{"b16", "b8", "b4", "b2", "b1"}));
  for (size_t i = 1; i < f.size(); ++i) {
    EXPECT_LT(f[i - 1].interactivity, f[i].interactivity);
    EXPECT_GT(f[i - 1].throughput_per_device, f[i].throughput_per_device);
  }
}

TEST(FrontierTest, TiesAreDominatedByTheStrictlyBetterPoint) {
  // Same interactivity, less throughput; same throughput, less interactivity: both dominated.
  const auto f = ParetoFrontier({P(10, 100, "a"), P(10, 90, "same-x"), P(8, 100, "same-y")});
  EXPECT_EQ(Labels(f), (std::vector<std::string>{"a"}));
}

TEST(FrontierTest, DropsNonFiniteAndEmptyInput) {
  EXPECT_TRUE(ParetoFrontier({}).empty());
  const auto f = ParetoFrontier({P(std::nan(""), 1e9, "nan"), P(-1, 5, "neg"), P(3, 4, "ok")});
  EXPECT_EQ(Labels(f), (std::vector<std::string>{"ok"}));
}

TEST(FrontierTest, NoFrontierPointIsDominatedAndEveryOtherPointIs) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(1, 100);
  std::vector<FrontierPoint> points;
  for (int i = 0; i < 200; ++i) points.push_back(P(u(rng), u(rng), std::to_string(i)));
  const auto f = ParetoFrontier(points);
  ASSERT_FALSE(f.empty());
  auto dominates = [](const FrontierPoint& a, const FrontierPoint& b) {
    return a.interactivity >= b.interactivity &&
           a.throughput_per_device >= b.throughput_per_device &&
           (a.interactivity > b.interactivity || a.throughput_per_device > b.throughput_per_device);
  };
  for (const auto& p : points) {
    bool on_frontier = false;
    for (const auto& q : f) on_frontier |= q.label == p.label;
    bool dominated = false;
    for (const auto& q : points) dominated |= dominates(q, p);
    EXPECT_EQ(on_frontier, !dominated) << p.label;
  }
}

TEST(FrontierTest, InterpolatesLinearlyBetweenNeighbours) {
  const auto f = ParetoFrontier({P(20, 400, "batch 16", 2.0, 0.5), P(50, 100, "batch 1", 8.0, 2.0),
                                 P(40, 200, "batch 4", 4.0, 1.0)});
  ASSERT_EQ(f.size(), 3u);
  const auto mid = InterpolateAt(f, 30);  // halfway between batch 16 and batch 4
  ASSERT_TRUE(mid.has_value());
  EXPECT_TRUE(mid->interpolated);
  EXPECT_DOUBLE_EQ(mid->interactivity, 30);
  EXPECT_DOUBLE_EQ(mid->throughput_per_device, 300);
  EXPECT_DOUBLE_EQ(mid->usd_per_million_tokens, 3.0);
  EXPECT_DOUBLE_EQ(mid->joules_per_token, 0.75);
  EXPECT_NE(mid->label.find("batch 16"), std::string::npos);
  EXPECT_NE(mid->label.find("batch 4"), std::string::npos);

  const auto q = InterpolateAt(f, 47.5);  // a quarter of the way back from batch 1
  ASSERT_TRUE(q.has_value());
  EXPECT_DOUBLE_EQ(q->throughput_per_device, 125);
}

TEST(FrontierTest, ExactPointIsNotInterpolated) {
  const auto f = ParetoFrontier({P(20, 400, "batch 16"), P(50, 100, "batch 1")});
  const auto at = InterpolateAt(f, 50);
  ASSERT_TRUE(at.has_value());
  EXPECT_FALSE(at->interpolated);
  EXPECT_EQ(at->label, "batch 1");
  EXPECT_DOUBLE_EQ(at->throughput_per_device, 100);
}

TEST(FrontierTest, OutsideRangeOrUnknownCostGivesNothingOrZero) {
  const auto f = ParetoFrontier({P(20, 400, "a", 0, 1.0), P(50, 100, "b", 8.0, 2.0)});
  EXPECT_FALSE(InterpolateAt(f, 19.9).has_value());
  EXPECT_FALSE(InterpolateAt(f, 50.1).has_value());
  EXPECT_FALSE(InterpolateAt({}, 30).has_value());
  const auto mid = InterpolateAt(f, 35);
  ASSERT_TRUE(mid.has_value());
  EXPECT_EQ(mid->usd_per_million_tokens, 0);  // unknown at one neighbour
  EXPECT_DOUBLE_EQ(mid->joules_per_token, 1.5);
}

}  // namespace
}  // namespace cb

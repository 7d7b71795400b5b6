// Sweep summaries: points from run records, the frontier, interpolation at a target
// interactivity, and runs that are not valid kept out.
#include "harness/scenarios/sweep_summary.h"

#include <gtest/gtest.h>

#include "harness/cost/energy_cost.h"

namespace cb {
namespace {

RunRecord Point(double batch, double tpot_s, double tps, double usd) {
  RunRecord r;
  r.run_id = "r" + std::to_string(static_cast<int>(batch));
  r.status = "ok";
  r.sweep = SweepRecord{"sweep-1", "batch", batch, 60};
  r.metrics.push_back({"tpot_seconds", "s", Provenance::kMeasured, tpot_s, false, {}});
  r.metrics.push_back(
      {"decode_tokens_per_second", "tokens/s", Provenance::kMeasured, tps, false, {}});
  r.metrics.push_back({kCostOutput, "USD/Mtok", Provenance::kModelled, usd, false, {}});
  return r;
}

TEST(SweepSummary, FrontierAndInterpolationAtTheTargetInteractivity) {
  // Batch 1: 100 tok/s/user, 100 tok/s; batch 2: 80/user, 160; batch 4: 50/user, 200;
  // batch 8 is dominated by batch 4 (slower per user and less throughput).
  std::vector<RunRecord> runs = {Point(1, 0.010, 100, 4.0), Point(2, 0.0125, 160, 2.5),
                                 Point(4, 0.020, 200, 2.0), Point(8, 0.025, 190, 2.1)};
  RunRecord bad = Point(16, 0.05, 400, 1.0);
  bad.validity = ValidityRecord{};
  bad.validity->label = "unstable";
  runs.push_back(bad);
  const auto sweeps = SummarizeSweeps(runs);
  ASSERT_EQ(sweeps.size(), 1u);
  const SweepSummary& s = sweeps[0];
  EXPECT_EQ(s.points.size(), 4u);
  ASSERT_EQ(s.excluded.size(), 1u);
  EXPECT_NE(s.excluded[0].find("unstable"), std::string::npos);
  ASSERT_EQ(s.frontier.size(), 3u);
  EXPECT_EQ(s.frontier[0].label, "batch 4");
  EXPECT_EQ(s.frontier[2].label, "batch 1");
  // 60 tok/s/user lies between batch 4 (50) and batch 2 (80): a third of the way.
  ASSERT_TRUE(s.has_at);
  EXPECT_TRUE(s.at.interpolated);
  EXPECT_NEAR(s.at.throughput_per_device, 200 + (160 - 200) / 3.0, 1e-9);
  EXPECT_NEAR(s.at.usd_per_million_tokens, 2.0 + (2.5 - 2.0) / 3.0, 1e-9);
  const nlohmann::json j = SweepSummaryToJson(s);
  EXPECT_EQ(j["frontier"].size(), 3u);
  EXPECT_EQ(j["at"]["interpolated"], true);
  EXPECT_NE(FormatSweepSummary(s).find("interpolated"), std::string::npos);
}

TEST(SweepSummary, OutsideTheRangeIsNotExtrapolated) {
  std::vector<RunRecord> runs = {Point(1, 0.010, 100, 4.0), Point(2, 0.0125, 160, 2.5)};
  for (auto& r : runs) r.sweep->at_interactivity = 500;
  const auto sweeps = SummarizeSweeps(runs);
  ASSERT_EQ(sweeps.size(), 1u);
  EXPECT_FALSE(sweeps[0].has_at);
  EXPECT_TRUE(SweepSummaryToJson(sweeps[0])["at"].is_null());
}

}  // namespace
}  // namespace cb

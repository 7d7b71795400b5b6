// The progress line of `clusterbench run` (harness/progress.h).
#include "harness/progress.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace cb {
namespace {

TEST(Progress, ClockReadsMinutesAndHours) {
  EXPECT_EQ(PlanProgress::Clock(0), "0:00");
  EXPECT_EQ(PlanProgress::Clock(65.4), "1:05");
  EXPECT_EQ(PlanProgress::Clock(3723), "1:02:03");
}

TEST(Progress, EtaFollowsTheShareOfWorkDone) {
  // A quarter of the work in 30 s: 90 s to go.
  EXPECT_EQ(PlanProgress::StatusText(1, 4, 25, 100, 30, "repetition 2/3"),
            "[2/4] 0:30 elapsed, ETA 1:30 | repetition 2/3");
  // Nothing measurable done yet: no guess.
  EXPECT_EQ(PlanProgress::StatusText(0, 23, 1, 100, 30, "loading"),
            "[1/23] 0:30 elapsed, ETA --:-- | loading");
}

TEST(Progress, PlainLinesWhenNotATerminal) {
  setenv("CLUSTERBENCH_PROGRESS", "plain", 1);
  PlanProgress& p = PlanProgress::Get();
  p.Start({1, 1}, false);
  EXPECT_FALSE(p.terminal());
  testing::internal::CaptureStderr();
  p.Step("[1/2]", "repetition 1/3", 0.25);
  p.Finish();
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "[1/2] repetition 1/3\n");
  setenv("CLUSTERBENCH_PROGRESS", "tty", 1);
  p.Start({1, 3}, false);
  EXPECT_TRUE(p.terminal());
  testing::internal::CaptureStderr();
  p.BeginRun(1);
  p.Step("[2/2]", "repetition 1/3", 0.5);
  p.Line("[1/2] done");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.rfind("\r\033[K[2/2] 0:00 elapsed, ETA --:-- | repetition 1/3", 0), 0u) << out;
  EXPECT_NE(out.find("\r\033[K[1/2] done\n"), std::string::npos) << out;
  unsetenv("CLUSTERBENCH_PROGRESS");
}

}  // namespace
}  // namespace cb

// The accuracy of a quantised run (harness/verify.h, AccuracyOf) on distributions whose top-1
// agreement and KL divergence are known by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/verify.h"

namespace cb {
namespace {

TEST(Accuracy, IdenticalLogitsAgreeWithZeroDivergence) {
  const std::vector<std::vector<float>> logits = {{1.0f, 2.0f, -3.0f}, {0.5f, 0.25f, 0.0f}};
  const AccuracyRecord a = AccuracyOf(logits, logits, 3);
  EXPECT_EQ(a.positions, 2);
  EXPECT_EQ(a.top1_agreement, 1.0);
  EXPECT_NEAR(a.mean_kl_divergence, 0.0, 1e-12);
}

TEST(Accuracy, KnownDivergenceAndAgreement) {
  const float ln3 = std::log(3.0f);
  // Step 0: p = (1/2, 1/2), q = (3/4, 1/4): KL = 1/2 ln(4/3); argmax 0 on both (a tie takes
  // the first). Step 1: p = (1/4, 3/4), q = (3/4, 1/4): KL = 1/2 ln 3; argmax 1 against 0.
  const std::vector<std::vector<float>> baseline = {{0.0f, 0.0f}, {0.0f, ln3}};
  const std::vector<std::vector<float>> run = {{ln3, 0.0f}, {ln3, 0.0f}};
  const AccuracyRecord a = AccuracyOf(baseline, run, 2);
  EXPECT_EQ(a.positions, 2);
  EXPECT_EQ(a.top1_agreement, 0.5);
  EXPECT_NEAR(a.mean_kl_divergence, (0.5 * std::log(4.0 / 3.0) + 0.5 * std::log(3.0)) / 2, 1e-6);
}

TEST(Accuracy, RowsOfSeveralSequencesPerStep) {
  // One step of two sequences: the second disagrees.
  const std::vector<std::vector<float>> baseline = {{5.0f, 0.0f, 0.0f, 0.0f, 5.0f, 0.0f}};
  const std::vector<std::vector<float>> run = {{5.0f, 0.0f, 0.0f, 5.0f, 0.0f, 0.0f}};
  const AccuracyRecord a = AccuracyOf(baseline, run, 3);
  EXPECT_EQ(a.positions, 2);
  EXPECT_EQ(a.top1_agreement, 0.5);
  EXPECT_GT(a.mean_kl_divergence, 1.0);
}

// Router logits get more room than the model's logits only where the router reads a
// bf16-stored input of an 8-bit weight-only session; never less than the logits' tolerance.
TEST(Accuracy, RouteLogitToleranceOfWeightOnlySessions) {
  const double fp8 = VerifyTolerance(DType::kFP8, true);
  EXPECT_GT(RouteLogitTolerance(DType::kFP8, true, fp8), fp8);
  const double fp8_mla = VerifyTolerance(DType::kFP8, true, true);
  EXPECT_EQ(RouteLogitTolerance(DType::kFP8, true, fp8_mla), fp8_mla);
  for (DType dt : {DType::kF32, DType::kBF16, DType::kInt8}) {
    const double tol = VerifyTolerance(dt);
    EXPECT_EQ(RouteLogitTolerance(dt, false, tol), tol) << DTypeName(dt);
  }
}

TEST(Accuracy, PrecisionLabels) {
  EXPECT_EQ(PrecisionLabel(DType::kInt8, false), "int8 (W8A8)");
  EXPECT_EQ(PrecisionLabel(DType::kFP8, true), "fp8 (weight-only)");
  EXPECT_EQ(PrecisionLabel(DType::kFP8, false), "fp8 (W8A8)");
  EXPECT_EQ(PrecisionLabel(DType::kBF16, false), "");
}

}  // namespace
}  // namespace cb

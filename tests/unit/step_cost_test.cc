// Work of a whole step as the runner counts it for MFU and MBU (harness/runner.h).
#include <gtest/gtest.h>

#include "harness/runner.h"
#include "workloads/model_spec.h"
#include "workloads/op_stream.h"

namespace cb {
namespace {

StepIO Decode(int64_t seqs, int64_t past) {
  StepIO io;
  for (int64_t i = 0; i < seqs; ++i) io.seqs.push_back({i, past, 1});
  return io;
}

TEST(ExtrapolatedCost, FullStreamCountsEveryLayerOfAMixedDenseAndMoeModel) {
  ModelSpec m;
  ASSERT_TRUE(LoadModelSpec("tiny-moe-mla", &m).ok());
  ASSERT_GT(m.moe.first_dense_layers, 0);  // layer 0 is dense, the others MoE
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &s).ok());
  const StepIO io = Decode(4, 16);
  const OpCost all = CostOfOps(s, 0, s.ops.size(), io, DType::kBF16);
  const OpCost c = ExtrapolatedCost(s, io, DType::kBF16);
  EXPECT_NEAR(c.flops / all.flops, 1.0, 1e-12);
  EXPECT_NEAR(c.weight_bytes / all.weight_bytes, 1.0, 1e-12);
  EXPECT_NEAR(c.bytes / all.bytes, 1.0, 1e-12);
  // Not layer 0 (dense) times the layer count.
  const auto [b0, e0] = s.LayerRange(0);
  const auto [b1, e1] = s.LayerRange(1);
  EXPECT_NE(CostOfOps(s, b0, e0, io, DType::kBF16).weight_bytes,
            CostOfOps(s, b1, e1, io, DType::kBF16).weight_bytes);
}

TEST(ExtrapolatedCost, PartialStreamScalesEachLayerByItsKind) {
  ModelSpec m;
  ASSERT_TRUE(LoadModelSpec("tiny", &m).ok());
  ASSERT_GE(m.num_layers, 2);
  OpStream one, full;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 1, &one).ok());
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &full).ok());
  const StepIO io = Decode(2, 8);
  const OpCost extrapolated = ExtrapolatedCost(one, io, DType::kF32);
  const OpCost exact = CostOfOps(full, 0, full.ops.size(), io, DType::kF32);
  EXPECT_NEAR(extrapolated.flops / exact.flops, 1.0, 1e-9);  // dense layers are alike
  EXPECT_NEAR(extrapolated.bytes / exact.bytes, 1.0, 1e-9);
}

// DeepSeek-V3 --layers 2 runs one dense and one MoE layer; scaled per kind (x3 and x58) they
// count exactly the work of all 61 layers. (Before, two dense layers were scaled x61 while
// the bytes counted the MoE layers: MBU came out 1.67.)
TEST(ExtrapolatedCost, RepresentativeLayersOfAMixedModelCountTheWholeModel) {
  ModelSpec m;
  ASSERT_TRUE(LoadModelSpec("deepseek-v3", &m).ok());
  OpStream two, full;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 2, &two).ok());
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &full).ok());
  ASSERT_EQ(two.plan.layers, (std::vector<int>{0, 3}));
  StepIO prefill;
  prefill.seqs.push_back({0, 0, 128});
  for (const StepIO& io : {prefill, Decode(1, 128), Decode(8, 40)}) {
    const OpCost extrapolated = ExtrapolatedCost(two, io, DType::kBF16);
    const OpCost exact = CostOfOps(full, 0, full.ops.size(), io, DType::kBF16);
    EXPECT_NEAR(extrapolated.flops / exact.flops, 1.0, 1e-9);
    EXPECT_NEAR(extrapolated.bytes / exact.bytes, 1.0, 1e-9);
    EXPECT_NEAR(extrapolated.weight_bytes / exact.weight_bytes, 1.0, 1e-9);
    EXPECT_NEAR(extrapolated.kv_bytes / exact.kv_bytes, 1.0, 1e-9);
  }
}

}  // namespace
}  // namespace cb

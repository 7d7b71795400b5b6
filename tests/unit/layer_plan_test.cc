// Representative layers for --layers N (workloads/layer_plan.h).
#include "workloads/layer_plan.h"

#include <gtest/gtest.h>

#include <numeric>

#include "workloads/op_stream.h"

namespace cb {
namespace {

ModelSpec Preset(const std::string& name) {
  ModelSpec m;
  const Status s = LoadModelSpec(name, &m);
  EXPECT_TRUE(s.ok()) << s.message();
  return m;
}

double ScaledLayers(const LayerPlan& p) {
  double sum = 0;
  for (int i = 0; i < p.size(); ++i) sum += p.Scale(i);
  return sum;
}

TEST(LayerPlan, DeepSeekTwoLayersRunOneDenseAndOneMoeLayer) {
  LayerPlan p;
  ASSERT_TRUE(PlanLayers(Preset("deepseek-v3"), 2, &p).ok());
  EXPECT_EQ(p.layers, (std::vector<int>{0, 3}));
  ASSERT_EQ(p.kinds.size(), 2u);
  EXPECT_EQ(p.kinds[0].name, "mla/dense");
  EXPECT_EQ(p.kinds[0].model_layers, 3);
  EXPECT_EQ(p.kinds[0].run, (std::vector<int>{0}));
  EXPECT_EQ(p.kinds[1].name, "mla/moe");
  EXPECT_EQ(p.kinds[1].model_layers, 58);
  EXPECT_EQ(p.kinds[1].run, (std::vector<int>{3}));
  EXPECT_DOUBLE_EQ(p.Scale(0), 3.0);
  EXPECT_DOUBLE_EQ(p.Scale(1), 58.0);
  EXPECT_TRUE(p.Partial());
  EXPECT_EQ(p.Describe(), "0 (mla/dense), 3 (mla/moe)");
}

TEST(LayerPlan, ExtraLayersGoToTheKindsInProportion) {
  LayerPlan p;
  ASSERT_TRUE(PlanLayers(Preset("deepseek-v3"), 4, &p).ok());
  EXPECT_EQ(p.layers, (std::vector<int>{0, 3, 4, 5}));
  EXPECT_DOUBLE_EQ(p.Scale(0), 3.0);
  EXPECT_DOUBLE_EQ(p.Scale(1), 58.0 / 3);
  ASSERT_TRUE(PlanLayers(Preset("deepseek-v3"), 30, &p).ok());
  EXPECT_EQ(p.kinds[0].run.size(), 1u);   // shares 30 x 3 / 61 = 1.48 and 28.52: MoE's remainder
  EXPECT_EQ(p.kinds[1].run.size(), 29u);  // is the larger
  ASSERT_TRUE(PlanLayers(Preset("kimi-k2"), 2, &p).ok());
  EXPECT_EQ(p.layers, (std::vector<int>{0, 1}));
  for (const char* model : {"deepseek-v3", "kimi-k2", "qwen3-235b-a22b", "llama-3.1-8b"}) {
    const ModelSpec m = Preset(model);
    for (int n : {2, 5, 17, static_cast<int>(m.num_layers)}) {
      ASSERT_TRUE(PlanLayers(m, n, &p).ok()) << model << " " << n;
      EXPECT_EQ(p.size(), n) << model;
      EXPECT_NEAR(ScaledLayers(p), static_cast<double>(m.num_layers), 1e-9) << model << " " << n;
      EXPECT_TRUE(std::is_sorted(p.layers.begin(), p.layers.end()));
    }
  }
}

TEST(LayerPlan, UniformModelsRunTheirFirstLayers) {
  LayerPlan p;
  ASSERT_TRUE(PlanLayers(Preset("llama-3.1-8b"), 2, &p).ok());
  EXPECT_EQ(p.layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(p.kinds.size(), 1u);
  EXPECT_EQ(p.kinds[0].name, "gqa/dense");
  EXPECT_DOUBLE_EQ(p.Scale(1), 16.0);
  ASSERT_TRUE(PlanLayers(Preset("qwen3-235b-a22b"), 1, &p).ok());
  EXPECT_EQ(p.layers, (std::vector<int>{0}));
  EXPECT_EQ(p.kinds[0].name, "gqa/moe");
  const ModelSpec tiny = Preset("tiny");
  ASSERT_TRUE(PlanLayers(tiny, 0, &p).ok());  // 0: all
  EXPECT_FALSE(p.Partial());
  EXPECT_EQ(p.size(), tiny.num_layers);
}

TEST(LayerPlan, FewerLayersThanKindsIsBadInput) {
  LayerPlan p;
  const Status s = PlanLayers(Preset("deepseek-v3"), 1, &p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("3 mla/dense, 58 mla/moe"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--layers 2"), std::string::npos) << s.message();
  const ModelSpec tiny = Preset("tiny");
  EXPECT_EQ(PlanLayers(tiny, static_cast<int>(tiny.num_layers) + 1, &p).code(),
            StatusCode::kInvalidInput);
}

TEST(LayerPlan, StreamRunsThePlannedModelLayers) {
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(Preset("deepseek-v3"), {}, 2, &s).ok());
  EXPECT_EQ(s.layers, 2);
  // Stream layer 1 is model layer 3: its weights are that layer's, its FFN is MoE.
  const auto [b, e] = s.LayerRange(1);
  bool moe = false;
  for (size_t i = b; i < e; ++i) {
    moe |= s.ops[i].kind == OpKind::kMoeExperts;
    for (const std::string& w : s.ops[i].weights) EXPECT_EQ(w.rfind("layers.3.", 0), 0u) << w;
  }
  EXPECT_TRUE(moe);
}

}  // namespace
}  // namespace cb

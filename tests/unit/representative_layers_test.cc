// The runner's extrapolation of a partial-layer run (--layers N) on a modelled device, where
// every layer's time is its roofline: a run of one dense and one MoE layer of a DeepSeek-shaped
// model, scaled per kind, gives the step times, FLOPs and bytes of running all its layers, and
// so the same MFU/MBU (never above 1). Scaling the mean layer by the layer count instead makes
// the dense layer stand for MoE layers and the figures wrong.
#include <gtest/gtest.h>

#include "backends/sim/sim_device.h"
#include "harness/runner.h"
#include "tests/unit/sim_testing.h"

namespace cb {
namespace {

/// DeepSeek-V3's shapes and layer kinds (3 dense, then MoE) with 8 layers of 16 experts, so
/// that the whole model fits a simulated device.
ModelSpec SmallDeepSeek() {
  ModelSpec m;
  EXPECT_TRUE(LoadModelSpec("deepseek-v3", &m).ok());
  m.num_layers = 8;
  m.moe.num_experts = 16;
  return m;
}

RunRecord RunLayers(int layers) {
  std::unique_ptr<Device> device;
  EXPECT_TRUE(sim::MakeSimDevice("sim:nvidia-h100-sxm", "", &device).ok());
  WorkloadSpec w;
  w.model = SmallDeepSeek();
  w.backend = "sim:nvidia-h100-sxm";
  w.layers = layers;
  w.batch = 2;
  w.prompt_len = 64;
  w.gen_len = 4;
  w.repetitions = 1;
  w.warmup = 0;
  w.verify = false;
  const RunRecord rec = testing::RunOfflineAlone(w, *device);
  EXPECT_EQ(rec.status, "ok") << rec.status_message;
  return rec;
}

double Value(const RunRecord& r, const char* name) {
  const Metric* m = r.FindMetric(name);
  EXPECT_NE(m, nullptr) << name;
  return m ? m->value : 0;
}

TEST(RepresentativeLayers, ExtrapolatedRunGivesTheWholeModelsFigures) {
  const RunRecord two = RunLayers(2), all = RunLayers(0);
  EXPECT_EQ(two.layer_plan.layers, (std::vector<int>{0, 3}));
  EXPECT_TRUE(two.extrapolated);
  EXPECT_NE(two.extrapolation_method.find("mla/dense x 3, mla/moe x 5"), std::string::npos)
      << two.extrapolation_method;
  EXPECT_FALSE(all.extrapolated);
  for (const char* name :
       {"prefill_tokens_per_second", "decode_tokens_per_second", "prefill_flops_per_second",
        "decode_bytes_per_second", "mfu_prefill_ratio", "mbu_decode_ratio"}) {
    EXPECT_NEAR(Value(two, name) / Value(all, name), 1.0, 1e-6) << name;
  }
  for (const char* name :
       {"mfu_prefill_ratio", "mfu_decode_ratio", "mbu_prefill_ratio", "mbu_decode_ratio"}) {
    EXPECT_LE(Value(two, name), 1.0) << name;
  }
}

}  // namespace
}  // namespace cb

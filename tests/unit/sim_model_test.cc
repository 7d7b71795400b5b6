// The simulated backend's model: op times against hand-computed roofline values, collective
// times against the alpha-beta formulas, orderings that follow from the catalog, the runtime's
// streams and events, and calibration recovering known parameters.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "backends/sim/calibration.h"
#include "backends/sim/perf_model.h"
#include "backends/sim/sim_device.h"
#include "backends/sim/topology.h"
#include "workloads/model_spec.h"
#include "workloads/op_cost.h"

namespace cb::sim {
namespace {

DeviceModel Plain(double peak, double bw) {
  DeviceModel m;
  m.id = "test";
  for (double& p : m.peak_flops) p = peak;
  m.mem_bandwidth = bw;
  m.eff.matmul_eff = 1;
  m.eff.matmul_m_half = 0;
  m.eff.matmul_mem_eff = 1;
  m.eff.attention_eff = 1;
  m.eff.attention_mem_eff = 1;
  m.eff.elementwise_mem_eff = 1;
  m.eff.launch_s = 0;
  return m;
}

TEST(SimModel, MatMulTimesAreTheRooflineByHand) {
  const DeviceModel m = Plain(1e12, 1e11);
  // GEMV 1 x 1024 x 1024 bf16: 2,097,152 FLOP, bytes = weights 2,097,152 + in 2,048 + out 4,096.
  OpCost c;
  c.flops = 2.0 * 1 * 1024 * 1024;
  c.bytes = 1024.0 * 1024 * 2 + 1024 * 2 + 1024 * 4;
  EXPECT_NEAR(OpSeconds(m, OpClass::kMatMul, c, 1, DType::kBF16), 2103296.0 / 1e11, 1e-12);
  // 4096 rows: 2 x 4096 x 1024 x 1024 = 8.59e9 FLOP -> 8.59 ms compute-bound at 1 TFLOP/s.
  c.flops = 2.0 * 4096 * 1024 * 1024;
  c.bytes = 1024.0 * 1024 * 2 + 4096.0 * 1024 * 2 + 4096.0 * 1024 * 4;
  EXPECT_NEAR(OpSeconds(m, OpClass::kMatMul, c, 4096, DType::kBF16), 8.589934592e-3, 1e-12);
}

TEST(SimModel, EfficiencyCurvesAndLaunchOverhead) {
  DeviceModel m = Plain(1e12, 1e11);
  m.eff.matmul_eff = 0.8;
  m.eff.matmul_m_half = 64;
  m.eff.matmul_mem_eff = 0.5;
  m.eff.elementwise_mem_eff = 0.25;
  m.eff.launch_s = 1e-5;
  OpCost c;
  c.flops = 2.0 * 64 * 4096 * 4096;
  c.bytes = 4096.0 * 4096 * 2;
  // M = 64: efficiency 0.8 x 64 / 128 = 0.4 -> 2.147e9 / 4e11 = 5.37 ms; memory 33.6 MB / 5e10
  // = 0.67 ms; plus 10 us launch.
  EXPECT_NEAR(OpSeconds(m, OpClass::kMatMul, c, 64, DType::kBF16), 1e-5 + c.flops / 4e11, 1e-12);
  OpCost e;
  e.flops = 1e6;
  e.bytes = 1e6;
  EXPECT_NEAR(OpSeconds(m, OpClass::kElementwise, e, 1, DType::kBF16), 1e-5 + 1e6 / 2.5e10, 1e-12);
  // Attention: its own compute and memory efficiencies.
  m.eff.attention_eff = 0.5;
  m.eff.attention_mem_eff = 0.8;
  OpCost a;
  a.flops = 1e10;
  a.bytes = 1e6;
  EXPECT_NEAR(OpSeconds(m, OpClass::kAttention, a, 1, DType::kBF16), 1e-5 + 1e10 / 5e11, 1e-12);
}

TEST(SimModel, CollectivesFollowTheAlphaBetaFormulas) {
  Topology t;
  t.domain = 8;
  t.scale_up = {2e-6, 450e9, "test"};
  t.scale_out = {10e-6, 50e9, "test"};
  const double n = 16e6;
  EXPECT_DOUBLE_EQ(CollectiveSeconds(t, Collective::kAllReduce, 1, n), 0);
  EXPECT_NEAR(CollectiveSeconds(t, Collective::kAllReduce, 8, n),
              2 * 7 * 2e-6 + 2.0 * 7 / 8 * n / 450e9, 1e-15);
  EXPECT_NEAR(CollectiveSeconds(t, Collective::kAllGather, 4, n), 3 * 2e-6 + 3.0 / 4 * n / 450e9,
              1e-15);
  // Beyond the scale-up domain the scale-out link bounds the ring.
  EXPECT_NEAR(CollectiveSeconds(t, Collective::kAllReduce, 16, n),
              2 * 15 * 10e-6 + 2.0 * 15 / 16 * n / 50e9, 1e-15);
}

TEST(SimModel, CatalogSystemsHaveTheirLinks) {
  DeviceCatalog cat;
  ASSERT_TRUE(DeviceCatalog::Load(DefaultCatalogDir(), &cat).ok());
  Topology cm, nvl;
  ASSERT_TRUE(TopologyFor(*FindEntry(cat, "cloudmatrix-384"), 1, &cm).ok());
  ASSERT_TRUE(TopologyFor(*FindEntry(cat, "gb200-nvl72"), 1, &nvl).ok());
  EXPECT_EQ(cm.devices, 384);
  EXPECT_EQ(cm.domain, 384);
  EXPECT_EQ(cm.device, "huawei-ascend-910c");
  EXPECT_EQ(nvl.devices, 72);
  EXPECT_EQ(nvl.domain, 72);
  EXPECT_GT(nvl.scale_up.beta_bytes_s, cm.scale_up.beta_bytes_s);
}

/// Modelled seconds of one step of `model` on catalog device `dev`.
double StepSeconds(const std::string& dev, const std::string& model, int64_t batch,
                   int64_t new_tokens, int64_t past) {
  DeviceCatalog cat;
  EXPECT_TRUE(DeviceCatalog::Load(DefaultCatalogDir(), &cat).ok());
  DeviceModel m;
  EXPECT_TRUE(LoadDeviceModel(cat, dev, &m).ok());
  ModelSpec spec;
  EXPECT_TRUE(LoadModelSpec(model, &spec).ok());
  OpStream s;
  EXPECT_TRUE(
      BuildDenseDecoderStream(spec, ShardSpec{}, static_cast<int>(spec.num_layers), &s).ok());
  StepIO io;
  for (int64_t b = 0; b < batch; ++b) io.seqs.push_back({b, past, new_tokens});
  double t = 0;
  for (const Op& op : s.ops) t += OpSeconds(m, s, op, io, DType::kBF16);
  return t;
}

double Figure(const std::string& id, bool bandwidth) {
  DeviceCatalog cat;
  EXPECT_TRUE(DeviceCatalog::Load(DefaultCatalogDir(), &cat).ok());
  const CatalogEntry* e = cat.Find(id);
  return bandwidth ? e->mem_bandwidth_bytes_per_s.value : e->peak_flops.at("bf16").value;
}

TEST(SimModel, OrderingFollowsTheCatalog) {
  // Decode at batch 1 is bandwidth-bound: the part with more memory bandwidth is faster.
  const double d910c = StepSeconds("huawei-ascend-910c", "llama-3.1-8b", 1, 1, 512);
  const double dh100 = StepSeconds("nvidia-h100-sxm", "llama-3.1-8b", 1, 1, 512);
  const double dh20 = StepSeconds("nvidia-h20", "llama-3.1-8b", 1, 1, 512);
  EXPECT_EQ(dh100<d910c, Figure("nvidia-h100-sxm", true)> Figure("huawei-ascend-910c", true));
  EXPECT_EQ(dh20<dh100, Figure("nvidia-h20", true)> Figure("nvidia-h100-sxm", true));
  // A long prefill is compute-bound: the part with more FLOP/s is faster (H20 has 4x less).
  const double ph100 = StepSeconds("nvidia-h100-sxm", "llama-3.1-8b", 4, 2048, 0);
  const double ph20 = StepSeconds("nvidia-h20", "llama-3.1-8b", 4, 2048, 0);
  const double p910c = StepSeconds("huawei-ascend-910c", "llama-3.1-8b", 4, 2048, 0);
  EXPECT_LT(ph100, ph20);
  EXPECT_EQ(ph100<p910c, Figure("nvidia-h100-sxm", false)> Figure("huawei-ascend-910c", false));
  // The decode step is close to weight bytes / bandwidth (16 GB / 3.35 TB/s ~ 4.8 ms).
  EXPECT_GT(dh100, 16e9 / 3.35e12);
  EXPECT_LT(dh100, 2 * 16e9 / 3.35e12);
}

TEST(SimRuntime, StreamsEventsAndTheClock) {
  SimRuntime rt;
  const auto a = rt.CreateStream(), b = rt.CreateStream();
  rt.Launch(a, 1.0, 1.0);
  rt.Launch(b, 0.5, 0.0);
  EXPECT_DOUBLE_EQ(rt.now(), 0);  // queued, not complete
  const auto ea = rt.RecordEvent(a);
  rt.StreamWaitEvent(b, ea);  // b waits for a's first second
  rt.Launch(b, 0.25, 1.0);
  const auto eb = rt.RecordEvent(b);
  EXPECT_DOUBLE_EQ(rt.EventElapsed(ea, eb), 0.25);
  rt.SynchronizeStream(a);
  EXPECT_DOUBLE_EQ(rt.now(), 1.0);
  rt.SynchronizeDevice();
  EXPECT_DOUBLE_EQ(rt.now(), 1.25);
  EXPECT_DOUBLE_EQ(rt.busy_seconds(), 1.25);
}

TEST(SimDevice, DecodeOfA70BModelOnEightDevicesCostsNoRealCompute) {
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(MakeSimDevice("sim:nvidia-h100-sxm", "", &dev).ok());
  EXPECT_TRUE(dev->Props().simulated);
  EXPECT_TRUE(dev->clock().simulated());
  EXPECT_EQ(dev->Props().isa, kModelVersion);
  ModelSpec spec;
  ASSERT_TRUE(LoadModelSpec("llama-3.1-70b", &spec).ok());
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(spec, ShardSpec{8, 0}, 80, &s).ok());
  VirtualGroup group(8);
  SessionConfig cfg;
  cfg.dtype = DType::kBF16;
  cfg.max_sequences = 8;
  cfg.max_context = 2048;
  cfg.max_step_tokens = 8;
  cfg.tp_comm = &group;
  std::unique_ptr<Session> session;
  ASSERT_TRUE(dev->Open(cfg, &session).ok());
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(session->Load(s, WeightSource(1)).ok());
  EXPECT_EQ(session->AllocatedBytes(), 0u);
  StepIO io;
  for (int64_t b = 0; b < 8; ++b) io.seqs.push_back({b, 1024, 1});
  io.tokens.assign(8, 1);
  const double c0 = dev->clock().NowSeconds();
  ASSERT_TRUE(session->Run(s, {0, s.ops.size()}, io).ok());
  EXPECT_DOUBLE_EQ(dev->clock().NowSeconds(), c0);  // asynchronous until synchronised
  ASSERT_TRUE(session->Synchronize().ok());
  const double step = dev->clock().NowSeconds() - c0;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  ASSERT_EQ(io.next_tokens.size(), 8u);
  // 70.6B bf16 parameters / 8 shards / 3.35 TB/s ~ 5.3 ms, plus 160 allreduces.
  EXPECT_GT(step, 141e9 / 8 / 3.35e12);
  EXPECT_LT(step, 4 * 141e9 / 8 / 3.35e12);
  EXPECT_GT(group.comm_seconds(), 160 * 2 * 7 * 2e-6);
}

TEST(SimCalibration, RecoversKnownParametersFromSyntheticMeasurements) {
  DeviceModel truth = Plain(2e12, 4e10);
  truth.eff.matmul_eff = 0.55;
  truth.eff.matmul_m_half = 20;
  truth.eff.matmul_mem_eff = 0.7;
  truth.eff.attention_eff = 0.4;
  truth.eff.attention_mem_eff = 0.6;
  truth.eff.elementwise_mem_eff = 0.5;
  truth.eff.launch_s = 3e-6;
  std::vector<OpSample> samples;
  auto add = [&](OpClass cls, double flops, double bytes, double rows) {
    OpSample s;
    s.cls = cls;
    s.cost.flops = flops;
    s.cost.bytes = bytes;
    s.rows = rows;
    s.seconds = OpSeconds(truth, cls, s.cost, rows, DType::kBF16);
    samples.push_back(s);
  };
  for (double m : {1.0, 4.0, 16.0, 64.0, 256.0, 1024.0}) {
    for (double k : {512.0, 2048.0}) {
      add(OpClass::kMatMul, 2 * m * k * k, k * k * 2 + m * k * 6, m);
    }
  }
  for (double b : {1e3, 1e5, 1e7}) add(OpClass::kElementwise, b / 4, b, 1);
  for (double f : {1e6, 1e9, 1e11}) add(OpClass::kAttention, f, 1e7, 1);
  DeviceModel fit = truth;
  fit.eff = Efficiency{};
  const double err = FitEfficiency(samples, &fit);
  EXPECT_LT(err, 0.01);
  EXPECT_NEAR(fit.eff.matmul_eff, 0.55, 0.03);
  EXPECT_NEAR(fit.eff.matmul_m_half, 20, 2);
  EXPECT_NEAR(fit.eff.matmul_mem_eff, 0.7, 0.035);
  EXPECT_NEAR(fit.eff.attention_eff, 0.4, 0.02);
  EXPECT_NEAR(fit.eff.attention_mem_eff, 0.6, 0.03);
  EXPECT_NEAR(fit.eff.elementwise_mem_eff, 0.5, 0.025);
  EXPECT_NEAR(fit.eff.launch_s, 3e-6, 0.3e-6);
}

}  // namespace
}  // namespace cb::sim

// --op-breakdown's per-op work and roofline share, on a modelled device where every op's time
// is its roofline (plus launch latency and efficiencies): the ops' FLOPs and bytes add up to
// the step's work as MFU and MBU count it, and no op's time is below its roofline.
#include "harness/op_breakdown.h"

#include <gtest/gtest.h>

#include <cmath>

#include "backends/sim/sim_device.h"
#include "harness/offline_work.h"

namespace cb {
namespace {

TEST(OpBreakdown, OpsWorkAddsUpToTheStepAndStaysWithinTheRoofline) {
  std::unique_ptr<Device> device;
  ASSERT_TRUE(sim::MakeSimDevice("sim:nvidia-h100-sxm", "", &device).ok());
  WorkloadSpec w;
  ASSERT_TRUE(LoadModelSpec("deepseek-v3", &w.model).ok());
  w.model.moe.num_experts = 16;
  w.layers = 2;  // one dense and one MoE layer standing for 3 and 58
  w.batch = 2;
  w.prompt_len = 32;
  w.gen_len = 3;
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(w.model, ShardSpec{}, w.layers, &stream).ok());
  ASSERT_TRUE(stream.plan.Partial());
  SessionConfig cfg;
  cfg.dtype = w.dtype;
  cfg.max_sequences = w.batch;
  cfg.max_context = w.prompt_len + w.gen_len;
  cfg.max_step_tokens = w.batch * w.prompt_len;
  std::unique_ptr<Session> session;
  ASSERT_TRUE(device->Open(cfg, &session).ok());
  const WeightSource weights(w.seed);
  ASSERT_TRUE(session->Load(stream, weights).ok());
  const int64_t vocab = stream.dims.vocab_full;
  OpBreakdownRecord b;
  const Status s = MeasureOpBreakdown(*session, device->clock(), stream, w, vocab, 0, w.batch, &b);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(b.decode_steps, 3);

  StepIO prefill = PrefillIO(w, vocab, 0, w.batch);
  const OpCost prefill_work = ExtrapolatedCost(stream, prefill, w.dtype, w.KvDType());
  // The decode steps' mean work: positions 32, 33 and 34.
  OpCost decode_work;
  for (int g = 0; g < 3; ++g) {
    StepIO io = prefill;
    for (SeqStep& q : io.seqs) q = {q.slot, w.prompt_len + g, 1};
    const OpCost c = ExtrapolatedCost(stream, io, w.dtype, w.KvDType());
    decode_work.flops += c.flops / 3;
    decode_work.bytes += c.bytes / 3;
  }
  const DeviceProps p = device->Props();
  const double peak = p.peak_flops[static_cast<int>(w.dtype)];
  const double bandwidth = p.mem_bandwidth_bytes_per_s;
  for (const auto& [phase, shares, work] : {std::tuple{"prefill", &b.prefill, prefill_work},
                                            std::tuple{"decode", &b.decode, decode_work}}) {
    SCOPED_TRACE(phase);
    double flops = 0, bytes = 0;
    for (const OpShare& op : *shares) {
      flops += op.flops;
      bytes += op.bytes;
      const double r = op.Roofline(peak, bandwidth);
      EXPECT_GT(r, 0.0) << op.op;
      EXPECT_LE(r, 1.0) << op.op;
    }
    EXPECT_NEAR(flops / work.flops, 1.0, 1e-9);
    EXPECT_NEAR(bytes / work.bytes, 1.0, 1e-9);
  }
  // Without both ceilings there is no ratio, and the line shows none.
  EXPECT_TRUE(std::isnan(b.prefill[0].Roofline(0, bandwidth)));
  EXPECT_EQ(OpSharesLine(b.prefill).find('('), std::string::npos);
  EXPECT_NE(OpSharesLine(b.prefill, peak, bandwidth).find(" ("), std::string::npos);
}

TEST(OpBreakdown, RooflineShareIsTheIdealTimeOverTheTime) {
  OpShare op{"matmul wq", 2.0, 0.5, 100.0, 400.0};
  EXPECT_DOUBLE_EQ(op.Roofline(100.0, 400.0), 0.5);  // 1 s of either
  EXPECT_DOUBLE_EQ(op.Roofline(50.0, 400.0), 1.0);   // compute-bound: 2 s
  EXPECT_DOUBLE_EQ(op.Roofline(100.0, 100.0), 2.0);  // above 1: shown, never clipped
  EXPECT_EQ(OpSharesLine({op}, 100.0, 400.0), "matmul wq 50.0% (0.50)");
  EXPECT_EQ(OpSharesLine({op}), "matmul wq 50.0%");
  EXPECT_EQ(OpSharesLine({op}, 100.0, 100.0), "matmul wq 50.0% (2.00!)");
  EXPECT_TRUE(AnyAboveRoofline({op}, 100.0, 100.0));
  EXPECT_FALSE(AnyAboveRoofline({op}, 100.0, 400.0));
}

}  // namespace
}  // namespace cb

// MoE and MLA outside the backends: the router's selection rule, --routing parsing, the load
// imbalance measure, the op stream of MoE/MLA models (weights add up to the parameter count,
// experts split by rank under TP), the op costs (active work only, compressed KV bytes) and
// the record's round trip of a MoE model.

#include <gtest/gtest.h>

#include <cmath>

#include "results/record_json.h"
#include "tests/unit/record_testing.h"
#include "workloads/moe_routing.h"
#include "workloads/op_cost.h"
#include "workloads/op_stream.h"

namespace cb {
namespace {

ModelSpec Preset(const std::string& name) {
  ModelSpec m;
  EXPECT_TRUE(LoadModelSpec(name, &m).ok()) << name;
  return m;
}

MoeSpec Moe(int64_t experts, int64_t k) {
  MoeSpec m;
  m.num_experts = experts;
  m.experts_per_token = k;
  m.expert_ffn_size = 8;
  return m;
}

TEST(MoeRouting, TopKSortedByIdWithNormalisationAndScaling) {
  MoeSpec moe = Moe(6, 2);
  moe.routed_scaling = 2.0;
  const double scores[] = {0.1, 0.5, 0.2, 0.4, 0.05, 0.3};
  int64_t ids[2];
  double w[2];
  std::vector<double> scratch;
  std::vector<char> eligible;
  SelectExperts<double>(moe, scores, nullptr, ids, w, scratch, eligible);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);
  EXPECT_NEAR(w[0], 2.0 * 0.5 / 0.9, 1e-12);
  EXPECT_NEAR(w[1], 2.0 * 0.4 / 0.9, 1e-12);
  moe.norm_topk = false;
  SelectExperts<double>(moe, scores, nullptr, ids, w, scratch, eligible);
  EXPECT_NEAR(w[0], 1.0, 1e-12);  // 2 x 0.5
}

TEST(MoeRouting, BiasSelectsButDoesNotWeigh) {
  MoeSpec moe = Moe(4, 1);
  const double scores[] = {0.6, 0.5, 0.1, 0.1};
  const float bias[] = {0.0f, 0.2f, 0.0f, 0.0f};
  int64_t id;
  double w;
  std::vector<double> scratch;
  std::vector<char> eligible;
  moe.norm_topk = false;
  SelectExperts<double>(moe, scores, bias, &id, &w, scratch, eligible);
  EXPECT_EQ(id, 1);            // 0.5 + 0.2 beats 0.6
  EXPECT_NEAR(w, 0.5, 1e-12);  // its score, without the bias
}

TEST(MoeRouting, GroupLimitedRoutingUsesTheBestGroups) {
  // 4 groups of 2; group score = sum of its two best: g0 0.9+0.0, g1 0.5+0.5, g2 0.45+0.45,
  // g3 0.1+0.1. topk_group 2 -> g1 and g0 eligible; expert 0 (0.9) would win anyway, the
  // second pick must come from g1 (0.5) although g2's experts 4, 5 (0.45) beat nothing there.
  MoeSpec moe = Moe(8, 3);
  moe.num_groups = 4;
  moe.topk_groups = 2;
  const double scores[] = {0.9, 0.0, 0.5, 0.5, 0.45, 0.45, 0.1, 0.1};
  int64_t ids[3];
  double w[3];
  std::vector<double> scratch;
  std::vector<char> eligible;
  SelectExperts<double>(moe, scores, nullptr, ids, w, scratch, eligible);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 2);
  EXPECT_EQ(ids[2], 3);
  moe.num_groups = 0;
  moe.topk_groups = 0;
  SelectExperts<double>(moe, scores, nullptr, ids, w, scratch, eligible);
  EXPECT_EQ(ids[2], 3);  // ties go to the lower index: 2 and 3 before 4 and 5
}

// Verification's routing rule: a backend may choose other experts only where the reference's
// selection scores are within rounding (tol) of a tie.
TEST(MoeRouting, AFlipIsAcceptedOnlyWithinTheMargin) {
  const MoeSpec moe = Moe(6, 2);
  const double sel[] = {0.1, 0.5, 0.2, 0.4, 0.05, 0.39};
  const int64_t own[] = {1, 3};
  const int64_t same[] = {1, 3}, near_tie[] = {1, 5}, far[] = {1, 4};
  std::vector<double> tol(6, 0.006);  // 0.4 - 0.006 < 0.39 + 0.006: experts 3 and 5 may swap
  EXPECT_TRUE(FlipWithinMargin(moe, sel, tol.data(), own, same));
  EXPECT_TRUE(FlipWithinMargin(moe, sel, tol.data(), own, near_tie));
  EXPECT_FALSE(FlipWithinMargin(moe, sel, tol.data(), own, far));  // 0.05 is no tie of 0.4
  std::fill(tol.begin(), tol.end(), 0.004);                        // 0.396 > 0.394: no longer
  EXPECT_FALSE(FlipWithinMargin(moe, sel, tol.data(), own, near_tie));
}

TEST(MoeRouting, AFlipIntoAnotherGroupNeedsTheGroupsTied) {
  // 4 groups of 2, top-2 groups: g0 0.9 + 0.0 and g1 0.5 + 0.5 kept, g2 0.44 + 0.44 out.
  MoeSpec moe = Moe(8, 3);
  moe.num_groups = 4;
  moe.topk_groups = 2;
  const double sel[] = {0.9, 0.0, 0.5, 0.5, 0.44, 0.44, 0.1, 0.1};
  const int64_t own[] = {0, 2, 3}, into_g2[] = {0, 2, 4};
  // Experts 4 and 3 tie within 0.035 each; group g2 (0.88 + 0.07) reaches g0 (0.9 - 0.07).
  const std::vector<double> tol(8, 0.035);
  EXPECT_TRUE(FlipWithinMargin(moe, sel, tol.data(), own, into_g2));
  // Expert 4 still ties expert 3, but its group (0.48 + 0.1) is far below g1 (0.5 + 0.5).
  const double far_group[] = {0.9, 0.3, 0.5, 0.5, 0.48, 0.1, 0.1, 0.1};
  EXPECT_FALSE(FlipWithinMargin(moe, far_group, tol.data(), own, into_g2));
}

TEST(MoeRouting, ToleranceFollowsTheScoringFunction) {
  MoeSpec moe = Moe(3, 1);
  const double scores[] = {0.5, 0.3, 0.2}, dev[] = {0.01, 0.04, 0.02};
  double tol[3];
  RoutingTolerance(moe, scores, dev, tol);  // softmax: s (d_e + max d), 25% for second order
  EXPECT_NEAR(tol[0], 1.25 * 0.5 * (0.01 + 0.04), 1e-15);
  moe.scoring = "sigmoid";
  RoutingTolerance(moe, scores, dev, tol);  // sigmoid: s (1 - s) d_e
  EXPECT_NEAR(tol[0], 1.25 * 0.25 * 0.01, 1e-15);
}

TEST(MoeRouting, ParseRouting) {
  const ModelSpec moe = Preset("tiny-moe-gqa"), dense = Preset("tiny");
  double s = -1;
  EXPECT_TRUE(ParseRouting("uniform", moe, &s).ok());
  EXPECT_EQ(s, 0);
  EXPECT_TRUE(ParseRouting("zipf:1.25", moe, &s).ok());
  EXPECT_EQ(s, 1.25);
  for (const char* bad : {"zipf:", "zipf:0", "zipf:-1", "zipf:1x", "skewed", "zipf:nan"}) {
    const Status st = ParseRouting(bad, moe, &s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidInput) << bad;
    EXPECT_NE(st.message().find("allowed values: uniform, zipf:S"), std::string::npos) << bad;
  }
  EXPECT_FALSE(ParseRouting("zipf:1", dense, &s).ok());
  EXPECT_TRUE(ParseRouting("uniform", dense, &s).ok());
  EXPECT_FLOAT_EQ(RoutingSkewBias(1.0, 0), 0.0f);
  EXPECT_FLOAT_EQ(RoutingSkewBias(2.0, 3), static_cast<float>(-2.0 * std::log(4.0)));
}

TEST(MoeRouting, LoadImbalanceByHand) {
  // 2 layers x 4 experts; layer 0 dense (no load), layer 1: 6, 2, 0, 0 -> max 6 / mean 2 = 3;
  // per rank of 2 experts: 8 and 0 -> 8 / 4 = 2.
  const std::vector<int32_t> load = {0, 0, 0, 0, 6, 2, 0, 0};
  EXPECT_DOUBLE_EQ(ExpertLoadImbalance(load, 4), 3.0);
  EXPECT_DOUBLE_EQ(ExpertLoadImbalance(load, 4, 2), 2.0);
  EXPECT_DOUBLE_EQ(ExpertLoadImbalance({}, 4), 0.0);
  const std::vector<int32_t> even = {3, 3, 3, 3};
  EXPECT_DOUBLE_EQ(ExpertLoadImbalance(even, 4), 1.0);
}

int64_t StreamElements(const OpStream& s) {
  int64_t n = 0;
  for (const WeightDesc& w : s.weights) n += w.Elements();
  return n;
}

TEST(MoeOpStream, WeightsAddUpToTheParameterCount) {
  for (const char* name : {"tiny-moe-mla", "tiny-moe-gqa"}) {
    const ModelSpec m = Preset(name);
    OpStream s;
    const Status st = BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &s);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(StreamElements(s), m.TotalParams()) << name;
  }
  // DeepSeek-V3 with 4 layers: its representative layers 0 (dense), 3, 4, 5 (MoE).
  const ModelSpec ds = Preset("deepseek-v3");
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(ds, {}, 4, &s).ok());
  int64_t want = 2 * ds.vocab_size * ds.hidden_size + ds.hidden_size;
  for (int l : {0, 3, 4, 5}) want += ds.LayerParams(l);
  EXPECT_EQ(StreamElements(s), want);
}

TEST(MoeOpStream, MlaAndMoeLayerStructure) {
  const ModelSpec m = Preset("tiny-moe-mla");
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 3, &s).ok());
  std::vector<OpKind> layer1;
  const auto [b, e] = s.LayerRange(1);
  for (size_t i = b; i < e; ++i) layer1.push_back(s.ops[i].kind);
  const std::vector<OpKind> want = {
      OpKind::kRmsNorm,    OpKind::kMatMul,      OpKind::kRmsNorm,     OpKind::kMatMul,
      OpKind::kMatMul,     OpKind::kMlaKvNorm,   OpKind::kMlaRope,     OpKind::kMlaAttention,
      OpKind::kMatMul,     OpKind::kResidualAdd, OpKind::kRmsNorm,     OpKind::kMatMul,
      OpKind::kSwiGlu,     OpKind::kMatMul,      OpKind::kResidualAdd, OpKind::kRouter,
      OpKind::kMoeExperts, OpKind::kResidualAdd};
  EXPECT_EQ(layer1, want);
  // Layer 0 is dense: no router.
  const auto [b0, e0] = s.LayerRange(0);
  for (size_t i = b0; i < e0; ++i) EXPECT_NE(s.ops[i].kind, OpKind::kRouter);
  EXPECT_EQ(BufferWidth(s.dims, Buf::kKva), 40);  // kv_lora 32 + rope 8
  EXPECT_EQ(BufferWidth(s.dims, Buf::kQkv), 0);   // no GQA buffer
  EXPECT_EQ(BufferWidth(s.dims, Buf::kAttn), 4 * 16);
}

TEST(MoeOpStream, TensorParallelSplitsExpertsByRank) {
  const ModelSpec m = Preset("tiny-moe-mla");
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {2, 1}, 3, &s).ok());
  EXPECT_EQ(s.dims.local_experts, 4);
  EXPECT_EQ(s.dims.expert_begin, 4);
  const WeightDesc* gu = s.FindWeight("layers.1.experts.w_gate_up");
  ASSERT_NE(gu, nullptr);
  EXPECT_EQ(gu->rows, 4 * 2 * 32);
  EXPECT_EQ(gu->row_offset, 4 * 2 * 32);
  // MoE and attention outputs are partial sums: each is followed by an allreduce.
  int allreduce = 0;
  const auto [b, e] = s.LayerRange(1);
  for (size_t i = b; i < e; ++i) allreduce += s.ops[i].kind == OpKind::kAllReduce;
  EXPECT_EQ(allreduce, 3);  // attention, shared experts, routed experts
  OpStream bad;
  EXPECT_EQ(BuildDenseDecoderStream(m, {3, 0}, 3, &bad).code(), StatusCode::kInvalidInput);
}

StepIO Step(int64_t seqs, int64_t past, int64_t tokens) {
  StepIO io;
  for (int64_t i = 0; i < seqs; ++i) io.seqs.push_back({i, past, tokens});
  return io;
}

TEST(MoeOpCost, CountsActiveExpertsOnly) {
  const ModelSpec m = Preset("deepseek-v3");
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 4, &s).ok());
  const Op* experts = nullptr;
  for (const Op& op : s.ops) {
    if (op.kind == OpKind::kMoeExperts) experts = &op;
  }
  ASSERT_NE(experts, nullptr);
  const double per_expert = 3.0 * 7168 * 2048;
  // One token: 8 experts' flops, 8 experts' weights.
  OpCost one = CostOfOp(s, *experts, Step(1, 100, 1), DType::kBF16);
  EXPECT_NEAR(one.flops / (2.0 * 8 * per_expert), 1.0, 0.01);
  EXPECT_NEAR(one.weight_bytes, 8 * per_expert * 2, 1.0);
  // 64 tokens: 512 routed pairs over 256 experts; expected distinct experts
  // 256 (1 - (1 - 8/256)^64) = 222.6, not 256 nor 512.
  OpCost many = CostOfOp(s, *experts, Step(64, 100, 1), DType::kBF16);
  EXPECT_NEAR(many.flops / (2.0 * 512 * per_expert), 1.0, 0.01);
  EXPECT_NEAR(many.weight_bytes / (per_expert * 2), 256 * (1 - std::pow(1 - 8.0 / 256, 64)), 0.1);
  // A skewed routing concentrates the load: fewer distinct experts for the same pairs.
  ModelSpec skewed = m;
  skewed.routing_zipf_s = 1.0;
  OpStream s2;
  ASSERT_TRUE(BuildDenseDecoderStream(skewed, {}, 4, &s2).ok());
  EXPECT_LT(CostOfOp(s2, *experts, Step(64, 100, 1), DType::kBF16).weight_bytes, many.weight_bytes);
}

TEST(MoeOpCost, MlaKvBytesAreTheCompressedCache) {
  const ModelSpec m = Preset("deepseek-v3");
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 2, &s).ok());
  for (const Op& op : s.ops) {
    if (op.kind != OpKind::kMlaAttention) continue;
    const OpCost c = CostOfOp(s, op, Step(2, 999, 1), DType::kBF16);
    EXPECT_DOUBLE_EQ(c.kv_bytes, 2.0 * 1000 * 576 * 2);  // 2 sequences x 1000 positions
    EXPECT_GT(c.flops, 0);
  }
  EXPECT_EQ(m.KvBytesPerToken(2), 61 * 576 * 2);
}

TEST(MoeOpCost, DecodeStepReadsAboutTheActiveParameters) {
  // A 1-token decode step of the whole of Qwen3-235B reads its active weights once: within 2%
  // of ActiveParams minus the embedding table (a lookup reads one row).
  const ModelSpec m = Preset("qwen3-235b-a22b");
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &s).ok());
  const OpCost c = CostOfOps(s, 0, s.ops.size(), Step(1, 10, 1), DType::kBF16);
  const double want = 2.0 * (m.ActiveParams() - m.vocab_size * m.hidden_size);
  EXPECT_NEAR(c.weight_bytes / want, 1.0, 0.02);
}

TEST(MoeRecord, RoundTripKeepsMoeAndMla) {
  RunRecord r = fixtures::PopulatedRecord();
  r.workload.model = Preset("tiny-moe-mla");
  r.workload.model.routing_zipf_s = 0.5;
  const nlohmann::json doc = ToJson(r);
  EXPECT_EQ(doc["model"]["moe"]["num_experts"], 8);
  EXPECT_EQ(doc["model"]["mla"]["kv_lora_rank"], 32);
  EXPECT_EQ(doc["model"]["active_params"], r.workload.model.ActiveParams());
  RunRecord back;
  const Status s = FromJson(doc, "mem.json", &back);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ToJson(back), doc);
  EXPECT_EQ(back.workload.model.routing_zipf_s, 0.5);
  EXPECT_TRUE(back.workload.model.mla.enabled());
}

}  // namespace
}  // namespace cb

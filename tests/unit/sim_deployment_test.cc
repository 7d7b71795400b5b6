// The simulator's deployment model: cost terms against hand-computed values (all-to-all
// bytes under uniform and skewed routing, per-rank KV under DP attention, MTP tokens per
// step, overlap), and its invariants over many layouts (a rank never reads more than it
// holds, no MFU or MBU above 1, a faster link never slows a step).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/sim/expert_placement.h"
#include "backends/sim/sim_device.h"
#include "backends/sim/step_model.h"
#include "harness/deployment/sim_offline.h"
#include "harness/deployment/sim_target.h"
#include "tests/unit/sim_testing.h"
#include "workloads/deployment.h"

namespace cb {
namespace {

using sim::AllToAllKind;
using sim::ExpertPlacement;
using sim::StepCost;
using sim::StepModel;
using sim::StepModelConfig;

ModelSpec Preset(const std::string& name) {
  ModelSpec m;
  EXPECT_TRUE(LoadModelSpec(name, &m).ok()) << name;
  return m;
}

/// A small MoE model: 8 experts, top-2, hidden 64.
ModelSpec SmallMoe() {
  ModelSpec m = Preset("tiny-moe-gqa");
  m.moe.num_experts = 8;
  m.moe.experts_per_token = 2;
  m.moe.num_groups = 0;
  m.moe.topk_groups = 0;
  return m;
}

using testing::Catalog;

sim::DeviceModel Device(const std::string& id) {
  sim::DeviceModel m;
  EXPECT_TRUE(sim::LoadDeviceModel(Catalog(), id, &m).ok()) << id;
  return m;
}

sim::Topology Links(const std::string& id, int devices) {
  sim::Topology t;
  EXPECT_TRUE(sim::TopologyFor(*Catalog().Find(id), devices, &t).ok());
  return t;
}

std::unique_ptr<StepModel> Model(const sim::DeviceModel& d, const sim::Topology& t,
                                 const ModelSpec& m, PoolLayout pool, DType dt,
                                 bool overlap = false, int redundant = 0, int mtp = 0) {
  StepModelConfig c;
  c.pool = pool;
  c.dtype = dt;
  c.kv_dtype = DefaultKvDType(dt);
  c.overlap = overlap;
  c.redundant_experts = redundant;
  c.mtp = mtp;
  std::unique_ptr<StepModel> out;
  const Status s = StepModel::Create(d, t, m, c, &out);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

StepSummary Decode(double seqs, double context) {
  return StepSummary{seqs, seqs, seqs * (context + 1), seqs * (context + 1)};
}

TEST(ExpertPlacement, UniformReachByHand) {
  // 8 experts over 4 ranks (2 each), top-2: a token reaches rank r with probability
  // 1 - (1 - 1/4)^2 = 0.4375, so 1.75 ranks, of which 3/4 are other ranks: 1.3125.
  const ExpertPlacement p(SmallMoe(), 4, 0, 2);
  EXPECT_NEAR(p.remote_ranks_per_token(), 1.3125, 1e-9);
  // Two domains of two ranks: a token reaches a domain with 1 - (1/2)^2 = 0.75, the other
  // domain with 0.75 x 1/2 on average: 0.75.
  EXPECT_NEAR(p.remote_domains_per_token(), 0.75, 1e-9);
  EXPECT_NEAR(p.in_domain_remote_pick_share(), 0.25, 1e-12);
  EXPECT_NEAR(p.out_of_domain_pick_share(), 0.5, 1e-12);
  // 100 tokens on each of 4 ranks: 800 picks, 200 per rank on average.
  const ExpertPlacement::RankLoad l = p.SlowestRank(100);
  EXPECT_NEAR(l.mean_assignments, 200, 1e-9);
  // The slowest of 4: mean + z(4) sqrt(200 x 3/4), z(4) by Blom's formula.
  EXPECT_NEAR(l.assignments, 200 + ExpertPlacement::ExpectedMaxNormal(4) * std::sqrt(150), 1e-6);
  EXPECT_EQ(l.slots, 2);
  EXPECT_NEAR(ExpertPlacement::ExpectedMaxNormal(1), 0, 1e-12);
  EXPECT_NEAR(ExpertPlacement::ExpectedMaxNormal(2), 0.589, 1e-3);
}

// DeepEP's internode test (4,096 tokens, hidden 7168, FP8 with a scale per 128 values, top-8 of
// 256 experts, random scores) reports 58 GB/s at EP32 over 4 nodes, counting every node a token
// reaches, its own included (3.6 per token). The catalog's physical rates with the placement's
// reach (remote nodes only) must give the same time: the two byte countings agree.
TEST(ExpertPlacement, CatalogRatesReproduceDeepEpInternodeTimes) {
  ModelSpec m = Preset("deepseek-v3");
  m.moe.num_groups = m.moe.topk_groups = 0;  // the test's routing: 4 nodes, no node limit
  const ExpertPlacement p(m, 32, 0, 8);
  const double reached = 4 * (1 - std::pow(0.75, 8));  // nodes incl. the token's own
  EXPECT_NEAR(p.remote_domains_per_token(), reached * 3 / 4, 1e-9);
  const double row = 4096 * 7168 * (1 + 4.0 / 128);
  const double measured = reached * row / 58e9;
  const sim::Topology t = Links("nvidia-h100-sxm", 32);
  const double modelled = p.remote_domains_per_token() * row / t.a2a_throughput.scale_out_bytes_s;
  EXPECT_NEAR(modelled / measured, 1.0, 0.03);
  // Intranode (EP8: dispatch 153 and combine 158 GB/s, counting the rows a rank sends itself):
  // the mean NVLink share of the H800's 200 GB/s link, applied to this catalog's 450 GB/s.
  const ExpertPlacement intra(m, 8, 0, 8);
  const double counted = 8 * (1 - std::pow(7.0 / 8, 8));
  const double share = intra.remote_ranks_per_token() / counted * (153e9 + 158e9) / 2 / 200e9;
  EXPECT_NEAR(t.a2a_throughput.scale_up_bytes_s / 450e9, share, 0.005);
}

// DeepSeek-V3 routes each token to its best 4 of 8 groups of 32 experts. On 4 nodes of 8 ranks
// (EP32) placement is hierarchical, two whole groups per node, so a token reaches the nodes of
// its 4 groups: each chosen group gets at least one of the 8 picks, and a node is missed only
// if neither of its groups is chosen, C(6,4)/C(8,4) = 15/70. On 9 nodes (EP72) the nodes do
// not divide the groups: one global placement, and the reach is the unrestricted one.
TEST(ExpertPlacement, GroupLimitedRoutingOnWholeGroupsPerDomainNarrowsTheReach) {
  const ModelSpec m = Preset("deepseek-v3");
  const ExpertPlacement p(m, 32, 32, 8);
  ASSERT_TRUE(p.hierarchical());
  EXPECT_NEAR(p.remote_domains_per_token(), 4 * (1 - 15.0 / 70) * 3 / 4, 0.03);
  ModelSpec open = m;
  open.moe.num_groups = open.moe.topk_groups = 0;
  const ExpertPlacement q(open, 32, 32, 8);
  EXPECT_FALSE(q.hierarchical());
  EXPECT_NEAR(q.remote_domains_per_token(), 3 * (1 - std::pow(0.75, 8)), 1e-6);
  EXPECT_LT(p.remote_ranks_per_token(), q.remote_ranks_per_token());
  // Each node holds its share of the redundant slots: 72 slots per node.
  const ExpertPlacement::RankLoad load = p.SlowestRank(4096);
  EXPECT_EQ(load.slots, 9);
  const ExpertPlacement wide(m, 72, 32, 8);
  EXPECT_FALSE(wide.hierarchical());
}

TEST(ExpertPlacement, SkewLoadsOneRankAndRedundantExpertsFlattenIt) {
  ModelSpec m = SmallMoe();
  m.routing_zipf_s = 1.2;
  const ExpertPlacement skewed(m, 4, 0, 4);
  const ExpertPlacement::RankLoad l = skewed.SlowestRank(1000);
  EXPECT_GT(l.assignments / l.mean_assignments, 1.3);
  const ExpertPlacement balanced(m, 4, 4, 4);  // 12 slots: the hot experts replicated
  const ExpertPlacement::RankLoad b = balanced.SlowestRank(1000);
  EXPECT_LT(b.assignments, l.assignments);
  EXPECT_EQ(b.slots, 3);
  // Skew concentrates a token's picks: it reaches fewer ranks than under uniform routing.
  EXPECT_LT(skewed.remote_ranks_per_token(),
            ExpertPlacement(SmallMoe(), 4, 0, 4).remote_ranks_per_token());
}

TEST(Deployment, ParsesPoolsAndRejectsBadLayouts) {
  std::vector<PoolLayout> pools;
  ASSERT_TRUE(ParsePools("prefill=32:ep32,decode=320:ep320", "x", &pools).ok());
  ASSERT_EQ(pools.size(), 2u);
  EXPECT_EQ(pools[0].role, PoolRole::kPrefill);
  EXPECT_EQ(pools[1].devices, 320);
  EXPECT_EQ(pools[1].ep, 320);
  for (const char* bad : {"prefill=32", "decode=8,prefill=8", "prefill=0,decode=8",
                          "prefill=8:xp2,decode=8", "mixed=8,decode=8"}) {
    EXPECT_EQ(ParsePools(bad, "x", &pools).code(), StatusCode::kInvalidInput) << bad;
  }
  const ModelSpec moe = Preset("deepseek-v3"), dense = Preset("llama-3.1-8b");
  EXPECT_TRUE(ValidatePool(moe, {PoolRole::kMixed, 32, 1, 32}, 0, "x").ok());
  EXPECT_NE(ValidatePool(moe, {PoolRole::kMixed, 72, 1, 72}, 0, "x").message().find("32"),
            std::string::npos);  // 256 + 32 redundant = 288 = 4 x 72
  EXPECT_TRUE(ValidatePool(moe, {PoolRole::kMixed, 72, 1, 72}, 32, "x").ok());
  EXPECT_NE(ValidatePool(dense, {PoolRole::kMixed, 8, 1, 8}, 0, "x").message().find("dense"),
            std::string::npos);
  EXPECT_FALSE(ValidatePool(moe, {PoolRole::kMixed, 16, 2, 8}, 0, "x").ok());
  EXPECT_FALSE(ValidatePool(dense, {PoolRole::kMixed, 12, 3, 1}, 0, "x").ok());
}

TEST(Deployment, MtpTokensPerStep) {
  Deployment d;
  EXPECT_DOUBLE_EQ(d.TokensPerDecodeStep(), 1.0);
  d.mtp = 1;
  d.mtp_acceptance = 0.85;
  EXPECT_DOUBLE_EQ(d.TokensPerDecodeStep(), 1.85);
  d.mtp = 2;
  EXPECT_NEAR(d.TokensPerDecodeStep(), 1 + 0.85 + 0.85 * 0.85, 1e-12);
}

TEST(Deployment, KvPerRankUnderDataParallelAttention) {
  const ModelSpec m = Preset("deepseek-v3");
  // MLA: 576 values per token per layer; every rank of a TP group holds all of it.
  EXPECT_DOUBLE_EQ(RankKvBytesPerToken(m, {PoolRole::kMixed, 8, 8, 1}, DType::kBF16),
                   61.0 * 576 * 2);
  EXPECT_DOUBLE_EQ(RankKvBytesPerToken(m, {PoolRole::kMixed, 8, 1, 8}, DType::kInt8), 61.0 * 576);
  const ModelSpec g = Preset("llama-3.1-8b");  // GQA: 8 KV heads of 128 split over tp
  EXPECT_DOUBLE_EQ(RankKvBytesPerToken(g, {PoolRole::kMixed, 4, 4, 1}, DType::kBF16),
                   2.0 * 32 * 8 * 128 * 2 / 4);
  // DP attention: a rank holds its own sequences only.
  const RankMemory r =
      RankMemoryOf(m, {PoolRole::kMixed, 64, 1, 64}, 0, DType::kFP8, DType::kBF16, 10, 1000, 10);
  EXPECT_DOUBLE_EQ(r.kv_cache, 10.0 * 1000 * 61 * 576 * 2);
  // EP: 256 experts over 64 ranks, 4 each, of 3 x 7168 x 2048 fp8 bytes in 58 MoE layers.
  const RankMemory whole =
      RankMemoryOf(m, {PoolRole::kMixed, 1, 1, 1}, 0, DType::kFP8, DType::kBF16, 1, 1, 1);
  const double expert = 3.0 * 7168 * 2048;
  EXPECT_NEAR(whole.weights - r.weights, (256 - 4) * expert * 58, 1.0);
}

TEST(StepModel, OneDeviceIsTheSumOfItsOpsRooflines) {
  const sim::DeviceModel d = Device("nvidia-h100-sxm");
  const ModelSpec m = Preset("llama-3.1-8b");
  auto sm = Model(d, Links("nvidia-h100-sxm", 1), m, {PoolRole::kMixed, 1, 1, 1}, DType::kBF16);
  const StepSummary s = Decode(4, 100);
  const StepCost c = sm->Step(s, AllToAllKind::kLowLatency);
  double sum = 0;
  for (const Op& op : sm->stream().ops) {
    const OpCost oc = CostOfOp(sm->stream(), op, s, DType::kBF16, DType::kBF16);
    const double rows = BufferRows(op.out) == Rows::kSequenceRows ? s.seqs : s.tokens;
    sum += sim::OpSeconds(d, sim::ClassOf(op.kind), oc, rows, DType::kBF16);
  }
  EXPECT_NEAR(c.seconds, sum, 1e-12 + 1e-9 * sum);
  EXPECT_DOUBLE_EQ(c.comm_seconds, 0);
}

TEST(StepModel, AllToAllBytesFollowTheRouting) {
  // Expert parallel over 16 H100s in two 8-GPU servers: low-latency kernels send every pick to
  // another rank over the network; the step's communication is dispatch plus combine per MoE
  // layer at the catalog's rates.
  const sim::DeviceModel d = Device("nvidia-h100-sxm");
  const sim::Topology t = Links("nvidia-h100-sxm", 16);
  const ModelSpec m = Preset("deepseek-v3");
  auto sm = Model(d, t, m, {PoolRole::kDecode, 16, 1, 16}, DType::kFP8);
  const double tokens = 64;
  const ExpertPlacement::RankLoad load = sm->placement().SlowestRank(tokens);
  const double imbalance = load.assignments / load.mean_assignments;
  const double picks = tokens * 8 * 7168 * 15.0 / 16;  // every pick off this rank
  const auto& ll = t.a2a_low_latency;
  const double dispatch = ll.latency_s + picks * (1 + 4.0 / 128) / ll.scale_out_bytes_s * imbalance;
  const double combine = ll.latency_s + picks * 2 / ll.scale_out_bytes_s * imbalance;
  const StepCost c = sm->Step(Decode(tokens, 1000), AllToAllKind::kLowLatency);
  EXPECT_NEAR(c.comm_seconds, 58 * (dispatch + combine), 1e-9 * c.comm_seconds);
  // Skewed routing puts more on the slowest rank and costs more.
  ModelSpec skewed = m;
  skewed.routing_zipf_s = 1.0;
  auto sk = Model(d, t, skewed, {PoolRole::kDecode, 16, 1, 16}, DType::kFP8);
  EXPECT_GT(sk->Step(Decode(tokens, 1000), AllToAllKind::kLowLatency).seconds, c.seconds);
}

TEST(StepModel, OverlapHidesCommunicationBehindCompute) {
  const sim::DeviceModel d = Device("nvidia-h100-sxm");
  // Kernels that hold no SM (the next test charges the share they do hold).
  sim::Topology t = Links("nvidia-h100-sxm", 32);
  t.a2a_low_latency.compute_share = 0;
  const ModelSpec m = Preset("deepseek-v3");
  // EP32 over four servers, 256 sequences a rank: the all-to-alls cross the network. (At small
  // EP the micro-batches would read the experts' weights twice and overlap would lose.)
  auto serial = Model(d, t, m, {PoolRole::kDecode, 32, 1, 32}, DType::kFP8, false, 0);
  auto overlap = Model(d, t, m, {PoolRole::kDecode, 32, 1, 32}, DType::kFP8, true, 0);
  const StepSummary s = Decode(256, 2000);
  const StepCost a = serial->Step(s, AllToAllKind::kLowLatency);
  const StepCost b = overlap->Step(s, AllToAllKind::kLowLatency);
  // Serially the step is compute + communication; overlapped, never less than either stream.
  EXPECT_NEAR(a.seconds, a.compute_seconds + a.comm_seconds, 1e-9 * a.seconds);
  EXPECT_LT(b.seconds, a.seconds);
  EXPECT_GE(b.seconds, b.compute_seconds - 1e-12);
  EXPECT_GE(b.seconds, b.comm_seconds - 1e-12);
  // Communication smaller than the other micro-batch's compute costs almost nothing: the step
  // exceeds its compute by no more than the first dispatch and the last combine.
  EXPECT_LT(b.seconds - b.compute_seconds, 0.1 * b.seconds);
}

TEST(StepModel, MultiTokenPredictionAddsTheDraftModule) {
  const sim::DeviceModel d = Device("nvidia-h200-sxm");
  const ModelSpec m = Preset("deepseek-v3");
  const sim::Topology t = Links("nvidia-h200-sxm", 8);
  auto plain = Model(d, t, m, {PoolRole::kDecode, 8, 1, 8}, DType::kFP8);
  auto mtp = Model(d, t, m, {PoolRole::kDecode, 8, 1, 8}, DType::kFP8, false, 0, 1);
  const StepSummary one = Decode(32, 1000);
  const StepSummary two{64, 32, 32 * (2 * 1000 + 3), 32 * (1000 + 2)};  // 2 tokens each
  const StepCost a = plain->Step(one, AllToAllKind::kLowLatency);
  const StepCost b = mtp->Step(two, AllToAllKind::kLowLatency, /*mtp_drafts=*/true);
  EXPECT_GT(b.seconds, a.seconds);         // verifying 2 tokens and drafting costs more
  EXPECT_LT(b.seconds, 1.85 * a.seconds);  // ... but less than 1.85 plain steps: MTP pays
  EXPECT_GT(b.work.flops, 2 * a.work.flops * 0.9);
}

// Overlapped low-latency all-to-alls hold the SMs for compute_share of their time: a larger
// share never speeds an overlapped decode step, leaves the serial step as it is, and at 1
// (every call on the SMs throughout) nothing is hidden, so overlap cannot beat serial by more
// than the launch latencies it saves.
TEST(StepModel, LowLatencyKernelsOnTheSmsHideLessCommunication) {
  const ModelSpec m = Preset("deepseek-v3");
  const sim::DeviceModel d = Device("nvidia-h100-sxm");
  const PoolLayout pool{PoolRole::kDecode, 72, 1, 72};
  const StepSummary s = Decode(256, 2000);
  double last = 0;
  double serial = -1;
  for (double share : {0.0, 0.35, 0.7, 1.0}) {
    sim::Topology t = Links("nvidia-h100-sxm", 72);
    t.a2a_low_latency.compute_share = share;
    const StepCost over =
        Model(d, t, m, pool, DType::kFP8, true, 32)->Step(s, AllToAllKind::kLowLatency);
    const StepCost plain =
        Model(d, t, m, pool, DType::kFP8, false, 32)->Step(s, AllToAllKind::kLowLatency);
    if (serial < 0) serial = plain.seconds;
    EXPECT_DOUBLE_EQ(plain.seconds, serial) << share;
    EXPECT_GE(over.seconds, last * (1 - 1e-12)) << share;
    last = over.seconds;
    if (share == 0.0) {
      EXPECT_LT(over.seconds, 0.9 * serial);
    }
    if (share == 1.0) {
      EXPECT_GE(over.seconds, 0.97 * serial);
    }
  }
}

/// A rank never reads more than it holds plus what it receives, and a step is never faster
/// than its work over the device's peaks (so MFU and MBU stay at or below 1). Checked over
/// random layouts, dtypes and step shapes.
TEST(StepModel, InvariantsOverRandomLayouts) {
  std::mt19937 rng(7);
  const char* devices[] = {"nvidia-h100-sxm", "huawei-ascend-910c", "nvidia-gb200", "amd-epyc-vm"};
  const char* models[] = {"deepseek-v3", "qwen3-235b-a22b", "llama-3.1-70b", "tiny-moe-mla"};
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const std::string dev = devices[rng() % 4];
    const ModelSpec m = Preset(models[rng() % 4]);
    const sim::DeviceModel d = Device(dev);
    const int n = 1 << (rng() % 6);
    const bool ep = m.moe.enabled() && rng() % 2 == 0 && n > 1;
    PoolLayout pool{PoolRole::kMixed, n, ep ? 1 : 1 << (rng() % 3), ep ? n : 1};
    if (pool.tp > n) pool.tp = n;
    const int redundant = ep ? static_cast<int>((n - m.moe.num_experts % n) % n) : 0;
    if (!ValidatePool(m, pool, redundant, "").ok()) continue;
    DType dt = DType::kBF16;
    if (d.Peak(DType::kFP8) > 0 && rng() % 2) dt = DType::kFP8;
    if (d.Peak(DType::kInt8) > 0 && rng() % 3 == 0) dt = DType::kInt8;
    const sim::Topology t = Links(dev, n);
    auto sm = Model(d, t, m, pool, dt, rng() % 2 == 0, redundant);
    const double seqs = 1 + rng() % 64, ctx = 1 + rng() % 4000;
    const bool prefill = rng() % 2;
    const StepSummary s =
        prefill ? StepSummary{seqs * 64, seqs, seqs * (64 * ctx + 64 * 65 / 2.0), seqs * (ctx + 64)}
                : Decode(seqs, ctx);
    const StepCost c = sm->Step(s, prefill ? AllToAllKind::kThroughput : AllToAllKind::kLowLatency);
    const RankMemory mem =
        RankMemoryOf(m, pool, redundant, dt, DefaultKvDType(dt), static_cast<int64_t>(seqs),
                     static_cast<int64_t>(ctx + 64), static_cast<int64_t>(s.tokens));
    EXPECT_LE(c.work.weight_bytes, mem.weights * (1 + 1e-9)) << dev << " " << m.name;
    EXPECT_LE(c.work.kv_bytes, mem.kv_cache * (1 + 1e-9)) << dev << " " << m.name;
    EXPECT_LE(c.work.flops, c.seconds * d.Peak(dt) * (1 + 1e-9)) << dev << " " << m.name;
    EXPECT_LE(c.work.bytes, c.seconds * d.mem_bandwidth * (1 + 1e-9)) << dev << " " << m.name;
    // Doubling every link's bandwidth never slows the step.
    sim::Topology fast = t;
    for (sim::Link* l : {&fast.scale_up, &fast.scale_out}) l->beta_bytes_s *= 2;
    for (sim::AllToAllRates* r : {&fast.a2a_throughput, &fast.a2a_low_latency}) {
      r->scale_up_bytes_s *= 2;
      r->scale_out_bytes_s *= 2;
    }
    StepModelConfig cfg = sm->config();
    std::unique_ptr<StepModel> quick;
    ASSERT_TRUE(StepModel::Create(d, fast, m, cfg, &quick).ok());
    EXPECT_LE(
        quick->Step(s, prefill ? AllToAllKind::kThroughput : AllToAllKind::kLowLatency).seconds,
        c.seconds * (1 + 1e-12));
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(SimCalibration, EfficienciesAboveOneRaiseThePeaksInstead) {
  // This VM's calibration was fitted against a ceiling measured while the host was busy: its
  // matmul efficiency exceeded 1. The model keeps every efficiency at or below 1.
  const sim::DeviceModel m = Device("amd-epyc-vm");
  EXPECT_LE(m.eff.matmul_eff, 1.0);
  EXPECT_LE(m.eff.matmul_mem_eff, 1.0);
  EXPECT_LE(m.eff.attention_mem_eff, 1.0);
  EXPECT_LE(m.eff.elementwise_mem_eff, 1.0);
  // Public kernel figures carry their sources.
  const sim::DeviceModel h = Device("nvidia-h100-sxm");
  EXPECT_NEAR(h.eff.matmul_eff, 0.807, 1e-9);
  EXPECT_NE(h.eff.sources.at("attention_eff").find("FlashMLA"), std::string::npos);
  EXPECT_NEAR(h.eff.Matmul(DType::kFP8).m_half, 97, 1e-9);
  EXPECT_NEAR(Device("huawei-ascend-910c").eff.Matmul(DType::kInt8).eff, 0.80, 1e-9);
  EXPECT_EQ(Device("nvidia-b200").eff.source, sim::Efficiency::kDefaultEfficiencySource);
}

TEST(SimOffline, MfuAndMbuNeverExceedOneOnAWholeRun) {
  WorkloadSpec w;
  w.model = Preset("deepseek-v3");
  w.backend = "sim";
  w.dtype = DType::kInt8;
  w.batch = 384;
  w.prompt_len = 512;
  w.gen_len = 64;
  w.verify = false;
  w.deployment.system = "cloudmatrix-384";
  w.deployment.disaggregate = "prefill=64:ep64,decode=320:ep320";
  w.deployment.redundant_experts = 64;
  w.deployment.overlap = true;
  SimTarget t;
  ASSERT_TRUE(ResolveSimTarget(w, Catalog(), "test", &t).ok());
  RunRecord rec;
  RunnerOptions opts;
  opts.quiet = true;
  ASSERT_TRUE(RunSimulatedOffline(w, t, opts, &rec).ok());
  ASSERT_EQ(rec.status, "ok");
  for (const char* name :
       {"mfu_prefill_ratio", "mfu_decode_ratio", "mbu_prefill_ratio", "mbu_decode_ratio"}) {
    ASSERT_NE(rec.FindMetric(name), nullptr) << name;
    EXPECT_GT(rec.FindMetric(name)->value, 0) << name;
    EXPECT_LE(rec.FindMetric(name)->value, 1.0) << name;
  }
  ASSERT_TRUE(rec.deployment);
  EXPECT_EQ(rec.deployment->pools.size(), 2u);
  EXPECT_GT(rec.deployment->kv_transfer_seconds, 0);
  // TTFT includes the KV transfer to the decode pool.
  EXPECT_GE(rec.FindMetric("ttft_seconds")->dist.min, rec.deployment->kv_transfer_seconds);
}

}  // namespace
}  // namespace cb

// Host-side fusion planning of the CUDA session (backends/cuda/fusion_plan.h): which buffers are
// dead after each op, and which ops of a run range are launched together, for decode and
// prefill steps, with paths switched off, under tensor parallelism and at range boundaries.

#include <gtest/gtest.h>

#include "backends/cuda/fusion_plan.h"
#include "tests/conformance/conformance_util.h"

namespace cb::cuda {
namespace {

OpStream Stream(const ModelSpec& spec, ShardSpec shard = ShardSpec{}) {
  OpStream s;
  const Status st = BuildDenseDecoderStream(spec, shard, static_cast<int>(spec.num_layers), &s);
  EXPECT_TRUE(st.ok()) << st.message();
  return s;
}

/// Index of the nth op of `kind` in `layer`.
size_t Find(const OpStream& s, OpKind kind, int layer, int nth = 0) {
  for (size_t i = 0; i < s.ops.size(); ++i) {
    if (s.ops[i].kind == kind && s.ops[i].layer == layer && nth-- == 0) return i;
  }
  ADD_FAILURE() << "no " << OpKindName(kind) << " in layer " << layer;
  return 0;
}

bool Dead(const std::vector<uint32_t>& dead, size_t op, Buf b) {
  return (dead[op] >> static_cast<int>(b)) & 1u;
}

struct Plan {
  std::vector<uint32_t> dead;
  FusionContext c;
  Plan(const OpStream& s, int64_t tokens, int64_t seqs, DType dtype = DType::kBF16) {
    dead = DeadAfter(s);
    c.token_rows = tokens;
    c.seq_rows = seqs;
    c.dtype = dtype;
    c.sms = 132;
    c.dims = s.dims;
    c.dead_after = &dead;
  }
  std::vector<LaunchGroup> Run(const OpStream& s, OpRange r) const { return PlanLaunches(s, r, c); }
  std::vector<LaunchGroup> Run(const OpStream& s) const { return Run(s, {0, s.ops.size()}); }
};

TEST(DeadAfter, IntermediatesDieWhereTheStreamOverwritesThem) {
  const OpStream s = Stream(conformance::TinySpec(false, false));
  const std::vector<uint32_t> dead = DeadAfter(s);
  const size_t norm = Find(s, OpKind::kRmsNorm, 0), qkv = Find(s, OpKind::kMatMul, 0);
  EXPECT_FALSE(Dead(dead, norm, Buf::kH));  // the QKV matmul reads it next
  EXPECT_TRUE(Dead(dead, qkv, Buf::kH));    // the MLP norm overwrites it
  EXPECT_TRUE(Dead(dead, Find(s, OpKind::kResidualAdd, 0), Buf::kProj));
  EXPECT_TRUE(Dead(dead, Find(s, OpKind::kSwiGlu, 1) + 1, Buf::kAct));  // wraps to the next step
  EXPECT_FALSE(Dead(dead, Find(s, OpKind::kResidualAdd, 1), Buf::kX));  // select_last reads it
  EXPECT_TRUE(Dead(dead, Find(s, OpKind::kSelectLast, -1), Buf::kX));   // the embedding rewrites
  // An op outside the dense decoder counts as reading everything.
  OpStream moe = s;
  moe.ops.insert(moe.ops.begin() + static_cast<int64_t>(qkv) + 1,
                 Op{OpKind::kRouter, 0, Buf::kQkv, Buf::kRoute, {}, 4, 64});
  EXPECT_FALSE(Dead(DeadAfter(moe), qkv, Buf::kH));
}

TEST(FusionPlan, DecodeStepFusesAroundEveryMatmul) {
  const OpStream s = Stream(conformance::TinySpec(false, false));
  const Plan p(s, 1, 1);
  const std::vector<LaunchGroup> g = p.Run(s);
  // embedding; per layer: norm + QKV, RoPE + attention, o_proj + add, norm + gate/up,
  // SwiGLU + down + add; select_last; final norm + LM head; sample.
  ASSERT_EQ(g.size(), 14u);
  EXPECT_EQ(g[1].kind, GroupKind::kMatMul);
  EXPECT_EQ(g[1].prologue, Prologue::kRmsNorm);
  EXPECT_TRUE(g[1].skinny);
  EXPECT_EQ(g[1].count, 2u);
  EXPECT_EQ(g[2].kind, GroupKind::kRopeAttention);
  EXPECT_EQ(g[2].op, Find(s, OpKind::kAttention, 0));
  EXPECT_TRUE(g[3].accumulate);
  EXPECT_EQ(g[3].prologue, Prologue::kNone);
  EXPECT_EQ(g[4].prologue, Prologue::kRmsNorm);
  EXPECT_EQ(g[5].prologue, Prologue::kSwiGlu);
  EXPECT_TRUE(g[5].accumulate);
  EXPECT_EQ(g[5].count, 3u);
  EXPECT_EQ(g[5].op, Find(s, OpKind::kMatMul, 0, 3));
  EXPECT_EQ(g[12].prologue, Prologue::kRmsNorm);  // final norm + LM head, sequence rows
  EXPECT_EQ(g[12].op, Find(s, OpKind::kMatMul, -1));
  // Qwen3's QK-norm joins RoPE and the attention.
  const OpStream q = Stream(conformance::TinySpec(true, false));
  const std::vector<LaunchGroup> gq = Plan(q, 1, 1).Run(q);
  ASSERT_EQ(gq.size(), 14u);
  EXPECT_EQ(gq[2].kind, GroupKind::kRopeAttention);
  EXPECT_EQ(gq[2].count, 3u);
  EXPECT_EQ(q.ops[gq[2].first].kind, OpKind::kQkNorm);
}

TEST(FusionPlan, PrefillUsesCublasWithTheResidualAddInItsEpilogue) {
  const OpStream s = Stream(conformance::TinySpec(false, false));
  const Plan p(s, 40, 1);
  for (const LaunchGroup& g : p.Run(s)) {
    if (g.kind != GroupKind::kMatMul) continue;
    const bool head = s.ops[g.op].layer < 0;
    EXPECT_EQ(g.skinny, head) << g.op;  // the LM head has one row per sequence
    EXPECT_EQ(g.prologue != Prologue::kNone, head) << g.op;
    if (s.ops[g.op].out == Buf::kProj) {
      EXPECT_TRUE(g.accumulate) << g.op;
    }
  }
  // Nine sequences: the LM head has nine rows, more than the skinny kernel takes.
  for (const LaunchGroup& g : Plan(s, 40, 9).Run(s)) EXPECT_FALSE(g.skinny) << g.op;
}

TEST(FusionPlan, SwitchedOffPathsFallBackOpByOp) {
  const OpStream s = Stream(conformance::TinySpec(true, false));
  Plan p(s, 1, 1);
  ASSERT_TRUE(ParseDisabledPaths("all", &p.c.paths).ok());
  const std::vector<LaunchGroup> g = p.Run(s);
  size_t add_norm = 0;
  for (const LaunchGroup& x : g) {
    EXPECT_FALSE(x.skinny);
    EXPECT_FALSE(x.accumulate);
    EXPECT_EQ(x.prologue, Prologue::kNone);
    EXPECT_NE(x.kind, GroupKind::kRopeAttention);
    if (x.kind == GroupKind::kAddNorm) ++add_norm;
    EXPECT_EQ(x.count, x.kind == GroupKind::kAddNorm ? 2u : 1u);
  }
  EXPECT_EQ(add_norm, 3u);  // the one fusion the backend had before: add + the next norm
  // One path off leaves the others: without fuse_norm the norms stand alone, the matmuls
  // after them are still skinny.
  Plan q(s, 1, 1);
  q.c.paths.Set(Path::kFuseNorm, false);
  for (const LaunchGroup& x : q.Run(s)) {
    EXPECT_NE(x.prologue, Prologue::kRmsNorm);
    if (x.kind == GroupKind::kMatMul) {
      EXPECT_TRUE(x.skinny);
    }
  }
}

TEST(FusionPlan, TensorParallelAllReduceKeepsTheAddApart) {
  ShardSpec shard;
  shard.tp_size = 2;
  shard.tp_rank = 1;
  const OpStream s = Stream(conformance::TinySpec(false, false), shard);
  const Plan p(s, 1, 1);
  size_t add_norm = 0;
  for (const LaunchGroup& g : p.Run(s)) {
    EXPECT_FALSE(g.accumulate) << g.op;
    if (g.kind == GroupKind::kAddNorm) ++add_norm;
  }
  EXPECT_EQ(add_norm, 3u);
}

TEST(FusionPlan, GroupsStayInsideTheRangeAndCoverIt) {
  const OpStream s = Stream(conformance::TinySpec(true, true));
  for (int64_t tokens : {1, 7}) {
    const Plan p(s, tokens, 1);
    for (size_t b = 0; b <= s.ops.size(); ++b) {
      for (size_t e = b; e <= s.ops.size(); ++e) {
        size_t next = b;
        for (const LaunchGroup& g : p.Run(s, {b, e})) {
          ASSERT_EQ(g.first, next) << b << ".." << e;
          ASSERT_GE(g.count, 1u);
          ASSERT_LE(g.first + g.count, e) << b << ".." << e;
          ASSERT_GE(g.op, g.first);
          ASSERT_LT(g.op, g.first + g.count);
          next += g.count;
        }
        ASSERT_EQ(next, e);
      }
    }
  }
  // A range that ends at the o_proj matmul cannot take the add after it.
  const size_t o_proj = Find(s, OpKind::kMatMul, 0, 1);
  const Plan p(s, 1, 1);
  EXPECT_FALSE(p.Run(s, {o_proj, o_proj + 1})[0].accumulate);
  EXPECT_TRUE(p.Run(s, {o_proj, o_proj + 2})[0].accumulate);
}

TEST(FusionPlan, AReaderAfterTheMatmulKeepsTheNormOutput) {
  OpStream s = Stream(conformance::TinySpec(false, false));
  const size_t qkv = Find(s, OpKind::kMatMul, 0);
  s.ops.insert(s.ops.begin() + static_cast<int64_t>(qkv) + 1, s.ops[qkv]);  // reads H again
  const std::vector<LaunchGroup> g = Plan(s, 1, 1).Run(s, {qkv - 1, qkv + 2});
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].kind, GroupKind::kOp);  // the norm writes H
  EXPECT_EQ(g[1].prologue, Prologue::kNone);
  EXPECT_TRUE(g[1].skinny);
}

TEST(FusionPlan, APrologueNeverReadsWhatTheGroupWrites) {
  // norm(x) -> matmul -> x += ...: the blocks that stage x would race with those adding into
  // it, so the add stays a separate launch.
  OpStream s = Stream(conformance::TinySpec(false, false));
  const int64_t hidden = s.dims.hidden;
  ASSERT_EQ(s.dims.heads * s.dims.head_dim, hidden);  // wo is [hidden, hidden]
  s.ops = {{OpKind::kRmsNorm, 0, Buf::kX, Buf::kH, {"layers.0.attn_norm"}, hidden, 0},
           {OpKind::kMatMul, 0, Buf::kH, Buf::kProj, {"layers.0.wo"}, hidden, hidden},
           {OpKind::kResidualAdd, 0, Buf::kProj, Buf::kX, {}, hidden, 0}};
  const std::vector<LaunchGroup> g = Plan(s, 1, 1).Run(s);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].prologue, Prologue::kRmsNorm);
  EXPECT_FALSE(g[0].accumulate);
  EXPECT_EQ(g[1].kind, GroupKind::kOp);
  // Without the prologue the matmul reads h, not x, and may add into x.
  Plan off(s, 1, 1);
  off.c.paths.Set(Path::kFuseNorm, false);
  const std::vector<LaunchGroup> h = off.Run(s);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_TRUE(h[1].accumulate);
}

}  // namespace
}  // namespace cb::cuda

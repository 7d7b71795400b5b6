#include "workloads/op_stream.h"

#include <gtest/gtest.h>

#include "workloads/op_cost.h"

namespace cb {
namespace {

ModelSpec Llama1B() {
  ModelSpec m;
  m.name = "llama-3.2-1b";
  m.hidden_size = 2048;
  m.num_layers = 16;
  m.num_heads = 32;
  m.num_kv_heads = 8;
  m.head_dim = 64;
  m.ffn_size = 8192;
  m.vocab_size = 128256;
  m.max_context = 131072;
  m.tie_embeddings = true;
  return m;
}

TEST(OpStream, WeightsOfTheStreamAddUpToTheModelParameters) {
  const ModelSpec m = Llama1B();
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 16, &s).ok());
  int64_t elements = 0;
  for (const auto& w : s.weights) elements += w.Elements();
  // The tied LM head is a second view of the embedding: count it once.
  elements -= s.FindWeight("lm_head")->Elements();
  EXPECT_EQ(elements, m.TotalParams());
  EXPECT_NEAR(static_cast<double>(m.TotalParams()), 1.2358e9, 1e6);
}

TEST(OpStream, LayerStructure) {
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(Llama1B(), {}, 2, &s).ok());
  const auto [b0, e0] = s.LayerRange(0);
  const auto [b1, e1] = s.LayerRange(1);
  EXPECT_EQ(b0, 1u);  // after the embedding
  EXPECT_EQ(e0, b1);
  EXPECT_EQ(e0 - b0, e1 - b1);
  EXPECT_EQ(s.ops.front().kind, OpKind::kEmbedding);
  EXPECT_EQ(s.ops.back().kind, OpKind::kSampleGreedy);
  // No collectives without tensor parallelism.
  for (const Op& op : s.ops) EXPECT_NE(op.kind, OpKind::kAllReduce);
}

TEST(OpStream, TensorParallelShardsAndCollectives) {
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(Llama1B(), {4, 1}, 1, &s).ok());
  EXPECT_EQ(s.dims.heads, 8);
  EXPECT_EQ(s.dims.kv_heads, 2);
  EXPECT_EQ(s.dims.ffn, 2048);
  EXPECT_EQ(s.dims.vocab, 32064);
  const WeightDesc* wo = s.FindWeight("layers.0.wo");
  EXPECT_EQ(wo->cols, 512);
  EXPECT_EQ(wo->col_offset, 512);
  int allreduces = 0, allgathers = 0;
  for (const Op& op : s.ops) {
    allreduces += op.kind == OpKind::kAllReduce;
    allgathers += op.kind == OpKind::kAllGather;
  }
  EXPECT_EQ(allreduces, 2);
  EXPECT_EQ(allgathers, 1);
}

TEST(OpStream, RejectsTensorParallelThatDoesNotDivide) {
  OpStream s;
  const Status st = BuildDenseDecoderStream(Llama1B(), {3, 0}, 1, &s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidInput);
  EXPECT_NE(st.message().find("num_heads"), std::string::npos);
  EXPECT_FALSE(BuildDenseDecoderStream(Llama1B(), {}, 17, &s).ok());
}

TEST(OpCost, DecodeStepIsTwoFlopsPerParameterPlusAttention) {
  const ModelSpec m = Llama1B();
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 16, &s).ok());
  StepIO io;
  io.seqs = {{0, 0, 1}};
  const OpCost c = CostOfOps(s, 0, s.ops.size(), io, DType::kBF16);
  // Matmul weights: all parameters but the embedding table and norms (the LM head reads the
  // tied embedding once more).
  const double matmul_params = 16.0 * (m.LayerParams() - 2 * 2048) + 128256.0 * 2048;
  EXPECT_NEAR(c.weight_bytes, 2 * matmul_params, 1);
  // Attention over one position: 4 * heads * head_dim flops per layer.
  const double attention = 16.0 * 4 * 32 * 64;
  EXPECT_NEAR(c.flops, 2 * matmul_params + attention, 0.001 * c.flops);
}

TEST(OpCost, PrefillAttentionIsCausal) {
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(Llama1B(), {}, 1, &s).ok());
  const auto [b, e] = s.LayerRange(0);
  const Op* attn = nullptr;
  for (size_t i = b; i < e; ++i) {
    if (s.ops[i].kind == OpKind::kAttention) attn = &s.ops[i];
  }
  ASSERT_NE(attn, nullptr);
  StepIO io;
  io.seqs = {{0, 0, 4}};
  // 1 + 2 + 3 + 4 attended positions.
  EXPECT_DOUBLE_EQ(CostOfOp(s, *attn, io, DType::kF32).flops, 4.0 * 32 * 64 * 10);
  io.seqs = {{0, 10, 1}};
  EXPECT_DOUBLE_EQ(CostOfOp(s, *attn, io, DType::kF32).flops, 4.0 * 32 * 64 * 11);
}

}  // namespace
}  // namespace cb

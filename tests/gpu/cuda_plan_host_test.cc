// Host-side parts of the CUDA backend that need no GPU (they run wherever the backend is
// built): the device-memory plan and budget error, which streams the session accepts, the
// tiled attention's tiling and split choice, and the bf16/fp16 rounding the weights go through.

#include <gtest/gtest.h>

#include <random>

#include "backends/cuda/cuda_plan.h"
#include "backends/cuda/kernels.h"
#include "tests/conformance/conformance_util.h"

namespace cb::cuda {
namespace {

OpStream Stream(const ModelSpec& spec) {
  OpStream s;
  const Status st =
      BuildDenseDecoderStream(spec, ShardSpec{}, static_cast<int>(spec.num_layers), &s);
  EXPECT_TRUE(st.ok()) << st.message();
  return s;
}

TEST(CudaPlan, KvCacheAndWeightsFromTheStream) {
  const ModelSpec spec = conformance::TinySpec(false, false);
  const OpStream s = Stream(spec);
  const SessionConfig c = conformance::Config(DType::kBF16, 3, 40, 16);
  const MemoryNeed need = PlanMemory(s, c, CudaPaths());
  // K and V: layers x slots x context x kv_heads x head_dim x 2 bytes.
  EXPECT_EQ(need.kv_cache, 2ull * 2 * 3 * 40 * 2 * 16 * 2);
  // Weights: every declared tensor once, matrices and the embedding in bf16, gains in fp32.
  uint64_t want = 0;
  for (const WeightDesc& w : s.weights) {
    want += static_cast<uint64_t>(w.Elements()) * (w.rows == 1 ? 4 : 2);
  }
  EXPECT_EQ(need.weights, want);
  EXPECT_GT(need.activations, 0u);
  EXPECT_EQ(need.Total(), need.weights + need.kv_cache + need.activations + need.workspace);
}

TEST(CudaPlan, TiedEmbeddingIsHeldOnce) {
  const OpStream untied = Stream(conformance::TinySpec(false, false));
  const OpStream tied = Stream(conformance::TinySpec(false, true));
  const SessionConfig c = conformance::Config(DType::kF32, 1, 16, 8);
  // Untied: embed and lm_head are separate [256, 64] fp32 tables; tied: one.
  EXPECT_EQ(PlanMemory(untied, c, CudaPaths()).weights - PlanMemory(tied, c, CudaPaths()).weights,
            256u * 64 * 4);
}

TEST(CudaPlan, BudgetErrorNamesModelNeedAndFreeBytes) {
  const ModelSpec spec = conformance::TinySpec(false, false);
  const OpStream s = Stream(spec);
  const SessionConfig c = conformance::Config(DType::kBF16, 4, int64_t{1} << 40, 16);
  const MemoryNeed need = PlanMemory(s, c, CudaPaths());
  EXPECT_EQ(need.kv_cache, 1ull << 50);  // 2 x 2 layers x 4 x 2^40 x 2 x 16 x 2 bytes, no overflow
  const Status st = CheckMemoryBudget(spec.name, c, need, 80ull << 30, 81ull << 30);
  ASSERT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find(spec.name), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("80.00 GiB free"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("KV cache"), std::string::npos) << st.message();

  const SessionConfig small = conformance::Config(DType::kBF16, 1, 64, 16);
  const MemoryNeed fits = PlanMemory(s, small, CudaPaths());
  EXPECT_TRUE(
      CheckMemoryBudget(spec.name, small, fits, fits.Total() + kReserveBytes, 1ull << 40).ok());
  EXPECT_FALSE(
      CheckMemoryBudget(spec.name, small, fits, fits.Total() + kReserveBytes - 1, 1ull << 40).ok());
}

TEST(CudaPlan, GemmAttentionScratchOnlyForLongStepsAndCapped) {
  const OpStream s = Stream(conformance::HeadsSpec(8, 2, 64));
  // Steps shorter than kGemmAttnMinRows never use the cuBLAS attention: no scratch.
  EXPECT_EQ(GemmAttnScratchBytes(s.dims, conformance::Config(DType::kBF16, 4, 512, 127)), 0u);
  EXPECT_EQ(GemmAttnQueryBytes(s.dims, conformance::Config(DType::kBF16, 4, 512, 127)), 0u);
  // 2 KV heads x 320 rows x 512 keys x (fp32 score + bf16 probability), plus alignment.
  const SessionConfig c = conformance::Config(DType::kBF16, 4, 512, 320);
  EXPECT_EQ(GemmAttnScratchBytes(s.dims, c), 2ull * 320 * 512 * 6 + 256);
  EXPECT_EQ(GemmAttnQueryBytes(s.dims, c), 320ull * 8 * 64 * 2);
  EXPECT_EQ(GemmAttnScratchBytes(s.dims, conformance::Config(DType::kF32, 4, 1 << 20, 4096)),
            kGemmAttnScratchCap);
  // PlanMemory counts it only where prefill attention may go through cuBLAS: the flash kernel
  // runs bf16 head_dim 64, so by default it does not.
  const SessionConfig shorter = conformance::Config(DType::kBF16, 4, 512, 127);
  CudaPaths no_flash;
  no_flash.Set(Path::kFlashAttn, false);
  EXPECT_FALSE(GemmAttnUsed(s.dims, c, CudaPaths()));
  EXPECT_TRUE(GemmAttnUsed(s.dims, c, no_flash));
  EXPECT_TRUE(GemmAttnUsed(s.dims, conformance::Config(DType::kF32, 4, 512, 320), CudaPaths()));
  EXPECT_FALSE(GemmAttnUsed(s.dims, shorter, no_flash));
  EXPECT_EQ(PlanMemory(s, c, no_flash).activations, PlanMemory(s, c, CudaPaths()).activations +
                                                        GemmAttnScratchBytes(s.dims, c) +
                                                        GemmAttnQueryBytes(s.dims, c));
  EXPECT_EQ(PlanMemory(s, shorter, no_flash).activations,
            PlanMemory(s, shorter, CudaPaths()).activations);
}

TEST(CudaPlan, NarrowBuffersHalveQkvAndGateUp) {
  const OpStream s = Stream(conformance::TinySpec(false, false));
  const SessionConfig c = conformance::Config(DType::kBF16, 2, 64, 40);
  CudaPaths wide;
  wide.Set(Path::kNarrow, false);
  EXPECT_EQ(BufDType(Buf::kQkv, DType::kBF16, true), DType::kBF16);
  EXPECT_EQ(BufDType(Buf::kGateUp, DType::kF16, true), DType::kF16);
  EXPECT_EQ(BufDType(Buf::kQkv, DType::kBF16, false), DType::kF32);
  EXPECT_EQ(BufDType(Buf::kProj, DType::kBF16, true), DType::kF32);  // the residual side
  EXPECT_EQ(BufDType(Buf::kX, DType::kBF16, true), DType::kF32);
  // QKV [40, (4 + 2 * 2) * 16] and gate/up [40, 2 * 128] lose two of their four bytes.
  EXPECT_EQ(PlanMemory(s, c, wide).activations - PlanMemory(s, c, CudaPaths()).activations,
            40ull * (8 * 16 + 2 * 128) * 2);
}

TEST(CudaStreamCheck, DenseStreamsRunMoeAndWideHeadsDoNot) {
  for (bool narrow : {false, true}) {
    for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
      EXPECT_TRUE(CheckCudaStream(Stream(conformance::TinySpec(true, true)), t, narrow).ok());
      EXPECT_TRUE(CheckCudaStream(Stream(conformance::OddSpec(false, false)), t, narrow).ok());
    }
  }
  const Status wide =
      CheckCudaStream(Stream(conformance::HeadsSpec(4, 2, 256)), DType::kBF16, true);
  EXPECT_EQ(wide.code(), StatusCode::kUnsupported) << wide.message();
  OpStream odd = Stream(conformance::TinySpec(false, false));
  odd.ops.push_back(odd.ops.back());
  odd.ops.back().kind = OpKind::kRouter;
  const Status moe = CheckCudaStream(odd, DType::kBF16, true);
  EXPECT_EQ(moe.code(), StatusCode::kUnsupported) << moe.message();
  EXPECT_NE(moe.message().find("MoE"), std::string::npos) << moe.message();
  OpStream narrow_in = Stream(conformance::TinySpec(false, false));
  for (Op& op : narrow_in.ops) {
    if (op.kind == OpKind::kResidualAdd) op.in = Buf::kGateUp;  // bf16 when narrow
  }
  EXPECT_FALSE(CheckCudaStream(narrow_in, DType::kBF16, true).ok());
}

TEST(CudaAttentionTiling, BlocksHoldAtMostTheItemsOfOneKvHead) {
  for (auto [heads, kv] :
       {std::pair<int64_t, int64_t>{32, 8}, {4, 2}, {3, 1}, {8, 1}, {64, 2}, {5, 5}}) {
    const AttentionTiling t = MakeAttentionTiling(heads, kv);
    EXPECT_EQ(t.group, heads / kv);
    EXPECT_LE(t.heads_per_block * t.rows_per_tile, kAttnItems);
    EXPECT_GE(t.heads_per_block * t.head_chunks, t.group);  // every query head served
    EXPECT_LT(t.heads_per_block * (t.head_chunks - 1), t.group);
    EXPECT_GE(t.rows_per_tile, 1);
  }
  EXPECT_EQ(MakeAttentionTiling(32, 8).rows_per_tile, 4);  // Llama 3 8B: 4 heads x 4 rows
  EXPECT_EQ(MakeAttentionTiling(64, 2).head_chunks, 2);    // 32 heads per KV head: two blocks
}

TEST(CudaAttentionTiling, SplitKOnlyForFewBlocksAndLongContexts) {
  EXPECT_EQ(ChooseAttentionSplits(1024, 4096, 2048, 132), 1);  // prefill: blocks enough
  EXPECT_EQ(ChooseAttentionSplits(8, 64, 1, 132), 1);          // short context
  const int s = ChooseAttentionSplits(8, 8192, 1, 132);        // decode, batch 1, long
  EXPECT_GT(s, 1);
  EXPECT_LE(s, kAttnMaxSplits);
  EXPECT_GE(8 * s, std::min<int64_t>(2 * 132, 8 * kAttnMaxSplits) - 8);
  EXPECT_EQ(ChooseAttentionSplits(8, 8192, kAttnMaxSplitRows + 1, 132), 1);
}

TEST(CudaRounding, Bf16MatchesTheHarnessRounding) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1e3f, 1e3f);
  for (int i = 0; i < 10000; ++i) {
    const float v = u(rng) * (i % 2 ? 1e-6f : 1.0f);
    ASSERT_EQ(RoundToDType(DType::kBF16, v), RoundTo(DType::kBF16, v)) << v;
    const float h = RoundToDType(DType::kF16, v);
    ASSERT_LE(std::fabs(h - v), std::fabs(v) * 4.9e-4f + 6e-8f) << v;  // 2^-11 relative
    ASSERT_EQ(RoundToDType(DType::kF32, v), v);
  }
  std::vector<float> src = {1.0f, -2.5f, 3.14159f, 65504.0f};
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
    std::vector<uint8_t> raw(src.size() * DTypeBytes(t));
    std::vector<float> back(src.size());
    FromFloatHost(src.data(), t, src.size(), raw.data());
    ToFloatHost(raw.data(), t, src.size(), back.data());
    for (size_t i = 0; i < src.size(); ++i) EXPECT_EQ(back[i], RoundToDType(t, src[i]));
  }
}

}  // namespace
}  // namespace cb::cuda

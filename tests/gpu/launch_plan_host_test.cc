// Host-side launch planning of the CUDA kernels (backends/cuda/launch_plan.h): the skinny GEMM's
// eligibility, loads and grid; the decode attention's lanes per key and head chunks; which head
// sizes the flash kernel takes; the split-K choice; the step metadata the kernels read.

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "backends/cuda/launch_plan.h"

namespace cb::cuda {
namespace {

TEST(SkinnyPlan, RowsUpToEightAndVectorLoadsWhereAligned) {
  for (int64_t rows = 1; rows <= kSkinnyMaxRows; ++rows) {
    const SkinnyPlan p = PlanSkinny(rows, 4096, 4096, 4096, DType::kBF16, Prologue::kNone, 132);
    ASSERT_TRUE(p.ok) << p.why;
    EXPECT_EQ(p.vec, 8);
    EXPECT_TRUE(p.vector);
    EXPECT_EQ(p.smem, 0u);  // the plain input is read from global memory
    EXPECT_EQ(p.blocks, 4096u / kSkinnyColsPerBlock);
  }
  const SkinnyPlan nine = PlanSkinny(9, 4096, 4096, 4096, DType::kBF16, Prologue::kNone, 132);
  EXPECT_FALSE(nine.ok);
  EXPECT_NE(nine.why.find("9 rows"), std::string::npos) << nine.why;
  EXPECT_FALSE(PlanSkinny(0, 64, 64, 64, DType::kBF16, Prologue::kNone, 132).ok);
  // k = 100 (the odd model's FFN) is no multiple of 8 bf16 or 4 fp32 values: one a lane.
  EXPECT_FALSE(PlanSkinny(3, 72, 100, 100, DType::kBF16, Prologue::kNone, 132).vector);
  EXPECT_TRUE(PlanSkinny(3, 72, 100, 100, DType::kF32, Prologue::kNone, 132).vector);
  EXPECT_EQ(PlanSkinny(3, 72, 100, 100, DType::kF32, Prologue::kNone, 132).vec, 4);
  EXPECT_FALSE(PlanSkinny(3, 72, 72, 76, DType::kBF16, Prologue::kNone, 132).vector);  // ld
  // Odd n: the last block's warps cover the tail.
  const SkinnyPlan odd = PlanSkinny(1, 250, 72, 72, DType::kF16, Prologue::kNone, 132);
  ASSERT_TRUE(odd.ok);
  EXPECT_EQ(odd.blocks, (250u + kSkinnyColsPerBlock - 1) / kSkinnyColsPerBlock);
}

TEST(SkinnyPlan, ProloguesStageTheirRowsWithinTheCap) {
  const SkinnyPlan norm = PlanSkinny(4, 6144, 4096, 4096, DType::kBF16, Prologue::kRmsNorm, 132);
  ASSERT_TRUE(norm.ok) << norm.why;
  EXPECT_EQ(norm.stage_ld, 4096);
  EXPECT_EQ(norm.smem, 4u * 4096 * 2);
  EXPECT_LE(norm.blocks, 2u * 132);  // a staged prologue is computed once per block
  // k = 100 stages rows padded to 104 (a multiple of 8) so each row starts 16-byte aligned.
  const SkinnyPlan padded = PlanSkinny(3, 64, 100, 200, DType::kBF16, Prologue::kSwiGlu, 132);
  ASSERT_TRUE(padded.ok);
  EXPECT_EQ(padded.stage_ld, 104);
  EXPECT_EQ(padded.smem, 3u * 104 * 2);
  EXPECT_FALSE(padded.vector);  // the weight rows are still unaligned
  // Llama 3 8B's down projection (k = 14336): five bf16 rows fit the cap, six do not.
  EXPECT_TRUE(PlanSkinny(5, 4096, 14336, 28672, DType::kBF16, Prologue::kSwiGlu, 132).ok);
  const SkinnyPlan six = PlanSkinny(6, 4096, 14336, 28672, DType::kBF16, Prologue::kSwiGlu, 132);
  EXPECT_FALSE(six.ok);
  EXPECT_GT(6u * 14336 * 2, kSkinnyStageCap);
  EXPECT_NE(six.why.find("shared memory"), std::string::npos) << six.why;
  // The same without a prologue reads from global memory and runs.
  EXPECT_TRUE(PlanSkinny(8, 4096, 14336, 14336, DType::kBF16, Prologue::kNone, 132).ok);
}

TEST(DecodeAttentionPlan, LanesPerKeyFromHeadDimAndVectorWidth) {
  const DecodeAttnPlan llama = PlanDecodeAttention(32, 8, 128, DType::kBF16);
  ASSERT_TRUE(llama.ok) << llama.why;
  EXPECT_EQ(llama.vec, 8);
  EXPECT_EQ(llama.lanes_per_key, 16);  // 128 dims / 8 per lane
  EXPECT_EQ(llama.keys_per_warp, 2);
  EXPECT_EQ(llama.heads_per_block, 4);
  EXPECT_EQ(llama.head_chunks, 1);
  EXPECT_EQ(llama.max_heads, 4);
  EXPECT_EQ(llama.smem, static_cast<uint64_t>(kDecodeWarps) * 4 * (128 + 2) * 4);
  const DecodeAttnPlan f32 = PlanDecodeAttention(32, 8, 128, DType::kF32);
  EXPECT_EQ(f32.lanes_per_key, 32);
  EXPECT_EQ(f32.keys_per_warp, 1);
  // head_dim 24 in bf16: three 16-byte loads, four lanes a key (one idle), eight keys a warp.
  const DecodeAttnPlan odd = PlanDecodeAttention(3, 1, 24, DType::kBF16);
  ASSERT_TRUE(odd.ok);
  EXPECT_EQ(odd.lanes_per_key, 4);
  EXPECT_EQ(odd.keys_per_warp, 8);
  EXPECT_EQ(odd.max_heads, 4);  // 3 heads compiled as 4
  // 20 query heads per KV head: three balanced chunks of at most 7.
  const DecodeAttnPlan wide = PlanDecodeAttention(40, 2, 16, DType::kF16);
  ASSERT_TRUE(wide.ok);
  EXPECT_EQ(wide.head_chunks, 3);
  EXPECT_EQ(wide.heads_per_block, 7);
  EXPECT_EQ(wide.max_heads, 8);
  EXPECT_GE(wide.heads_per_block * wide.head_chunks, 20);
  // Not a multiple of the vector width, too wide, or heads that do not group: not eligible.
  EXPECT_FALSE(PlanDecodeAttention(4, 2, 18, DType::kF32).ok);
  EXPECT_FALSE(PlanDecodeAttention(4, 2, 20, DType::kBF16).ok);
  EXPECT_FALSE(PlanDecodeAttention(4, 2, 256, DType::kBF16).ok);
  EXPECT_FALSE(PlanDecodeAttention(5, 2, 64, DType::kBF16).ok);
}

TEST(FlashPlan, BuiltForSixteenBitTypesAndFourHeadSizes) {
  for (int64_t hd : {16, 32, 64, 128}) {
    EXPECT_TRUE(FlashEligible(hd, DType::kBF16, nullptr));
    EXPECT_TRUE(FlashEligible(hd, DType::kF16, nullptr));
    EXPECT_EQ(FlashSmemBytes(hd), static_cast<uint64_t>(3 * 64) * (hd + 8) * 2);
  }
  std::string why;
  EXPECT_FALSE(FlashEligible(128, DType::kF32, &why));
  EXPECT_NE(why.find("fp32"), std::string::npos) << why;
  EXPECT_FALSE(FlashEligible(24, DType::kBF16, &why));
  EXPECT_NE(why.find("24"), std::string::npos) << why;
  EXPECT_FALSE(FlashEligible(96, DType::kBF16, nullptr));
}

TEST(AttentionSplits, DecodeChunksHoldAtLeastTheMinimumKeys) {
  // Batch 1 of Llama 3 8B at a 2K context on 132 SMs: 8 blocks want 33 chunks, 2048 keys allow
  // 16 of 128 or 32 of 64.
  EXPECT_EQ(ChooseAttentionSplits(8, 2048, 1, 132), 16);
  EXPECT_EQ(ChooseAttentionSplits(8, 2048, 1, 132, kDecodeMinKeysPerSplit), 32);
  EXPECT_EQ(ChooseAttentionSplits(8, 100, 1, 132, kDecodeMinKeysPerSplit), 2);
  EXPECT_EQ(ChooseAttentionSplits(300, 100000, 32, 132, kDecodeMinKeysPerSplit), 1);
  EXPECT_EQ(ChooseAttentionSplits(8, 100000, kAttnMaxSplitRows + 1, 132), 1);
}

TEST(StepMetaLayout, RowsSequencesAndBothTileLists) {
  StepMeta m;
  BuildStepMeta({{2, 5, 3}, {0, 0, 70}, {1, 9, 1}}, 4, &m);
  EXPECT_EQ(m.tokens, 74);
  EXPECT_EQ(m.seqs, 3);
  EXPECT_FALSE(m.decode);
  EXPECT_EQ(m.max_len, 70);
  EXPECT_EQ(m.row0, (std::vector<int64_t>{0, 3, 73}));
  EXPECT_EQ(m.slot, 74);
  EXPECT_EQ(m.last, 148);
  EXPECT_EQ(m.tiles, 151);
  for (int64_t j = 0; j < 3; ++j) {
    EXPECT_EQ(m.data[m.pos + j], 5 + j);
    EXPECT_EQ(m.data[m.slot + j], 2);
  }
  EXPECT_EQ(m.data[m.pos + 3 + 69], 69);
  EXPECT_EQ(m.data[m.slot + 73], 1);
  EXPECT_EQ(m.data[m.pos + 73], 9);
  EXPECT_EQ((std::vector<int32_t>(m.data.begin() + m.last, m.data.begin() + m.last + 3)),
            (std::vector<int32_t>{2, 72, 73}));
  // Tiled kernel: 1 + 18 + 1 tiles of at most 4 rows, in row order.
  EXPECT_EQ(m.num_tiles, 20);
  EXPECT_EQ(m.flash, m.tiles + 4 * 20);
  EXPECT_EQ((std::vector<int32_t>(m.data.begin() + m.tiles + 4, m.data.begin() + m.tiles + 8)),
            (std::vector<int32_t>{3, 4, 0, 0}));
  // Flash: the 70-row prompt as 64 + 6 rows, the tiles that see the most keys first.
  EXPECT_EQ(m.num_flash, 4);
  EXPECT_EQ(static_cast<int64_t>(m.data.size()), m.flash + 4 * 4);
  const int32_t* f = m.data.data() + m.flash;
  EXPECT_EQ((std::vector<int32_t>(f, f + 16)),
            (std::vector<int32_t>{67, 6, 0, 64, 3, 64, 0, 0, 73, 1, 1, 9, 0, 3, 2, 5}));
}

TEST(StepMetaLayout, DecodeStepsHaveFixedOffsetsForGraphs) {
  StepMeta a, b;
  BuildStepMeta({{0, 10, 1}, {3, 200, 1}}, 4, &a);
  BuildStepMeta({{0, 11, 1}, {3, 201, 1}}, 4, &b);
  EXPECT_TRUE(a.decode);
  // A graph captured at one step is replayed at the next: same offsets, new positions.
  EXPECT_EQ(a.pos, b.pos);
  EXPECT_EQ(a.slot, b.slot);
  EXPECT_EQ(a.last, b.last);
  EXPECT_EQ(a.tiles, b.tiles);
  EXPECT_EQ(a.flash, b.flash);
  EXPECT_EQ(a.data.size(), b.data.size());
  EXPECT_EQ(b.data[b.pos + 1], 201);
}

TEST(StepMetaLayout, CapacityHoldsEveryStepWithinTheLimits) {
  std::mt19937 rng(11);
  const int64_t max_tokens = 300, max_seqs = 12;
  for (int iter = 0; iter < 500; ++iter) {
    std::vector<SeqStep> seqs;
    int64_t left = max_tokens;
    const int n = 1 + static_cast<int>(rng() % max_seqs);
    for (int s = 0; s < n && left > 0; ++s) {
      const int64_t t = 1 + static_cast<int64_t>(rng() % std::min<int64_t>(left, 90));
      seqs.push_back({s, static_cast<int64_t>(rng() % 50), t});
      left -= t;
    }
    StepMeta m;
    BuildStepMeta(seqs, 1 + static_cast<int>(rng() % 16), &m);
    ASSERT_LE(static_cast<int64_t>(m.data.size()), StepMetaCapacity(max_tokens, max_seqs));
    std::set<int32_t> rows;  // every row in exactly one flash tile
    for (int64_t t = 0; t < m.num_flash; ++t) {
      const int32_t* f = m.data.data() + m.flash + 4 * t;
      ASSERT_LE(f[1], kFlashRows);
      for (int32_t r = f[0]; r < f[0] + f[1]; ++r) ASSERT_TRUE(rows.insert(r).second);
    }
    ASSERT_EQ(static_cast<int64_t>(rows.size()), m.tokens);
  }
}

}  // namespace
}  // namespace cb::cuda

// Work of a whole step as the runner counts it for MFU and MBU (harness/runner.h).
#include <gtest/gtest.h>

#include <optional>
#include <tuple>

#include "harness/offline_work.h"
#include "harness/runner.h"
#include "workloads/model_spec.h"
#include "workloads/op_stream.h"

namespace cb {
namespace {

StepIO Decode(int64_t seqs, int64_t past) {
  StepIO io;
  for (int64_t i = 0; i < seqs; ++i) io.seqs.push_back({i, past, 1});
  return io;
}

TEST(ExtrapolatedCost, FullStreamCountsEveryLayerOfAMixedDenseAndMoeModel) {
  ModelSpec m;
  ASSERT_TRUE(LoadModelSpec("tiny-moe-mla", &m).ok());
  ASSERT_GT(m.moe.first_dense_layers, 0);  // layer 0 is dense, the others MoE
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &s).ok());
  const StepIO io = Decode(4, 16);
  const OpCost all = CostOfOps(s, 0, s.ops.size(), io, DType::kBF16);
  const OpCost c = ExtrapolatedCost(s, io, DType::kBF16);
  EXPECT_NEAR(c.flops / all.flops, 1.0, 1e-12);
  EXPECT_NEAR(c.weight_bytes / all.weight_bytes, 1.0, 1e-12);
  EXPECT_NEAR(c.bytes / all.bytes, 1.0, 1e-12);
  // Not layer 0 (dense) times the layer count.
  const auto [b0, e0] = s.LayerRange(0);
  const auto [b1, e1] = s.LayerRange(1);
  EXPECT_NE(CostOfOps(s, b0, e0, io, DType::kBF16).weight_bytes,
            CostOfOps(s, b1, e1, io, DType::kBF16).weight_bytes);
}

TEST(ExtrapolatedCost, PartialStreamScalesEachLayerByItsKind) {
  ModelSpec m;
  ASSERT_TRUE(LoadModelSpec("tiny", &m).ok());
  ASSERT_GE(m.num_layers, 2);
  OpStream one, full;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 1, &one).ok());
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &full).ok());
  const StepIO io = Decode(2, 8);
  const OpCost extrapolated = ExtrapolatedCost(one, io, DType::kF32);
  const OpCost exact = CostOfOps(full, 0, full.ops.size(), io, DType::kF32);
  EXPECT_NEAR(extrapolated.flops / exact.flops, 1.0, 1e-9);  // dense layers are alike
  EXPECT_NEAR(extrapolated.bytes / exact.bytes, 1.0, 1e-9);
}

// DeepSeek-V3 --layers 2 runs one dense and one MoE layer; scaled per kind (x3 and x58) they
// count exactly the work of all 61 layers. (Before, two dense layers were scaled x61 while
// the bytes counted the MoE layers: MBU came out 1.67.)
TEST(ExtrapolatedCost, RepresentativeLayersOfAMixedModelCountTheWholeModel) {
  ModelSpec m;
  ASSERT_TRUE(LoadModelSpec("deepseek-v3", &m).ok());
  OpStream two, full;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, 2, &two).ok());
  ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &full).ok());
  ASSERT_EQ(two.plan.layers, (std::vector<int>{0, 3}));
  StepIO prefill;
  prefill.seqs.push_back({0, 0, 128});
  for (const StepIO& io : {prefill, Decode(1, 128), Decode(8, 40)}) {
    const OpCost extrapolated = ExtrapolatedCost(two, io, DType::kBF16);
    const OpCost exact = CostOfOps(full, 0, full.ops.size(), io, DType::kBF16);
    EXPECT_NEAR(extrapolated.flops / exact.flops, 1.0, 1e-9);
    EXPECT_NEAR(extrapolated.bytes / exact.bytes, 1.0, 1e-9);
    EXPECT_NEAR(extrapolated.weight_bytes / exact.weight_bytes, 1.0, 1e-9);
    EXPECT_NEAR(extrapolated.kv_bytes / exact.kv_bytes, 1.0, 1e-9);
  }
}

// An 8-bit KV cache moves 1 byte per cached value plus a 4-byte scale per (token, KV head),
// for K and V (workloads/quant.h KvHeadBytes): the runner's decode work (MBU) and the memory
// estimate count exactly that, whatever the compute dtype.
TEST(ExtrapolatedCost, An8BitKvCacheCountsOneBytePerValuePlusScales) {
  WorkloadSpec w;
  ASSERT_TRUE(LoadModelSpec("tiny", &w.model).ok());
  w.batch = 2;
  w.prompt_len = 16;
  w.gen_len = 4;
  OpStream full;
  ASSERT_TRUE(
      BuildDenseDecoderStream(w.model, {}, static_cast<int>(w.model.num_layers), &full).ok());
  const double layers = static_cast<double>(w.model.num_layers);
  const double kvh = static_cast<double>(w.model.num_kv_heads), hd = full.dims.head_dim;
  // Decode steps g = 1..4 read 16 + g positions of each of the 2 sequences.
  const double positions = 2.0 * (17 + 18 + 19 + 20);
  for (auto [dtype, kv, value_bytes] :
       {std::tuple{DType::kBF16, std::optional<DType>(), 2.0 * hd},
        std::tuple{DType::kBF16, std::optional(DType::kFP8), hd + 4},
        std::tuple{DType::kInt8, std::optional(DType::kInt8), hd + 4},
        std::tuple{DType::kF32, std::optional(DType::kInt8), hd + 4},
        std::tuple{DType::kInt8, std::optional<DType>(), 2.0 * hd}}) {  // int8 keeps bf16 K/V
    w.dtype = dtype;
    w.kv_dtype = kv;
    SCOPED_TRACE(std::string(DTypeName(dtype)) + " kv " + std::string(DTypeName(w.KvDType())));
    OpCost prefill, decode;
    JobWork(w, full, full.dims.vocab_full, ParallelContext{}, &prefill, &decode);
    EXPECT_DOUBLE_EQ(decode.kv_bytes, layers * 2 * kvh * value_bytes * positions);
    // Memory: batch x (prompt + gen) positions of every layer.
    EXPECT_DOUBLE_EQ(static_cast<double>(EstimateMemory(w).kv_cache),
                     layers * 2 * kvh * value_bytes * 2 * 20);
  }
}

}  // namespace
}  // namespace cb

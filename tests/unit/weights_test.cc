#include "workloads/weights.h"

#include <gtest/gtest.h>

#include <cmath>

#include "workloads/op_stream.h"

namespace cb {
namespace {

ModelSpec SmallModel() {
  ModelSpec m;
  m.name = "unit";
  m.hidden_size = 32;
  m.num_layers = 2;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.ffn_size = 64;
  m.vocab_size = 96;
  m.max_context = 64;
  return m;
}

std::vector<float> Fill(const WeightSource& src, const WeightDesc& d) {
  std::vector<float> v(d.Elements());
  src.FillRows(d, 0, d.rows, v.data());
  return v;
}

TEST(WeightSource, DeterministicAndSeedDependent) {
  WeightSource a(7), b(7), c(8);
  EXPECT_EQ(a.UnitValue(123, 5), b.UnitValue(123, 5));
  EXPECT_NE(a.UnitValue(123, 5), c.UnitValue(123, 5));
  EXPECT_NE(a.UnitValue(123, 5), a.UnitValue(124, 5));
  EXPECT_NE(a.UnitValue(123, 5), a.UnitValue(123, 6));
}

TEST(WeightSource, UniformInUnitRangeWithZeroMean) {
  WeightSource src(3);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const float v = src.UnitValue(99, i);
    ASSERT_GE(v, -1.0f);
    ASSERT_LT(v, 1.0f);
    sum += v;
    sq += v * v;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0 / 3.0, 0.01);  // variance of U(-1, 1)
}

// FillRows (8 lanes at a time with AVX-512 where the CPU has it) gives every element the
// generator's value fma(scale, unit, offset), bit for bit, for row widths with and without a
// tail, norm gains (offset 1) and sharded descs.
TEST(WeightSource, FillRowsIsTheGeneratorBitForBit) {
  const WeightSource src(11);
  for (int64_t cols : {1, 7, 8, 9, 64, 100}) {
    for (WeightInit init : {WeightInit::kUniform, WeightInit::kNearOne}) {
      const WeightDesc d{"t", "", 3, cols, 9, 2 * cols, 2, cols / 2, init, 0.37f};
      const std::vector<float> got = Fill(src, d);
      const uint64_t hash = WeightSource::HashName("t");
      const float offset = init == WeightInit::kNearOne ? 1.0f : 0.0f;
      for (int64_t r = 0; r < d.rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          const uint64_t i = (d.row_offset + r) * d.global_cols + d.col_offset + c;
          const float want = std::fma(d.scale, src.UnitValue(hash, i), offset);
          ASSERT_EQ(got[r * cols + c], want) << "cols " << cols << " (" << r << ", " << c << ")";
        }
      }
    }
  }
}

// Every tensor of the model, assembled from the shards of any TP split, equals the unsharded one.
class ShardSplit : public ::testing::TestWithParam<int> {};

TEST_P(ShardSplit, ShardsReassembleTheFullTensor) {
  const int tp = GetParam();
  const ModelSpec m = SmallModel();
  const WeightSource src(42);
  OpStream full;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {1, 0}, 2, &full).ok());
  for (const WeightDesc& whole : full.weights) {
    const std::vector<float> expected = Fill(src, whole);
    std::vector<float> assembled(expected.size(), NAN);
    for (int rank = 0; rank < tp; ++rank) {
      OpStream shard;
      ASSERT_TRUE(BuildDenseDecoderStream(m, {tp, rank}, 2, &shard).ok());
      const WeightDesc* d = shard.FindWeight(whole.name);
      ASSERT_NE(d, nullptr) << whole.name;
      const std::vector<float> part = Fill(src, *d);
      for (int64_t r = 0; r < d->rows; ++r) {
        for (int64_t c = 0; c < d->cols; ++c) {
          assembled[(d->row_offset + r) * whole.cols + d->col_offset + c] = part[r * d->cols + c];
        }
      }
    }
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_EQ(assembled[i], expected[i]) << whole.name << " element " << i << " tp " << tp;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(TensorParallel, ShardSplit, ::testing::Values(1, 2));

TEST(WeightSource, PartialRowFillMatchesWholeFill) {
  const WeightSource src(5);
  WeightDesc d{"t", "", 10, 7, 10, 7, 0, 0, WeightInit::kUniform, 0.5f};
  const std::vector<float> whole = Fill(src, d);
  std::vector<float> rows(3 * 7);
  src.FillRows(d, 4, 3, rows.data());
  for (int i = 0; i < 21; ++i) EXPECT_EQ(rows[i], whole[4 * 7 + i]);
  for (float v : whole) EXPECT_LE(std::fabs(v), 0.5f);
}

TEST(WeightSource, NearOneInitStaysPositive) {
  const WeightSource src(5);
  WeightDesc d{"norm", "", 1, 1000, 1, 1000, 0, 0, WeightInit::kNearOne, 0.1f};
  for (float v : Fill(src, d)) {
    EXPECT_GE(v, 0.9f);
    EXPECT_LE(v, 1.1f);
  }
}

TEST(WeightSource, TiedLmHeadReadsTheEmbedding) {
  ModelSpec m = SmallModel();
  m.tie_embeddings = true;
  OpStream s;
  ASSERT_TRUE(BuildDenseDecoderStream(m, {1, 0}, 1, &s).ok());
  const WeightSource src(9);
  EXPECT_EQ(Fill(src, *s.FindWeight("lm_head")), Fill(src, *s.FindWeight("embed")));
}

TEST(SyntheticToken, InVocabularyAndDeterministic) {
  for (int p = 0; p < 1000; ++p) {
    const int32_t t = SyntheticToken(1, 0, p, 50);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, 50);
    ASSERT_EQ(t, SyntheticToken(1, 0, p, 50));
  }
  EXPECT_NE(SyntheticToken(1, 0, 3, 1 << 20), SyntheticToken(1, 1, 3, 1 << 20));
}

}  // namespace
}  // namespace cb

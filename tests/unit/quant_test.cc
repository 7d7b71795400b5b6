#include "workloads/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace cb {
namespace {

TEST(QuantizeInt8, RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(QuantizeInt8(2.5f, 1.0f), 2);
  EXPECT_EQ(QuantizeInt8(3.5f, 1.0f), 4);
  EXPECT_EQ(QuantizeInt8(-2.5f, 1.0f), -2);
  EXPECT_EQ(QuantizeInt8(1.24f, 0.5f), 2);  // 2.48
  EXPECT_EQ(QuantizeInt8(0.75f, 0.5f), 2);  // 1.5 -> 2
  EXPECT_EQ(QuantizeInt8(0.25f, 0.5f), 0);  // 0.5 -> 0
  EXPECT_EQ(QuantizeInt8(200.0f, 1.0f), 127);
  EXPECT_EQ(QuantizeInt8(-200.0f, 1.0f), -127);  // symmetric: never -128
  EXPECT_EQ(QuantizeInt8(127.49f, 1.0f), 127);
}

TEST(QuantizeInt8, PerTokenScalesAreAbsMaxOver127) {
  const std::vector<float> x = {1.0f, -254.0f, 3.0f, 0.0f, /*row 2*/ 0, 0, 0, 0};
  std::vector<int8_t> q(8);
  std::vector<float> s(2);
  QuantizeRowsInt8(x.data(), 2, 4, 4, q.data(), s.data());
  EXPECT_EQ(s[0], 2.0f);
  EXPECT_EQ(s[1], 1.0f);  // an all-zero row: scale 1, codes 0
  EXPECT_EQ(q[0], 0);     // 0.5 -> 0 (even)
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[2], 2);  // 1.5 -> 2
  EXPECT_EQ(q[3], 0);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(q[i], 0);
}

TEST(Fp8, EncodesHandComputedValues) {
  EXPECT_EQ(FloatToFp8(1.0f), 0x38);  // exponent 7 (bias 7), mantissa 0
  EXPECT_EQ(FloatToFp8(-1.0f), 0xb8);
  EXPECT_EQ(FloatToFp8(448.0f), 0x7e);  // largest finite
  EXPECT_EQ(FloatToFp8(500.0f), 0x7e);  // saturates
  EXPECT_EQ(FloatToFp8(-1e9f), 0xfe);
  EXPECT_EQ(FloatToFp8(std::ldexp(1.0f, -9)), 0x01);       // smallest subnormal
  EXPECT_EQ(FloatToFp8(std::ldexp(1.0f, -10)), 0x00);      // tie 0 / 2^-9 -> even (0)
  EXPECT_EQ(FloatToFp8(3 * std::ldexp(1.0f, -10)), 0x02);  // tie 1 / 2 units -> 2
  EXPECT_EQ(FloatToFp8(std::ldexp(1.0f, -6)), 0x08);       // smallest normal
  EXPECT_EQ(FloatToFp8(1.0625f), 0x38);                    // tie 1.0 / 1.125 -> mantissa 0
  EXPECT_EQ(FloatToFp8(1.1875f), 0x3a);                    // tie 1.125 / 1.25 -> mantissa 2
  EXPECT_EQ(FloatToFp8(15.5f), 0x58);  // tie 15 / 16 -> 16 carries into the next binade
  EXPECT_EQ(FloatToFp8(NAN), 0x7f);
}

TEST(Fp8, DecodesAndRoundTripsEveryFiniteCode) {
  EXPECT_EQ(Fp8ToFloat(0x7e), 448.0f);
  EXPECT_EQ(Fp8ToFloat(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(Fp8ToFloat(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(Fp8ToFloat(0xb8), -1.0f);
  EXPECT_TRUE(std::isnan(Fp8ToFloat(0x7f)));
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    EXPECT_EQ(FloatToFp8(Fp8ToFloat(static_cast<uint8_t>(c))), c) << c;
  }
}

TEST(Fp8, ActivationGroupsOf128HaveTheirOwnScales) {
  // 130 columns: group 0 spans [0, 128), group 1 [128, 130) with a much smaller range.
  std::vector<float> x(130, 0.0f);
  x[0] = 448.0f;
  x[1] = 1.0f / 3.0f;
  x[128] = 1.0f;
  x[129] = 1.0f / 3.0f;
  FakeQuantizeActivationRow(DType::kFP8, x.data(), 130);
  EXPECT_EQ(x[0], 448.0f);                   // scale 1
  EXPECT_EQ(x[1], 0.34375f);                 // e4m3 of 1/3 at scale 1: 1.375 x 2^-2
  EXPECT_FLOAT_EQ(x[128], 1.0f);             // scale 1 / 448
  EXPECT_FLOAT_EQ(x[129], 144.0f / 448.0f);  // 149.3 -> 144 (units of 16), times 1/448
}

TEST(Int8, FakeQuantizationIsCodesTimesScale) {
  std::vector<float> x = {0.5f, -1.27f, 0.02f};
  FakeQuantizeActivationRow(DType::kInt8, x.data(), 3);
  const float s = 1.27f / 127.0f;
  EXPECT_FLOAT_EQ(x[0], 50 * s);
  EXPECT_FLOAT_EQ(x[1], -127 * s);
  EXPECT_FLOAT_EQ(x[2], 2 * s);
}

WeightDesc Desc(int64_t rows, int64_t cols, int64_t row_offset, int64_t col_offset,
                int64_t global_rows, int64_t global_cols) {
  WeightDesc d;
  d.name = d.key = "layers.0.wo";
  d.rows = rows;
  d.cols = cols;
  d.row_offset = row_offset;
  d.col_offset = col_offset;
  d.global_rows = global_rows;
  d.global_cols = global_cols;
  d.scale = 0.05f;
  return d;
}

// The quantised weights are the same numbers for any shard split, and they quantise the
// unquantised weights: |code x scale - w| <= scale / 2 for int8.
// The 8-bit KV cache's quantiser on hand-computed heads: scale max|x| / qmax over the head,
// round to nearest even, an all-zero head with scale 1.
TEST(KvQuant, Int8HeadScaleAndCodes) {
  const std::vector<float> x = {2.0f, -254.0f, 3.0f, 127.5f, 1.0f, 0.0f};
  std::vector<uint8_t> q(x.size());
  EXPECT_EQ(QuantizeKvHead(DType::kInt8, x.data(), 6, q.data()), 2.0f);  // 254 / 127
  // 1, -127, 1.5 -> 2, 63.75 -> 64, 0.5 -> 0 (even), 0
  const std::vector<int8_t> want = {1, -127, 2, 64, 0, 0};
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(static_cast<int8_t>(q[i]), want[i]) << i;
  std::vector<float> r = x;
  RoundKvHead(DType::kInt8, r.data(), 6);
  EXPECT_EQ(r, (std::vector<float>{2.0f, -254.0f, 4.0f, 128.0f, 0.0f, 0.0f}));
  const std::vector<float> zero(4, 0.0f);
  EXPECT_EQ(QuantizeKvHead(DType::kInt8, zero.data(), 4, q.data()), 1.0f);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q[i], 0);
}

TEST(KvQuant, Fp8HeadScaleAndCodes) {
  const float tiny = std::ldexp(1.0f, -8);
  const std::vector<float> x = {896.0f, -1.0f, 3.0f, 0.1f, tiny, 0.0f};
  std::vector<uint8_t> q(x.size());
  EXPECT_EQ(QuantizeKvHead(DType::kFP8, x.data(), 6, q.data()), 2.0f);  // 896 / 448
  // 448 (largest), -0.5 (exponent -1), 1.5, 0.05 = 1.6 x 2^-5 -> mantissa 5 (1.625), 2^-9 (the
  // smallest subnormal), 0.
  const std::vector<uint8_t> want = {0x7e, 0xb0, 0x3c, 0x15, 0x01, 0x00};
  EXPECT_EQ(q, want);
  std::vector<float> r = x;
  RoundKvHead(DType::kFP8, r.data(), 6);
  EXPECT_EQ(r, (std::vector<float>{896.0f, -1.0f, 3.0f, 0.1015625f, tiny, 0.0f}));
  const std::vector<float> neg = {-0.0f, -3.0f};  // the largest magnitude may be negative
  EXPECT_EQ(QuantizeKvHead(DType::kFP8, neg.data(), 2, q.data()), 3.0f / 448.0f);
  EXPECT_EQ(q[1], 0xfe);
}

TEST(KvQuant, Bf16AndFp32HeadsAndBytesPerHead) {
  std::vector<float> x = {1.0f + std::ldexp(1.0f, -10), 3.0f};
  RoundKvHead(DType::kBF16, x.data(), 2);
  EXPECT_EQ(x, (std::vector<float>{1.0f, 3.0f}));
  x = {1.0f + std::ldexp(1.0f, -10), 3.0f};
  RoundKvHead(DType::kF32, x.data(), 2);
  EXPECT_EQ(x[0], 1.0f + std::ldexp(1.0f, -10));
  EXPECT_EQ(KvHeadBytes(DType::kInt8, 128), 132);  // codes + one fp32 scale
  EXPECT_EQ(KvHeadBytes(DType::kFP8, 64), 68);
  EXPECT_EQ(KvHeadBytes(DType::kBF16, 128), 256);
  EXPECT_EQ(KvHeadBytes(DType::kF32, 16), 64);
}

TEST(QuantizedWeights, SameForAnyShardSplitAndCloseToTheWeights) {
  const WeightSource src(5);
  const WeightDesc whole = Desc(8, 300, 0, 0, 8, 300);
  for (DType t : {DType::kInt8, DType::kFP8}) {
    std::vector<uint8_t> all(8 * 300);
    QuantizedWeightRows(whole, src, t, 0, 8, all.data());
    const WeightDesc right = Desc(8, 100, 0, 200, 8, 300);  // the columns of TP rank 2 of 3
    std::vector<uint8_t> part(8 * 100);
    QuantizedWeightRows(right, src, t, 0, 8, part.data());
    for (int r = 0; r < 8; ++r) {
      for (int c = 0; c < 100; ++c) ASSERT_EQ(part[r * 100 + c], all[r * 300 + 200 + c]);
    }
    std::vector<float> w(8 * 300);
    src.FillRows(whole, 0, 8, w.data());
    const float s = WeightQuantScale(whole, t);
    EXPECT_FLOAT_EQ(s, t == DType::kInt8 ? 0.05f / 127 : 0.05f / 448);
    for (size_t i = 0; i < w.size(); ++i) {
      const float back = Dequantize(t, all[i], s);
      const float bound = t == DType::kInt8 ? s / 2 : std::fabs(w[i]) / 16 + s * 0x1p-9f;
      ASSERT_LE(std::fabs(back - w[i]), bound * 1.0001f) << i;
    }
  }
}

TEST(QuantizedWeights, MatmulAndExpertWeightsOnly) {
  OpStream s;
  s.ops.push_back(Op{OpKind::kRmsNorm, 0, Buf::kX, Buf::kH, {"norm"}, 4, 0});
  s.ops.push_back(Op{OpKind::kMatMul, 0, Buf::kH, Buf::kQkv, {"wq", "wk"}, 8, 4});
  s.ops.push_back(Op{OpKind::kRouter, 0, Buf::kH, Buf::kRoute, {"gate"}, 4, 4});
  s.ops.push_back(Op{OpKind::kMoeExperts, 0, Buf::kH, Buf::kProj, {"gu", "down"}, 4, 4});
  EXPECT_EQ(QuantizedWeightNames(s), (std::set<std::string>{"wq", "wk", "gu", "down"}));
}

}  // namespace
}  // namespace cb

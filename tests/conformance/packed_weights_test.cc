// Weights generated straight into the packed layout (cpu::PackRows: 8 lanes at a time, block
// by block) are the generator's values rounded to the dtype, element for element and bit for
// bit, padding zero: plain, concatenated, interleaved (rows from a map) and transposed rows.
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cpu/packed_matrix.h"
#include "tests/conformance/conformance_util.h"
#include "workloads/quant.h"

namespace cb::conformance {
namespace {

float PackedAt(const cpu::PackedMatrix& m, int64_t row, int64_t col) {
  const int64_t off = m.Offset(row, col);
  return m.dtype == DType::kBF16 ? Bf16ToFloat(m.data.as<uint16_t>()[off])
                                 : m.data.as<float>()[off];
}

class PackedWeights : public ::testing::TestWithParam<DType> {};

TEST_P(PackedWeights, PackedValuesAreTheGeneratorsRounded) {
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  const DType dt = GetParam();
  const WeightSource source(seed);
  // 70 x 45 (n and k padded), a shard of a wider tensor, and a norm-like desc (offset 1).
  const WeightDesc a{"a", "", 70, 45, 140, 90, 70, 45, WeightInit::kUniform, 0.3f};
  const WeightDesc b{"b", "", 30, 45, 30, 45, 0, 0, WeightInit::kNearOne, 0.1f};
  std::vector<float> va(a.Elements()), vb(b.Elements());
  source.FillRows(a, 0, a.rows, va.data());
  source.FillRows(b, 0, b.rows, vb.data());
  cpu::PackedMatrix m;
  ASSERT_TRUE(cpu::PackWeights({&a, &b}, source, dt, &m).ok());
  ASSERT_EQ(m.n, 100);
  for (int64_t r = 0; r < m.n_pad; ++r) {
    for (int64_t c = 0; c < m.k_pad; ++c) {
      float want = 0;
      if (r < 70 && c < 45) want = RoundTo(dt, va[r * 45 + c]);
      if (r >= 70 && r < 100 && c < 45) want = RoundTo(dt, vb[(r - 70) * 45 + c]);
      ASSERT_EQ(PackedAt(m, r, c), want) << "(" << r << ", " << c << ")";
    }
  }
  // Transposed rows: packed row p is column p of `a` (packed column c = a's row c).
  cpu::PackedMatrix t;
  const cpu::RowMap columns = [&](int64_t p) { return cpu::RowSource{&a, 0, true, p}; };
  ASSERT_TRUE(cpu::PackRows(45, 70, columns, source, dt, &t).ok());
  for (int64_t p = 0; p < 45; ++p) {
    for (int64_t c = 0; c < 70; ++c) {
      ASSERT_EQ(PackedAt(t, p, c), RoundTo(dt, va[c * 45 + p])) << "(" << p << ", " << c << ")";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, PackedWeights, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

/// Code of W[row, col] in a packed int8 or fp8 matrix.
uint8_t PackedCode(const cpu::PackedMatrix& m, int64_t row, int64_t col) {
  return m.data.as<uint8_t>()[m.Offset(row, col)];
}

class PackedQuantWeights : public ::testing::TestWithParam<DType> {};

// The vectorised packer writes QuantizedWeightRows' codes (the scalar definition) with their
// scales, and int8's row offsets; padding is zero.
TEST_P(PackedQuantWeights, PackedCodesAreQuantizedWeightRows) {
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  const DType dt = GetParam();
  const WeightSource source(seed);
  // 70 x 300 (n and k padded), the second part a shard of a wider tensor of the same scale.
  const WeightDesc a{"a", "", 70, 300, 70, 300, 0, 0, WeightInit::kUniform, 0.3f};
  const WeightDesc b{"b", "", 58, 300, 116, 600, 58, 300, WeightInit::kUniform, 0.3f};
  cpu::PackedMatrix m;
  ASSERT_TRUE(cpu::PackWeights({&a, &b}, source, dt, &m).ok());
  ASSERT_EQ(m.n, 128);
  std::vector<uint8_t> want(300);
  for (int64_t r = 0; r < m.n_pad; ++r) {
    const WeightDesc* d = r < 70 ? &a : r < 128 ? &b : nullptr;
    if (d != nullptr) QuantizedWeightRows(*d, source, dt, r < 70 ? r : r - 70, 1, want.data());
    int32_t sum = 0;
    for (int64_t c = 0; c < m.k_pad; ++c) {
      const uint8_t code = d != nullptr && c < 300 ? want[c] : 0;
      ASSERT_EQ(PackedCode(m, r, c), code) << "(" << r << ", " << c << ")";
      sum += static_cast<int8_t>(code);
    }
    if (dt == DType::kInt8) {
      EXPECT_EQ(m.scales.as<float>()[r], d != nullptr ? WeightQuantScale(*d, dt) : 0.0f);
      EXPECT_EQ(m.comp.as<int32_t>()[r], 128 * sum);
    }
  }
  if (dt == DType::kFP8) {
    const int64_t groups = m.k_pad / kFp8Block;
    for (int64_t i = 0; i < m.n_pad / cpu::kPackN * groups; ++i) {
      EXPECT_EQ(m.scales.as<float>()[i], WeightQuantScale(a, dt));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, PackedQuantWeights, ::testing::Values(DType::kInt8, DType::kFP8),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

// The packer's fp8 encoder against FloatToFp8 over a sweep of every 61st float bit pattern of
// both signs (subnormals, every binade, the rounding carries, saturation, infinities, NaNs).
TEST(PackedQuantWeights, VectorFp8EncoderIsFloatToFp8) {
  std::vector<float> x;
  for (uint64_t bits = 0; bits <= 0xffffffffull; bits += 61) {
    const uint32_t b = static_cast<uint32_t>(bits);
    float f;
    std::memcpy(&f, &b, sizeof f);
    x.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 448.0f, 464.0f, 0x1p-9f, 0x1.8p-10f, 0x1p-10f, 0x1.ep-7f}) {
    x.push_back(f);
  }
  auto push_bits = [&](uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    x.push_back(f);
  };
  // Every tie of the 3-bit rounding and its neighbours, in every binade and of both signs.
  for (uint32_t high = 0; high < (1u << 12); ++high) {
    for (uint32_t low : {0x7ffffu, 0x80000u, 0x80001u}) push_bits(high << 20 | low);
  }
  // Every pattern from 2^-10 to 2^-5: the subnormal codes and their boundary with the normals.
  for (uint32_t b = 0x3a800000u; b <= 0x3d000000u; ++b) push_bits(b);
  std::vector<uint8_t> got(x.size());
  cpu::EncodeFp8(x.data(), static_cast<int64_t>(x.size()), got.data());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(got[i], FloatToFp8(x[i])) << "x = " << x[i] << " (" << i << ")";
  }
}

}  // namespace
}  // namespace cb::conformance

// Weights generated straight into the packed layout (cpu::PackRows: 8 lanes at a time, block
// by block) are the generator's values rounded to the dtype, element for element and bit for
// bit, padding zero: plain, concatenated, interleaved (rows from a map) and transposed rows.
#include <gtest/gtest.h>

#include "backends/cpu/packed_matrix.h"
#include "tests/conformance/conformance_util.h"

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

}  // namespace
}  // namespace cb::conformance

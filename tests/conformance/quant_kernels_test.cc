// The cpu backend's quantised kernels on their own, against the definitions of workloads/quant.h
// computed here in double: a matrix large enough to hold e4m3 subnormal codes (about 3.5e-5 of
// the codes; the decode kernel corrects for them separately) and n, k that are not multiples of
// the blocks. Tolerance 1e-5 of max |y|: only fp32 summation order differs.

#include <gtest/gtest.h>

#include <random>

#include "backends/cpu/attention.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/packed_matrix.h"
#include "backends/cpu/quant_gemm.h"
#include "tests/conformance/conformance_util.h"
#include "workloads/quant.h"

namespace cb::conformance {
namespace {

using cpu::PackedMatrix;

WeightDesc Desc(int64_t n, int64_t k) {
  WeightDesc d;
  d.name = d.key = "kernel.test";
  d.rows = d.global_rows = n;
  d.cols = d.global_cols = k;
  d.scale = 0.03f;
  return d;
}

/// y = x . dequantised(W)^T in double, x rounded as the kernel reads it (`round`).
std::vector<double> Expected(const WeightDesc& d, const WeightSource& src, DType dt,
                             const std::vector<float>& x, int64_t rows, int64_t* subnormals) {
  std::vector<uint8_t> codes(d.Elements());
  QuantizedWeightRows(d, src, dt, 0, d.rows, codes.data());
  const float s = WeightQuantScale(d, dt);
  *subnormals = 0;
  for (uint8_t c : codes) *subnormals += dt == DType::kFP8 && (c & 0x78) == 0 && (c & 7) != 0;
  std::vector<double> y(rows * d.rows);
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t n = 0; n < d.rows; ++n) {
      double acc = 0;
      for (int64_t c = 0; c < d.cols; ++c) {
        acc += static_cast<double>(x[m * d.cols + c]) * Dequantize(dt, codes[n * d.cols + c], s);
      }
      y[m * d.rows + n] = acc;
    }
  }
  return y;
}

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const std::string& what) {
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(want[i]));
    max_err = std::max(max_err, std::fabs(got[i] - want[i]));
  }
  EXPECT_LE(max_err, 1e-5 * max_ref) << what;
}

TEST(QuantKernels, Fp8WeightOnlyWithSubnormalCodes) {
  if (!cpu::Fp8GemmAvailable()) GTEST_SKIP() << "no AVX512_BF16";
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  const WeightSource src(seed);
  const WeightDesc d = Desc(400, 1000);  // ~14 subnormal codes expected
  PackedMatrix w;
  ASSERT_TRUE(cpu::PackWeights({&d}, src, DType::kFP8, &w).ok());
  std::mt19937_64 rng(seed);
  for (int64_t rows : {1, 2, 3, 4, 7}) {
    std::vector<float> x = RandomValues(rng, rows * d.cols, 3.0f);
    std::vector<uint16_t> xb(rows * w.k_pad, 0);
    for (int64_t m = 0; m < rows; ++m) {
      for (int64_t c = 0; c < d.cols; ++c) {
        xb[m * w.k_pad + c] = FloatToBf16(x[m * d.cols + c]);
        x[m * d.cols + c] = Bf16ToFloat(xb[m * w.k_pad + c]);
      }
    }
    int64_t subnormals = 0;
    const std::vector<double> want = Expected(d, src, DType::kFP8, x, rows, &subnormals);
    EXPECT_GT(subnormals, 0);
    std::vector<float> y(rows * d.rows);
    cpu::Fp8WeightOnlyGemm(w, xb.data(), w.k_pad, rows, y.data(), d.rows);
    ExpectClose(y, want,
                "fp8 rows " + std::to_string(rows) + ", " + std::to_string(subnormals) +
                    " subnormal codes");
  }
}

// A subnormal code on its own: x is one-hot at its column, so y of its row is its value.
TEST(QuantKernels, Fp8SubnormalCodeAlone) {
  if (!cpu::Fp8GemmAvailable()) GTEST_SKIP() << "no AVX512_BF16";
  const WeightSource src(FreshSeed());
  const WeightDesc d = Desc(400, 1000);
  std::vector<uint8_t> codes(d.Elements());
  QuantizedWeightRows(d, src, DType::kFP8, 0, d.rows, codes.data());
  int64_t at = -1;
  for (int64_t i = 0; i < d.Elements() && at < 0; ++i) {
    if ((codes[i] & 0x78) == 0 && (codes[i] & 7) != 0) at = i;
  }
  if (at < 0) GTEST_SKIP() << "no subnormal code in this draw";
  PackedMatrix w;
  ASSERT_TRUE(cpu::PackWeights({&d}, src, DType::kFP8, &w).ok());
  std::vector<uint16_t> x(w.k_pad, 0);
  x[at % d.cols] = FloatToBf16(1.0f);
  std::vector<float> y(d.rows);
  cpu::Fp8WeightOnlyGemm(w, x.data(), w.k_pad, 1, y.data(), d.rows);
  const float want = Dequantize(DType::kFP8, codes[at], WeightQuantScale(d, DType::kFP8));
  EXPECT_NE(want, 0.0f);
  EXPECT_FLOAT_EQ(y[at / d.cols], want);
}

TEST(QuantKernels, Int8RowsOfEveryGroupSize) {
  if (!cpu::Int8GemmAvailable()) GTEST_SKIP() << "no AVX512_VNNI";
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  const WeightSource src(seed);
  const WeightDesc d = Desc(130, 300);
  PackedMatrix w;
  ASSERT_TRUE(cpu::PackWeights({&d}, src, DType::kInt8, &w).ok());
  cpu::MatmulRunner runner;
  ASSERT_TRUE(runner.Reserve(13, w.k_pad, DType::kInt8).ok());
  std::mt19937_64 rng(seed);
  for (int64_t rows : {1, 5, 6, 7, 13}) {
    const std::vector<float> x = RandomValues(rng, rows * d.cols, 2.0f);
    // The definition: per-token codes and scale, exact integer sums.
    std::vector<float> xq(x.size());
    std::vector<int8_t> q(x.size());
    std::vector<float> sx(rows);
    QuantizeRowsInt8(x.data(), rows, d.cols, d.cols, q.data(), sx.data());
    for (size_t i = 0; i < q.size(); ++i) xq[i] = q[i] * sx[i / d.cols];
    int64_t unused = 0;
    const std::vector<double> want = Expected(d, src, DType::kInt8, xq, rows, &unused);
    std::vector<float> y(rows * d.rows);
    ASSERT_TRUE(runner.Run(w, x.data(), DType::kF32, d.cols, rows, y.data(), d.rows).ok());
    ExpectClose(y, want, "int8 rows " + std::to_string(rows));
  }
}

// The 8-bit KV cache's vector encoder against QuantizeKvHead: head sizes with tails, values
// from 1e-7 to 1e3 of the head's largest (e4m3 subnormal codes and int8 zeros among them),
// exact ties, an all-zero head, and a head whose largest value is negative.
TEST(KvCacheKernels, EncoderEqualsQuantizeKvHeadBitForBit) {
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-24, 10);
  for (DType kv : {DType::kInt8, DType::kFP8}) {
    for (int64_t n : {1, 7, 8, 16, 24, 64, 100, 128, 256, 300}) {
      for (int draw = 0; draw < 20; ++draw) {
        std::vector<float> x(n);
        for (float& v : x) v = std::ldexp(mantissa(rng), exponent(rng));
        if (draw == 0) std::fill(x.begin(), x.end(), 0.0f);
        if (draw == 1) {  // ties: int8 x / s = k + 1/2 (s = 1), fp8 1 + (k + 1/2) / 8 (s = 2)
          for (int64_t i = 0; i < n; ++i) {
            x[i] = kv == DType::kInt8 ? i % 9 + 0.5f : 2.0f * (1.0f + (i % 8 + 0.5f) / 8.0f);
          }
          x[0] = kv == DType::kInt8 ? -127.0f : -896.0f;
        }
        std::vector<uint8_t> want(n), got(n);
        const float s_want = QuantizeKvHead(kv, x.data(), n, want.data());
        const float s_got = cpu::EncodeKvHead(kv, x.data(), n, got.data());
        ASSERT_EQ(s_got, s_want) << DTypeName(kv) << " n " << n << " draw " << draw;
        ASSERT_EQ(got, want) << DTypeName(kv) << " n " << n << " draw " << draw;
      }
    }
  }
}

// The kernel's loads of every code: int8 as its integer, e4m3 as Fp8ToFloat (subnormals and
// both zeros included; 0x7f and 0xff, NaN, are never written).
TEST(KvCacheKernels, DecoderReadsEveryCodeExactly) {
  std::vector<uint8_t> codes(256 + 5);  // a tail of 5 after 16 whole vectors
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(i * 37 % 256);
  for (int i = 0; i < 256; ++i) codes[i] = static_cast<uint8_t>(i);
  for (DType kv : {DType::kInt8, DType::kFP8}) {
    std::vector<float> got(codes.size());
    cpu::DecodeKvCodes(kv, codes.data(), static_cast<int64_t>(codes.size()), got.data());
    for (size_t i = 0; i < codes.size(); ++i) {
      const uint8_t c = codes[i];
      if (kv == DType::kFP8 && (c & 0x7f) == 0x7f) continue;
      const float want =
          kv == DType::kInt8 ? static_cast<float>(static_cast<int8_t>(c)) : Fp8ToFloat(c);
      ASSERT_EQ(got[i], want) << DTypeName(kv) << " code 0x" << std::hex << int{c};
      ASSERT_EQ(std::signbit(got[i]), std::signbit(want)) << "code 0x" << std::hex << int{c};
    }
  }
}

}  // namespace
}  // namespace cb::conformance

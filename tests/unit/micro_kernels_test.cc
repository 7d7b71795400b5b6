#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "harness/micro/matmul_kernel.h"
#include "harness/micro/memory_kernels.h"

namespace cb {
namespace {

/// Reference dst = src x weights in double, inputs rounded to `dt` as the kernel sees them.
std::vector<double> NaiveMatmul(DType dt, const std::vector<float>& src,
                                const std::vector<float>& wei, int64_t m, int64_t n, int64_t k) {
  std::vector<double> out(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        acc += static_cast<double>(RoundTo(dt, src[i * k + p])) * RoundTo(dt, wei[p * n + j]);
      }
      out[i * n + j] = acc;
    }
  }
  return out;
}

void CheckMatmul(DType dt, int64_t m, int64_t n, int64_t k, double rel_tol) {
  std::vector<float> src(m * k), wei(k * n);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>((i * 7) % 13) / 13 - 0.5f;
  for (size_t i = 0; i < wei.size(); ++i) wei[i] = static_cast<float>((i * 5) % 11) / 11 - 0.5f;
  MatmulConfig config;
  config.dtype = dt;
  config.m = m;
  config.n = n;
  config.k = k;
  config.src = src;
  config.weights = wei;
  config.weight_copies = 3;
  std::unique_ptr<MatmulKernel> kernel;
  ASSERT_TRUE(MatmulKernel::Create(config, &kernel).ok());
  EXPECT_EQ(kernel->weight_copies(), 3);
  EXPECT_FALSE(kernel->impl().empty());
  EXPECT_DOUBLE_EQ(kernel->Flops(), 2.0 * m * n * k);
  EXPECT_DOUBLE_EQ(kernel->Bytes(), static_cast<double>(m * k + k * n + m * n) * DTypeBytes(dt));
  const std::vector<double> want = NaiveMatmul(dt, src, wei, m, n, k);
  double max_ref = 0;
  for (double v : want) max_ref = std::max(max_ref, std::abs(v));
  // Every weight copy holds the same weights; re-running does not accumulate into dst.
  for (int run = 0; run < 4; ++run) {
    kernel->Run();
    const std::vector<float> got = kernel->Output();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], rel_tol * max_ref)
          << DTypeName(dt) << " run " << run << " element " << i;
    }
  }
}

TEST(MicroMatmulKernel, Fp32MatchesReference) {
  CheckMatmul(DType::kF32, 1, 33, 70, 1e-5);    // decode-like, odd sizes
  CheckMatmul(DType::kF32, 17, 64, 129, 1e-5);  // blocked weights with edges
}

TEST(MicroMatmulKernel, Bf16MatchesReferenceWhereSupported) {
  if (!MatmulKernel::Supported(DType::kBF16)) GTEST_SKIP() << "no native bf16 on this CPU";
  // dst is bf16: 8 bits of mantissa, so ~2^-8 relative to the largest value.
  CheckMatmul(DType::kBF16, 1, 33, 70, 1e-2);
  CheckMatmul(DType::kBF16, 17, 64, 129, 1e-2);
}

// The int8 peak's matmul: u8 src (value x 127 + 127) x s8 weights (value x 127) -> exact s32.
TEST(MicroMatmulKernel, Int8IsTheExactIntegerProductWhereSupported) {
  if (!MatmulKernel::Supported(DType::kInt8)) GTEST_SKIP() << "no AVX512_VNNI on this CPU";
  const int64_t m = 5, n = 40, k = 70;
  MatmulConfig c;
  c.dtype = DType::kInt8;
  c.m = m;
  c.n = n;
  c.k = k;
  for (int64_t i = 0; i < m * k; ++i) c.src.push_back(static_cast<float>(i % 9 - 4) / 127);
  for (int64_t i = 0; i < k * n; ++i) c.weights.push_back(static_cast<float>(i % 7 - 3) / 127);
  std::unique_ptr<MatmulKernel> kernel;
  ASSERT_TRUE(MatmulKernel::Create(c, &kernel).ok());
  EXPECT_DOUBLE_EQ(kernel->Bytes(), static_cast<double>(m * k + k * n) + 4.0 * m * n);
  kernel->Run();
  const std::vector<float> got = kernel->Output();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t want = 0;
      for (int64_t p = 0; p < k; ++p) want += (((i * k + p) % 9 - 4) + 127) * ((p * n + j) % 7 - 3);
      ASSERT_EQ(got[i * n + j], static_cast<float>(want)) << i << "," << j;
    }
  }
}

TEST(MicroMatmulKernel, RejectsBadInput) {
  auto create = [](DType dt, int64_t m, std::vector<float> src, int copies) {
    MatmulConfig c;
    c.dtype = dt;
    c.m = m;
    c.n = 4;
    c.k = 4;
    c.src = std::move(src);
    c.weight_copies = copies;
    std::unique_ptr<MatmulKernel> kernel;
    Status s = MatmulKernel::Create(c, &kernel);
    EXPECT_EQ(kernel, nullptr);
    return s.code();
  };
  EXPECT_EQ(create(DType::kF32, 0, {}, 1), StatusCode::kInvalidInput);
  EXPECT_EQ(create(DType::kF32, 2, std::vector<float>(3), 1), StatusCode::kInvalidInput);
  EXPECT_EQ(create(DType::kF32, 2, {}, 0), StatusCode::kInvalidInput);
  EXPECT_EQ(create(DType::kF16, 2, {}, 1), StatusCode::kUnsupported);
}

TEST(MicroMatmulKernel, WeightCopiesSpanTheFootprint) {
  // 2048x2048 bf16 = 8 MiB: 64 copies for 512 MiB; 64 MiB fp32 weights: 8 copies.
  EXPECT_EQ(MatmulKernel::CopiesForFootprint(DType::kBF16, 2048, 2048, 512.0 * (1 << 20), 64), 64);
  EXPECT_EQ(MatmulKernel::CopiesForFootprint(DType::kF32, 4096, 4096, 512.0 * (1 << 20), 64), 8);
  EXPECT_EQ(MatmulKernel::CopiesForFootprint(DType::kF32, 16, 16, 512.0 * (1 << 20), 64), 64);
  EXPECT_EQ(MatmulKernel::CopiesForFootprint(DType::kF32, 8192, 8192, 1024, 64), 1);
}

TEST(MicroMemoryKernels, ReadSumCoversEveryElement) {
  // Sizes around the 128-float blocks and the per-thread split, including a tail.
  for (size_t n : {size_t{0}, size_t{5}, size_t{128}, size_t{1000}, size_t{4096 + 77}}) {
    BandwidthBuffer buf(n, 1.0f);
    if (n == 0) {
      EXPECT_EQ(StreamReadSum(nullptr, 0), 0.0);
      continue;
    }
    ASSERT_TRUE(buf.ok());
    for (size_t i = 0; i < n; ++i) buf.data()[i] = static_cast<float>(i % 8);
    double want = 0;
    for (size_t i = 0; i < n; ++i) want += static_cast<double>(i % 8);
    EXPECT_EQ(StreamReadSum(buf.data(), n), want) << n;
  }
}

TEST(MicroMemoryKernels, BufferIsInitialisedAndAligned) {
  BandwidthBuffer buf(10000, 2.5f);
  ASSERT_TRUE(buf.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 64, 0u);
  EXPECT_EQ(buf.bytes(), 40000u);
  EXPECT_EQ(StreamReadSum(buf.data(), buf.size()), 25000.0);
}

TEST(MicroMemoryKernels, CopyIsExact) {
  const size_t n = 3 * 4096 + 45;
  BandwidthBuffer src(n, 0.0f), dst(n, -1.0f);
  for (size_t i = 0; i < n; ++i) src.data()[i] = static_cast<float>(i) * 0.5f;
  StreamCopy(dst.data(), src.data(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(dst.data()[i], src.data()[i]) << i;
}

}  // namespace
}  // namespace cb

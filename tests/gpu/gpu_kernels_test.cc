// Kernels and measurements outside the op stream: the uniform fill the ceilings run on, and the
// ceilings themselves (random inputs, windows of at least 100 ms). Skipped (reported SKIPPED)
// where no CUDA device is found.

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backends/cuda/cuda_ceilings.h"
#include "backends/cuda/kernels.h"
#include "tests/gpu/gpu_util.h"

namespace cb::gpu_test {
namespace {

TEST(CudaFillUniform, ValuesInRangeAndNotZero) {
  CB_REQUIRE_GPU();
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenCudaDevice(-1, &dev).ok());
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int64_t n = 100003;
    void* d = nullptr;
    ASSERT_EQ(cudaMalloc(&d, n * DTypeBytes(t)), cudaSuccess);
    ASSERT_EQ(cudaMemset(d, 0xff, n * DTypeBytes(t)), cudaSuccess);  // NaN everywhere first
    ASSERT_EQ(cuda::LaunchFillUniform(d, t, n, 42, 2.0f, nullptr), cudaSuccess);
    std::vector<uint8_t> raw(n * DTypeBytes(t));
    ASSERT_EQ(cudaMemcpy(raw.data(), d, raw.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(d);
    std::vector<float> v(n);
    cuda::ToFloatHost(raw.data(), t, n, v.data());
    double sum = 0, zeros = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x));  // every element written
      ASSERT_LE(std::fabs(x), 2.0f);
      sum += x;
      zeros += x == 0.0f;
    }
    EXPECT_LT(std::fabs(sum / n), 0.02) << DTypeName(t);  // mean of U(-2, 2)
    EXPECT_LT(zeros, n * 0.01) << DTypeName(t);
  }
}

TEST(CudaCeilings, RandomInputsAndLongWindows) {
  CB_REQUIRE_GPU();
  CudaCeilings c;
  const Status st = MeasureCudaCeilings(-1, &c);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_GT(c.copy_bytes_per_s, 1e11);  // any GPU this backend runs on copies > 100 GB/s
  EXPECT_GE(c.copy.seconds, 0.2);
  EXPECT_GE(c.copy.windows, 3);
  EXPECT_LE(c.copy.min, c.copy_bytes_per_s);
  EXPECT_GE(c.copy.max, c.copy_bytes_per_s);
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int i = static_cast<int>(t);
    EXPECT_GT(c.matmul_flops_per_s[i], 1e12) << DTypeName(t);
    EXPECT_GE(c.matmul[i].seconds, 0.1) << DTypeName(t);
    EXPECT_GE(c.matmul[i].windows, 3) << DTypeName(t);
    EXPECT_LE(c.matmul[i].min, c.matmul_flops_per_s[i]) << DTypeName(t);
    EXPECT_GE(c.matmul[i].max, c.matmul_flops_per_s[i]) << DTypeName(t);
  }
  EXPECT_GT(c.matmul_flops_per_s[static_cast<int>(DType::kBF16)],
            c.matmul_flops_per_s[static_cast<int>(DType::kF32)]);  // tensor cores
  EXPECT_NE(c.source.find("random"), std::string::npos) << c.source;
}

}  // namespace
}  // namespace cb::gpu_test

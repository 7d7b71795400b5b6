// Host-side parts of the cuda backend's int8 / fp8 GEMMs that need no GPU (they run wherever
// the backend is built): the code functions the quantise kernels run (quant_codes.h, built
// here by the host compiler) against workloads/quant.cc bit for bit, the weight packer's
// codes, scales and layouts, and which GPUs get which GEMM.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backends/cuda/quant_codes.h"
#include "backends/cuda/quant_gemm.h"
#include "workloads/quant.h"

namespace cb::cuda {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TEST(CudaQuantCodes, Int8MatchesWorkloadsQuantizeInt8) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  int64_t checked = 0;
  for (float s : {1e-3f, 0.0173f, 1.0f / 127.0f, 0.5f, 3.7f, 1e-30f}) {
    std::vector<float> xs = {0.0f, -0.0f, 126.5f * s, -126.5f * s, 127.5f * s, 1e6f, -1e6f};
    for (int i = -130; i <= 130; ++i) {  // exact halves: ties to even
      xs.push_back((i + 0.5f) * s);
      xs.push_back(std::nextafter((i + 0.5f) * s, 0.0f));
    }
    for (int i = 0; i < 20000; ++i) xs.push_back(unit(rng) * 140.0f * s);
    for (float x : xs) {
      ASSERT_EQ(Int8Code(x, s), QuantizeInt8(x, s)) << "x = " << x << ", scale = " << s;
      ++checked;
    }
  }
  EXPECT_GT(checked, 100000);
}

TEST(CudaQuantCodes, Fp8MatchesWorkloadsOnEveryCodeNeighbourAndMidpoint) {
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           448.0f,
                           464.0f,
                           1e30f,
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(),
                           std::numeric_limits<float>::denorm_min()};
  for (int c = 0; c < 0x7f; ++c) {  // every finite non-negative code and its neighbours
    const float v = Fp8ToFloat(static_cast<uint8_t>(c));
    const float next = c + 1 < 0x7f ? Fp8ToFloat(static_cast<uint8_t>(c + 1)) : 480.0f;
    const float mid = 0.5f * (v + next);  // exact in fp32
    for (float x : {v, std::nextafter(v, 0.0f), std::nextafter(v, 1e9f), mid,
                    std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      xs.push_back(x);
      xs.push_back(-x);
    }
  }
  for (float x : xs) {
    ASSERT_EQ(Fp8Code(x), FloatToFp8(x)) << "x = " << x;
  }
}

TEST(CudaQuantCodes, Fp8MatchesWorkloadsOnStridedBitPatterns) {
  // Every 4099th fp32 bit pattern (about a million: NaNs, infinities, subnormals included).
  int64_t checked = 0;
  for (uint64_t u = 0; u <= 0xffffffffull; u += 4099) {
    const float x = FromBits(static_cast<uint32_t>(u));
    ASSERT_EQ(Fp8Code(x), FloatToFp8(x)) << "bits 0x" << std::hex << u;
    ++checked;
  }
  EXPECT_GT(checked, 1000000);
}

TEST(CudaQuantCodes, Fp8OfQuotientMatchesQuantizeFp8) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (float s : {1e-4f, 0.0123f, 1.0f / 448.0f, 2.5f}) {
    for (int i = 0; i < 50000; ++i) {
      const float x = unit(rng) * 460.0f * s;  // a few beyond 448 x s: saturation
      ASSERT_EQ(Fp8CodeOf(x, s), QuantizeFp8(x, s)) << "x = " << x << ", scale = " << s;
    }
  }
}

TEST(CudaQuantCodes, ScaleOfMatchesAbsMaxScale) {
  const std::vector<float> zeros(37, 0.0f);
  EXPECT_EQ(QuantScaleOf(0.0f, kQuantInt8Max), AbsMaxScale(zeros.data(), 37, kInt8Max));
  EXPECT_EQ(QuantScaleOf(0.0f, kQuantFp8Max), 1.0f);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> unit(-3.0f, 3.0f);
  for (int t = 0; t < 1000; ++t) {
    std::vector<float> x(1 + t % 300);
    float m = 0;
    for (float& v : x) {
      v = unit(rng);
      m = std::max(m, std::fabs(v));
    }
    ASSERT_EQ(QuantScaleOf(m, kQuantInt8Max), AbsMaxScale(x.data(), x.size(), kInt8Max));
    ASSERT_EQ(QuantScaleOf(m, kQuantFp8Max), AbsMaxScale(x.data(), x.size(), kFp8Max));
  }
}

WeightDesc Weight(const std::string& name, int64_t rows, int64_t cols, float scale) {
  WeightDesc d;
  d.name = name;
  d.rows = d.global_rows = rows;
  d.cols = d.global_cols = cols;
  d.scale = scale;
  return d;
}

TEST(CudaQuantPack, Int8CodesPerChannelScalesAndZeroPadding) {
  const WeightDesc a = Weight("a", 5, 300, 0.05f), b = Weight("b", 7, 300, 0.2f);
  const WeightSource src(5);
  QuantHostWeights w;
  const Status st = PackQuantWeights({&a, &b}, src, DType::kInt8, &w);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(w.n, 12);
  EXPECT_EQ(w.k, 300);
  EXPECT_EQ(w.n_pad, 16);
  EXPECT_EQ(w.k_pad, 304);
  ASSERT_EQ(w.codes.size(), 16u * 304);
  ASSERT_EQ(w.scales.size(), 16u);
  std::vector<uint8_t> want(12 * 300);
  QuantizedWeightRows(a, src, DType::kInt8, 0, 5, want.data());
  QuantizedWeightRows(b, src, DType::kInt8, 0, 7, want.data() + 5 * 300);
  for (int64_t r = 0; r < 16; ++r) {
    for (int64_t c = 0; c < 304; ++c) {
      const uint8_t expect = r < 12 && c < 300 ? want[r * 300 + c] : 0;
      ASSERT_EQ(w.codes[r * 304 + c], expect) << r << ", " << c;
    }
    const float s = r < 5 ? WeightQuantScale(a, DType::kInt8)
                          : (r < 12 ? WeightQuantScale(b, DType::kInt8) : 0.0f);
    EXPECT_EQ(w.scales[r], s) << r;
  }
}

TEST(CudaQuantPack, Fp8BlockScalesInCublasLtLayout) {
  // 128 rows of one scale and 72 of another: two row blocks; k = 300: three column blocks,
  // the column stride rounded up to 4 (BLK128x128_32F).
  const WeightDesc a = Weight("a", 128, 300, 0.05f), b = Weight("b", 72, 300, 0.2f);
  const WeightSource src(6);
  QuantHostWeights w;
  const Status st = PackQuantWeights({&a, &b}, src, DType::kFP8, &w);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(w.n_pad, 208);
  EXPECT_EQ(w.k_pad, 304);
  EXPECT_EQ(w.scale_ld, 4);
  ASSERT_EQ(w.scales.size(), 8u);
  const float sa = WeightQuantScale(a, DType::kFP8), sb = WeightQuantScale(b, DType::kFP8);
  const std::vector<float> want = {sa, sa, sa, 0, sb, sb, sb, 0};
  EXPECT_EQ(w.scales, want);
  std::vector<uint8_t> rows(72 * 300);
  QuantizedWeightRows(b, src, DType::kFP8, 0, 72, rows.data());
  for (int64_t r = 0; r < 72; ++r) {
    for (int64_t c = 0; c < 304; ++c) {
      ASSERT_EQ(w.codes[(128 + r) * 304 + c], c < 300 ? rows[r * 300 + c] : 0) << r << ", " << c;
    }
  }
}

TEST(CudaQuantPack, Fp8RefusesTwoScalesInOneBlockOf128Rows) {
  const WeightDesc a = Weight("wq", 100, 256, 0.05f), b = Weight("wk", 100, 256, 0.2f);
  QuantHostWeights w;
  const Status st = PackQuantWeights({&a, &b}, WeightSource(1), DType::kFP8, &w);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("wq"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("wk"), std::string::npos) << st.message();
  // The same scale may share a block; int8 scales are per row and never clash.
  const WeightDesc c = Weight("wv", 100, 256, 0.05f);
  EXPECT_TRUE(PackQuantWeights({&a, &c}, WeightSource(1), DType::kFP8, &w).ok());
  EXPECT_TRUE(PackQuantWeights({&a, &b}, WeightSource(1), DType::kInt8, &w).ok());
}

TEST(CudaQuantPack, RejectsWhatItCannotPack) {
  const WeightDesc a = Weight("a", 4, 64, 0.1f), b = Weight("b", 4, 32, 0.1f);
  QuantHostWeights w;
  EXPECT_EQ(PackQuantWeights({&a}, WeightSource(1), DType::kBF16, &w).code(),
            StatusCode::kInvalidInput);
  EXPECT_EQ(PackQuantWeights({&a, &b}, WeightSource(1), DType::kInt8, &w).code(),
            StatusCode::kInvalidInput);
  EXPECT_EQ(PackQuantWeights({}, WeightSource(1), DType::kInt8, &w).code(),
            StatusCode::kInvalidInput);
}

TEST(CudaQuantGemm, WhichGpusRunWhich) {
  std::string why;
  EXPECT_TRUE(QuantGemmSupported(DType::kInt8, 8, 0, &why));
  EXPECT_TRUE(QuantGemmSupported(DType::kInt8, 9, 0, &why));
  EXPECT_FALSE(QuantGemmSupported(DType::kInt8, 7, 5, &why));
  EXPECT_NE(why.find("sm_75"), std::string::npos) << why;
  EXPECT_TRUE(QuantGemmSupported(DType::kFP8, 8, 9, &why));
  EXPECT_TRUE(QuantGemmSupported(DType::kFP8, 9, 0, &why));
  EXPECT_TRUE(QuantGemmSupported(DType::kFP8, 10, 0, &why));
  EXPECT_FALSE(QuantGemmSupported(DType::kFP8, 8, 6, &why));
  EXPECT_NE(why.find("sm_89"), std::string::npos) << why;
  EXPECT_FALSE(QuantGemmSupported(DType::kBF16, 9, 0, &why));
  // cuBLAS documents the 1 x 128 / 128 x 128 fp8 scale modes for compute capability 9.0 only.
  EXPECT_FALSE(Fp8BlockScalingAvailable(8, 9));
  EXPECT_FALSE(Fp8BlockScalingAvailable(10, 0));
}

}  // namespace
}  // namespace cb::cuda

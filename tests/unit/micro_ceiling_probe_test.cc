// The host's ceiling probe (harness/micro/ceiling_probe.h) and the last-level cache size it
// reports.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "harness/micro/ceiling_probe.h"
#include "harness/micro/host_info.h"
#include "harness/micro/matmul_kernel.h"

namespace cb {
namespace {

TEST(HostCeilingProbe, ShortSamplesOfBothCeilings) {
  HostCeilingProbe::Config config;
  config.buffer_bytes = 64 << 20;  // small, to keep the test fast
  config.min_time_s = 0.01;
  config.matmul_size = 256;
  HostCeilingProbe probe(config);
  EXPECT_EQ(probe.buffer_bytes(), 64u << 20);
  for (int i = 0; i < 2; ++i) {  // the second sample reuses the buffer and the kernel
    CeilingSample s;
    ASSERT_TRUE(probe.Sample(DType::kF32, &s).ok());
    EXPECT_GT(s.mem_read_bytes_per_s, 1e8);
    EXPECT_LT(s.mem_read_bytes_per_s, 1e13);
    EXPECT_GT(s.matmul_flops_per_s, 1e8);
    EXPECT_GE(s.mem_read_s, config.min_time_s);
    EXPECT_GE(s.matmul_s, config.min_time_s);
    EXPECT_LT(s.mem_read_s + s.matmul_s, 10.0);
  }
  const std::string method = probe.Method(DType::kF32);
  EXPECT_NE(method.find("64 MiB"), std::string::npos) << method;
  EXPECT_NE(method.find("fp32 256x256x256"), std::string::npos) << method;
}

TEST(HostCeilingProbe, NoMatmulFigureWithoutANativeKernel) {
  if (MatmulKernel::Supported(DType::kBF16)) GTEST_SKIP() << "this CPU has native bf16";
  HostCeilingProbe::Config config;
  config.buffer_bytes = 16 << 20;
  config.min_time_s = 0.005;
  HostCeilingProbe probe(config);
  CeilingSample s;
  ASSERT_TRUE(probe.Sample(DType::kBF16, &s).ok());
  EXPECT_EQ(s.matmul_flops_per_s, 0);
  EXPECT_GT(s.mem_read_bytes_per_s, 0);
}

TEST(HostCeilingProbe, DefaultBufferIsFarAboveTheLastLevelCache) {
  HostCeilingProbe probe;
  EXPECT_GE(probe.buffer_bytes(), 256u << 20);
  EXPECT_LE(probe.buffer_bytes(), 1024u << 20);
  if (probe.CacheBytes() > 0) {
    EXPECT_GE(probe.buffer_bytes(), 4 * probe.CacheBytes() - 1);
  }
}

class LastLevelCache : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() / ("cb_llc_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Cache(int cpu, int index, const char* level, const char* type, const char* size,
             const char* shared) {
    const auto dir =
        root_ / ("cpu" + std::to_string(cpu)) / "cache" / ("index" + std::to_string(index));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "level") << level << "\n";
    std::ofstream(dir / "type") << type << "\n";
    std::ofstream(dir / "size") << size << "\n";
    std::ofstream(dir / "shared_cpu_list") << shared << "\n";
  }
  std::filesystem::path root_;
};

TEST_F(LastLevelCache, SharedInstancesCountOnceAndPrivateOnesAddUp) {
  // Every CPU this process may run on: cpu0 and cpu1 share one 32 MiB L3; other CPUs have none.
  for (int cpu = 0; cpu < 2; ++cpu) {
    Cache(cpu, 0, "1", "Data", "32K", std::to_string(cpu).c_str());
    Cache(cpu, 1, "1", "Instruction", "32K", std::to_string(cpu).c_str());
    Cache(cpu, 2, "2", "Unified", "1024K", std::to_string(cpu).c_str());
    Cache(cpu, 3, "3", "Unified", "32768K", "0-1");
  }
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof mask, &mask), 0);
  if (!CPU_ISSET(0, &mask) || !CPU_ISSET(1, &mask)) GTEST_SKIP() << "needs CPUs 0 and 1";
  EXPECT_EQ(LastLevelCacheBytes(root_.string()), 32u << 20);
}

TEST_F(LastLevelCache, UnknownWhenSysfsHasNothing) {
  EXPECT_EQ(LastLevelCacheBytes(root_.string()), 0u);
}

}  // namespace
}  // namespace cb

// NvmlMeter against a fake libnvidia-ml.so.1 built by the tests (tests/fake_nvml).
#include "backends/energy/nvml_meter.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace cb::energy {
namespace {

class NvmlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lib_ = dlopen(FAKE_NVML_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << dlerror();
    configure_ = reinterpret_cast<void (*)(int, int, int)>(dlsym(lib_, "fake_nvml_configure"));
    set_energy_ =
        reinterpret_cast<void (*)(int, unsigned long long)>(dlsym(lib_, "fake_nvml_set_energy_mj"));
    set_power_ = reinterpret_cast<void (*)(int, unsigned)>(dlsym(lib_, "fake_nvml_set_power_mw"));
    ASSERT_TRUE(configure_ && set_energy_ && set_power_);
  }
  void TearDown() override {
    if (lib_) dlclose(lib_);
  }
  NvmlOptions Options() {
    NvmlOptions o;
    o.library = FAKE_NVML_LIBRARY;
    o.sample_interval_s = 0.01;
    return o;
  }

  void* lib_ = nullptr;
  void (*configure_)(int, int, int) = nullptr;
  void (*set_energy_)(int, unsigned long long) = nullptr;
  void (*set_power_)(int, unsigned) = nullptr;
};

TEST_F(NvmlTest, EnergyCounterDeltasPerGpuWithUuid) {
  configure_(2, 1, 0);
  set_energy_(0, 1000000);
  set_energy_(1, 5000);
  NvmlMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  set_energy_(0, 1002500);  // +2.5 J
  set_energy_(1, 9000);     // +4 J
  usleep(120000);           // longer than the assumed update period
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_EQ(r.source, "nvml");
  EXPECT_NEAR(r.joules, 6.5, 1e-9);
  ASSERT_EQ(r.domains.size(), 2u);
  EXPECT_EQ(r.domains[0].name, "gpu0");
  EXPECT_EQ(r.domains[0].id, "GPU-fake0000-0000-0000-0000-000000000000");
  EXPECT_NEAR(r.domains[1].joules, 4.0, 1e-9);
  EXPECT_EQ(r.sampling_interval_s, 0);  // counters: not sampled
  EXPECT_TRUE(r.valid) << (r.notes.empty() ? "" : r.notes.back());
}

TEST_F(NvmlTest, CounterThatDoesNotAdvanceIsInvalid) {
  configure_(1, 1, 0);
  set_energy_(0, 777);
  NvmlMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  usleep(120000);
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_FALSE(r.valid);
}

TEST_F(NvmlTest, WithoutAnEnergyCounterPowerIsIntegrated) {
  configure_(1, 0, 0);
  set_power_(0, 200000);  // 200 W, constant
  NvmlMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  usleep(200000);
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_EQ(r.source, "nvml");
  EXPECT_NEAR(r.joules, 200 * r.window_s, 200 * 0.01) << r.window_s;
  EXPECT_GT(r.joules, 200 * 0.15);
  EXPECT_NEAR(r.sampling_interval_s, 0.01, 1e-12);
  EXPECT_TRUE(r.valid) << (r.notes.empty() ? "" : r.notes.back());
  bool said = false;
  for (const auto& n : r.notes) said |= n.find("no energy counter") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST_F(NvmlTest, LibraryAbsent) {
  NvmlOptions o = Options();
  o.library = "/nonexistent/libnvidia-ml.so.1";
  NvmlMeter m(o);
  const Status s = m.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("cannot load"), std::string::npos) << s.message();
  EnergyReading r;
  EXPECT_FALSE(m.StopReading(&r).ok());
}

TEST_F(NvmlTest, InitFailureAndNoGpus) {
  configure_(1, 1, 1);
  {
    NvmlMeter m(Options());
    const Status s = m.Start();
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_NE(s.message().find("nvmlInit"), std::string::npos) << s.message();
  }
  configure_(0, 1, 0);
  NvmlMeter m(Options());
  EXPECT_EQ(m.Start().code(), StatusCode::kUnsupported);
  configure_(2, 1, 0);
}

}  // namespace
}  // namespace cb::energy

// RaplMeter against a fake powercap tree in a temporary directory.
#include "backends/energy/rapl_meter.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

namespace cb::energy {
namespace {

namespace fs = std::filesystem;

class RaplTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("cb_rapl_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  /// Writes atomically (the sampling thread may read at any time).
  void Write(const std::string& rel, const std::string& text) {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    const fs::path tmp = p.string() + ".tmp";
    std::ofstream(tmp) << text << "\n";
    fs::rename(tmp, p);
  }
  void Zone(const std::string& zone, const std::string& name, uint64_t energy, uint64_t range) {
    Write(zone + "/name", name);
    Write(zone + "/energy_uj", std::to_string(energy));
    Write(zone + "/max_energy_range_uj", std::to_string(range));
  }
  RaplOptions Options() {
    RaplOptions o;
    o.root = root_.string();
    o.sample_interval_s = 60;  // the tests sample by hand
    return o;
  }

  fs::path root_;
};

constexpr uint64_t kRange = 262143328850;  // a common Intel max_energy_range_uj

TEST_F(RaplTest, PackageAndDramDeltas) {
  Zone("intel-rapl:0", "package-0", 1000000, kRange);
  Zone("intel-rapl:0:0", "core", 500, kRange);  // inside the package: not counted
  Zone("intel-rapl:0:1", "dram", 2000000, kRange);
  Zone("intel-rapl:1", "psys", 7, kRange);  // platform: would count the package twice
  RaplMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  Write("intel-rapl:0/energy_uj", "6000000");    // +5 J
  Write("intel-rapl:0:1/energy_uj", "2500000");  // +0.5 J
  usleep(2000);
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_EQ(r.source, "rapl");
  EXPECT_NEAR(r.joules, 5.5, 1e-9);
  ASSERT_EQ(r.domains.size(), 2u);
  EXPECT_EQ(r.domains[0].name, "package-0");
  EXPECT_NEAR(r.domains[0].joules, 5.0, 1e-9);
  EXPECT_EQ(r.domains[1].name, "package-0/dram");
  EXPECT_NEAR(r.domains[1].joules, 0.5, 1e-9);
  EXPECT_TRUE(r.valid) << (r.notes.empty() ? "" : r.notes.back());
  EXPECT_GT(r.window_s, 0);
  EXPECT_EQ(r.sampling_interval_s, 60);
}

TEST_F(RaplTest, WraparoundIsCountedOncePerSample) {
  const uint64_t range = 1000000000;  // 1 kJ
  Zone("intel-rapl:0", "package-0", range - 1000, range);
  RaplMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  Write("intel-rapl:0/energy_uj", "500");  // wrapped: 1000 + 500 uJ
  m.SampleNow();
  Write("intel-rapl:0/energy_uj", "999999000");  // no wrap: 999998500 uJ
  m.SampleNow();
  Write("intel-rapl:0/energy_uj", "2000");  // wrapped again: 1000 + 2000 uJ
  usleep(2000);
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_NEAR(r.joules, (1500 + 999998500.0 + 3000) * 1e-6, 1e-9);
  EXPECT_TRUE(r.valid);
  bool wrap_note = false;
  for (const auto& n : r.notes) wrap_note |= n.find("wrapped 2 time") != std::string::npos;
  EXPECT_TRUE(wrap_note);
}

TEST_F(RaplTest, SamplesFasterThanTheFastestWrap) {
  // 4 kJ range at a 1 kW limit wraps in 4 s: sample at least every second.
  Zone("intel-rapl:0", "package-0", 0, 4000000000);
  Write("intel-rapl:0/constraint_0_max_power_uw", "1000000000");
  RaplMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  EXPECT_NEAR(m.sample_interval_s(), 1.0, 1e-9);
  Write("intel-rapl:0/energy_uj", "10");
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
}

TEST_F(RaplTest, CounterThatDoesNotAdvanceIsInvalid) {
  Zone("intel-rapl:0", "package-0", 42, kRange);
  RaplMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  usleep(2000);
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_FALSE(r.valid);
  bool said = false;
  for (const auto& n : r.notes) said |= n.find("did not advance") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST_F(RaplTest, WindowShorterThanTheUpdatePeriodIsInvalid) {
  Zone("intel-rapl:0", "package-0", 42, kRange);
  RaplMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  Write("intel-rapl:0/energy_uj", "100");
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  if (r.window_s < RaplMeter::kUpdatePeriodS) {
    EXPECT_FALSE(r.valid);
  }
}

TEST_F(RaplTest, UnreadableCounterExplainsHowToGrantAccess) {
  Zone("intel-rapl:0", "package-0", 42, kRange);
  RaplOptions o = Options();
  // Root reads a chmod 000 file, so the permission error is injected.
  o.read_file = [](const std::string& path, std::string* out) -> int {
    if (path.ends_with("/energy_uj")) return EACCES;
    std::ifstream in(path);
    if (!in) return ENOENT;
    std::getline(in, *out);
    return 0;
  };
  RaplMeter m(o);
  const Status s = m.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("Permission denied"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("CVE-2020-8694"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("chmod"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("udev"), std::string::npos) << s.message();
}

TEST_F(RaplTest, RealPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  Zone("intel-rapl:0", "package-0", 42, kRange);
  fs::permissions(root_ / "intel-rapl:0/energy_uj", fs::perms::none);
  RaplMeter m(Options());
  const Status s = m.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("CVE-2020-8694"), std::string::npos) << s.message();
}

TEST_F(RaplTest, MissingDomains) {
  {
    RaplOptions o = Options();
    o.root = (root_ / "absent").string();
    RaplMeter m(o);
    const Status s = m.Start();
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_NE(s.message().find("powercap"), std::string::npos) << s.message();
  }
  {
    RaplMeter m(Options());  // an empty directory: no zones
    EXPECT_EQ(m.Start().code(), StatusCode::kUnsupported);
  }
  // A package without energy_uj is unreadable; without a DRAM domain a note says so.
  Write("intel-rapl:0/name", "package-0");
  Write("intel-rapl:0/max_energy_range_uj", std::to_string(kRange));
  {
    RaplMeter m(Options());
    const Status s = m.Start();
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_NE(s.message().find("energy_uj"), std::string::npos) << s.message();
  }
  Write("intel-rapl:0/energy_uj", "1");
  RaplMeter m(Options());
  ASSERT_TRUE(m.Start().ok());
  Write("intel-rapl:0/energy_uj", "1000001");
  usleep(2000);
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_NEAR(r.joules, 1.0, 1e-9);
  bool said = false;
  for (const auto& n : r.notes) said |= n.find("no RAPL DRAM domain") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST_F(RaplTest, SamplingThreadAccumulatesWhileRunning) {
  Zone("intel-rapl:0", "package-0", 0, kRange);
  RaplOptions o = Options();
  o.sample_interval_s = 0.005;
  RaplMeter m(o);
  ASSERT_TRUE(m.Start().ok());
  for (int i = 1; i <= 5; ++i) {
    Write("intel-rapl:0/energy_uj", std::to_string(i * 1000000));
    usleep(10000);
  }
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_NEAR(r.joules, 5.0, 1e-9);
  EXPECT_NEAR(r.sampling_interval_s, 0.005, 1e-12);
}

}  // namespace
}  // namespace cb::energy

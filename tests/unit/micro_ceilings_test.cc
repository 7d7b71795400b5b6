#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/micro/ceilings.h"
#include "harness/micro/ceilings_cache.h"
#include "results/atomic_file.h"

namespace cb {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "cb_micro_test.XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

HostInfo TestHost() {
  HostInfo h;
  h.host = "testhost";
  h.cpu_model = "Test CPU 9000";
  h.isa = "avx512_core_bf16";
  h.threads = 2;
  return h;
}

/// A measurement seam that counts its calls and returns fixed figures.
struct FakeMeasure {
  int calls = 0;
  double fp32 = 1.25e11, bf16 = 2.5e11, mem = 2.6e10;
  std::string measured_at = "2025-01-02T03:04:05Z";

  CeilingsMeasureFn Fn() {
    return [this](Ceilings* c) {
      ++calls;
      c->matmul_flops_per_s[static_cast<int>(DType::kF32)] = fp32;
      c->matmul_flops_per_s[static_cast<int>(DType::kBF16)] = bf16;
      c->mem_read_bytes_per_s = mem;
      c->measured_at = measured_at;
      return Status::Ok();
    };
  }
};

void WriteRaw(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

nlohmann::json ReadJson(const std::string& path) {
  std::string text;
  EXPECT_TRUE(ReadFile(path, &text).ok());
  return nlohmann::json::parse(text);
}

TEST(MicroCeilingsCache, PathIsPerHostUnderCeilingsDir) {
  EXPECT_EQ(CeilingsCachePath("/r", "node-1.example"), "/r/ceilings/node-1.example.json");
  // A host name cannot escape the directory.
  EXPECT_EQ(CeilingsCachePath("/r", "../x/y"), "/r/ceilings/.._x_y.json");
  EXPECT_EQ(CeilingsCachePath("/r", ".."), "/r/ceilings/_...json");
}

// The int8 peak is cached and read back like the others (a cache without it is measured again
// by LoadOrMeasureCeilings, so dropping it would re-measure on every run).
TEST(MicroCeilingsCache, Int8PeakRoundTrips) {
  Ceilings c;
  c.matmul_flops_per_s[static_cast<int>(DType::kF32)] = 1e11;
  c.matmul_flops_per_s[static_cast<int>(DType::kInt8)] = 9e11;
  c.mem_read_bytes_per_s = 5e10;
  c.measured_at = "2026-01-01T00:00:00Z";
  Ceilings back;
  HostInfo h;
  ASSERT_TRUE(ParseCeilingsCache(CeilingsCacheJson(c, TestHost()), &back, &h).ok());
  EXPECT_DOUBLE_EQ(back.matmul_flops_per_s[static_cast<int>(DType::kInt8)], 9e11);
}

TEST(MicroCeilingsCache, MeasuresOnceThenReadsBack) {
  TempDir dir;
  const HostInfo host = TestHost();
  FakeMeasure fake;
  Ceilings first;
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, host, fake.Fn(), &first).ok());
  EXPECT_EQ(fake.calls, 1);
  const std::string path = CeilingsCachePath(dir.path(), CeilingsCacheKey(host));
  ASSERT_TRUE(fs::exists(path));
  EXPECT_NE(first.source.find("cached in " + path), std::string::npos) << first.source;
  EXPECT_NE(first.source.find("testhost"), std::string::npos) << first.source;

  const nlohmann::json j = ReadJson(path);
  EXPECT_EQ(j.at("host"), "testhost");
  EXPECT_EQ(j.at("cpu_model"), "Test CPU 9000");
  EXPECT_EQ(j.at("isa"), "avx512_core_bf16");
  EXPECT_EQ(j.at("threads"), 2);
  EXPECT_EQ(j.at("measured_at"), "2025-01-02T03:04:05Z");
  EXPECT_TRUE(j.at("tool_version").is_string());
  EXPECT_DOUBLE_EQ(j.at("matmul_flops_per_s").at("fp32").get<double>(), 1.25e11);
  EXPECT_DOUBLE_EQ(j.at("matmul_flops_per_s").at("bf16").get<double>(), 2.5e11);
  EXPECT_FALSE(j.at("matmul_flops_per_s").contains("fp16"));  // not measured: absent
  EXPECT_DOUBLE_EQ(j.at("mem_read_bytes_per_s").get<double>(), 2.6e10);

  // Second call: served from the cache, the measurement is not run again.
  fake.fp32 = 1;  // would show if it were re-measured
  Ceilings second;
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, host, fake.Fn(), &second).ok());
  EXPECT_EQ(fake.calls, 1);
  EXPECT_DOUBLE_EQ(second.matmul_flops_per_s[static_cast<int>(DType::kF32)], 1.25e11);
  EXPECT_DOUBLE_EQ(second.matmul_flops_per_s[static_cast<int>(DType::kBF16)], 2.5e11);
  EXPECT_DOUBLE_EQ(second.matmul_flops_per_s[static_cast<int>(DType::kF16)], 0);
  EXPECT_DOUBLE_EQ(second.mem_read_bytes_per_s, 2.6e10);
  EXPECT_EQ(second.measured_at, "2025-01-02T03:04:05Z");
  EXPECT_EQ(second.source, first.source);
}

TEST(MicroCeilingsCache, RemeasureOnRequest) {
  TempDir dir;
  FakeMeasure fake;
  Ceilings c;
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, TestHost(), fake.Fn(), &c).ok());
  fake.fp32 = 3e11;
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), true, TestHost(), fake.Fn(), &c).ok());
  EXPECT_EQ(fake.calls, 2);
  EXPECT_DOUBLE_EQ(c.matmul_flops_per_s[static_cast<int>(DType::kF32)], 3e11);
  const auto j = ReadJson(CeilingsCachePath(dir.path(), CeilingsCacheKey(TestHost())));
  EXPECT_DOUBLE_EQ(j.at("matmul_flops_per_s").at("fp32").get<double>(), 3e11);
}

TEST(MicroCeilingsCache, CorruptCacheIsReplaced) {
  for (const std::string& bad : {std::string("{not json"), std::string(""), std::string("[]"),
                                 std::string(R"({"host":"testhost"})")}) {
    TempDir dir;
    const std::string path = CeilingsCachePath(dir.path(), CeilingsCacheKey(TestHost()));
    WriteRaw(path, bad);
    FakeMeasure fake;
    Ceilings c;
    ::testing::internal::CaptureStderr();
    ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, TestHost(), fake.Fn(), &c).ok());
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(fake.calls, 1) << bad;
    EXPECT_NE(err.find("unreadable"), std::string::npos) << err;
    EXPECT_NE(err.find(path), std::string::npos) << err;
    // The file now holds a valid cache with the new figures.
    std::string text;
    ASSERT_TRUE(ReadFile(path, &text).ok());
    Ceilings parsed;
    HostInfo parsed_host;
    ASSERT_TRUE(ParseCeilingsCache(text, &parsed, &parsed_host).ok()) << text;
    EXPECT_DOUBLE_EQ(parsed.mem_read_bytes_per_s, 2.6e10);
    EXPECT_EQ(parsed_host.cpu_model, "Test CPU 9000");
  }
}

TEST(MicroCeilingsCache, DifferentCpuOrThreadsTriggersRemeasure) {
  struct Change {
    const char* what;
    void (*apply)(HostInfo*);
  };
  const Change changes[] = {
      {"cpu_model", [](HostInfo* h) { h->cpu_model = "Other CPU 1"; }},
      {"isa", [](HostInfo* h) { h->isa = "avx2"; }},
  };
  for (const Change& change : changes) {
    TempDir dir;
    FakeMeasure fake;
    Ceilings c;
    ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, TestHost(), fake.Fn(), &c).ok());
    HostInfo now = TestHost();
    change.apply(&now);
    fake.mem = 5e10;
    ::testing::internal::CaptureStderr();
    ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, now, fake.Fn(), &c).ok());
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(fake.calls, 2) << change.what;
    EXPECT_DOUBLE_EQ(c.mem_read_bytes_per_s, 5e10) << change.what;
    EXPECT_NE(err.find("re-measuring"), std::string::npos) << err;
    // The cache now describes the current machine, so a third call reads it back.
    ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, now, fake.Fn(), &c).ok());
    EXPECT_EQ(fake.calls, 2) << change.what;
  }
}

// An MPI rank runs one thread, the whole machine two: each keeps its own cache file.
TEST(MicroCeilingsCache, ThreadCountsKeepSeparateCaches) {
  TempDir dir;
  FakeMeasure fake;
  Ceilings c;
  HostInfo eight = TestHost();
  eight.threads = 8;
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, TestHost(), fake.Fn(), &c).ok());
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, eight, fake.Fn(), &c).ok());
  EXPECT_EQ(fake.calls, 2);
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, TestHost(), fake.Fn(), &c).ok());
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(dir.path(), false, eight, fake.Fn(), &c).ok());
  EXPECT_EQ(fake.calls, 2);
  EXPECT_NE(CeilingsCachePath(dir.path(), CeilingsCacheKey(TestHost())),
            CeilingsCachePath(dir.path(), CeilingsCacheKey(eight)));
}

TEST(MicroCeilingsCache, MeasureFailureIsReturnedAndNothingCached) {
  TempDir dir;
  Ceilings c;
  Status s = LoadOrMeasureCeilingsWith(
      dir.path(), false, TestHost(), [](Ceilings*) { return Status::Internal("matmul exploded"); },
      &c);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "matmul exploded");
  EXPECT_FALSE(fs::exists(CeilingsCachePath(dir.path(), CeilingsCacheKey(TestHost()))));
}

TEST(MicroCeilingsCache, UnwritableCacheStillReturnsMeasuredCeilings) {
  TempDir dir;
  const std::string not_a_dir = dir.path() + "/file";
  WriteRaw(not_a_dir, "x");  // results_dir is a regular file: the cache cannot be created
  FakeMeasure fake;
  Ceilings c;
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(LoadOrMeasureCeilingsWith(not_a_dir, false, TestHost(), fake.Fn(), &c).ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_DOUBLE_EQ(c.matmul_flops_per_s[static_cast<int>(DType::kF32)], 1.25e11);
  EXPECT_NE(c.source.find("not cached"), std::string::npos) << c.source;
  EXPECT_NE(err.find("cannot cache"), std::string::npos) << err;
}

TEST(MicroCeilingsCache, ParseRejectsBadFigures) {
  Ceilings c;
  HostInfo h;
  h.host = "testhost";
  h.cpu_model = "cpu";
  h.isa = "avx2";
  h.threads = 2;
  c.matmul_flops_per_s[0] = 1e11;
  c.mem_read_bytes_per_s = 1e10;
  c.measured_at = "2025-01-01T00:00:00Z";
  nlohmann::json good = nlohmann::json::parse(CeilingsCacheJson(c, h));
  Ceilings out;
  HostInfo out_host;
  ASSERT_TRUE(ParseCeilingsCache(good.dump(), &out, &out_host).ok());
  EXPECT_EQ(out_host.isa, "avx2");
  EXPECT_EQ(out_host.threads, 2);

  auto expect_rejected = [&](nlohmann::json j, const std::string& why) {
    Status s = ParseCeilingsCache(j.dump(), &out, &out_host);
    EXPECT_FALSE(s.ok()) << why;
  };
  auto j = good;
  j["mem_read_bytes_per_s"] = -1;
  expect_rejected(j, "negative bandwidth");
  j = good;
  j["matmul_flops_per_s"]["fp32"] = "fast";
  expect_rejected(j, "string flops");
  j = good;
  j["matmul_flops_per_s"].erase("fp32");
  expect_rejected(j, "no fp32 peak");
  j = good;
  j["matmul_flops_per_s"]["int3"] = 1;
  expect_rejected(j, "unknown dtype");
  j = good;
  j["threads"] = 0;
  expect_rejected(j, "zero threads");
  j = good;
  j.erase("cpu_model");
  expect_rejected(j, "no cpu model");
}

TEST(MicroCeilings, FormatShowsMeasuredFiguresAndSource) {
  Ceilings c;
  c.matmul_flops_per_s[static_cast<int>(DType::kF32)] = 4.16e11;
  c.mem_read_bytes_per_s = 7.9e10;
  c.source = "measured by clusterbench micro on h at t, cached in p";
  const std::string text = FormatCeilings(c);
  EXPECT_NE(text.find("fp32"), std::string::npos) << text;
  EXPECT_NE(text.find("0.416 TFLOP/s"), std::string::npos) << text;
  EXPECT_EQ(text.find("bf16"), std::string::npos) << text;  // not measured: not shown
  EXPECT_NE(text.find("79.0 GB/s"), std::string::npos) << text;
  EXPECT_NE(text.find(c.source), std::string::npos) << text;
}

}  // namespace
}  // namespace cb

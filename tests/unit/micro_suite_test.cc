#include "harness/micro/micro_suite.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "harness/micro/decode_gemv_kernel.h"
#include "harness/micro/matmul_kernel.h"
#include "harness/micro/micro_reporter.h"

namespace cb {
namespace {

using BenchRun = benchmark::BenchmarkReporter::Run;

BenchRun IterationRun(const std::string& name, int64_t iterations, double seconds) {
  BenchRun r;
  r.run_name.function_name = name;
  r.run_type = BenchRun::RT_Iteration;
  r.iterations = iterations;
  r.real_accumulated_time = seconds;
  r.repetitions = 3;
  r.report_label = "brg:test";
  return r;
}

MicroBenchSpec MatmulSpec(int64_t m, int64_t n, int64_t k) {
  MicroBenchSpec s;
  s.name = "matmul/fp32/test";
  s.kind = MicroKind::kMatmul;
  s.dtype = DType::kF32;
  s.m = m;
  s.n = n;
  s.k = k;
  return s;
}

TEST(MicroReporter, MedianAndMaxOverRepetitions) {
  const MicroBenchSpec spec = MatmulSpec(100, 100, 100);  // 2e6 FLOP, 120000 bytes
  // Per-iteration times 2 ms, 1 ms, 4 ms; aggregates from the library are ignored.
  BenchRun agg = IterationRun(spec.name, 1, 100.0);
  agg.run_type = BenchRun::RT_Aggregate;
  const MicroResult r =
      SummarizeRuns(spec, {IterationRun(spec.name, 10, 0.02), IterationRun(spec.name, 10, 0.01),
                           IterationRun(spec.name, 5, 0.02), agg});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.repetitions, 3);
  EXPECT_EQ(r.iterations, 10);
  EXPECT_EQ(r.impl, "brg:test");
  EXPECT_DOUBLE_EQ(r.time_s, 0.002);
  EXPECT_DOUBLE_EQ(r.flops_per_s, 2e6 / 0.002);
  EXPECT_DOUBLE_EQ(r.flops_per_s_max, 2e6 / 0.001);
  EXPECT_DOUBLE_EQ(r.bytes_per_s, 120000 / 0.002);
  EXPECT_DOUBLE_EQ(r.bytes_per_s_max, 120000 / 0.001);
  EXPECT_EQ(r.shape, "100x100x100");
  EXPECT_EQ(r.dtype, "fp32");
}

TEST(MicroReporter, ErrorMakesAFailedResult) {
  BenchRun bad = IterationRun("matmul/fp32/test", 0, 0);
  bad.error_occurred = true;
  bad.error_message = "oneDNN: out of memory";
  const MicroResult r = SummarizeRuns(MatmulSpec(2, 2, 2), {bad});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "oneDNN: out of memory");
}

TEST(MicroSuite, SuiteHasTheRequiredBenchmarks) {
  std::vector<MicroBenchSpec> all = AllMicroBenchmarks();
  auto has = [&](const std::string& name) {
    for (const auto& s : all) {
      if (s.name == name) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("mem/read"));
  EXPECT_TRUE(has("mem/copy"));
  EXPECT_TRUE(has("gen/bf16"));  // weight generation into the packed layout (Load)
  EXPECT_TRUE(has("gen/fp32"));
  for (const char* dt : {"fp32", "bf16"}) {
    if (std::string(dt) == "bf16" && !MatmulKernel::Supported(DType::kBF16)) continue;
    for (int m : {1, 8, 128, 512}) {
      for (const char* nk : {"_n2048_k2048", "_n8192_k2048", "_n2048_k8192"}) {
        const std::string name = std::string("matmul/") + dt + "/m" + std::to_string(m) + nk;
        EXPECT_TRUE(has(name)) << name;
      }
    }
  }
  for (const auto& s : all) {
    if (s.kind == MicroKind::kMemRead) {
      EXPECT_GE(s.buffer_bytes, size_t{1} << 30);
    }
  }
}

TEST(MicroSuite, FilterSelectsByRegex) {
  std::vector<MicroBenchSpec> specs;
  ASSERT_TRUE(SelectMicroBenchmarks("^mem/read$", &specs).ok());
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].name, "mem/read");

  ASSERT_TRUE(SelectMicroBenchmarks("-^(matmul|gen|gemv)", &specs).ok());
  ASSERT_EQ(specs.size(), 2u);
  for (const auto& s : specs) EXPECT_NE(s.kind, MicroKind::kMatmul);

  ASSERT_TRUE(SelectMicroBenchmarks("", &specs).ok());
  EXPECT_EQ(specs.size(), AllMicroBenchmarks().size());

  EXPECT_EQ(SelectMicroBenchmarks("([", &specs).code(), StatusCode::kInvalidInput);
  EXPECT_EQ(SelectMicroBenchmarks("no-such-benchmark", &specs).code(), StatusCode::kInvalidInput);
}

// The int8 peak (oneDNN u8 x s8, a ceiling like the bf16 one) and the cpu backend's decode
// kernels (fp32, bf16, int8, fp8 weight-only: one per projection shape), where the CPU has the
// instructions; each named by its dtype.
TEST(MicroSuite, DecodeKernelsWhereSupported) {
  int int8_peak = 0;
  std::map<DType, int> gemv;
  for (const auto& s : AllMicroBenchmarks()) {
    if (s.kind == MicroKind::kMatmul && s.dtype == DType::kInt8 && s.ceiling) ++int8_peak;
    if (s.kind != MicroKind::kDecodeGemv) continue;
    ++gemv[s.dtype];
    const std::string want = s.dtype == DType::kFP8
                                 ? "gemv/fp8-weight-only/"
                                 : "gemv/" + std::string(DTypeName(s.dtype)) + "/";
    EXPECT_EQ(s.name.rfind(want, 0), 0u) << s.name;
  }
  if (MatmulKernel::Supported(DType::kInt8)) {
    EXPECT_GT(int8_peak, 0);
  }
  for (DType dt : {DType::kF32, DType::kBF16, DType::kInt8, DType::kFP8}) {
    EXPECT_EQ(gemv[dt], DecodeGemvKernel::Supported(dt) ? 3 : 0) << DTypeName(dt);
  }
}

TEST(MicroSuite, ParseFormat) {
  EXPECT_EQ(ParseMicroFormat("table"), MicroFormat::kTable);
  EXPECT_EQ(ParseMicroFormat("json"), MicroFormat::kJson);
  EXPECT_FALSE(ParseMicroFormat("csv").has_value());
}

TEST(MicroSuite, CommandRejectsBadOptions) {
  MicroOptions o;
  o.repetitions = 0;
  EXPECT_EQ(RunMicroCommand(o), 2);
  o = MicroOptions();
  o.min_time_s = 0;
  EXPECT_EQ(RunMicroCommand(o), 2);
  o = MicroOptions();
  o.filter = "nothing-matches-this";
  EXPECT_EQ(RunMicroCommand(o), 2);
}

/// Runs tiny benchmarks through Google Benchmark's real runner and our reporter.
TEST(MicroSuite, RunnerProducesOneResultPerSpecInOrder) {
  MicroBenchSpec read;
  read.name = "mem/read";
  read.kind = MicroKind::kMemRead;
  read.buffer_bytes = 1 << 20;
  MicroBenchSpec mm = MatmulSpec(8, 64, 64);
  mm.name = "matmul/fp32/m8_n64_k64";
  MicroBenchSpec unsupported = MatmulSpec(8, 64, 64);
  unsupported.name = "matmul/fp16/m8_n64_k64";
  unsupported.dtype = DType::kF16;  // no fp16 kernel on CPU: fails, the others still run

  std::vector<std::string> streamed;
  std::vector<MicroResult> results;
  testing::internal::CaptureStderr();
  ASSERT_TRUE(RunMicroBenchmarks({read, unsupported, mm}, MicroRunConfig{0.005, 2}, &results,
                                 [&](const MicroResult& r) { streamed.push_back(r.name); })
                  .ok());
  testing::internal::GetCapturedStderr();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(streamed, (std::vector<std::string>{"mem/read", "matmul/fp16/m8_n64_k64",
                                                "matmul/fp32/m8_n64_k64"}));

  EXPECT_TRUE(results[0].ok) << results[0].error;
  EXPECT_EQ(results[0].repetitions, 2);
  EXPECT_GT(results[0].bytes_per_s, 0);
  EXPECT_DOUBLE_EQ(results[0].bytes_per_iter, 1 << 20);
  EXPECT_EQ(results[0].flops_per_s, 0);

  EXPECT_FALSE(results[1].ok);
  EXPECT_NE(results[1].error.find("fp16"), std::string::npos) << results[1].error;

  EXPECT_TRUE(results[2].ok) << results[2].error;
  EXPECT_EQ(results[2].repetitions, 2);
  EXPECT_GT(results[2].flops_per_s, 0);
  EXPECT_GE(results[2].flops_per_s_max, results[2].flops_per_s);
  EXPECT_FALSE(results[2].impl.empty());

  // The JSON output carries every result.
  MicroOptions opts;
  const auto j = nlohmann::json::parse(FormatMicroJson(results, opts));
  ASSERT_EQ(j.at("benchmarks").size(), 3u);
  EXPECT_EQ(j["benchmarks"][1]["status"], "failed");
  EXPECT_EQ(j["benchmarks"][2]["dtype"], "fp32");
  EXPECT_GT(j["benchmarks"][2]["flops_per_s"].get<double>(), 0);
  const std::string table = FormatMicroTable(results);
  EXPECT_NE(table.find("FAILED"), std::string::npos);
  EXPECT_NE(table.find("matmul/fp32/m8_n64_k64"), std::string::npos);
}

}  // namespace
}  // namespace cb

// The 8-bit dtypes end to end: int8 (W8A8) and fp8 (weight-only on cpu) runs of the tiny model
// with their precision and accuracy in the result file and the table, the reference backend's
// simulated quantisation, fp8 and int8 KV caches, what the cpu backend skips (with the
// reason), and bad dtype flags.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

std::vector<std::string> RunArgs(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> args = {"run",
                                   "--results-dir",
                                   SharedResultsDir(),
                                   "--out",
                                   out,
                                   "--prompt-len",
                                   "16",
                                   "--gen-len",
                                   "4",
                                   "--repetitions",
                                   "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

json OnlyRecord(const std::string& out) {
  const auto files = ListFiles(out);
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? json() : json::parse(ReadText(files[0]));
}

TEST(QuantCli, Int8AndFp8RunsCarryPrecisionAndAccuracy) {
  for (const char* dtype : {"int8", "fp8"}) {
    SCOPED_TRACE(dtype);
    const std::string out = FreshDir(std::string("quant_") + dtype);
    const CliResult r = RunCli(RunArgs(out, {"--model", "tiny", "--dtype", dtype}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(ValidateAgainstSchema(ListFiles(out)), 0);
    const json doc = OnlyRecord(out);
    EXPECT_EQ(doc["run"]["status"], "ok") << doc["run"];
    EXPECT_EQ(doc["workload"]["dtype"], dtype);
    EXPECT_EQ(doc["workload"]["kv_dtype"], "bf16");
    EXPECT_EQ(doc["verification"]["status"], "passed");
    const std::string precision =
        dtype == std::string("int8") ? "int8 (W8A8)" : "fp8 (weight-only)";
    EXPECT_EQ(doc["precision"], precision);
    EXPECT_NE(r.out.find(precision), std::string::npos) << r.out;  // the table's dtype column
    const json& a = doc["accuracy"];
    EXPECT_EQ(a["baseline_dtype"], "bf16");
    EXPECT_GT(a["positions"].get<int>(), 0);
    EXPECT_GE(a["top1_agreement"].get<double>(), 0.0);
    EXPECT_LE(a["top1_agreement"].get<double>(), 1.0);
    EXPECT_GE(a["mean_kl_divergence"].get<double>(), 0.0);
    EXPECT_LT(a["mean_kl_divergence"].get<double>(), 0.1);  // 8 bits cost little on this model
    EXPECT_NE(r.out.find("top1 "), std::string::npos) << r.out;
  }
}

// MoE (experts quantised, the router in bf16) and MLA (kv_b and the latent cache in bf16).
TEST(QuantCli, MoeAndMlaModelsRunAndVerifyInInt8AndFp8) {
  for (const char* dtype : {"int8", "fp8"}) {
    SCOPED_TRACE(dtype);
    const std::string out = FreshDir(std::string("quant_moe_") + dtype);
    const CliResult r = RunCli(RunArgs(out, {"--model", "tiny-moe-mla", "--dtype", dtype}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json doc = OnlyRecord(out);
    EXPECT_NE(doc["run"]["status"], "skipped") << doc["run"];
    EXPECT_NE(doc["run"]["status"], "invalid") << doc["run"];
    EXPECT_EQ(doc["verification"]["status"], "passed") << doc["verification"];
    EXPECT_GT(doc["verification"]["route_decisions"].get<int>(), 0);
    EXPECT_GT(doc["accuracy"]["positions"].get<int>(), 0);
  }
}

// 8-bit KV caches on the cpu backend: measured, verified against the reference quantising K
// and V the same way, with the accuracy against the unquantised model (bf16 weights,
// activations and KV cache).
TEST(QuantCli, Fp8AndInt8KvCachesRunAndVerify) {
  const struct {
    const char* dtype;
    const char* kv;
  } cases[] = {{"bf16", "fp8"}, {"int8", "int8"}, {"fp8", "fp8"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.dtype) + " kv " + c.kv);
    const std::string out = FreshDir(std::string("quant_kv_") + c.dtype + "_" + c.kv);
    const CliResult r =
        RunCli(RunArgs(out, {"--model", "tiny", "--dtype", c.dtype, "--kv-dtype", c.kv}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(ValidateAgainstSchema(ListFiles(out)), 0);
    const json doc = OnlyRecord(out);
    EXPECT_EQ(doc["run"]["status"], "ok") << doc["run"];
    EXPECT_EQ(doc["workload"]["dtype"], c.dtype);
    EXPECT_EQ(doc["workload"]["kv_dtype"], c.kv);
    EXPECT_EQ(doc["verification"]["status"], "passed") << doc["verification"];
    EXPECT_EQ(doc["accuracy"]["baseline_dtype"], "bf16");
    EXPECT_GT(doc["accuracy"]["positions"].get<int>(), 0);
    EXPECT_LT(doc["accuracy"]["mean_kl_divergence"].get<double>(), 0.1);
  }
}

TEST(QuantCli, ReferenceBackendRunsSimulatedQuantisation) {
  const std::string out = FreshDir("quant_reference");
  const CliResult r =
      RunCli(RunArgs(out, {"--model", "tiny", "--backend", "reference", "--dtype", "int8"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRecord(out);
  EXPECT_EQ(doc["run"]["status"], "ok") << doc["run"];
  EXPECT_EQ(doc["verification"]["max_rel_error"].get<double>(), 0.0);  // itself, bit for bit
}

TEST(QuantCli, WhatTheCpuBackendCannotRunIsSkippedWithTheReason) {
  struct Case {
    std::vector<std::string> args;
    std::string reason;
  };
  const Case cases[] = {
      // MLA models keep their latent cache in the high-precision dtype.
      {{"--model", "tiny-moe-mla", "--dtype", "int8", "--kv-dtype", "fp8"},
       "this backend keeps an MLA model's latent KV cache in bf16, not fp8"},
      {{"--model", "tiny-moe-mla", "--dtype", "bf16", "--kv-dtype", "int8"},
       "latent KV cache in bf16, not int8"},
  };
  for (const Case& c : cases) {
    const std::string out = FreshDir("quant_skipped");
    const CliResult r = RunCli(RunArgs(out, c.args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const json doc = OnlyRecord(out);
    EXPECT_EQ(doc["run"]["status"], "skipped");
    EXPECT_NE(doc["run"]["status_message"].get<std::string>().find(c.reason), std::string::npos)
        << doc["run"];
  }
}

TEST(QuantCli, UnknownDTypeFlagsExitTwoNamingTheFlag) {
  const std::string out = FreshDir("quant_bad");
  const struct {
    std::vector<std::string> args;
    std::string line;
  } cases[] = {
      {{"--dtype", "bf16,fp4"},
       "clusterbench run: --dtype: unknown dtype 'fp4'; allowed values: fp32, bf16, fp16, fp8, "
       "int8\n"},
      {{"--kv-dtype", "fp32"},
       "clusterbench run: --kv-dtype: unknown KV-cache dtype 'fp32'; allowed values: bf16, fp8, "
       "int8\n"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"run", "--out", out, "--model", "tiny"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const CliResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.err, c.line);
  }
  EXPECT_TRUE(ListFiles(out).empty());
}

}  // namespace
}  // namespace cb::testing

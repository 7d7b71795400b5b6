// End-to-end: the simulated backend through the real binary: verification against the
// reference on a small model, modelled figures, a 384-device system, compare-hardware,
// calibrate, bad input.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

json OnlyRun(const std::string& dir) {
  const auto files = ListFiles(dir);
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? json() : json::parse(ReadText(files[0]));
}

TEST(SimCli, VerifiesAgainstTheReferenceAndLabelsEveryFigureModelled) {
  const std::string out = FreshDir("sim_verify");
  const CliResult r =
      RunCli({"run", "--results-dir", SharedResultsDir(), "--out", out, "--backend",
              "sim:nvidia-h100-sxm", "--model", "tiny", "--prompt-len", "8", "--gen-len", "2",
              "--repetitions", "2", "--quiet", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRun(out);
  EXPECT_EQ(doc["verification"]["status"], "passed") << doc["verification"].dump();
  EXPECT_EQ(doc["device"]["simulated"], true);
  EXPECT_EQ(doc["device"]["backend"], "sim");
  EXPECT_NE(doc.dump().find("clusterbench-sim/"), std::string::npos);  // the model's version
  for (const char* name : {"prefill_tokens_per_second", "decode_tokens_per_second", "ttft_seconds",
                           "tpot_seconds", "energy_joules"}) {
    ASSERT_TRUE(doc["metrics"].contains(name)) << name;
    EXPECT_EQ(doc["metrics"][name]["how"], "modelled") << name;
  }
  EXPECT_EQ(doc["energy"]["source"], "model");
}

TEST(SimCli, CloudMatrix384RunsAWholeSystemInUnderTwoSeconds) {
  const std::string out = FreshDir("sim_cm384");
  const auto t0 = std::chrono::steady_clock::now();
  const CliResult r = RunCli({"run",
                              "--results-dir",
                              SharedResultsDir(),
                              "--out",
                              out,
                              "--backend",
                              "sim",
                              "--system",
                              "cloudmatrix-384",
                              "--model",
                              "llama-3.1-70b",
                              "--prompt-len",
                              "128",
                              "--gen-len",
                              "1",
                              "--repetitions",
                              "1",
                              "--warmup",
                              "0",
                              "--quiet"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(wall, 2.0);
  const json doc = OnlyRun(out);
  EXPECT_EQ(doc["cluster"]["world_size"], 384);
  EXPECT_EQ(doc["cost"]["devices"], 384);
  EXPECT_TRUE(doc["metrics"].contains("decode_tokens_per_second_per_device"));
  EXPECT_EQ(doc["metrics"]["decode_tokens_per_second"]["how"], "modelled");
  EXPECT_EQ(doc["verification"]["status"], "not_run");
}

TEST(SimCli, TensorParallelInOneProcessIsVirtualDevices) {
  const std::string out = FreshDir("sim_tp8");
  const CliResult r = RunCli({"run",
                              "--results-dir",
                              SharedResultsDir(),
                              "--out",
                              out,
                              "--backend",
                              "sim:nvidia-h100-sxm",
                              "--tp",
                              "8",
                              "--model",
                              "llama-3.1-70b",
                              "--batch",
                              "8",
                              "--prompt-len",
                              "128",
                              "--gen-len",
                              "2",
                              "--repetitions",
                              "1",
                              "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRun(out);
  EXPECT_EQ(doc["cluster"]["world_size"], 8);
  EXPECT_EQ(doc["cluster"]["tp"], 8);
  EXPECT_EQ(doc["cost"]["devices"], 8);
  EXPECT_GT(doc["metrics"]["communication_share_ratio"]["value"].get<double>(), 0);
}

TEST(SimCli, CompareHardwareCoversEverySystem) {
  const CliResult r = RunCli({"compare-hardware", "--model", "llama-3.1-8b", "--prompt-len", "128",
                              "--gen-len", "4", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 3u);
  for (const json& row : rows) {
    EXPECT_EQ(row["status"], "ok") << row.dump();
    EXPECT_GT(row["decode_tokens_per_second"].get<double>(), 0);
    EXPECT_NEAR(
        row["decode_tokens_per_second_per_device"].get<double>() * row["devices"].get<int>(),
        row["decode_tokens_per_second"].get<double>(),
        1e-6 * row["decode_tokens_per_second"].get<double>());
    EXPECT_GT(row["cost_usd_per_million_output_tokens"].get<double>(), 0);
    EXPECT_GT(row["output_tokens_per_second_per_megawatt"].get<double>(), 0);
  }
}

TEST(SimCli, BadInputExitsTwo) {
  EXPECT_EQ(RunCli({"run", "--backend", "sim", "--system", "no-such-system", "--model", "tiny"})
                .exit_code,
            2);
  EXPECT_EQ(RunCli({"run", "--backend", "sim:no-such-device", "--model", "tiny"}).exit_code, 2);
  EXPECT_EQ(RunCli({"run", "--backend", "cpu", "--devices", "4", "--model", "tiny"}).exit_code, 2);
}

TEST(SimCli, CalibrateWritesParametersAndAHeldOutError) {
  const std::string out = FreshDir("sim_calibrate");
  const CliResult r = RunCli({"calibrate", "--results-dir", SharedResultsDir(), "--model", "tiny",
                              "--layers", "1", "--repetitions", "1", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("held-out"), std::string::npos) << r.out;
  const auto files = ListFiles(out);
  ASSERT_EQ(files.size(), 1u);
  const json cal = json::parse(ReadText(files[0]));
  EXPECT_FALSE(cal["date"].get<std::string>().empty());
  EXPECT_FALSE(cal["source"].get<std::string>().empty());
  EXPECT_GE(cal["held_out_median_abs_error"].get<double>(), 0);
  EXPECT_GT(cal["efficiency"]["matmul_eff"].get<double>(), 0);
}

}  // namespace
}  // namespace cb::testing

// End to end: `clusterbench run --scenario server|single-stream|sweep` through the real binary,
// results validated against the schema, validity labels, bad input.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

std::vector<std::string> Args(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> a = {"run",      "--results-dir", SharedResultsDir(), "--out", out,
                                "--model",  "tiny",          "--dtype",          "fp32",  "--quiet",
                                "--energy", "model"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(ServingCli, ServerRunWritesASchemaValidRecordWithServingFigures) {
  const std::string out = FreshDir("serving_server");
  const CliResult r = RunCli(Args(out, {"--scenario",
                                        "server",
                                        "--rate",
                                        "40",
                                        "--requests",
                                        "24",
                                        "--batch",
                                        "4",
                                        "--prompt-dist",
                                        "uniform:8-40",
                                        "--output-dist",
                                        "uniform:2-8",
                                        "--max-prefill-tokens",
                                        "24",
                                        "--slo-ttft",
                                        "1",
                                        "--slo-tpot",
                                        "0.5",
                                        "--min-duration",
                                        "0",
                                        "--min-requests",
                                        "20",
                                        "--max-cv",
                                        "0",
                                        "--format",
                                        "json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto files = ListFiles(out);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(ValidateAgainstSchema(files), 0);
  const json doc = json::parse(ReadText(files[0]));
  EXPECT_EQ(doc["run"]["status"], "ok");
  EXPECT_EQ(doc["workload"]["scenario"], "server");
  EXPECT_EQ(doc["verification"]["status"], "passed");
  EXPECT_EQ(doc["validity"]["label"], "valid") << doc["validity"].dump();
  const json& sv = doc["serving"];
  EXPECT_EQ(sv["requests"].size(), 24u);
  EXPECT_LE(sv["max_step_prefill_tokens"].get<int>(), 24);
  EXPECT_LE(sv["kv_pages_peak"].get<int>(), sv["kv_pages"].get<int>());
  for (const char* m :
       {"ttft_seconds", "tpot_seconds", "e2e_latency_seconds", "output_tokens_per_second",
        "output_tokens_per_second_per_device", "requests_per_second", "goodput_requests_per_second",
        "slo_attainment_ratio", "energy_joules_per_token", "cost_usd_per_million_tokens"}) {
    ASSERT_TRUE(doc["metrics"].contains(m)) << m;
    EXPECT_EQ(doc["metrics"][m]["how"], m == std::string("energy_joules_per_token") ||
                                                m == std::string("cost_usd_per_million_tokens")
                                            ? "modelled"
                                            : "measured")
        << m;
  }
  const json& ttft = doc["metrics"]["ttft_seconds"]["distribution"];
  EXPECT_EQ(ttft["count"], 24);
  EXPECT_LE(ttft["p50"].get<double>(), ttft["p99"].get<double>());
  // 24 samples: p90 needs 29 for a 95% bound, so neither is bounded, and the record says so.
  for (const json& b : doc["validity"]["percentile_bounds"]) EXPECT_FALSE(b["bounded"]);
}

TEST(ServingCli, DefaultsLabelAShortRunShortenedAndStrictMakesItInvalid) {
  const std::string out = FreshDir("serving_short");
  CliResult r = RunCli(Args(out, {"--scenario", "single-stream", "--requests", "4", "--prompt-len",
                                  "8", "--gen-len", "3"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("SHORTENED"), std::string::npos) << r.out;
  json doc = json::parse(ReadText(ListFiles(out)[0]));
  EXPECT_EQ(doc["run"]["status"], "ok");
  EXPECT_EQ(doc["validity"]["label"], "shortened");
  EXPECT_EQ(doc["serving"]["concurrency"], 1);
  EXPECT_EQ(ValidateAgainstSchema(ListFiles(out)), 0);

  const std::string strict = FreshDir("serving_strict");
  r = RunCli(Args(strict, {"--scenario", "single-stream", "--requests", "4", "--prompt-len", "8",
                           "--gen-len", "3", "--strict"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  doc = json::parse(ReadText(ListFiles(strict)[0]));
  EXPECT_EQ(doc["run"]["status"], "invalid");
  EXPECT_EQ(doc["validity"]["label"], "invalid");
}

TEST(ServingCli, RateSweepOnTheSimulatedDeviceReportsAFrontier) {
  const std::string out = FreshDir("serving_sweep");
  const CliResult r = RunCli({"run",
                              "--results-dir",
                              SharedResultsDir(),
                              "--out",
                              out,
                              "--backend",
                              "sim:nvidia-h100-sxm",
                              "--model",
                              "tiny",
                              "--quiet",
                              "--scenario",
                              "sweep",
                              "--rates",
                              "50,200,800",
                              "--batch",
                              "8",
                              "--requests",
                              "64",
                              "--prompt-len",
                              "64",
                              "--gen-len",
                              "16",
                              "--min-duration",
                              "0",
                              "--min-requests",
                              "0",
                              "--max-cv",
                              "0",
                              "--no-verify",
                              "--at-interactivity",
                              "1000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("sweep sweep-1 over rate"), std::string::npos) << r.out;
  std::vector<std::string> files;  // the run records; the summary is in sweeps/
  for (const std::string& f : ListFiles(out)) {
    if (f.ends_with(".json")) files.push_back(f);
  }
  EXPECT_EQ(files.size(), 3u);
  EXPECT_EQ(ValidateAgainstSchema(files), 0);
  const auto summaries = ListFiles(out + "/sweeps");
  ASSERT_EQ(summaries.size(), 1u);
  const json s = json::parse(ReadText(summaries[0]));
  EXPECT_EQ(s["points"].size(), 3u);
  EXPECT_GE(s["frontier"].size(), 1u);
  EXPECT_EQ(s["how"], "modelled");
  for (const auto& f : files) {
    const json doc = json::parse(ReadText(f));
    EXPECT_EQ(doc["sweep"]["group"], "sweep-1");
    EXPECT_EQ(doc["sweep"]["axis"], "rate");
  }
}

TEST(ServingCli, BadServingInputExitsTwoNamingTheField) {
  const std::string out = FreshDir("serving_bad");
  struct Case {
    std::vector<std::string> args;
    const char* needle;
  };
  const Case cases[] = {
      {{"--scenario", "server"}, "'rate'"},
      {{"--scenario", "server", "--rate", "1", "--prompt-dist", "normal:3"}, "prompt_dist"},
      {{"--scenario", "server", "--rate", "1", "--arrival", "bursty"}, "arrival"},
      {{"--scenario", "sweep", "--batches", "1,x"}, "--batches"},
      {{"--scenario", "queue"}, "allowed values: offline, single-stream, server, sweep"},
      {{"--scenario", "server", "--rate", "1", "--backend", "sim", "--devices", "2"},
       "allowed: batch >= 2"},
  };
  for (const Case& c : cases) {
    const CliResult r = RunCli(Args(out, c.args));
    EXPECT_EQ(r.exit_code, 2) << c.needle << ": " << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
  }
  EXPECT_TRUE(ListFiles(out).empty());
}

}  // namespace
}  // namespace cb::testing

// End to end: the ceilings of an offline cpu run are sampled beside its measured window, and a
// run whose MFU/MBU exceeds 1 or whose probes disagree is labelled unstable, kept, and not
// published as valid (harness/ceiling_check.h). Deterministic cases use the injected fake
// probes (--inject-fault ceiling-low|ceiling-drift).
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

int ValidateSchema(const std::string& file) {
  const std::string cmd = "/usr/bin/python3 " CLUSTERBENCH_SOURCE_DIR
                          "/tests/tools/validate_json.py " CLUSTERBENCH_SOURCE_DIR
                          "/results/schema/run.schema.json '" +
                          file + "' >/dev/null";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A short offline run of the tiny model into `out`, plus `extra` flags.
CliResult TinyRun(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> a = {"run",
                                "--results-dir",
                                SharedResultsDir(),
                                "--out",
                                out,
                                "--model",
                                "tiny",
                                "--dtype",
                                "fp32",
                                "--prompt-len",
                                "16",
                                "--gen-len",
                                "4",
                                "--repetitions",
                                "2",
                                "--energy",
                                "model"};
  a.insert(a.end(), extra.begin(), extra.end());
  return RunCli(a);
}

json OnlyRecord(const std::string& out) {
  const std::vector<std::string> files = ListFiles(out);
  EXPECT_EQ(files.size(), 1u);
  if (files.size() != 1) return json::object();
  EXPECT_EQ(ValidateSchema(files[0]), 0) << files[0];
  return json::parse(ReadText(files[0]));
}

bool Contains(const json& list, const std::string& s) {
  for (const json& x : list) {
    if (x.get<std::string>().find(s) != std::string::npos) return true;
  }
  return false;
}

/// The value of the first sample line of `metric` in a Prometheus text file, or -1.
double SampleValue(const std::string& text, const std::string& metric) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(metric + "{", 0) == 0 || line.rfind(metric + " ", 0) == 0) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

TEST(CeilingCli, ARunWhoseMbuWouldExceedOneIsUnstableAndNotPublishedAsValid) {
  const std::string out = FreshDir("ceiling_low");
  const std::string prom = FreshDir("ceiling_low_prom") + "/clusterbench.prom";
  const CliResult r =
      TinyRun(out, {"--inject-fault", "ceiling-low", "--textfile", prom, "--format", "table"});
  ASSERT_EQ(r.exit_code, 0) << r.err;  // kept and labelled, not a failure
  const json doc = OnlyRecord(out);
  EXPECT_EQ(doc["run"]["status"], "ok");
  const json& c = doc["ceiling_check"];
  EXPECT_EQ(c["verdict"], "unstable");
  EXPECT_EQ(c["findings"], json::array({"ceiling_exceeded"}));
  EXPECT_EQ(c["memory"]["source"], "probes");
  EXPECT_EQ(c["memory"]["used"], 1e6);  // the probe's figure, not the cached one
  EXPECT_GT(c["memory"]["cached"].get<double>(), 1e9);
  EXPECT_EQ(c["probes"].size(), 2u);
  EXPECT_TRUE(Contains(c["reasons"], "mbu_decode_ratio is")) << c.dump(1);
  EXPECT_GT(doc["metrics"]["mbu_decode_ratio"]["value"].get<double>(), 1);
  EXPECT_EQ(doc["validity"]["label"], "unstable");
  EXPECT_TRUE(Contains(doc["validity"]["reasons"], "unstable: ceiling_exceeded"));
  // The table shows it as unstable with the reason; Prometheus gets no valid figures.
  EXPECT_NE(r.out.find("UNSTABLE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ceiling_exceeded: mbu_decode_ratio"), std::string::npos) << r.out;
  const std::string text = ReadText(prom);
  EXPECT_EQ(SampleValue(text, "clusterbench_run_valid"), 0) << text;
  EXPECT_EQ(text.find("clusterbench_mbu_ratio{"), std::string::npos) << text;
}

TEST(CeilingCli, ProbesThatDisagreeMakeTheRunUnstableAndStrictMakesItInvalid) {
  const std::string out = FreshDir("ceiling_drift");
  CliResult r = TinyRun(out, {"--inject-fault", "ceiling-drift", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = OnlyRecord(out);
  EXPECT_TRUE(Contains(doc["ceiling_check"]["findings"], "ceiling_drift"));
  EXPECT_EQ(doc["ceiling_check"]["memory"]["drift"], 0.5);
  EXPECT_EQ(doc["validity"]["label"], "unstable");
  EXPECT_NE(r.err.find("not published as valid"), std::string::npos) << r.err;

  const std::string strict = FreshDir("ceiling_drift_strict");
  r = TinyRun(strict, {"--inject-fault", "ceiling-drift", "--strict", "--format", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  doc = OnlyRecord(strict);
  EXPECT_EQ(doc["run"]["status"], "invalid");
  EXPECT_NE(doc["run"]["status_message"].get<std::string>().find("ceiling_drift"),
            std::string::npos);
  // A wider margin than the fake's 50% drift keeps the run valid.
  const std::string wide = FreshDir("ceiling_drift_wide");
  r = TinyRun(wide, {"--inject-fault", "ceiling-drift", "--max-ceiling-drift", "0.6"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  doc = OnlyRecord(wide);
  EXPECT_EQ(doc["ceiling_check"]["max_drift"], 0.6);
  EXPECT_FALSE(Contains(doc["ceiling_check"]["findings"], "ceiling_drift"));
}

TEST(CeilingCli, RealProbesAreTakenBesideTheWindowAndRecorded) {
  const std::string out = FreshDir("ceiling_real");
  const CliResult r = TinyRun(out, {"--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRecord(out);
  const json& c = doc["ceiling_check"];
  EXPECT_EQ(c["max_drift"], 0.15);
  EXPECT_EQ(c["max_ratio"], 1);
  EXPECT_NE(c["method"].get<std::string>().find("streaming read"), std::string::npos);
  ASSERT_EQ(c["probes"].size(), 2u);
  EXPECT_EQ(c["probes"][0]["when"], "before");
  EXPECT_EQ(c["probes"][1]["when"], "after");
  for (const json& p : c["probes"]) {
    EXPECT_GT(p["mem_read_bytes_per_s"].get<double>(), 1e8);
    EXPECT_GT(p["matmul_flops_per_s"].get<double>(), 1e8);
    EXPECT_GT(p["mem_read_s"].get<double>(), 0);
    EXPECT_LT(p["mem_read_s"].get<double>() + p["matmul_s"].get<double>(), 5);
  }
  EXPECT_EQ(c["memory"]["source"], "probes");
  EXPECT_EQ(c["memory"]["used"],
            std::max(c["memory"]["before"].get<double>(), c["memory"]["after"].get<double>()));
  // The verdict depends on this host's noise; the label must follow it either way.
  if (c["verdict"] == "ok") {
    EXPECT_FALSE(doc.contains("validity"));
    for (const char* m : {"mfu_prefill_ratio", "mfu_decode_ratio"}) {
      EXPECT_LE(doc["metrics"][m]["value"].get<double>(), 1) << m;
    }
  } else {
    EXPECT_EQ(doc["validity"]["label"], "unstable");
  }
  EXPECT_NE(r.err.find("ceilings before the window: memory read"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ceilings after the window"), std::string::npos) << r.err;
}

TEST(CeilingCli, WithoutProbesTheCachedCeilingsAreUsed) {
  const std::string out = FreshDir("ceiling_off");
  const CliResult r = TinyRun(out, {"--no-ceiling-probes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = OnlyRecord(out);
  const json& c = doc["ceiling_check"];
  EXPECT_TRUE(c["probes"].empty());
  EXPECT_EQ(c["memory"]["source"], "cached");
  EXPECT_EQ(c["memory"]["used"], doc["ceilings"]["mem_read_bytes_per_s"]);
  EXPECT_NE(c["method"].get<std::string>().find("--no-ceiling-probes"), std::string::npos);
  EXPECT_EQ(r.err.find("ceilings before the window"), std::string::npos) << r.err;
}

TEST(CeilingCli, AMarginOutsideZeroToOneIsBadInput) {
  for (const char* bad : {"0", "1.5", "-0.2"}) {
    const std::string out = FreshDir("ceiling_bad_margin");
    const CliResult r = TinyRun(out, {"--max-ceiling-drift", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_NE(r.err.find("max_ceiling_drift"), std::string::npos) << r.err;
    EXPECT_TRUE(ListFiles(out).empty());
  }
}

TEST(CeilingCli, SimulatedRunsHaveNoCeilingCheck) {
  const std::string out = FreshDir("ceiling_sim");
  const CliResult r = TinyRun(out, {"--backend", "sim", "--no-verify"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(OnlyRecord(out).contains("ceiling_check"));
}

}  // namespace
}  // namespace cb::testing

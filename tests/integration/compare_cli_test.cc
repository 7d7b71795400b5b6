// `clusterbench compare` end to end: two runs of the same build stay quiet, a copy of a result
// slowed down by 20% is a regression (exit 1), bad input exits 2 naming the path.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

/// Tiny model, one dtype and batch: a couple of seconds per run. 5 repetitions and 16 decode
/// steps give the rank test 5 (throughput, TTFT) and 80 (TPOT) samples a side.
/// Steady fake ceiling probes: compare judges valid runs only, and on this shared VM real
/// probes often disagree by more than the margin, and the cached ceilings are often stale and
/// low (either makes the run unstable, not judged). The probes have their own tests
/// (tests/integration/ceiling_cli_test.cc).
CliResult TinyRun(const std::string& out) {
  return RunCli({"run", "--results-dir", SharedResultsDir(), "--out", out, "--model", "tiny",
                 "--dtype", "fp32", "--batch", "2", "--prompt-len", "16", "--gen-len", "16",
                 "--repetitions", "5", "--inject-fault", "ceiling-steady"});
}

/// Scales a metric's value and distribution by k (the coefficient of variation stays).
void Scale(json& metric, double k) {
  metric["value"] = metric["value"].get<double>() * k;
  if (!metric.contains("distribution")) return;
  for (const char* f : {"mean", "p50", "p90", "p99", "min", "max", "stddev"}) {
    metric["distribution"][f] = metric["distribution"][f].get<double>() * k;
  }
}

/// The result slowed down by 20%: throughput x 0.8, every time (metrics and raw samples) / 0.8.
json SlowedDown(json doc) {
  const double k = 0.8;
  for (auto& [name, metric] : doc["metrics"].items()) {
    if (name.find("tokens_per_second") != std::string::npos ||
        name.find("flops_per_second") != std::string::npos ||
        name.find("bytes_per_second") != std::string::npos) {
      Scale(metric, k);
    } else if (metric["unit"] == "s") {
      Scale(metric, 1 / k);
    }
  }
  for (auto& s : doc["samples"]) {
    for (const char* f : {"prefill_s", "e2e_s", "backend_s"}) s[f] = s[f].get<double>() / k;
    for (auto& step : s["decode_step_s"]) step = step.get<double>() / k;
  }
  doc["run"]["id"] = doc["run"]["id"].get<std::string>() + "-slow";
  return doc;
}

TEST(CompareCli, QuietOnTwoRunsOfTheSameBuildAndFindsATwentyPercentSlowdown) {
  const std::string base = FreshDir("compare_base"), next = FreshDir("compare_new");
  for (const std::string& out : {base, next}) {
    const CliResult r = TinyRun(out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Two runs of the same build. This VM is shared by several builds and its timings swing by
  // tens of percent between runs seconds apart, beyond what the repetitions' spread within one
  // run predicts; 50% keeps the check robust here (docs/compare-and-report.md). The slowdown
  // check below uses the default-like threshold of 10%.
  CliResult r = RunCli({"compare", base, next, "--threshold", "50", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["regressions"], 0);
  ASSERT_EQ(doc["series"].size(), 1u);
  EXPECT_TRUE(doc["only_base"].empty());
  EXPECT_TRUE(doc["only_new"].empty());
  bool saw_rank_test = false;
  for (const json& m : doc["series"][0]["metrics"]) saw_rank_test |= m["test"] == "mann-whitney";
  EXPECT_TRUE(saw_rank_test) << "the repetitions' raw samples were not used";

  // A copy of the base result, 20% slower.
  const std::vector<std::string> files = ListFiles(base);
  ASSERT_EQ(files.size(), 1u);
  const std::string slow = FreshDir("compare_slow");
  WriteText(slow + "/slow.json", SlowedDown(json::parse(ReadText(files[0]))).dump(1));
  r = RunCli({"compare", base, slow, "--threshold", "10", "--format", "json"});
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;
  doc = json::parse(r.out);
  EXPECT_GE(doc["regressions"].get<int>(), 1);
  std::vector<std::string> regressed;
  for (const json& m : doc["series"][0]["metrics"]) {
    if (m["regression"].get<bool>()) regressed.push_back(m["name"]);
  }
  // TPOT has 80 samples a side: a 25% longer step is far beyond its spread.
  EXPECT_NE(std::find(regressed.begin(), regressed.end(), "tpot_seconds"), regressed.end())
      << r.out;
  for (const std::string& name : regressed) {
    EXPECT_TRUE(name.find("per_second") != std::string::npos ||
                name.find("seconds") != std::string::npos ||
                name.find("cost") != std::string::npos || name.find("mfu") != std::string::npos ||
                name.find("mbu") != std::string::npos)
        << "unexpected regression in " << name;
  }

  // Markdown to a file: the same verdict.
  const std::string md = slow + "/../compare.md";
  r = RunCli({"compare", base, slow + "/slow.json", "--threshold", "10", "--output", md});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty());
  const std::string text = ReadText(md);
  EXPECT_NE(text.find("| tpot_seconds | s | measured |"), std::string::npos) << text;
  EXPECT_NE(text.find("**regression**"), std::string::npos);
}

TEST(CompareCli, BadInputExitsTwoNamingThePath) {
  const std::string dir = FreshDir("compare_bad");
  CliResult r = RunCli({"compare", dir + "/missing", dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;

  r = RunCli({"compare", dir, dir});  // no results in it
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no clusterbench results"), std::string::npos) << r.err;

  WriteText(dir + "/runs/broken.json", "{\"run\": {");
  r = RunCli({"compare", dir, dir});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("broken.json"), std::string::npos) << r.err;

  r = RunCli({"compare", dir, dir, "--format", "xml"});
  EXPECT_EQ(r.exit_code, 2);
  r = RunCli({"report", dir + "/missing"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
}

TEST(CompareCli, HelpDocumentsEveryFlag) {
  CliResult r = RunCli({"compare", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"BASE", "NEW", "--threshold", "--alpha", "--format", "--output"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
  r = RunCli({"report", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"DIR", "--format", "--output", "html"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
  r = RunCli({"--help"});
  EXPECT_NE(r.out.find("compare"), std::string::npos);
  EXPECT_NE(r.out.find("report"), std::string::npos);
}

}  // namespace
}  // namespace cb::testing

// End-to-end: energy and cost in `clusterbench run` result files, `clusterbench cost`
// re-pricing them, and bad cost inputs exiting with code 2.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/integration/cli_harness.h"

namespace cb::testing {
namespace {

using nlohmann::json;

std::vector<std::string> TinyRun(const std::string& out, std::vector<std::string> extra) {
  std::vector<std::string> args = {"run",
                                   "--results-dir",
                                   SharedResultsDir(),
                                   "--out",
                                   out,
                                   "--model",
                                   "tiny",
                                   "--prompt-len",
                                   "8",
                                   "--gen-len",
                                   "2",
                                   "--repetitions",
                                   "2",
                                   "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

/// One tiny run shared by the tests of this file.
const std::string& StoredRun() {
  static const std::string file = [] {
    const std::string out = FreshDir("cost_run");
    const CliResult r = RunCli(TinyRun(out, {"--format", "json"}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto files = ListFiles(out);
    EXPECT_EQ(files.size(), 1u);
    return files.empty() ? std::string() : files[0];
  }();
  return file;
}

TEST(CostCli, RunRecordsEnergyAndCostThatRecompute) {
  const json doc = json::parse(ReadText(StoredRun()));
  ASSERT_TRUE(doc.contains("energy")) << doc.dump(2);
  ASSERT_TRUE(doc.contains("cost"));
  const json& e = doc["energy"];
  const std::string source = e["source"];
  EXPECT_TRUE(source == "rapl" || source == "model") << source;
  const json& m = doc["metrics"];
  for (const char* name : {"energy_joules", "energy_joules_per_token", "average_power_watts",
                           "tokens_per_kwh", "cost_usd_per_million_input_tokens",
                           "cost_usd_per_million_output_tokens", "cost_usd_per_million_tokens"}) {
    ASSERT_TRUE(m.contains(name)) << name;
    EXPECT_GT(m[name]["value"].get<double>(), 0) << name;
  }
  EXPECT_EQ(m["cost_usd_per_million_tokens"]["how"], "modelled");
  EXPECT_EQ(m["energy_joules"]["how"], source == "model" ? "modelled" : "measured");
  // J/token = J / tokens; tokens = repetitions x batch x (prompt + gen).
  EXPECT_EQ(e["tokens"].get<double>(), 2 * 1 * (8 + 2));
  EXPECT_NEAR(m["energy_joules_per_token"]["value"].get<double>(),
              m["energy_joules"]["value"].get<double>() / 20, 1e-12);
  // $/Mtok from the file's own inputs.
  const json& c = doc["cost"];
  const double h = c["cost_per_device_hour_usd"].get<double>();
  EXPECT_NEAR(h / (c["tokens_per_second"]["output"].get<double>() * 3600) * 1e6,
              m["cost_usd_per_million_output_tokens"]["value"].get<double>(), 1e-12);
  EXPECT_FALSE(c["catalog"]["id"].get<std::string>().empty());
}

TEST(CostCli, CostRepricesAStoredResult) {
  const std::string file = StoredRun();
  const json stored = json::parse(ReadText(file));
  const double out_tps = stored["cost"]["tokens_per_second"]["output"].get<double>();
  for (double price : {1.30, 2.99}) {
    const CliResult r =
        RunCli({"cost", file, "--price-per-hour", std::to_string(price), "--format", "json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json docs = json::parse(r.out);
    ASSERT_EQ(docs.size(), 1u);
    const json& d = docs[0];
    EXPECT_EQ(d["cost"]["basis"], "rental");
    EXPECT_EQ(d["cost"]["overridden"], json::array({"rental_usd_per_hour"}));
    EXPECT_NEAR(d["metrics"]["cost_usd_per_million_output_tokens"]["value"].get<double>(),
                price / (out_tps * 3600) * 1e6, 1e-9);
    // Energy and speeds are untouched.
    EXPECT_EQ(d["metrics"]["decode_tokens_per_second"],
              stored["metrics"]["decode_tokens_per_second"]);
    EXPECT_EQ(d["energy"], stored["energy"]);
  }
  // Owned hardware with another electricity price, as a table and as CSV.
  CliResult r = RunCli({"cost", std::filesystem::path(file).parent_path().string(),
                        "--catalog-device", "nvidia-h100-sxm", "--electricity-price", "0.2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("owned"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nvidia-h100-sxm"), std::string::npos) << r.out;
  r = RunCli({"cost", file, "--format", "csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("file,model,device,catalog,basis", 0), 0u) << r.out;
}

TEST(CostCli, RunAcceptsCostFlagsAndRecordsThem) {
  const std::string out = FreshDir("cost_flags");
  const CliResult r =
      RunCli(TinyRun(out, {"--capex", "20000", "--amortization-years", "3", "--electricity-price",
                           "0.15", "--pue", "1.2", "--energy", "model", "--format", "md"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("J/token"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("$/Mtok out"), std::string::npos) << r.out;
  const json doc = json::parse(ReadText(ListFiles(out).at(0)));
  const json& c = doc["cost"];
  EXPECT_EQ(c["basis"], "owned");
  EXPECT_EQ(c["inputs"]["capex_usd"], 20000.0);
  EXPECT_EQ(c["overridden"].size(), 4u);
  const json& in = c["inputs"];
  EXPECT_NEAR(c["cost_per_device_hour_usd"].get<double>(),
              20000.0 / (3 * 8760) + in["all_in_power_w"].get<double>() / 1000 * 1.2 * 0.15, 1e-12);
  EXPECT_EQ(doc["energy"]["source"], "model");
}

TEST(CostCli, FakePowercapTreeIsReadAsRapl) {
  // A static tree: the counter never advances, so the reading says rapl but not valid.
  const std::string root = FreshDir("powercap");
  WriteText(root + "/intel-rapl:0/name", "package-0\n");
  WriteText(root + "/intel-rapl:0/energy_uj", "123456\n");
  WriteText(root + "/intel-rapl:0/max_energy_range_uj", "262143328850\n");
  setenv("CLUSTERBENCH_POWERCAP_ROOT", root.c_str(), 1);
  const std::string out = FreshDir("rapl_run");
  const CliResult r = RunCli(TinyRun(out, {}));
  unsetenv("CLUSTERBENCH_POWERCAP_ROOT");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json doc = json::parse(ReadText(ListFiles(out).at(0)));
  EXPECT_EQ(doc["energy"]["source"], "rapl");
  EXPECT_FALSE(doc["energy"]["valid"].get<bool>());
  EXPECT_EQ(doc["energy"]["domains"][0]["name"], "package-0");
  EXPECT_EQ(doc["metrics"]["energy_joules"]["how"], "measured");
  EXPECT_NE(r.out.find("INVALID reading"), std::string::npos) << r.out;
}

TEST(CostCli, BadCostInputsExitTwo) {
  const std::string out = FreshDir("cost_bad");
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::string file = StoredRun();
  const std::string bad_catalog = FreshDir("bad_catalog");
  WriteText(
      bad_catalog + "/broken.json",
      R"({"id": "broken", "name": "B", "kind": "gpu", "all_in_power_w": {"value": -1, "source": "x"}})");
  const Case cases[] = {
      {TinyRun(out, {"--price-per-hour", "-1"}), "--price-per-hour"},
      {TinyRun(out, {"--amortization-years", "0"}), "--amortization-years"},
      {TinyRun(out, {"--pue", "0.5"}), "--pue"},
      {TinyRun(out, {"--catalog-device", "no-such-gpu"}), "no-such-gpu"},
      {TinyRun(out, {"--energy", "guess"}), "--energy"},
      {TinyRun(out, {"--catalog", bad_catalog}), "broken.json: field 'all_in_power_w.value'"},
      {{"cost", file, "--price-per-hour", "-2"}, "--price-per-hour"},
      {{"cost", file, "--capex", "-5"}, "--capex"},
      {{"cost", file, "--catalog-device", "no-such-gpu"}, "no-such-gpu"},
      {{"cost", out + "/missing.json"}, "missing.json"},
  };
  for (const Case& c : cases) {
    const CliResult r = RunCli(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.says << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_TRUE(ListFiles(out).empty());  // nothing ran
}

}  // namespace
}  // namespace cb::testing

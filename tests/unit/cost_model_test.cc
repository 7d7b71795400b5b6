// Device catalog, cost model, energy/cost metrics and their JSON.
#include "harness/cost/cost_model.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "backends/energy/power_model_meter.h"
#include "harness/cost/energy_cost.h"
#include "harness/cost/run_energy_cost.h"
#include "results/record_json.h"
#include "tests/unit/record_testing.h"

namespace cb {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const DeviceCatalog& Shipped() {
  static DeviceCatalog c = [] {
    DeviceCatalog cat;
    const Status s = DeviceCatalog::Load(DefaultCatalogDir(), &cat);
    EXPECT_TRUE(s.ok()) << s.message();
    return cat;
  }();
  return c;
}

TEST(DeviceCatalogTest, ShippedEntriesLoadWithSources) {
  const DeviceCatalog& c = Shipped();
  for (const char* id :
       {"huawei-ascend-910b", "huawei-ascend-910c", "nvidia-h20", "nvidia-a100-sxm-80gb",
        "nvidia-h100-sxm", "nvidia-h200-sxm", "nvidia-b200", "nvidia-gb200", "intel-xeon-8480plus",
        "intel-xeon-6980p", "amd-epyc-9654", "amd-epyc-9965", "amd-epyc-vm", "generic-cpu",
        "huawei-cloudmatrix-384", "nvidia-gb200-nvl72", "nvidia-hgx-h100-8"}) {
    const CatalogEntry* e = c.Find(id);
    ASSERT_NE(e, nullptr) << id;
    EXPECT_FALSE(e->all_in_power_w.source.empty()) << id;
  }
  const CatalogEntry* h100 = c.Find("nvidia-h100-sxm");
  EXPECT_EQ(h100->peak_flops.at("bf16").value, 989e12);
  EXPECT_EQ(h100->all_in_power_w.value, 1730);
  const CatalogEntry* cm = c.Find("huawei-cloudmatrix-384");
  EXPECT_EQ(cm->device_count, 384);
  EXPECT_NEAR(cm->all_in_power_w.value / cm->device_count, 1456.7, 0.1);
  // The 910C's all-in power per chip is the CloudMatrix's share.
  EXPECT_NEAR(c.Find("huawei-ascend-910c")->all_in_power_w.value, 1457, 1);
}

TEST(DeviceCatalogTest, MatchesModelStrings) {
  const DeviceCatalog& c = Shipped();
  auto id = [&](const std::string& model, const std::string& kind) {
    const CatalogEntry* e = c.Match(model, kind);
    return e ? e->id : std::string("none");
  };
  EXPECT_EQ(id("NVIDIA H100 80GB HBM3", "gpu"), "nvidia-h100-sxm");
  EXPECT_EQ(id("NVIDIA H200", "gpu"), "nvidia-h200-sxm");
  EXPECT_EQ(id("NVIDIA H20", "gpu"), "nvidia-h20");
  EXPECT_EQ(id("NVIDIA GB200", "gpu"), "nvidia-gb200");
  EXPECT_EQ(id("AMD EPYC", "cpu"), "amd-epyc-vm");
  EXPECT_EQ(id("AMD EPYC (2 cores)", "cpu"), "amd-epyc-vm");
  EXPECT_EQ(id("AMD EPYC 9654 96-Core Processor", "cpu"), "amd-epyc-9654");
  EXPECT_EQ(id("Intel(R) Xeon(R) Platinum 8480+", "cpu"), "intel-xeon-8480plus");
  EXPECT_EQ(id("Some Unknown CPU", "cpu"), "generic-cpu");
  EXPECT_EQ(id("Some Unknown GPU", "gpu"), "none");
}

class CatalogFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cb_catalog_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void Put(const std::string& name, const json& doc) {
    std::ofstream(dir_ / (name + ".json")) << doc.dump(2);
  }
  json Good(const std::string& id) {
    auto fig = [](double v) { return json{{"value", v}, {"source", "test"}}; };
    return json{{"id", id},
                {"name", "Test device"},
                {"kind", "gpu"},
                {"match", {"TESTGPU"}},
                {"mem_bandwidth_bytes_per_s", fig(1e12)},
                {"mem_bytes", fig(8e10)},
                {"tdp_w", fig(700)},
                {"idle_w", fig(70)},
                {"all_in_power_w", fig(1500)},
                {"purchase_usd", fig(20000)},
                {"rental_usd_per_hour", json{{"value", nullptr}, {"source", "none"}}}};
  }
  Status Load() {
    DeviceCatalog c;
    return DeviceCatalog::Load(dir_.string(), &c);
  }
  fs::path dir_;
};

TEST_F(CatalogFilesTest, BadFilesNameTheFileAndField) {
  Put("ok", Good("ok"));
  ASSERT_TRUE(Load().ok()) << Load().message();
  struct Case {
    std::function<void(json&)> mutate;
    std::string field;
  };
  const Case cases[] = {
      {[](json& d) { d["tdp_w"]["value"] = -5; }, "tdp_w.value"},
      {[](json& d) { d["tdp_w"]["value"] = "hot"; }, "tdp_w.value"},
      {[](json& d) { d["idle_w"]["value"] = 900; }, "idle_w.value"},
      {[](json& d) { d["all_in_power_w"].erase("source"); }, "all_in_power_w.source"},
      {[](json& d) { d.erase("tdp_w"); }, "tdp_w"},
      {[](json& d) { d["kind"] = "fpga"; }, "kind"},
      {[](json& d) { d["tdp"] = 1; }, "tdp"},
      {[](json& d) { d["match"] = json::array({"(unclosed"}); }, "match[0]"},
      {[](json& d) {
         d["peak_flops"] = {{"bf17", {{"value", 1}, {"source", "x"}}}};
       },
       "peak_flops.bf17"},
      {[](json& d) { d["id"] = "other"; }, "id"},
  };
  for (const Case& c : cases) {
    json d = Good("bad");
    c.mutate(d);
    Put("bad", d);
    const Status s = Load();
    EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << c.field;
    EXPECT_EQ(s.ExitCode(), 2);
    EXPECT_NE(s.message().find("bad.json"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("'" + c.field + "'"), std::string::npos) << s.message();
  }
  std::ofstream(dir_ / "bad.json") << "{ not json";
  EXPECT_NE(Load().message().find("bad.json:1:"), std::string::npos) << Load().message();
  fs::remove(dir_ / "bad.json");
  json sys = {{"id", "rack"},
              {"type", "system"},
              {"name", "Rack"},
              {"kind", "gpu"},
              {"device", "missing"},
              {"device_count", 8},
              {"all_in_power_w", {{"value", 1e4}, {"source", "t"}}}};
  Put("rack", sys);
  EXPECT_NE(Load().message().find("field 'interconnect'"), std::string::npos) << Load().message();
  auto fig = [](double v) { return json{{"value", v}, {"source", "t"}}; };
  const json a2a = {{"scale_up_bytes_per_s", fig(1e11)},
                    {"scale_out_bytes_per_s", fig(1e10)},
                    {"latency_s", fig(1e-5)},
                    {"compute_share", fig(0.1)}};
  sys["interconnect"] = {{"domain_devices", fig(8)},         {"scale_up_bytes_per_s", fig(4e11)},
                         {"scale_up_latency_s", fig(2e-6)},  {"scale_out_bytes_per_s", fig(5e10)},
                         {"scale_out_latency_s", fig(1e-5)}, {"all_to_all_throughput", a2a},
                         {"all_to_all_low_latency", a2a}};
  Put("rack", sys);
  EXPECT_NE(Load().message().find("field 'device'"), std::string::npos) << Load().message();
  sys["interconnect"]["domain_devices"] = fig(2.5);
  Put("rack", sys);
  EXPECT_NE(Load().message().find("field 'interconnect.domain_devices.value'"), std::string::npos)
      << Load().message();
  sys["interconnect"].erase("all_to_all_low_latency");
  sys["interconnect"]["domain_devices"] = fig(8);
  Put("rack", sys);
  EXPECT_NE(Load().message().find("field 'interconnect.all_to_all_low_latency'"), std::string::npos)
      << Load().message();
}

// --- Cost formulas, by hand ---------------------------------------------------------------

TEST(CostModelTest, RentalFormula) {
  CostBaseline b = BaselineFromCatalog(*Shipped().Find("nvidia-h100-sxm"), "test");
  CostRecord c = ResolveCost(b, {}, "test");
  EXPECT_EQ(c.basis, "rental");
  EXPECT_DOUBLE_EQ(c.cost_per_device_hour_usd, 1.90);
  // $1.90/h at 1000 tokens/s: 1.90 / 3.6e6 tokens x 1e6 = $0.52778 per million.
  EXPECT_NEAR(UsdPerMillionTokens(1.90, 1, 1000), 0.5277778, 1e-6);
  EXPECT_NEAR(UsdPerMillionTokens(1.90, 8, 1000), 8 * 0.5277778, 1e-6);
  EXPECT_TRUE(std::isnan(UsdPerMillionTokens(1.90, 1, 0)));
  CostOverrides o;
  o.price_per_hour = 1.30;
  c = ResolveCost(b, o, "command line");
  EXPECT_EQ(c.basis, "rental");
  EXPECT_DOUBLE_EQ(c.cost_per_device_hour_usd, 1.30);
  EXPECT_EQ(c.overridden, std::vector<std::string>{"rental_usd_per_hour"});
  EXPECT_NE(c.sources["rental_usd_per_hour"].find("command line"), std::string::npos);
}

TEST(CostModelTest, OwnedFormula) {
  CostBaseline b = BaselineFromCatalog(*Shipped().Find("nvidia-h100-sxm"), "test");
  CostOverrides o;
  o.electricity_price = 0.08;  // an ownership input: priced as owned
  CostRecord c = ResolveCost(b, o, "suite");
  EXPECT_EQ(c.basis, "owned");
  // 27500 / (4 x 8760) + 1.73 kW x 1.0 x 0.08 = 0.784817 + 0.1384 = 0.923217 $/h
  EXPECT_NEAR(c.cost_per_device_hour_usd, 27500.0 / 35040 + 1.73 * 0.08, 1e-12);
  EXPECT_NEAR(c.cost_per_device_hour_usd, 0.923217, 1e-6);
  o.pue = 1.3;
  o.amortization_years = 5;
  o.capex = 30000;
  c = ResolveCost(b, o, "suite");
  EXPECT_NEAR(c.cost_per_device_hour_usd, 30000.0 / (5 * 8760) + 1.73 * 1.3 * 0.08, 1e-12);
  EXPECT_EQ(c.overridden.size(), 4u);
}

TEST(CostModelTest, SystemsArePricedPerDeviceAndMissingPricesSaySo) {
  CostRecord c =
      ResolveCost(BaselineFromCatalog(*Shipped().Find("huawei-cloudmatrix-384"), "test"), {}, "t");
  EXPECT_EQ(c.basis, "owned");
  EXPECT_NEAR(c.all_in_power_w, 559378.0 / 384, 1e-9);
  EXPECT_NEAR(c.capex_usd, 8.2e6 / 384, 1e-9);
  EXPECT_NEAR(c.cost_per_device_hour_usd, 8.2e6 / 384 / 35040 + 559378.0 / 384 / 1000 * 0.10, 1e-9);
  // The 910B has neither a purchase nor a rental price.
  c = ResolveCost(BaselineFromCatalog(*Shipped().Find("huawei-ascend-910b"), "test"), {}, "t");
  EXPECT_EQ(c.basis, "none");
  EXPECT_TRUE(std::isnan(c.cost_per_device_hour_usd));
  ASSERT_FALSE(c.notes.empty());
  EXPECT_NE(c.notes[0].find("--price-per-hour"), std::string::npos);
}

TEST(CostModelTest, BadOverridesAreInvalidInput) {
  struct Case {
    json doc;
    const char* field;
  };
  const Case cases[] = {{{{"price_per_hour", -1}}, "price_per_hour"},
                        {{{"capex", -10}}, "capex"},
                        {{{"amortization_years", 0}}, "amortization_years"},
                        {{{"electricity_price", -0.1}}, "electricity_price"},
                        {{{"pue", 0.5}}, "pue"},
                        {{{"pue", "high"}}, "pue"},
                        {{{"catalog_device", ""}}, "catalog_device"}};
  for (const Case& c : cases) {
    CostOverrides o;
    const Status s = ReadCostOverrides(FieldReader(c.doc, "suite.json"), &o);
    EXPECT_EQ(s.ExitCode(), 2) << c.field;
    EXPECT_NE(s.message().find(std::string("'") + c.field + "'"), std::string::npos) << s.message();
  }
  const DeviceProps props;
  const CatalogEntry* e = nullptr;
  std::string by;
  const Status s =
      EnergyCostPlanner::ResolveEntry(Shipped(), "no-such-device", "command line", props, &e, &by);
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("no-such-device"), std::string::npos);
}

// --- Metrics of a run, and recomputing them from the result file --------------------------

RunRecord OkRun() {
  RunRecord r = fixtures::PopulatedRecord();
  r.extrapolated = false;
  r.workload.batch = 2;
  r.workload.prompt_len = 100;
  r.workload.gen_len = 50;
  r.metrics.clear();
  r.metrics.push_back(
      {"prefill_tokens_per_second", "tokens/s", Provenance::kMeasured, 2000, false, {}});
  r.metrics.push_back(
      {"decode_tokens_per_second", "tokens/s", Provenance::kMeasured, 100, false, {}});
  r.metrics.push_back({"e2e_latency_seconds", "s", Provenance::kMeasured, 1.1, false, {}});
  RepetitionSample s;
  s.e2e_s = 1.1;
  r.samples = {s, s, s};
  return r;
}

TEST(EnergyCostMetricsTest, MeasuredEnergyMetrics) {
  RunRecord r = OkRun();
  EnergyRecord e;
  e.reading.source = "rapl";
  e.reading.joules = 330;
  e.reading.window_s = 3.3;
  r.energy = e;
  AddEnergyMetrics(&r);
  // 3 repetitions x 2 x (100 + 50) = 900 tokens
  EXPECT_EQ(r.energy->tokens, 900);
  EXPECT_NEAR(r.FindMetric(kAveragePowerWatts)->value, 100, 1e-9);
  EXPECT_EQ(r.FindMetric(kEnergyJoules)->value, 330);
  EXPECT_NEAR(r.FindMetric(kEnergyJoulesPerToken)->value, 330.0 / 900, 1e-12);
  EXPECT_NEAR(r.FindMetric(kTokensPerKwh)->value, 900 / (330 / 3.6e6), 1e-3);
  EXPECT_EQ(r.FindMetric(kEnergyJoules)->how, Provenance::kMeasured);
  EXPECT_EQ(r.FindMetric(kEnergyJoules)->unit, "J");

  // Extrapolated: the measured average power over the extrapolated time.
  r.extrapolated = true;
  for (auto& s : r.samples) s.e2e_s = 11;
  AddEnergyMetrics(&r);
  EXPECT_NEAR(r.FindMetric(kEnergyJoules)->value, 100 * 33, 1e-9);
  EXPECT_EQ(r.FindMetric(kEnergyJoules)->how, Provenance::kExtrapolated);
  EXPECT_EQ(r.FindMetric(kAveragePowerWatts)->how, Provenance::kMeasured);
  // The power model is modelled whatever the run.
  r.energy->reading.source = "model";
  AddEnergyMetrics(&r);
  EXPECT_EQ(r.FindMetric(kEnergyJoulesPerToken)->how, Provenance::kModelled);
  EXPECT_EQ(r.FindMetric(kAveragePowerWatts)->how, Provenance::kModelled);
}

TEST(EnergyCostMetricsTest, CostRecomputedFromTheResultFilesOwnInputs) {
  RunRecord r = OkRun();
  CostOverrides o;
  o.price_per_hour = 2.99;
  r.cost = ResolveCost(BaselineFromCatalog(*Shipped().Find("nvidia-h100-sxm"), "t"), o, "t");
  AddCostMetrics(&r);
  // Hand-computed: 2.99 $/h / (2000 tok/s x 3600) x 1e6 = 0.415278 $/Mtok input.
  EXPECT_NEAR(r.FindMetric(kCostInput)->value, 0.4152778, 1e-6);
  EXPECT_NEAR(r.FindMetric(kCostOutput)->value, 2.99 / 360000 * 1e6, 1e-9);
  EXPECT_EQ(r.FindMetric(kCostOutput)->how, Provenance::kModelled);
  EXPECT_EQ(r.FindMetric(kCostBlended)->unit, "USD/Mtok");

  // Through the file: everything needed is in the document itself.
  const json doc = json::parse(ToJson(r).dump());
  const json& c = doc["cost"];
  const double per_hour = c["inputs"]["rental_usd_per_hour"].get<double>();
  EXPECT_EQ(per_hour, c["cost_per_device_hour_usd"].get<double>());
  for (const auto& [kind, metric] : {std::pair<const char*, const char*>{"input", kCostInput},
                                     {"output", kCostOutput},
                                     {"blended", kCostBlended}}) {
    const double tps = c["tokens_per_second"][kind].get<double>();
    const double usd = per_hour * c["devices"].get<double>() / (tps * 3600) * 1e6;
    EXPECT_NEAR(usd, doc["metrics"][metric]["value"].get<double>(), 1e-12) << kind;
  }
  EXPECT_NEAR(c["tokens_per_second"]["blended"].get<double>(), 300 / 1.1, 1e-9);

  // The owned formula from the file's inputs too.
  CostOverrides owned;
  owned.electricity_price = 0.12;
  r.cost = ResolveCost(BaselineFromCatalog(*Shipped().Find("nvidia-h100-sxm"), "t"), owned, "t");
  AddCostMetrics(&r);
  const json d2 = json::parse(ToJson(r).dump());
  const json& in = d2["cost"]["inputs"];
  const double h = in["capex_usd"].get<double>() / (in["amortization_years"].get<double>() * 8760) +
                   in["all_in_power_w"].get<double>() / 1000 * in["pue"].get<double>() *
                       in["electricity_usd_per_kwh"].get<double>();
  EXPECT_NEAR(h / (d2["cost"]["tokens_per_second"]["output"].get<double>() * 3600) * 1e6,
              d2["metrics"][kCostOutput]["value"].get<double>(), 1e-12);
  EXPECT_TRUE(d2["cost"]["inputs"]["rental_usd_per_hour"].is_null());
}

TEST(EnergyCostJsonTest, RoundTripAndSchema) {
  RunRecord r = OkRun();
  EnergyRecord e;
  e.reading.source = "nvml";
  e.reading.joules = 12.5;
  e.reading.window_s = 0.5;
  e.reading.sampling_interval_s = 0.05;
  e.reading.valid = false;
  e.reading.notes = {"gpu0: fewer than two power samples in the window"};
  e.reading.domains = {{"gpu0", "GPU-1234", 12.5}};
  r.energy = e;
  AddEnergyMetrics(&r);
  r.cost = ResolveCost(BaselineFromCatalog(*Shipped().Find("huawei-ascend-910b"), "t"), {}, "t");
  AddCostMetrics(&r);  // basis none: no cost metrics
  EXPECT_EQ(r.FindMetric(kCostBlended), nullptr);
  const json doc = ToJson(r);
  RunRecord back;
  ASSERT_TRUE(FromJson(doc, "mem.json", &back).ok());
  EXPECT_EQ(ToJson(back), doc);
  ASSERT_TRUE(back.energy.has_value());
  EXPECT_EQ(back.energy->reading.domains[0].id, "GPU-1234");
  EXPECT_FALSE(back.energy->reading.valid);
  EXPECT_EQ(back.cost->basis, "none");

  json bad = doc;
  bad["energy"]["source"] = "guess";
  const Status s = FromJson(bad, "r.json", &back);
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("energy.source"), std::string::npos) << s.message();

  if (std::system("/usr/bin/python3 -c 'import jsonschema' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-jsonschema is not installed";
  }
  const fs::path f =
      fs::temp_directory_path() / ("cb_energy_" + std::to_string(getpid()) + ".json");
  RunRecord priced = OkRun();
  priced.energy = e;
  priced.cost = ResolveCost(BaselineFromCatalog(*Shipped().Find("nvidia-h100-sxm"), "t"), {}, "t");
  AddCostMetrics(&priced);
  for (const RunRecord& rec : {r, priced}) {
    std::ofstream(f) << ToJson(rec).dump(2);
    const std::string src = CLUSTERBENCH_SOURCE_DIR;
    const std::string cmd = "/usr/bin/python3 '" + src + "/tests/tools/validate_json.py' '" + src +
                            "/results/schema/run.schema.json' '" + f.string() + "' >/dev/null";
    const int raw = std::system(cmd.c_str());
    EXPECT_EQ(WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, 0);
  }
  fs::remove(f);
}

TEST(PowerModelMeterTest, IdlePlusShareOfTdpTimesUtilisation) {
  energy::PowerModelOptions o;
  o.idle_w = 100;
  o.tdp_w = 700;
  o.devices = 2;
  o.utilisation = 0.5;
  o.entry = "nvidia-h100-sxm";
  energy::PowerModelMeter m(o);
  ASSERT_TRUE(m.Start().ok());
  usleep(20000);
  EnergyReading r;
  ASSERT_TRUE(m.StopReading(&r).ok());
  EXPECT_EQ(r.source, "model");
  EXPECT_NEAR(r.joules, 2 * (100 + 600 * 0.5) * r.window_s, 1e-9);
  EXPECT_EQ(r.domains[0].id, "nvidia-h100-sxm");

  // Falls back to the model when the counter cannot be read, and says why.
  energy::PowerModelOptions bad;  // tdp 0: the primary fails to start
  energy::FallbackMeter fb(std::make_unique<energy::PowerModelMeter>(bad),
                           std::make_unique<energy::PowerModelMeter>(o));
  ASSERT_TRUE(fb.Start().ok());
  ASSERT_TRUE(fb.StopReading(&r).ok());
  ASSERT_GE(r.notes.size(), 2u);
  EXPECT_NE(r.notes[0].find("model unavailable"), std::string::npos) << r.notes[0];
}

}  // namespace
}  // namespace cb

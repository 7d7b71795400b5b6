#include "results/compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "harness/stats.h"
#include "results/record_json.h"
#include "results/welch.h"
#include "tests/unit/record_testing.h"

namespace cb {
namespace {

using fixtures::MakeMetric;

Metric FromSamples(const std::string& name, const std::string& unit,
                   const std::vector<double>& samples) {
  Metric m = MakeMetric(name, unit, Provenance::kMeasured, Median(samples));
  m.has_distribution = true;
  m.dist = Summarize(samples);
  return m;
}

/// A run whose throughput and latency come from `tps` (decode tokens/s per repetition) and
/// whose cost is modelled from the median throughput, as the harness does.
RunRecord MakeRun(const std::vector<double>& tps,
                  const std::string& end_time = "2026-01-01T00:00:00Z") {
  RunRecord r;
  r.run_id = "run-" + end_time;
  r.start_time = end_time;
  r.end_time = end_time;
  r.host = "vm";
  r.workload.model.name = "tiny";
  r.workload.backend = "cpu";
  r.workload.scenario = "offline";
  r.workload.batch = 4;
  r.workload.prompt_len = 16;
  r.workload.gen_len = 8;
  r.device.backend = "cpu";
  r.device.name = "test cpu";
  std::vector<double> tpot;
  for (double t : tps) tpot.push_back(r.workload.batch / t);
  r.metrics.push_back(FromSamples("decode_tokens_per_second", "tokens/s", tps));
  r.metrics.push_back(FromSamples("tpot_seconds", "s", tpot));
  r.metrics.push_back(MakeMetric("cost_usd_per_million_output_tokens", "USD/Mtok",
                                 Provenance::kModelled, 1e6 / Median(tps)));
  r.metrics.push_back(MakeMetric("average_power_watts", "W", Provenance::kModelled, 3));
  return r;
}

std::vector<double> Draw(std::mt19937* rng, double mean, double cv, int n) {
  std::normal_distribution<double> d(mean, mean * cv);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(d(*rng));
  return out;
}

std::vector<double> Scaled(std::vector<double> v, double k) {
  for (double& x : v) x *= k;
  return v;
}

const MetricComparison* Find(const CompareReport& r, const std::string& name) {
  for (const auto& s : r.series) {
    for (const auto& m : s.metrics) {
      if (m.name == name) return &m;
    }
  }
  return nullptr;
}

TEST(WelchTest, MatchesTablesOfTheTDistribution) {
  EXPECT_NEAR(RegularizedIncompleteBeta(1, 1, 0.3), 0.3, 1e-12);
  // Two-sided 5% critical values: t(18) = 2.1009 (n = 10 each), t(4) = 2.7764 (n = 3 each).
  const double sd = 2;
  EXPECT_NEAR(WelchTwoSidedP(10, sd, 10, 10 + 2.1009 * sd * std::sqrt(2.0 / 10), sd, 10), 0.05,
              5e-4);
  EXPECT_NEAR(WelchTwoSidedP(10, sd, 3, 10 - 2.7764 * sd * std::sqrt(2.0 / 3), sd, 3), 0.05, 5e-4);
  // 1% critical value of t(18): 2.8784.
  EXPECT_NEAR(WelchTwoSidedP(0, 1, 10, 2.8784 * std::sqrt(0.2), 1, 10), 0.01, 2e-4);
  EXPECT_EQ(WelchTwoSidedP(1, 0, 5, 1, 0, 5), 1);
  EXPECT_EQ(WelchTwoSidedP(1, 0, 5, 2, 0, 5), 0);
  EXPECT_EQ(WelchTwoSidedP(1, 1, 1, 2, 1, 5), 1);  // one sample: no test
}

TEST(WelchTest, MannWhitneyMatchesTheNormalApproximation) {
  // U = 0 for 5 vs 5 fully separated: z = (12.5 - 0.5) / sqrt(25 x 11 / 12), p = 0.0122.
  EXPECT_NEAR(MannWhitneyTwoSidedP({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}), 0.0122, 1e-4);
  EXPECT_NEAR(MannWhitneyTwoSidedP({6, 7, 8, 9, 10}, {1, 2, 3, 4, 5}), 0.0122, 1e-4);
  EXPECT_GT(MannWhitneyTwoSidedP({1, 3, 5, 7, 9}, {2, 4, 6, 8, 10}), 0.5);
  EXPECT_EQ(MannWhitneyTwoSidedP({1, 1, 1}, {1, 1, 1}), 1);  // all tied
  EXPECT_EQ(MannWhitneyTwoSidedP({}, {1, 2}), 1);
}

/// An offline run with raw samples: decode steps of ~1 ms (2% spread) of which a few were
/// preempted for 0.3 s, as on a busy machine; every time is multiplied by `k`.
RunRecord NoisyOfflineRun(std::mt19937* rng, double k) {
  RunRecord r = MakeRun({100, 100, 100});
  r.workload.scenario = "offline";
  std::normal_distribution<double> step(1e-3, 2e-5);
  std::vector<double> all_steps, prefill, tps;
  r.samples.clear();
  for (int rep = 0; rep < 5; ++rep) {
    RepetitionSample s;
    s.prefill_s = k * std::fabs(step(*rng)) * 4;
    for (int i = 0; i < 16; ++i) {
      const bool preempted = (rep * 16 + i) % 27 == 5;
      s.decode_step_s.push_back(k * (preempted ? 0.3 : step(*rng)));
    }
    double decode = 0;
    for (double d : s.decode_step_s) decode += d;
    s.e2e_s = s.prefill_s + decode;
    all_steps.insert(all_steps.end(), s.decode_step_s.begin(), s.decode_step_s.end());
    prefill.push_back(s.prefill_s);
    tps.push_back(r.workload.batch * 16 / decode);
    r.samples.push_back(s);
  }
  r.metrics = {FromSamples("tpot_seconds", "s", all_steps),
               FromSamples("ttft_seconds", "s", prefill),
               FromSamples("decode_tokens_per_second", "tokens/s", tps)};
  return r;
}

TEST(CompareTest, RankTestOnRawSamplesSeesThroughPreemptionOutliers) {
  std::mt19937 rng(11);
  const RunRecord base = NoisyOfflineRun(&rng, 1.0);
  const RunRecord slow = NoisyOfflineRun(&rng, 1.25);
  const CompareReport r = CompareRuns({{"b", base}}, {{"n", slow}}, {});
  const MetricComparison* tpot = Find(r, "tpot_seconds");
  ASSERT_NE(tpot, nullptr);
  EXPECT_EQ(tpot->test, "mann-whitney");
  EXPECT_TRUE(tpot->regression) << tpot->verdict << " p=" << tpot->p_value;
  // The mean and stddev are dominated by the outliers: Welch's test alone would miss it.
  const Metric* mb = base.FindMetric("tpot_seconds");
  const Metric* mn = slow.FindMetric("tpot_seconds");
  EXPECT_GT(WelchTwoSidedP(mb->dist.mean, mb->dist.stddev, 80, mn->dist.mean, mn->dist.stddev, 80),
            0.05);
  EXPECT_TRUE(Find(r, "ttft_seconds")->regression);

  const RunRecord again = NoisyOfflineRun(&rng, 1.0);
  const CompareReport quiet = CompareRuns({{"b", base}}, {{"n", again}}, {});
  EXPECT_FALSE(quiet.HasRegression()) << CompareToMarkdown(quiet);
}

TEST(CompareTest, BetterDirectionFromNameAndUnit) {
  EXPECT_EQ(BetterDirection("decode_tokens_per_second", "tokens/s"), Better::kHigher);
  EXPECT_EQ(BetterDirection("mfu_decode_ratio", "ratio"), Better::kHigher);
  EXPECT_EQ(BetterDirection("tokens_per_kwh", "tokens/kWh"), Better::kHigher);
  EXPECT_EQ(BetterDirection("goodput_requests_per_second", "requests/s"), Better::kHigher);
  EXPECT_EQ(BetterDirection("ttft_seconds", "s"), Better::kLower);
  EXPECT_EQ(BetterDirection("e2e_latency_seconds", "s"), Better::kLower);
  EXPECT_EQ(BetterDirection("cost_usd_per_million_tokens", "USD/Mtok"), Better::kLower);
  EXPECT_EQ(BetterDirection("energy_joules_per_token", "J/token"), Better::kLower);
  EXPECT_EQ(BetterDirection("harness_overhead_ratio", "ratio"), Better::kNeither);
  EXPECT_EQ(BetterDirection("average_power_watts", "W"), Better::kNeither);
  EXPECT_EQ(BetterDirection("something_new", "widgets"), Better::kNeither);
}

TEST(CompareTest, FindsAnInjectedTwentyPercentSlowdown) {
  std::mt19937 rng(42);
  const std::vector<double> tps = Draw(&rng, 100, 0.03, 5);
  const std::vector<LoadedRun> base = {{"base.json", MakeRun(tps)}};
  const std::vector<LoadedRun> next = {{"new.json", MakeRun(Scaled(tps, 0.8))}};
  const CompareReport r = CompareRuns(base, next, CompareOptions{});
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_TRUE(r.HasRegression());  // `compare` exits 1

  const MetricComparison* d = Find(r, "decode_tokens_per_second");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->test, "welch");
  EXPECT_LT(d->p_value, 0.001);
  EXPECT_NEAR(d->change_pct, -20, 1e-9);
  EXPECT_TRUE(d->regression);
  EXPECT_EQ(d->verdict, "regression");

  const MetricComparison* tpot = Find(r, "tpot_seconds");
  ASSERT_NE(tpot, nullptr);
  EXPECT_TRUE(tpot->regression);  // 25% longer, lower is better

  // The modelled cost has no distribution: it takes the test of the throughput it derives from.
  const MetricComparison* cost = Find(r, "cost_usd_per_million_output_tokens");
  ASSERT_NE(cost, nullptr);
  EXPECT_EQ(cost->test, "welch");
  EXPECT_DOUBLE_EQ(cost->p_value, d->p_value);
  EXPECT_EQ(cost->spread_of, "decode_tokens_per_second");
  EXPECT_TRUE(cost->regression);

  const MetricComparison* power = Find(r, "average_power_watts");
  ASSERT_NE(power, nullptr);
  EXPECT_FALSE(power->regression);
  EXPECT_EQ(power->verdict, "not judged: no better direction");

  // The same change the other way is an improvement, not a regression.
  const CompareReport back = CompareRuns(next, base, CompareOptions{});
  EXPECT_FALSE(back.HasRegression());
  EXPECT_GE(back.improvements, 3);

  const std::string md = CompareToMarkdown(r);
  EXPECT_NE(md.find("| decode_tokens_per_second | tokens/s | measured |"), std::string::npos) << md;
  EXPECT_NE(md.find("-20.0%"), std::string::npos);
  EXPECT_NE(md.find("**regression**"), std::string::npos);
  const nlohmann::json j = CompareToJson(r);
  EXPECT_EQ(j["exit_code"], 1);
  EXPECT_EQ(j["regressions"], r.regressions);
}

TEST(CompareTest, SamplesFromTheSameDistributionStayQuiet) {
  // 200 pairs of runs with 3% spread (5 repetitions each): with a 5% threshold and the noise
  // test at 0.05 a false regression needs a significant swing beyond 5%, which is rare.
  std::mt19937 rng(1234);
  int noisy = 0;
  for (int i = 0; i < 200; ++i) {
    const std::vector<LoadedRun> base = {{"b.json", MakeRun(Draw(&rng, 100, 0.03, 5))}};
    const std::vector<LoadedRun> next = {{"n.json", MakeRun(Draw(&rng, 100, 0.03, 5))}};
    noisy += CompareRuns(base, next, CompareOptions{}).HasRegression();
  }
  EXPECT_LE(noisy, 4) << "false regressions in 200 comparisons of identical distributions";
}

TEST(CompareTest, LargeSpreadHidesASmallChangeAFixedPercentageWouldFlag) {
  std::mt19937 rng(9);
  const std::vector<double> tps = Draw(&rng, 100, 0.25, 3);
  const CompareReport r =
      CompareRuns({{"b", MakeRun(tps)}}, {{"n", MakeRun(Scaled(tps, 0.9))}}, {});
  const MetricComparison* d = Find(r, "decode_tokens_per_second");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->worse);
  EXPECT_FALSE(d->significant);
  EXPECT_EQ(d->verdict, "within noise");
  EXPECT_FALSE(r.HasRegression());
}

TEST(CompareTest, SpreadFallbackWhereOnlyOneSideRecordedADistribution) {
  std::mt19937 rng(8);
  const std::vector<double> tps = Draw(&rng, 100, 0.04, 5);
  RunRecord next = MakeRun(Scaled(tps, 0.8));
  for (Metric& m : next.metrics) m.has_distribution = false;  // e.g. an older result file
  const CompareReport r = CompareRuns({{"b", MakeRun(tps)}}, {{"n", next}}, {});
  const MetricComparison* cost = Find(r, "cost_usd_per_million_output_tokens");
  ASSERT_NE(cost, nullptr);
  EXPECT_EQ(cost->test, "spread");
  const double cv = MakeRun(tps).FindMetric("decode_tokens_per_second")->dist.cv;
  EXPECT_NEAR(cost->noise_pct, 2 * cv * 100, 1e-9);
  EXPECT_TRUE(cost->regression);  // +25% against a band of about 2 x 4%
}

TEST(CompareTest, ThresholdBoundsTheRegression) {
  std::mt19937 rng(5);
  const std::vector<double> tps = Draw(&rng, 100, 0.01, 5);
  CompareOptions opts;
  opts.threshold_pct = 26;  // TPOT is 25% longer, throughput 20% lower
  const CompareReport r =
      CompareRuns({{"b", MakeRun(tps)}}, {{"n", MakeRun(Scaled(tps, 0.8))}}, opts);
  EXPECT_FALSE(r.HasRegression());
  EXPECT_EQ(Find(r, "decode_tokens_per_second")->verdict, "below threshold");
}

TEST(CompareTest, MatchesSeriesUsesTheNewestAndListsTheRest) {
  std::mt19937 rng(3);
  const auto tps = Draw(&rng, 100, 0.02, 5);
  RunRecord other = MakeRun(tps);
  other.workload.batch = 16;  // another series
  RunRecord old_new = MakeRun(Scaled(tps, 0.5), "2026-01-02T00:00:00Z");
  RunRecord newest = MakeRun(tps, "2026-01-03T00:00:00Z");
  const std::vector<LoadedRun> base = {{"base.json", MakeRun(tps)}, {"base-b16.json", other}};
  const std::vector<LoadedRun> next = {{"z-newest.json", newest}, {"a-old.json", old_new}};
  const CompareReport r = CompareRuns(base, next, {});
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(r.series[0].new_path, "z-newest.json");
  EXPECT_EQ(r.series[0].new_runs, 2);
  EXPECT_FALSE(r.HasRegression());  // the slow run is older than the newest
  ASSERT_EQ(r.only_base.size(), 1u);
  EXPECT_EQ(r.only_base[0].path, "base-b16.json");
  EXPECT_TRUE(r.only_new.empty());
  EXPECT_NE(CompareToMarkdown(r).find("Only in BASE"), std::string::npos);
}

TEST(CompareTest, ProvenanceMismatchAndBadRunsAreListedNotJudged) {
  std::mt19937 rng(4);
  const auto tps = Draw(&rng, 100, 0.02, 5);
  RunRecord modelled = MakeRun(Scaled(tps, 0.5));
  for (Metric& m : modelled.metrics) {
    if (m.name == "decode_tokens_per_second") m.how = Provenance::kModelled;
  }
  CompareReport r = CompareRuns({{"b", MakeRun(tps)}}, {{"n", modelled}}, {});
  const MetricComparison* d = Find(r, "decode_tokens_per_second");
  EXPECT_FALSE(d->regression);
  EXPECT_EQ(d->verdict, "not judged: measured in base, modelled in new");
  ASSERT_FALSE(r.series[0].notes.empty());
  EXPECT_NE(r.series[0].notes.back().find("decode_tokens_per_second"), std::string::npos);

  RunRecord invalid = MakeRun(Scaled(tps, 0.5));
  invalid.status = "invalid";
  invalid.status_message = "unstable";
  r = CompareRuns({{"b", MakeRun(tps)}}, {{"n", invalid}}, {});
  EXPECT_FALSE(r.HasRegression());
  EXPECT_EQ(Find(r, "decode_tokens_per_second")->verdict, "not judged: a run is not ok");
  EXPECT_NE(r.series[0].notes[0].find("new run is invalid: unstable"), std::string::npos);

  RunRecord failed = MakeRun(tps);
  failed.status = "failed";
  failed.metrics.clear();
  r = CompareRuns({{"b", MakeRun(tps)}}, {{"n", failed}}, {});
  EXPECT_TRUE(r.HasRegression());  // ran before, fails now
}

TEST(CompareTest, UnstableRunsAreNotJudgedAndServingRatesAreSeparateSeries) {
  std::mt19937 rng(21);
  const auto tps = Draw(&rng, 100, 0.02, 5);
  RunRecord unstable = MakeRun(Scaled(tps, 0.5));
  unstable.validity = ValidityRecord{};
  unstable.validity->label = "unstable";
  unstable.validity->reasons = {"cv 0.4 above --max-cv 0.1"};
  CompareReport r = CompareRuns({{"b", MakeRun(tps)}}, {{"n", unstable}}, {});
  EXPECT_FALSE(r.HasRegression());
  ASSERT_FALSE(r.series[0].notes.empty());
  EXPECT_NE(r.series[0].notes[0].find("new run is unstable: cv 0.4"), std::string::npos)
      << r.series[0].notes[0];

  RunRecord rate2 = MakeRun(tps), rate4 = MakeRun(Scaled(tps, 0.5));
  rate2.workload.scenario = rate4.workload.scenario = "server";
  rate2.serving = ServingRecord{};
  rate2.serving->load = "poisson";
  rate2.serving->target_rate = 2;
  rate4.serving = rate2.serving;
  rate4.serving->target_rate = 4;
  r = CompareRuns({{"b2", rate2}, {"b4", rate4}}, {{"n2", rate2}, {"n4", rate4}}, {});
  EXPECT_EQ(r.series.size(), 2u);  // not collapsed into one
  EXPECT_FALSE(r.HasRegression());
  EXPECT_NE(r.series[0].label.find("rate 2/s"), std::string::npos) << r.series[0].label;
}

class LoadRunFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("cb_compare_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "runs");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& rel, const std::string& text) { std::ofstream(dir_ / rel) << text; }
  std::filesystem::path dir_;
};

TEST_F(LoadRunFilesTest, ReadsRunsIgnoresOtherJsonAndNamesBadFiles) {
  std::vector<LoadedRun> runs;
  Status s = LoadRunFiles((dir_ / "missing").string(), &runs);
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("missing"), std::string::npos);

  s = LoadRunFiles(dir_.string(), &runs);
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("no clusterbench results"), std::string::npos);

  Write("runs/a.json", ToJson(fixtures::PopulatedRecord()).dump());
  Write("ceilings.json", R"({"host": "vm"})");
  Write("runs/.a.json.tmp.json", "{half");
  ASSERT_TRUE(LoadRunFiles(dir_.string(), &runs).ok());
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].record.run_id, fixtures::PopulatedRecord().run_id);

  s = LoadRunFiles((dir_ / "ceilings.json").string(), &runs);  // named explicitly: must be a run
  EXPECT_EQ(s.ExitCode(), 2);

  Write("runs/broken.json", "{\"run\": ");
  s = LoadRunFiles(dir_.string(), &runs);
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("broken.json"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cb

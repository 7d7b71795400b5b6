#include "results/report.h"

#include <gtest/gtest.h>

#include <set>

#include "results/report_html.h"
#include "tests/unit/record_testing.h"

namespace cb {
namespace {

using fixtures::MakeMetric;

/// An ok run at `batch` with the given TPOT (s) and decode throughput (tokens/s).
LoadedRun Point(int batch, double tpot, double tps, const std::string& time) {
  RunRecord r;
  r.run_id = "b" + std::to_string(batch) + "-" + time;
  r.start_time = r.end_time = time;
  r.host = "vm";
  r.workload.model.name = "tiny";
  r.workload.backend = "cpu";
  r.workload.scenario = "offline";
  r.workload.batch = batch;
  r.device.name = "cpu0";
  r.metrics = {MakeMetric("tpot_seconds", "s", Provenance::kMeasured, tpot),
               MakeMetric("decode_tokens_per_second", "tokens/s", Provenance::kMeasured, tps),
               MakeMetric("cost_usd_per_million_output_tokens", "USD/Mtok", Provenance::kModelled,
                          100 / tps),
               MakeMetric("energy_joules_per_token", "J/token", Provenance::kModelled, 1 / tps)};
  return {"runs/" + r.run_id + ".json", r};
}

TEST(ReportTest, FrontierPointFromTpotAndThroughputPerDevice) {
  LoadedRun run = Point(4, 0.02, 400, "2026-01-01T00:00:00Z");
  auto p = RunFrontierPoint(run.record);
  ASSERT_TRUE(p.has_value());
  EXPECT_DOUBLE_EQ(p->interactivity, 50);  // 1 / 20 ms
  EXPECT_DOUBLE_EQ(p->throughput_per_device, 400);
  EXPECT_DOUBLE_EQ(p->usd_per_million_tokens, 0.25);

  run.record.cost = CostRecord{};
  run.record.cost->devices = 2;
  EXPECT_DOUBLE_EQ(RunFrontierPoint(run.record)->throughput_per_device, 200);

  run.record.status = "invalid";
  EXPECT_FALSE(RunFrontierPoint(run.record).has_value());
}

TEST(ReportTest, DataHasOneFrontierPerModelWithEveryDeviceAndTheNewestRunPerSeries) {
  std::vector<LoadedRun> runs = {
      Point(1, 0.010, 100, "2026-01-01T00:00:00Z"),
      Point(2, 0.020, 90, "2026-01-01T00:01:00Z"),   // dominated by batch 1
      Point(4, 0.025, 400, "2026-01-01T00:02:00Z"),  // replaced by the newer batch-4 run
      Point(4, 0.050, 200, "2026-01-02T00:00:00Z"),
  };
  LoadedRun other = Point(4, 0.005, 5000, "2026-01-02T00:00:00Z");  // another device
  other.record.device.name = "gpu0";
  other.record.workload.backend = "sim";
  other.record.run_id = "gpu";
  for (Metric& m : other.record.metrics) m.how = Provenance::kModelled;
  runs.push_back(other);
  const nlohmann::json d = ReportData(runs, "dir");
  ASSERT_EQ(d["frontiers"].size(), 1u);  // one model, both devices on its chart
  const auto& f = d["frontiers"][0];
  EXPECT_EQ(f["model"], "tiny");
  ASSERT_EQ(f["series"].size(), 2u);
  const auto& cpu = f["series"][0];
  EXPECT_EQ(cpu["name"], "cpu0 · bf16 (cpu)");
  EXPECT_EQ(cpu["how"], "measured");
  EXPECT_EQ(cpu["points"].size(), 3u);  // the newest run of each series
  ASSERT_EQ(cpu["frontier"].size(), 2u);
  EXPECT_DOUBLE_EQ(cpu["frontier"][0]["x"].get<double>(), 20);  // batch 4 at 50 ms
  EXPECT_DOUBLE_EQ(cpu["frontier"][1]["x"].get<double>(), 100);
  std::set<std::string> labels;
  for (const auto& p : cpu["points"]) labels.insert(p["label"].get<std::string>());
  EXPECT_EQ(labels, (std::set<std::string>{"b1", "b2", "b4"}));
  EXPECT_EQ(f["series"][1]["how"], "modelled");
  EXPECT_DOUBLE_EQ(f["series"][1]["points"][0]["usd"].get<double>(), 0.02);
  EXPECT_EQ(d["runs_without_frontier_point"], 1);  // the older batch-4 run

  ASSERT_EQ(d["usd_bars"].size(), 4u);  // series batch 1, 2, 4 and the other device
  bool saw_newest = false;
  for (const auto& b : d["usd_bars"]) {
    EXPECT_EQ(b["how"], "modelled");
    saw_newest |= b["series"].get<std::string>().find(" b4 ") != std::string::npos &&
                  b["value"].get<double>() == 0.5;  // 100 / 200 tokens/s: the newer run
  }
  EXPECT_TRUE(saw_newest) << d["usd_bars"].dump();
  EXPECT_EQ(d["joules_bars"].size(), 4u);
  EXPECT_EQ(d["runs"].size(), 5u);
  EXPECT_TRUE(d["nights"].is_null());  // not a nightly layout
}

TEST(ReportTest, SinceLastNightComparesTheLatestNightWithTheOneBefore) {
  std::vector<LoadedRun> runs;
  for (const auto& [night, tps] : {std::pair{"2026-01-01T02-30-00Z", 100.0},
                                   {"2026-01-02T02-30-00Z", 100.0},
                                   {"2026-01-03T02-30-00Z", 50.0}}) {
    LoadedRun r = Point(1, 1 / tps, tps, std::string(night).substr(0, 10) + "T03:00:00Z");
    r.path = std::string("results/nights/") + night + "/runs/x.json";
    runs.push_back(r);
  }
  const nlohmann::json n = SinceLastNight(runs);
  ASSERT_FALSE(n.is_null());
  EXPECT_EQ(n["base"], "2026-01-02T02-30-00Z");
  EXPECT_EQ(n["new"], "2026-01-03T02-30-00Z");
  ASSERT_EQ(n["series"].size(), 1u);
  bool saw = false;
  for (const auto& m : n["series"][0]["metrics"]) {
    if (m["name"] != "decode_tokens_per_second") continue;
    saw = true;
    EXPECT_DOUBLE_EQ(m["change_pct"].get<double>(), -50);
  }
  EXPECT_TRUE(saw) << n.dump();
  const std::string html = NightsHtml(n);
  EXPECT_NE(html.find("id=\"since-last-night\""), std::string::npos);
  EXPECT_NE(html.find("-50.0%"), std::string::npos) << html;
  EXPECT_EQ(NightsHtml(nullptr), "");
  EXPECT_TRUE(SinceLastNight({runs[0]}).is_null());
}

TEST(ReportTest, HtmlEscapesEverythingItEmbeds) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const nlohmann::json doc = {{"name", "</script><!-- & \u2028"}};
  const std::string safe = ScriptSafeJson(doc);
  EXPECT_EQ(safe.find('<'), std::string::npos);
  EXPECT_EQ(safe.find('>'), std::string::npos);
  EXPECT_EQ(safe.find('&'), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(safe), doc);

  LoadedRun run = Point(1, 0.01, 100, "2026-01-01T00:00:00Z");
  run.record.workload.model.name = "</script><script>alert(1)</script>";
  run.record.host = "<img src=x onerror=alert(2)>";
  const std::string page = RenderReportHtml({run}, "<dir>");
  size_t scripts = 0;
  for (size_t at = page.find("</script>"); at != std::string::npos;
       at = page.find("</script>", at + 1)) {
    ++scripts;
  }
  EXPECT_EQ(scripts, 2u);  // the data block's and the drawing script's
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("<dir>"), std::string::npos);
  EXPECT_EQ(page.find("<link"), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
}

TEST(ReportTest, FormatsAreMdCsvHtml) {
  const std::vector<LoadedRun> runs = {Point(1, 0.01, 100, "2026-01-01T00:00:00Z")};
  std::string out;
  ASSERT_TRUE(RenderReport(runs, "md", "d", &out).ok());
  EXPECT_NE(out.find("| tiny"), std::string::npos) << out;
  ASSERT_TRUE(RenderReport(runs, "csv", "d", &out).ok());
  EXPECT_EQ(out.rfind("run_id,", 0), 0u);
  ASSERT_TRUE(RenderReport(runs, "html", "d", &out).ok());
  EXPECT_EQ(out.rfind("<!DOCTYPE html>", 0), 0u);
  const Status s = RenderReport(runs, "pdf", "d", &out);
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_NE(s.message().find("md, csv, json, jsonl, html"), std::string::npos);
}

}  // namespace
}  // namespace cb

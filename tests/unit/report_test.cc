#include "results/report.h"

#include <gtest/gtest.h>

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

TEST(ReportTest, DataHasTheFrontierPerDeviceAndBarsOfTheNewestRunPerSeries) {
  const std::vector<LoadedRun> runs = {
      Point(1, 0.010, 100, "2026-01-01T00:00:00Z"),
      Point(2, 0.020, 90, "2026-01-01T00:01:00Z"),  // dominated by batch 1
      Point(4, 0.025, 400, "2026-01-01T00:02:00Z"),
      Point(4, 0.050, 200, "2026-01-02T00:00:00Z"),  // newer run of the batch-4 series
  };
  const nlohmann::json d = ReportData(runs, "dir");
  ASSERT_EQ(d["frontiers"].size(), 1u);
  const auto& f = d["frontiers"][0];
  EXPECT_EQ(f["points"].size(), 4u);
  ASSERT_EQ(f["frontier"].size(), 2u);
  EXPECT_DOUBLE_EQ(f["frontier"][0]["x"].get<double>(), 40);  // batch 4 at 25 ms
  EXPECT_DOUBLE_EQ(f["frontier"][1]["x"].get<double>(), 100);
  int on = 0;
  for (const auto& p : f["points"]) on += p["on_frontier"].get<bool>();
  EXPECT_EQ(on, 2);

  ASSERT_EQ(d["usd_bars"].size(), 3u);  // series batch 1, 2, 4
  bool saw_newest = false;
  for (const auto& b : d["usd_bars"]) {
    EXPECT_EQ(b["how"], "modelled");
    saw_newest |= b["series"].get<std::string>().find(" b4 ") != std::string::npos &&
                  b["value"].get<double>() == 0.5;  // 100 / 200 tokens/s: the newer run
  }
  EXPECT_TRUE(saw_newest) << d["usd_bars"].dump();
  EXPECT_EQ(d["joules_bars"].size(), 3u);
  EXPECT_EQ(d["runs"].size(), 4u);
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
  EXPECT_NE(s.message().find("md, csv, html"), std::string::npos);
}

}  // namespace
}  // namespace cb

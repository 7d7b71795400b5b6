// The RunRecord -> Prometheus mapping, the Pushgateway URL parser and the exposition text.
// (Against the real prometheus, pushgateway and promtool: tests/integration/prometheus_test.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "results/prometheus/metrics_mapping.h"
#include "results/prometheus/prometheus_sink.h"
#include "results/prometheus/pushgateway_admin.h"
#include "results/run_status.h"
#include "tests/unit/record_testing.h"

namespace cb::prom {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;

const MetricFamily* FindFamily(const FamilySet& set, const std::string& name) {
  for (const MetricFamily& f : set.Families()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string LabelValue(const ClientMetric& m, const std::string& name) {
  for (const auto& l : m.label) {
    if (l.name == name) return l.value;
  }
  return "";
}

const ClientMetric* FindSample(const FamilySet& set, const std::string& family,
                               const std::string& label, const std::string& value) {
  const MetricFamily* f = FindFamily(set, family);
  if (!f) return nullptr;
  for (const ClientMetric& m : f->metric) {
    if (label.empty() || LabelValue(m, label) == value) return &m;
  }
  return nullptr;
}

TEST(PrometheusMapping, OkRunHasFiguresWithProvenanceAndSeriesLabels) {
  RunRecord r = fixtures::PopulatedRecord();
  FamilySet set;
  set.AddRun(r);
  const ClientMetric* decode =
      FindSample(set, "clusterbench_throughput_tokens_per_second", "phase", "decode");
  ASSERT_NE(decode, nullptr);
  EXPECT_DOUBLE_EQ(decode->gauge.value, 45.678);
  EXPECT_EQ(LabelValue(*decode, "how"), "measured");
  EXPECT_EQ(LabelValue(*decode, "model"), "llama-3.2-1b");
  EXPECT_EQ(LabelValue(*decode, "device"), "AMD EPYC 9654 (2 cores)");
  EXPECT_EQ(LabelValue(*decode, "dtype"), "fp16");
  EXPECT_EQ(LabelValue(*decode, "batch"), "8");
  EXPECT_EQ(LabelValue(*decode, "cluster"), "bench-01.example");
  // The host and UUID are not series labels (a job moving node must not start a new series);
  // clusterbench_run_info carries them for joins with DCGM-exporter.
  for (const auto& l : decode->label) EXPECT_TRUE(l.name != "Hostname" && l.name != "UUID");
  const ClientMetric* info = FindSample(set, "clusterbench_run_info", "", "");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(LabelValue(*info, "Hostname"), "bench-01");
  EXPECT_EQ(LabelValue(*info, "UUID"), "cpu-0000");
  EXPECT_EQ(LabelValue(*info, "model"), "llama-3.2-1b");
  EXPECT_EQ(LabelValue(*info, "version"), "0.1.0");
  EXPECT_EQ(FindFamily(set, "clusterbench_info"), nullptr);

  const ClientMetric* tpot = FindSample(set, "clusterbench_latency_seconds", "kind", "tpot");
  ASSERT_NE(tpot, nullptr);
  EXPECT_EQ(FindFamily(set, "clusterbench_latency_seconds")->type, prometheus::MetricType::Summary);
  EXPECT_EQ(LabelValue(*tpot, "how"), "extrapolated");
  EXPECT_EQ(tpot->summary.sample_count, 5u);
  ASSERT_EQ(tpot->summary.quantile.size(), 5u);
  EXPECT_DOUBLE_EQ(tpot->summary.quantile[3].quantile, 0.99);
  EXPECT_DOUBLE_EQ(tpot->summary.quantile[3].value, 0.0061234);

  const ClientMetric* flops = FindSample(set, "clusterbench_achieved_flops_per_second", "", "");
  ASSERT_NE(flops, nullptr);
  EXPECT_EQ(LabelValue(*flops, "how"), "modelled");
  const ClientMetric* success =
      FindSample(set, "clusterbench_last_success_timestamp_seconds", "", "");
  ASSERT_NE(success, nullptr);
  EXPECT_DOUBLE_EQ(success->gauge.value, 1738288890.0);  // 2025-01-31T02:01:30Z
  EXPECT_EQ(FindSample(set, "clusterbench_run_status", "status", "ok")->gauge.value, 1);
  EXPECT_EQ(FindSample(set, "clusterbench_run_status", "status", "failed")->gauge.value, 0);

  // Never a run id, anywhere.
  for (const MetricFamily& f : set.Families()) {
    for (const ClientMetric& m : f.metric) {
      for (const auto& l : m.label) EXPECT_NE(l.value, r.run_id) << f.name << " " << l.name;
    }
  }
}

TEST(PrometheusMapping, SkewedMoeRoutingIsItsOwnSeries) {
  RunRecord uniform = fixtures::PopulatedRecord();
  uniform.workload.model.moe.num_experts = 8;
  uniform.workload.model.moe.experts_per_token = 2;
  uniform.workload.model.moe.expert_ffn_size = 32;
  RunRecord skewed = uniform;
  skewed.workload.model.routing_zipf_s = 1.5;
  EXPECT_NE(SeriesKey(uniform), SeriesKey(skewed));
  FamilySet set;
  set.AddRun(skewed);
  const ClientMetric* decode =
      FindSample(set, "clusterbench_throughput_tokens_per_second", "phase", "decode");
  ASSERT_NE(decode, nullptr);
  EXPECT_EQ(LabelValue(*decode, "routing"), "zipf:1.5");
  FamilySet plain;
  plain.AddRun(uniform);
  decode = FindSample(plain, "clusterbench_throughput_tokens_per_second", "phase", "decode");
  ASSERT_NE(decode, nullptr);
  for (const auto& l : decode->label) EXPECT_NE(l.name, "routing");
}

TEST(PrometheusMapping, UnknownMetricsAreExportedGenerically) {
  RunRecord r = fixtures::PopulatedRecord();
  r.metrics.push_back(fixtures::MakeMetric("queue_wait_seconds", "s", Provenance::kModelled, 2.5));
  r.metrics.push_back(fixtures::MakeMetric("Odd-Name.total", "x", Provenance::kMeasured, 1));
  r.metrics.push_back(
      fixtures::MakeMetric("tokens_per_kwh", "tokens/kWh", Provenance::kModelled, 7.2e6));
  FamilySet set;
  set.AddRun(r);
  const ClientMetric* q = FindSample(set, "clusterbench_queue_wait_seconds", "", "");
  ASSERT_NE(q, nullptr);
  EXPECT_DOUBLE_EQ(q->gauge.value, 2.5);
  EXPECT_EQ(LabelValue(*q, "how"), "modelled");
  EXPECT_NE(FindFamily(set, "clusterbench_odd_name"), nullptr);  // no _total on a gauge
  const ClientMetric* tpj = FindSample(set, "clusterbench_tokens_per_joule", "", "");
  ASSERT_NE(tpj, nullptr);
  EXPECT_DOUBLE_EQ(tpj->gauge.value, 2.0);
}

TEST(PrometheusMapping, BadRunShowsNoFiguresAndNoLastSuccess) {
  RunRecord r = fixtures::PopulatedRecord();
  r.status = "invalid";
  FamilySet set;
  set.AddRun(r);
  EXPECT_EQ(FindFamily(set, "clusterbench_throughput_tokens_per_second"), nullptr);
  EXPECT_EQ(FindFamily(set, "clusterbench_last_success_timestamp_seconds"), nullptr);
  EXPECT_EQ(FindSample(set, "clusterbench_run_valid", "", "")->gauge.value, 0);

  // For a push: NaN replaces the figures, and a known last success can be carried.
  FamilySet pushed;
  AddOptions opts;
  opts.nan_for_invalid = true;
  opts.last_success_s = 1000;
  pushed.AddRun(r, opts);
  const ClientMetric* decode =
      FindSample(pushed, "clusterbench_throughput_tokens_per_second", "phase", "decode");
  ASSERT_NE(decode, nullptr);
  EXPECT_TRUE(std::isnan(decode->gauge.value));
  EXPECT_EQ(FindSample(pushed, "clusterbench_last_success_timestamp_seconds", "", "")->gauge.value,
            1000);
}

TEST(PrometheusMapping, ExpositionHasEachFamilyOnceAndLatestPerSeries) {
  RunRecord a = fixtures::PopulatedRecord();
  RunRecord b = a;  // same series, later: replaces a
  b.metrics[1].value = 99;
  RunRecord c = a;  // another series
  c.workload.batch = 1;
  const std::string text = TextExposition({a, b, c});
  size_t types = 0;
  for (size_t at = 0; (at = text.find("# TYPE clusterbench_mfu_ratio ", at)) != std::string::npos;
       ++at) {
    ++types;
  }
  EXPECT_EQ(types, 1u);
  EXPECT_NE(text.find("phase=\"decode\",how=\"measured\"} 99\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("} 45.678"), text.rfind("} 45.678"));  // only series c has it
}

TEST(PrometheusMapping, ServingMetricsHaveDedicatedFamiliesWithHelp) {
  RunRecord r = fixtures::PopulatedRecord();
  r.workload.scenario = "server";
  r.workload.serving.rate = 20;
  const std::pair<const char*, const char*> serving[] = {
      {"goodput_requests_per_second", "requests/s"},
      {"slo_attainment_ratio", "ratio"},
      {"requests_per_second", "requests/s"},
      {"interactivity_tokens_per_second_per_user", "tokens/s"},
      {"output_tokens_per_second", "tokens/s"},
      {"output_tokens_per_second_per_device", "tokens/s"}};
  for (const auto& [name, unit] : serving) {
    r.metrics.push_back(fixtures::MakeMetric(name, unit, Provenance::kMeasured, 0.75));
  }
  FamilySet set;
  set.AddRun(r);
  for (const auto& [name, unit] : serving) {
    const MetricFamily* f = FindFamily(set, std::string("clusterbench_") + name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(f->help.find("no dedicated mapping"), std::string::npos) << f->help;
    EXPECT_EQ(f->help, FamilyHelp(f->name));
    EXPECT_FALSE(f->help.empty());
    ASSERT_EQ(f->metric.size(), 1u);
    EXPECT_DOUBLE_EQ(f->metric[0].gauge.value, 0.75);
    EXPECT_EQ(LabelValue(f->metric[0], "rate"), "20");
    EXPECT_EQ(LabelValue(f->metric[0], "how"), "measured");
  }
  // A failed server run sends NaN for its serving figures (a push replaces yesterday's), an
  // offline run none of them.
  r.status = "failed";
  FamilySet failed;
  AddOptions nan;
  nan.nan_for_invalid = true;
  failed.AddRun(r, nan);
  const ClientMetric* goodput =
      FindSample(failed, "clusterbench_goodput_requests_per_second", "", "");
  ASSERT_NE(goodput, nullptr);
  EXPECT_TRUE(std::isnan(goodput->gauge.value));
  r.workload.scenario = "offline";
  FamilySet offline;
  offline.AddRun(r, nan);
  EXPECT_EQ(FindFamily(offline, "clusterbench_goodput_requests_per_second"), nullptr);
}

TEST(PrometheusMapping, OneStatusFamilyConsistentWithTheValidityGauge) {
  const std::pair<const char*, const char*> cases[] = {{"ok", "valid"},    {"ok", "shortened"},
                                                       {"ok", "unstable"}, {"invalid", "valid"},
                                                       {"failed", ""},     {"skipped", ""}};
  for (const auto& [status, validity] : cases) {
    RunRecord r = fixtures::PopulatedRecord();
    r.status = status;
    if (*validity) {
      r.validity = ValidityRecord{};
      r.validity->label = validity;
    }
    const std::string expected = std::string(status) == "ok" ? validity : status;
    const std::string want = expected == "valid" ? "ok" : expected;
    EXPECT_EQ(RunStatusLabel(r), want);
    FamilySet set;
    set.AddRun(r);
    int ones = 0;
    for (const ClientMetric& m : FindFamily(set, "clusterbench_run_status")->metric) {
      ones += m.gauge.value == 1;
      if (m.gauge.value == 1) {
        EXPECT_EQ(LabelValue(m, "status"), want);
      }
    }
    EXPECT_EQ(ones, 1) << status << " " << validity;
    EXPECT_EQ(FindFamily(set, "clusterbench_run_status")->metric.size(), kRunStatusLabels.size());
    EXPECT_EQ(FindSample(set, "clusterbench_run_valid", "", "")->gauge.value, want == "ok" ? 1 : 0);
  }
}

TEST(PrometheusMapping, ClusterLabelFromTheClusterNameElseTheSystemElseTheHost) {
  RunRecord r = fixtures::PopulatedRecord();
  EXPECT_EQ(ClusterName(r), "bench-01.example");
  r.deployment = DeploymentRecord{};
  r.deployment->system = "huawei-cloudmatrix-384";
  EXPECT_EQ(ClusterName(r), "huawei-cloudmatrix-384");
  r.cluster_name = "lab-a";
  EXPECT_EQ(ClusterName(r), "lab-a");
  RunRecord other_node = r;  // the nightly job lands on another node of the same cluster
  other_node.host = "bench-02";
  other_node.device.uuid = "cpu-0001";
  EXPECT_EQ(SeriesKey(r), SeriesKey(other_node));
}

TEST(PrometheusMapping, LatestPerSeriesCarriesTheLastSuccess) {
  RunRecord ok = fixtures::PopulatedRecord();
  RunRecord bad = ok;
  bad.status = "failed";
  bad.end_time = "2025-02-01T02:01:30Z";
  const std::vector<RunRecord> records{bad, ok};  // `latest` points into them
  const std::vector<SeriesLatest> latest = LatestPerSeries(records);
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].latest->status, "failed");  // by end time, not order
  EXPECT_DOUBLE_EQ(latest[0].last_success_s, 1738288890.0);
}

TEST(PushgatewayAdmin, StaleGroupsAreOldOrSupersededLegacyOnes) {
  const double now = 1738288890.0, day = 86400;
  GatewayGroup fresh{{{"job", "clusterbench"}, {"model", "m"}}, now, now - day};
  GatewayGroup old{{{"job", "clusterbench"}, {"model", "o"}}, now, now - 15 * day};
  GatewayGroup other_job{{{"job", "node"}, {"model", "o"}}, now - 99 * day, -1};
  GatewayGroup legacy{
      {{"job", "clusterbench"}, {"model", "m"}, {"instance", "bench-01"}, {"Hostname", "bench-01"}},
      now,
      now - day};
  const std::vector<std::map<std::string, std::string>> current = {fresh.labels};
  EXPECT_EQ(StaleReason(fresh, "clusterbench", now, 14, current), "");
  EXPECT_NE(StaleReason(old, "clusterbench", now, 14, current).find("not seen for 15.0 days"),
            std::string::npos);
  EXPECT_EQ(StaleReason(other_job, "clusterbench", now, 14, current), "");
  EXPECT_NE(StaleReason(legacy, "clusterbench", now, 14, current).find("superseded"),
            std::string::npos);
  EXPECT_EQ(StaleReason(legacy, "clusterbench", now, 14, {}), "");
}

TEST(PrometheusMapping, ParsesIso8601) {
  EXPECT_DOUBLE_EQ(ParseIso8601("2025-01-31T02:00:00Z"), 1738288800.0);
  EXPECT_NEAR(ParseIso8601("2025-01-31T02:00:00.250Z"), 1738288800.25, 1e-6);
  EXPECT_TRUE(std::isnan(ParseIso8601("yesterday")));
}

TEST(PushUrl, SplitsIntoWhatGatewayTakes) {
  std::string host, port;
  ASSERT_TRUE(ParsePushUrl("http://pg.example:9091", &host, &port).ok());
  EXPECT_EQ(host, "http://pg.example");
  EXPECT_EQ(port, "9091");
  ASSERT_TRUE(ParsePushUrl("https://pg.example", &host, &port).ok());
  EXPECT_EQ(host, "https://pg.example");
  EXPECT_EQ(port, "9091");
  ASSERT_TRUE(ParsePushUrl("http://pg:80/prefix/", &host, &port).ok());
  EXPECT_EQ(port, "80/prefix");
  ASSERT_TRUE(ParsePushUrl("http://[::1]:9091", &host, &port).ok());
  EXPECT_EQ(host, "http://[::1]");
  for (const char* bad : {"pg:9091", "ftp://pg", "http://:9091", "http://pg:abc", "http://pg:0"}) {
    const Status s = ParsePushUrl(bad, &host, &port);
    EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << bad;
    EXPECT_NE(s.message().find("--push"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace cb::prom

// The RunRecord -> Prometheus mapping, the Pushgateway URL parser and the exposition text.
// (Against the real prometheus, pushgateway and promtool: tests/integration/prometheus_test.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "results/prometheus/metrics_mapping.h"
#include "results/prometheus/prometheus_sink.h"
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
  EXPECT_EQ(LabelValue(*decode, "Hostname"), "bench-01");
  EXPECT_EQ(LabelValue(*decode, "UUID"), "cpu-0000");
  EXPECT_EQ(LabelValue(*decode, "cluster"), "bench-01.example");

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

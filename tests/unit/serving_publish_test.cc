// A serving run's record: it round-trips through JSON with its serving, validity and sweep
// sections, server runs at different loads are different Prometheus series, and a run that
// is ok but shortened or unstable is kept out of the valid series.
#include <gtest/gtest.h>

#include "results/prometheus/metrics_mapping.h"
#include "results/record_json.h"
#include "tests/unit/record_testing.h"

namespace cb {
namespace {

RunRecord ServerRecord(double rate) {
  RunRecord r = fixtures::PopulatedRecord();
  r.workload.scenario = "server";
  r.workload.serving.rate = rate;
  ServingRecord s;
  s.load = "poisson";
  s.target_rate = rate;
  s.requests = {{0.1, 0.1, 0.2, 0.5, 16, 4}};
  r.serving = s;
  r.validity = ValidityRecord{};
  r.sweep = SweepRecord{"sweep-1", "rate", rate, 50};
  return r;
}

double Gauge(const prom::FamilySet& set, const std::string& family) {
  for (const auto& f : set.Families()) {
    if (f.name == family && !f.metric.empty()) return f.metric[0].gauge.value;
  }
  return -1;
}

bool HasFamily(const prom::FamilySet& set, const std::string& family) {
  for (const auto& f : set.Families()) {
    if (f.name == family) return true;
  }
  return false;
}

TEST(ServingRecord, RoundTripsThroughJson) {
  const RunRecord r = ServerRecord(4);
  RunRecord back;
  ASSERT_TRUE(FromJson(ToJson(r), "mem", &back).ok());
  ASSERT_TRUE(back.serving && back.validity && back.sweep);
  EXPECT_EQ(back.serving->requests.size(), 1u);
  EXPECT_EQ(back.serving->requests[0].first_token_s, 0.2);
  EXPECT_EQ(back.validity->label, "valid");
  EXPECT_EQ(back.sweep->axis, "rate");
  EXPECT_EQ(back.workload.serving.rate, 4);
  EXPECT_EQ(ToJson(back), ToJson(r));
}

TEST(ServingRecord, LoadIsPartOfTheSeries) {
  EXPECT_NE(prom::SeriesKey(ServerRecord(1)), prom::SeriesKey(ServerRecord(2)));
  RunRecord offline = fixtures::PopulatedRecord();
  EXPECT_EQ(prom::SeriesKey(offline).find("rate="), std::string::npos);
}

TEST(ServingRecord, ShortenedOrUnstableRunsAreNotPublishedAsValid) {
  for (const char* label : {"shortened", "unstable"}) {
    RunRecord r = ServerRecord(4);
    r.validity->label = label;
    EXPECT_EQ(r.status, "ok");
    EXPECT_FALSE(r.Publishable());
    prom::FamilySet set;
    set.AddRun(r);
    EXPECT_EQ(Gauge(set, "clusterbench_run_valid"), 0) << label;
    EXPECT_FALSE(HasFamily(set, "clusterbench_throughput_tokens_per_second")) << label;
    EXPECT_FALSE(HasFamily(set, "clusterbench_last_success_timestamp_seconds")) << label;
  }
  RunRecord ok = ServerRecord(4);
  prom::FamilySet set;
  set.AddRun(ok);
  EXPECT_EQ(Gauge(set, "clusterbench_run_valid"), 1);
  EXPECT_TRUE(HasFamily(set, "clusterbench_throughput_tokens_per_second"));
}

}  // namespace
}  // namespace cb

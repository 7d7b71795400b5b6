#include <gtest/gtest.h>

#include "results/run_record.h"
#include "tests/unit/record_testing.h"

namespace cb {
namespace {

TEST(RunRecordTest, ProvenanceNames) {
  EXPECT_EQ(ProvenanceName(Provenance::kMeasured), "measured");
  EXPECT_EQ(ProvenanceName(Provenance::kModelled), "modelled");
  EXPECT_EQ(ProvenanceName(Provenance::kExtrapolated), "extrapolated");
}

TEST(RunRecordTest, FindMetric) {
  RunRecord r = fixtures::PopulatedRecord();
  const Metric* m = r.FindMetric("decode_tokens_per_second");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->value, 45.678);
  EXPECT_EQ(r.FindMetric("no_such_metric"), nullptr);
  EXPECT_EQ(RunRecord{}.FindMetric("decode_tokens_per_second"), nullptr);
  // The first of two metrics with one name wins.
  r.metrics.push_back(
      fixtures::MakeMetric("decode_tokens_per_second", "tokens/s", Provenance::kModelled, 1.0));
  EXPECT_EQ(r.FindMetric("decode_tokens_per_second")->value, 45.678);
}

TEST(RunRecordTest, Defaults) {
  RunRecord r;
  EXPECT_EQ(r.schema_version, kSchemaVersion);
  EXPECT_EQ(r.status, "ok");
  EXPECT_EQ(r.verification.status, "not_run");
}

}  // namespace
}  // namespace cb

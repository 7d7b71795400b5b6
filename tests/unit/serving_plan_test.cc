// Suite fields of the scenarios: parsing, errors naming file and field, sweep expansion, and
// the serving suite shipped in workloads/suites.
#include <gtest/gtest.h>

#include "harness/plan.h"

namespace cb {
namespace {

using nlohmann::json;

Status Expand(const json& entry, std::vector<WorkloadSpec>* out) {
  json e = entry;
  e["model"] = "tiny";
  return ExpandSuite({{"workloads", json::array({e})}}, json::object(), "s.json", out);
}

TEST(ServingPlan, ServerFieldsAreRead) {
  std::vector<WorkloadSpec> plan;
  const Status s = Expand({{"scenario", "server"},
                           {"rate", 3.5},
                           {"arrival", "gamma:2"},
                           {"prompt_dist", "uniform:8-32"},
                           {"output_dist", "lognormal:16,0.4"},
                           {"max_prefill_tokens", 64},
                           {"kv_page_tokens", 8},
                           {"slo_ttft", 0.5},
                           {"slo_tpot", 0.05},
                           {"min_duration", 1},
                           {"min_requests", 10},
                           {"max_cv", 0.3},
                           {"strict", true}},
                          &plan);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(plan.size(), 1u);
  const ServingSpec& sv = plan[0].serving;
  EXPECT_EQ(plan[0].scenario, "server");
  EXPECT_EQ(sv.rate, 3.5);
  EXPECT_EQ(sv.arrival, "gamma:2");
  EXPECT_EQ(sv.max_prefill_tokens, 64);
  EXPECT_EQ(sv.kv_page_tokens, 8);
  EXPECT_EQ(sv.slo_tpot, 0.05);
  EXPECT_EQ(sv.min_requests, 10);
  EXPECT_TRUE(sv.strict);
}

TEST(ServingPlan, BadSettingsNameFileAndField) {
  struct Case {
    json entry;
    const char* field;
  };
  const Case cases[] = {
      {{{"scenario", "batch"}}, "scenario"},
      {{{"scenario", "server"}}, "rate"},  // neither rate nor concurrency
      {{{"scenario", "server"}, {"rate", 1}, {"concurrency", 2}}, "rate"},
      {{{"scenario", "server"}, {"rate", 1}, {"arrival", "bursty"}}, "arrival"},
      {{{"scenario", "server"}, {"rate", 1}, {"prompt_dist", "uniform:9-3"}}, "prompt_dist"},
      {{{"scenario", "server"}, {"rate", 1}, {"max_prefill_tokens", -1}}, "max_prefill_tokens"},
      {{{"scenario", "server"}, {"rate", 1}, {"layers", 2}}, "layers"},
      {{{"scenario", "sweep"}}, "batches"},
      {{{"scenario", "offline"}, {"batches", {1, 2}}}, "batches"},
      {{{"scenario", "sweep"}, {"rates", {1, -2}}}, "rates"},
      {{{"scenario", "sweep"}, {"rates", {1}}, {"sweep_scenario", "offline"}}, "sweep_scenario"},
      {{{"scenario", "server"}, {"rate", "fast"}}, "rate"},
      {{{"scenario", "server"}, {"rate", 1}, {"output_dist", "lognormal:5000,1"}}, "prompt_dist"},
  };
  for (const Case& c : cases) {
    std::vector<WorkloadSpec> plan;
    const Status s = Expand(c.entry, &plan);
    EXPECT_EQ(s.code(), StatusCode::kInvalidInput) << c.entry.dump();
    EXPECT_NE(s.message().find("s.json"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(std::string("'") + c.field + "'"), std::string::npos)
        << c.entry.dump() << " -> " << s.message();
  }
}

TEST(ServingPlan, SweepExpandsIntoTaggedPoints) {
  std::vector<WorkloadSpec> plan;
  ASSERT_TRUE(
      Expand({{"scenario", "sweep"}, {"batches", {1, 2, 4}}, {"at_interactivity", 50}}, &plan)
          .ok());
  ASSERT_EQ(plan.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(plan[i].scenario, "offline");
    EXPECT_EQ(plan[i].batch, int64_t{1} << i);
    EXPECT_EQ(plan[i].serving.sweep_group, "sweep-1");
    EXPECT_EQ(plan[i].serving.sweep_axis, "batch");
    EXPECT_EQ(plan[i].serving.at_interactivity, 50);
  }
  ASSERT_TRUE(Expand({{"scenario", "sweep"}, {"rates", {0.5, 2}}, {"batch", 4}}, &plan).ok());
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[1].scenario, "server");
  EXPECT_EQ(plan[1].serving.rate, 2);
  EXPECT_EQ(plan[1].serving.sweep_axis, "rate");
  EXPECT_EQ(plan[1].batch, 4);
}

TEST(ServingPlan, ServingSuiteLoads) {
  std::vector<WorkloadSpec> plan;
  const Status s =
      LoadSuiteFile(DataDir() + "/workloads/suites/serving.json", json::object(), &plan);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_FALSE(plan.empty());
  bool server = false;
  for (const WorkloadSpec& w : plan) server |= w.scenario == "server";
  EXPECT_TRUE(server);
}

}  // namespace
}  // namespace cb

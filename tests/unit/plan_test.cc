#include "harness/plan.h"

#include <gtest/gtest.h>

namespace cb {
namespace {

using nlohmann::json;

Status Expand(const json& suite, std::vector<WorkloadSpec>* out,
              const json& overrides = json::object()) {
  return ExpandSuite(suite, overrides, "suite.json", out);
}

TEST(Plan, ExpandsCartesianProductOverLists) {
  const json suite = {{"defaults", {{"backend", "cpu"}, {"repetitions", 2}}},
                      {"workloads",
                       {{{"model", "tiny"}, {"dtype", {"fp32", "bf16"}}, {"batch", {1, 2, 4}}},
                        {{"model", "tiny"}, {"batch", 8}}}}};
  std::vector<WorkloadSpec> plan;
  ASSERT_TRUE(Expand(suite, &plan).ok());
  ASSERT_EQ(plan.size(), 7u);
  int fp32 = 0;
  for (size_t i = 0; i < 6; ++i) fp32 += plan[i].dtype == DType::kF32;
  EXPECT_EQ(fp32, 3);
  EXPECT_EQ(plan[6].batch, 8);
  EXPECT_EQ(plan[6].repetitions, 2);
  EXPECT_EQ(plan[0].model.name, "tiny");
}

TEST(Plan, OverridesWinOverEntriesAndDefaults) {
  const json suite = {{"defaults", {{"repetitions", 9}}},
                      {"workloads", {{{"model", "tiny"}, {"batch", {1, 2}}}}}};
  std::vector<WorkloadSpec> plan;
  ASSERT_TRUE(Expand(suite, &plan, {{"batch", 3}, {"repetitions", 1}}).ok());
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].batch, 3);
  EXPECT_EQ(plan[0].repetitions, 1);
}

struct Bad {
  json entry;
  std::string expect;
};
class PlanRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(PlanRejects, WithFileAndField) {
  std::vector<WorkloadSpec> plan;
  const Status s = Expand({{"workloads", {GetParam().entry}}}, &plan);
  ASSERT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("suite.json: workloads[0]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(GetParam().expect), std::string::npos) << s.message();
}

INSTANTIATE_TEST_SUITE_P(
    Fields, PlanRejects,
    ::testing::Values(Bad{{{"model", "nope"}}, "field 'model': unknown model 'nope'"},
                      Bad{{{"model", "tiny"}, {"dtype", "int3"}}, "allowed values: fp32, bf16"},
                      Bad{{{"model", "tiny"}, {"batch", 0}}, "field 'batch'"},
                      Bad{{{"model", "tiny"}, {"prompt_len", 1000}, {"gen_len", 100}},
                          "exceeds the context of tiny"},
                      Bad{{{"model", "tiny"}, {"layers", 5}}, "field 'layers'"},
                      Bad{{{"model", "tiny"}, {"warmup", {1, 2}}}, "takes one value"},
                      Bad{{{"model", "tiny"}, {"batchsize", 2}}, "unknown; allowed fields"},
                      Bad{{{"batch", 2}}, "field 'model': is required"}));

TEST(Plan, RejectsSuiteWithoutWorkloads) {
  std::vector<WorkloadSpec> plan;
  EXPECT_EQ(Expand({{"name", "x"}}, &plan).code(), StatusCode::kInvalidInput);
  EXPECT_EQ(Expand({{"workloads", json::array()}}, &plan).code(), StatusCode::kInvalidInput);
}

TEST(Plan, ShippedSuitesExpand) {
  for (const char* name : {"smoke", "default"}) {
    std::vector<WorkloadSpec> plan;
    const Status s =
        LoadSuiteFile(DataDir() + "/workloads/suites/" + name + ".json", json::object(), &plan);
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_FALSE(plan.empty());
  }
}

TEST(Plan, MalformedSuiteFileGivesLineAndColumn) {
  const std::string path = ::testing::TempDir() + "/bad_suite.json";
  FILE* f = fopen(path.c_str(), "w");
  fputs("{\n \"workloads\": [\n  {\"model\": \"tiny\"\n ]\n}\n", f);
  fclose(f);
  std::vector<WorkloadSpec> plan;
  const Status s = LoadSuiteFile(path, json::object(), &plan);
  ASSERT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find(path + ":4:"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cb

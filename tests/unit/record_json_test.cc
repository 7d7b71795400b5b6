#include "results/record_json.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include "results/cluster_record.h"
#include "tests/unit/record_testing.h"

namespace cb {
namespace {

using fixtures::PopulatedRecord;
using nlohmann::json;

TEST(RecordJsonTest, RoundTripIsLossless) {
  const RunRecord original = PopulatedRecord();
  const json first = ToJson(original);
  RunRecord back;
  ASSERT_TRUE(FromJson(first, "mem.json", &back).ok());
  EXPECT_EQ(ToJson(back), first);
  // Through text as well, as a results file would be written and read.
  RunRecord from_text;
  ASSERT_TRUE(FromJson(json::parse(first.dump(2)), "mem.json", &from_text).ok());
  EXPECT_EQ(ToJson(from_text), first);

  // Spot checks on the struct itself (not only through ToJson).
  EXPECT_EQ(back.workload.seed, original.workload.seed);
  EXPECT_EQ(back.workload.dtype, DType::kF16);
  EXPECT_EQ(back.device.mem_bytes, original.device.mem_bytes);
  EXPECT_EQ(back.device.peak_flops, original.device.peak_flops);
  EXPECT_EQ(back.layers_run, 4);
  EXPECT_TRUE(back.extrapolated);
  EXPECT_EQ(back.extrapolation_method, original.extrapolation_method);
  EXPECT_EQ(back.samples.size(), 2u);
  EXPECT_EQ(back.samples[0].decode_step_s, original.samples[0].decode_step_s);  // exact doubles
  EXPECT_EQ(back.generated_tokens, original.generated_tokens);
  EXPECT_EQ(back.metrics.size(), original.metrics.size());
  const Metric* tpot = back.FindMetric("tpot_seconds");
  ASSERT_NE(tpot, nullptr);
  EXPECT_EQ(tpot->how, Provenance::kExtrapolated);
  EXPECT_EQ(tpot->unit, "s");
  EXPECT_TRUE(tpot->has_distribution);
  EXPECT_EQ(tpot->dist.p99, 0.0061234);
  EXPECT_EQ(tpot->dist.count, 5u);
  const Metric* mfu = back.FindMetric("mfu_prefill_ratio");
  ASSERT_NE(mfu, nullptr);
  EXPECT_FALSE(mfu->has_distribution);
  EXPECT_EQ(back.verification.argmax_agreement, 0.975);
  EXPECT_TRUE(back.verification.nan_found);
}

// A quantised run's precision and accuracy, and their schema entries.
TEST(RecordJsonTest, QuantisedRunRoundTripsPrecisionAndAccuracy) {
  RunRecord original = PopulatedRecord();
  original.workload.dtype = DType::kFP8;
  original.precision = "fp8 (weight-only)";
  original.accuracy = AccuracyRecord{"bf16", 12, 0.9166666666666666, 0.00312};
  const json doc = ToJson(original);
  RunRecord back;
  ASSERT_TRUE(FromJson(json::parse(doc.dump()), "mem.json", &back).ok());
  EXPECT_EQ(ToJson(back), doc);
  EXPECT_EQ(back.precision, "fp8 (weight-only)");
  ASSERT_TRUE(back.accuracy.has_value());
  EXPECT_EQ(back.accuracy->positions, 12);
  EXPECT_EQ(back.accuracy->top1_agreement, 0.9166666666666666);
  EXPECT_EQ(back.accuracy->mean_kl_divergence, 0.00312);

  std::ifstream in(std::string(CLUSTERBENCH_SOURCE_DIR) + "/results/schema/run.schema.json");
  const json schema = json::parse(in);
  const json& acc = schema["properties"]["accuracy"];
  for (auto f = doc["accuracy"].begin(); f != doc["accuracy"].end(); ++f) {
    EXPECT_TRUE(acc["properties"].contains(f.key())) << f.key();
  }
  EXPECT_TRUE(schema["properties"].contains("precision"));
  // Unquantised runs write neither.
  EXPECT_FALSE(ToJson(PopulatedRecord()).contains("accuracy"));
  EXPECT_FALSE(ToJson(PopulatedRecord()).contains("precision"));
}

TEST(RecordJsonTest, LayoutUsesDocumentedNames) {
  const json doc = ToJson(PopulatedRecord());
  EXPECT_EQ(doc["schema_version"], "1.0");
  EXPECT_EQ(doc["run"]["id"], "20250131T020000Z-ab12cd");
  EXPECT_EQ(doc["workload"]["dtype"], "fp16");
  EXPECT_EQ(doc["workload"]["layers_run"], 4);
  EXPECT_EQ(doc["workload"]["model_layers"], 16);
  EXPECT_EQ(doc["workload"]["extrapolated"], true);
  EXPECT_EQ(doc["model"]["hidden_size"], 2048);
  EXPECT_EQ(doc["model"]["num_kv_heads"], 8);
  EXPECT_TRUE(doc["model"]["total_params"].is_number_integer());
  EXPECT_GT(doc["model"]["total_params"].get<int64_t>(), 0);
  EXPECT_EQ(doc["device"]["peak_flops"]["bf16"], 3.0e12);
  EXPECT_EQ(doc["ceilings"]["matmul_flops_per_s"]["fp32"], 1.1e12);
  const json& decode = doc["metrics"]["decode_tokens_per_second"];
  EXPECT_EQ(decode["value"], 45.678);
  EXPECT_EQ(decode["unit"], "tokens/s");
  EXPECT_EQ(decode["how"], "measured");
  EXPECT_EQ(decode["distribution"]["p99"], 50.25);
  EXPECT_FALSE(doc["metrics"]["mfu_prefill_ratio"].contains("distribution"));
  EXPECT_EQ(doc["metrics"]["prefill_flops_per_second"]["how"], "modelled");
  EXPECT_EQ(doc["samples"][1]["decode_step_s"], json::array({0.0047}));
  EXPECT_EQ(doc["verification"]["status"], "passed");
  EXPECT_EQ(doc["generated_tokens"].back(), 2147483647);
}

TEST(RecordJsonTest, NonFiniteNumbersAreNullAndReadBackAsNan) {
  RunRecord r = PopulatedRecord();
  r.metrics[0].value = std::numeric_limits<double>::quiet_NaN();
  r.metrics[0].dist.p99 = std::numeric_limits<double>::infinity();
  r.samples[0].decode_step_s[1] = -std::numeric_limits<double>::infinity();
  r.verification.max_rel_error = std::numeric_limits<double>::quiet_NaN();
  const json doc = ToJson(r);
  EXPECT_TRUE(doc["metrics"]["prefill_tokens_per_second"]["value"].is_null());
  EXPECT_TRUE(doc["metrics"]["prefill_tokens_per_second"]["distribution"]["p99"].is_null());
  EXPECT_TRUE(doc["samples"][0]["decode_step_s"][1].is_null());
  EXPECT_TRUE(doc["verification"]["max_rel_error"].is_null());
  // Valid JSON text (no "nan" tokens).
  EXPECT_NO_THROW(json::parse(doc.dump()));

  RunRecord back;
  ASSERT_TRUE(FromJson(doc, "nan.json", &back).ok());
  const Metric* m = back.FindMetric("prefill_tokens_per_second");
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(std::isnan(m->value));
  EXPECT_TRUE(std::isnan(m->dist.p99));
  EXPECT_TRUE(std::isnan(back.samples[0].decode_step_s[1]));
  EXPECT_TRUE(std::isnan(back.verification.max_rel_error));
  EXPECT_EQ(ToJson(back), doc);
}

TEST(RecordJsonTest, DefaultRecordRoundTrips) {
  // A run that failed before its model was resolved has an all-zero shape.
  RunRecord r;
  r.status = "failed";
  r.status_message = "cannot open device";
  const json doc = ToJson(r);
  EXPECT_EQ(doc["model"]["total_params"], 0);
  RunRecord back;
  ASSERT_TRUE(FromJson(doc, "default.json", &back).ok());
  EXPECT_EQ(ToJson(back), doc);
  EXPECT_EQ(back.status, "failed");
}

Status ParseMutated(const std::function<void(json&)>& mutate, RunRecord* out = nullptr) {
  json doc = ToJson(PopulatedRecord());
  mutate(doc);
  RunRecord scratch;
  return FromJson(doc, "results/run-1.json", out ? out : &scratch);
}

TEST(RecordJsonTest, WrongTypeNamesFileAndField) {
  const Status s =
      ParseMutated([](json& d) { d["metrics"]["decode_tokens_per_second"]["value"] = "fast"; });
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(s.ExitCode(), 2);
  EXPECT_EQ(s.message(),
            "results/run-1.json: field 'metrics.decode_tokens_per_second.value': expected number, "
            "got string");
}

TEST(RecordJsonTest, MissingFieldNamesFileAndField) {
  Status s = ParseMutated([](json& d) { d["run"].erase("id"); });
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(s.message(), "results/run-1.json: field 'run.id': missing");

  s = ParseMutated([](json& d) { d.erase("verification"); });
  EXPECT_EQ(s.message(), "results/run-1.json: field 'verification': missing");

  s = ParseMutated([](json& d) { d["metrics"]["ttft_seconds"]["distribution"].erase("p99"); });
  EXPECT_EQ(s.message(),
            "results/run-1.json: field 'metrics.ttft_seconds.distribution.p99': missing");
}

TEST(RecordJsonTest, OtherErrorsNameTheField) {
  auto message = [](const std::function<void(json&)>& f) { return ParseMutated(f).message(); };
  EXPECT_EQ(
      message([](json& d) { d["samples"][1]["decode_step_s"][0] = true; }),
      "results/run-1.json: field 'samples[1].decode_step_s[0]': expected number, got boolean");
  EXPECT_EQ(message([](json& d) { d["run"]["status"] = "great"; }),
            "results/run-1.json: field 'run.status': unknown value 'great'; allowed values: ok, "
            "invalid, failed, skipped");
  EXPECT_EQ(message([](json& d) { d["metrics"]["tpot_seconds"]["how"] = "guessed"; }),
            "results/run-1.json: field 'metrics.tpot_seconds.how': unknown value 'guessed'; "
            "allowed values: measured, modelled, extrapolated");
  EXPECT_EQ(message([](json& d) { d["workload"]["dtype"] = "fp4"; }),
            "results/run-1.json: field 'workload.dtype': unknown value 'fp4'; allowed values: "
            "fp32, bf16, fp16, fp8, int8");
  EXPECT_EQ(message([](json& d) { d["workload"]["batch"] = -3; }),
            "results/run-1.json: field 'workload.batch': expected a non-negative integer, got -3");
  EXPECT_EQ(message([](json& d) { d["workload"]["batch"] = 2.5; }),
            "results/run-1.json: field 'workload.batch': expected integer, got 2.5");
  EXPECT_EQ(message([](json& d) { d["generated_tokens"][2] = 4294967296ll; }),
            "results/run-1.json: field 'generated_tokens[2]': expected an integer in [0, "
            "2147483647], got 4294967296");
  EXPECT_EQ(message([](json& d) { d["metrics"]["ttft_seconds"] = 3; }),
            "results/run-1.json: field 'metrics.ttft_seconds': expected object, got number");
  EXPECT_EQ(message([](json& d) { d["samples"] = json::object(); }),
            "results/run-1.json: field 'samples': expected array, got object");
  EXPECT_EQ(message([](json& d) { d["schema_version"] = "2.0"; }),
            "results/run-1.json: field 'schema_version': unsupported version '2.0'; this build "
            "reads 1.x");

  RunRecord out;
  const Status s = FromJson(json::array(), "x.json", &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(s.message(), "x.json: expected a JSON object (one run record), got array");
}

TEST(RecordJsonTest, AcceptsIntegralFloatsAndIgnoresUnknownFields) {
  RunRecord out;
  ASSERT_TRUE(ParseMutated(
                  [](json& d) {
                    d["workload"]["batch"] = 8.0;
                    d["future_section"] = {{"x", 1}};
                    d["run"]["added_in_1_1"] = "y";
                    d["schema_version"] = "1.1";
                  },
                  &out)
                  .ok());
  EXPECT_EQ(out.workload.batch, 8);
}

TEST(RecordJsonTest, OutputUntouchedOnError) {
  RunRecord out;
  out.run_id = "keep";
  EXPECT_FALSE(ParseMutated([](json& d) { d["generated_tokens"] = "x"; }, &out).ok());
  EXPECT_EQ(out.run_id, "keep");
}

/// Every property, item and map-value schema below `node` carries a description.
void ExpectDescribed(const json& node, const std::string& path) {
  if (!node.is_object()) return;
  if (node.contains("properties")) {
    for (auto it = node["properties"].begin(); it != node["properties"].end(); ++it) {
      const std::string p = path + "." + it.key();
      EXPECT_TRUE(it->contains("description")) << p;
      ExpectDescribed(*it, p);
    }
  }
  for (const char* key : {"items", "additionalProperties"}) {
    if (node.contains(key) && node[key].is_object()) {
      EXPECT_TRUE(node[key].contains("description")) << path << "." << key;
      ExpectDescribed(node[key], path + "." + key);
    }
  }
}

TEST(RecordSchemaFileTest, DescribesEveryFieldAndRequiresWhatToJsonWrites) {
  std::ifstream in(std::string(CLUSTERBENCH_SOURCE_DIR) + "/results/schema/run.schema.json");
  ASSERT_TRUE(in.good());
  const json schema = json::parse(in);
  EXPECT_EQ(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
  ExpectDescribed(schema, "$");
  // Each section ToJson writes is declared, and each of its fields is declared and required.
  const json doc = ToJson(PopulatedRecord());
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    ASSERT_TRUE(schema["properties"].contains(it.key())) << it.key();
    const json& section = schema["properties"][it.key()];
    if (!it->is_object() || !section.contains("required")) continue;
    for (auto f = it->begin(); f != it->end(); ++f) {
      EXPECT_TRUE(section["properties"].contains(f.key())) << it.key() << "." << f.key();
      const auto& req = section["required"];
      EXPECT_NE(std::find(req.begin(), req.end(), f.key()), req.end())
          << it.key() << "." << f.key();
    }
  }
}

// --- Schema validation through tests/tools/validate_json.py --------------------------------

class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("/usr/bin/python3 -c 'import jsonschema' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "python3-jsonschema is not installed";
    }
    dir_ = std::filesystem::temp_directory_path() /
           ("cb_record_schema_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  /// Runs the validator on `files`; returns its exit status and leaves its output in output_.
  int Validate(const std::string& files) {
    const std::string src = CLUSTERBENCH_SOURCE_DIR;
    const std::string log = (dir_ / "validator.log").string();
    const std::string cmd = "/usr/bin/python3 '" + src + "/tests/tools/validate_json.py' '" + src +
                            "/results/schema/run.schema.json' " + files + " >'" + log + "' 2>&1";
    const int raw = std::system(cmd.c_str());
    std::ifstream in(log);
    std::stringstream buf;
    buf << in.rdbuf();
    output_ = buf.str();
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  }

  std::filesystem::path dir_;
  std::string output_;
};

TEST_F(SchemaTest, ToJsonOutputValidates) {
  RunRecord nan_record = PopulatedRecord();
  nan_record.metrics[1].value = std::numeric_limits<double>::quiet_NaN();
  nan_record.samples.clear();
  RunRecord failed;
  failed.status = "failed";
  const std::string a = Write("populated.json", ToJson(PopulatedRecord()).dump(2));
  const std::string b = Write("invalid.json", ToJson(fixtures::InvalidRecord()).dump(2));
  const std::string c = Write("nan.json", ToJson(nan_record).dump(2));
  const std::string d = Write("default.json", ToJson(failed).dump(2));
  EXPECT_EQ(Validate("'" + a + "' '" + b + "' '" + c + "' '" + d + "'"), 0) << output_;
}

TEST_F(SchemaTest, BrokenDocumentFails) {
  json doc = ToJson(PopulatedRecord());
  doc["metrics"]["decode_tokens_per_second"]["how"] = "guessed";
  doc["run"].erase("id");
  doc["workload"]["batch"] = "eight";
  const std::string bad = Write("broken.json", doc.dump(2));
  const std::string good = Write("good.json", ToJson(PopulatedRecord()).dump(2));
  EXPECT_EQ(Validate("'" + good + "' '" + bad + "'"), 1) << output_;
  EXPECT_NE(output_.find("$.metrics.decode_tokens_per_second.how"), std::string::npos) << output_;
  EXPECT_NE(output_.find("$.workload.batch"), std::string::npos) << output_;
  EXPECT_NE(output_.find("'id' is a required property"), std::string::npos) << output_;
}

TEST_F(SchemaTest, UsageErrorExitsTwo) { EXPECT_EQ(Validate(""), 2) << output_; }

}  // namespace
}  // namespace cb

namespace cb {
namespace {

TEST(ClusterRecordJson, ExpertParallelRoundTripsAndOlderFilesMeanNone) {
  ClusterRecord c;
  c.world_size = 4;
  c.dp = 4;
  c.ep = 4;
  c.launcher = "mpi";
  nlohmann::json j = ClusterRecordToJson(c);
  EXPECT_EQ(j["ep"], 4);
  ClusterRecord back;
  ASSERT_TRUE(ClusterRecordFromJson(j, "test", &back).ok());
  EXPECT_EQ(back.ep, 4);
  j.erase("ep");  // a result written before --ep existed
  ASSERT_TRUE(ClusterRecordFromJson(j, "test", &back).ok());
  EXPECT_EQ(back.ep, 1);
}

}  // namespace
}  // namespace cb

namespace cb {
namespace {

TEST(CeilingCheckJson, RoundTripsAndOlderFilesHaveNone) {
  const RunRecord original = fixtures::PopulatedRecord();
  ASSERT_TRUE(original.ceiling_check.has_value());
  nlohmann::json doc = ToJson(original);
  ASSERT_TRUE(doc.contains("ceiling_check"));
  EXPECT_EQ(doc["ceiling_check"]["probes"].size(), 4u);
  EXPECT_EQ(doc["ceiling_check"]["memory"]["source"], "probes");
  RunRecord back;
  ASSERT_TRUE(FromJson(doc, "mem.json", &back).ok());
  ASSERT_TRUE(back.ceiling_check.has_value());
  EXPECT_EQ(back.ceiling_check->probes[3].mem_read_bytes_per_s, 2.9e11);
  EXPECT_EQ(back.ceiling_check->matmul.drift, original.ceiling_check->matmul.drift);
  EXPECT_EQ(ToJson(back), doc);

  doc.erase("ceiling_check");  // a file written before the in-run probes
  RunRecord old;
  ASSERT_TRUE(FromJson(doc, "old.json", &old).ok());
  EXPECT_FALSE(old.ceiling_check.has_value());
}

TEST(CeilingCheckJson, ABadSectionNamesTheField) {
  nlohmann::json doc = ToJson(fixtures::PopulatedRecord());
  doc["ceiling_check"]["verdict"] = "fine";
  RunRecord r;
  Status s = FromJson(doc, "r.json", &r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("r.json: field 'ceiling_check.verdict'"), std::string::npos)
      << s.message();
  doc["ceiling_check"].erase("memory");
  s = FromJson(doc, "r.json", &r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ceiling_check"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cb

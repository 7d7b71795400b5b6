// Dataset replay of the endpoint backend (harness/endpoint/dataset.h), the Prometheus energy
// scrape's parsing (backends/energy/prometheus_meter.h) and the record's endpoint section.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "backends/energy/prometheus_meter.h"
#include "harness/endpoint/dataset.h"
#include "results/formats.h"
#include "results/record_json.h"

namespace cb {
namespace {

std::string Write(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / "cb_dataset_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(EndpointDataset, ReadsJsonLinesAndHashesTheFile) {
  const std::string text =
      "{\"prompt\": \"the river and the sea\", \"output_len\": 12}\n"
      "\n"
      "{\"prompt\": \"one two\", \"output_len\": 3}\r\n";
  const std::string path = Write("prompts.jsonl", text);
  Dataset d;
  ASSERT_TRUE(LoadDataset(path, "", &d).ok());
  EXPECT_EQ(d.format, "jsonl");
  EXPECT_EQ(d.name, "prompts.jsonl");
  ASSERT_EQ(d.entries.size(), 2u);
  EXPECT_EQ(d.entries[0].prompt_words, 5);
  EXPECT_EQ(d.entries[0].output_len, 12);
  EXPECT_EQ(d.entries[1].line, 3);
  EXPECT_EQ(d.sha256, Sha256Hex(text));
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(EndpointDataset, NamesFileLineAndFieldOfABadJsonLine) {
  const std::string path =
      Write("bad.jsonl", "{\"prompt\": \"a\", \"output_len\": 2}\n{\"prompt\": \"b\"}\n");
  Dataset d;
  const Status s = LoadDataset(path, "", &d);
  ASSERT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find(path + ":2: field 'output_len'"), std::string::npos) << s.message();
  const std::string syntax =
      Write("syntax.jsonl", "{\"prompt\": \"a\", \"output_len\": 2}\n{oops\n");
  const Status t = LoadDataset(syntax, "", &d);
  EXPECT_NE(t.message().find(syntax + ":2: not valid JSON"), std::string::npos) << t.message();
  const std::string extra =
      Write("extra.jsonl", "{\"prompt\": \"a\", \"output_len\": 2, \"x\": 1}\n");
  EXPECT_NE(LoadDataset(extra, "", &d).message().find(":1: field 'x': unknown"), std::string::npos);
}

TEST(EndpointDataset, ReadsShareGptConversationsAndSkipsThoseWithoutAReply) {
  const std::string text = R"([
  {"id": "a", "conversations": [
     {"from": "human", "value": "why is the sky blue"},
     {"from": "gpt", "value": "because of light and the air"}]},
  {"id": "b", "conversations": [{"from": "human", "value": "alone"}]},
  {"id": "c", "conversations": [
     {"from": "human", "value": "a \"quoted\" [bracket] {brace}"},
     {"from": "gpt", "value": "ok"}]}
])";
  Dataset d;
  ASSERT_TRUE(LoadDataset(Write("share.json", text), "sharegpt", &d).ok());
  ASSERT_EQ(d.entries.size(), 2u);
  EXPECT_EQ(d.skipped, 1);
  EXPECT_EQ(d.entries[0].prompt, "why is the sky blue");
  EXPECT_EQ(d.entries[0].output_len, 6);
  EXPECT_EQ(d.entries[0].line, 2);
  EXPECT_EQ(d.entries[1].line, 6);
}

TEST(EndpointDataset, NamesTheLineAndFieldOfABadShareGptEntry) {
  const std::string text =
      "[\n"
      "  {\"conversations\": [{\"from\": \"human\", \"value\": \"x\"}, {\"from\": \"gpt\", "
      "\"value\": \"y\"}]},\n"
      "  {\"conversations\": [{\"from\": \"human\", \"value\": 3}]}\n"
      "]\n";
  const std::string path = Write("badshare.json", text);
  Dataset d;
  const Status s = LoadDataset(path, "", &d);
  ASSERT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find(path + ":3: field '[1].conversations[0].value'"), std::string::npos)
      << s.message();
  const std::string open = Write("open.json", "[\n {\"conversations\": []}\n");
  EXPECT_NE(LoadDataset(open, "", &d).message().find("not closed"), std::string::npos);
  EXPECT_NE(LoadDataset(Write("empty.json", "  "), "", &d).message().find("empty"),
            std::string::npos);
  EXPECT_NE(LoadDataset("/nonexistent/x.jsonl", "", &d).message().find("cannot read"),
            std::string::npos);
}

TEST(PrometheusEnergy, ParsesTheTextFormatAndSelectsSeries) {
  std::vector<energy::PromSample> samples;
  ASSERT_TRUE(
      energy::ParsePrometheusText(
          "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy (mJ).\n"
          "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
          "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"0\",UUID=\"GPU-a\",modelName=\"H100 "
          "\\\"SXM\\\"\"} 123456\n"
          "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"1\",UUID=\"GPU-b\"} 2.5e3 1700000000\n"
          "up 1\n",
          &samples)
          .ok());
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].labels.at("modelName"), "H100 \"SXM\"");
  EXPECT_DOUBLE_EQ(samples[1].value, 2500);
  energy::PromSelector sel;
  ASSERT_TRUE(
      energy::ParsePromSelector("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"1\"}", &sel).ok());
  EXPECT_FALSE(sel.Matches(samples[0]));
  EXPECT_TRUE(sel.Matches(samples[1]));
  EXPECT_FALSE(energy::ParsePromSelector("bad{gpu=1}", &sel).ok());
  EXPECT_FALSE(energy::ParsePrometheusText("metric{x=\"1\" 3\n", &samples).ok());
  energy::PromEnergyKind k;
  ASSERT_TRUE(energy::EnergyKindOf("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", &k));
  EXPECT_TRUE(k.counter);
  EXPECT_DOUBLE_EQ(k.scale, 1e-3);
  ASSERT_TRUE(energy::EnergyKindOf("node_rapl_package_joules_total", &k));
  EXPECT_DOUBLE_EQ(k.scale, 1.0);
  ASSERT_TRUE(energy::EnergyKindOf("DCGM_FI_DEV_POWER_USAGE", &k));
  EXPECT_FALSE(k.counter);
  EXPECT_FALSE(energy::EnergyKindOf("DCGM_FI_DEV_GPU_UTIL", &k));
}

}  // namespace
}  // namespace cb

namespace cb {
namespace {

TEST(EndpointRecordJson, RoundTripsAndOlderFilesHaveNone) {
  RunRecord r;
  r.status = "invalid";
  EndpointRecord e;
  e.url = "http://127.0.0.1:8000/v1";
  e.api = "chat";
  e.requested_model = e.server_model = "tiny";
  e.served_models = {"tiny"};
  e.prompts = "dataset";
  e.dataset_name = "p.jsonl";
  e.dataset_sha256 = "ab";
  e.dataset_entries = 5;
  e.length_source = "usage";
  e.run_timeout_s = NAN;
  e.requests_issued = 3;
  e.requests_failed = 1;
  e.requests_cancelled = 1;
  e.failures = {{"http_500", 1}, {"cancelled", 1}};
  e.notes = {"a note"};
  e.requests.push_back({16, 8, 17, 8, 8, "length", "ok", ""});
  e.requests.push_back({16, 8, -1, -1, 0, "", "http_500", "HTTP 500: boom"});
  r.endpoint = e;
  const nlohmann::json doc = ToJson(r);
  RunRecord back;
  ASSERT_TRUE(FromJson(doc, "mem.json", &back).ok());
  ASSERT_TRUE(back.endpoint.has_value());
  EXPECT_EQ(ToJson(back), doc);
  EXPECT_EQ(back.endpoint->requests[1].error, "HTTP 500: boom");
  EXPECT_FALSE(doc["endpoint"]["requests"][0].contains("error"));
  EXPECT_TRUE(std::isnan(back.endpoint->run_timeout_s));
  nlohmann::json old = doc;
  old.erase("endpoint");
  RunRecord none;
  ASSERT_TRUE(FromJson(old, "old.json", &none).ok());
  EXPECT_FALSE(none.endpoint.has_value());
  nlohmann::json bad = doc;
  bad["endpoint"]["requests_ok"] = "three";
  const Status s = FromJson(bad, "bad.json", &none);
  EXPECT_NE(s.message().find("bad.json: field 'endpoint'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace cb

namespace cb {
namespace {

TEST(EndpointRecordJson, TheTableSaysHowManyRequestsOfAValidRunFailed) {
  RunRecord r;
  r.workload.model.name = "m";
  r.workload.backend = "endpoint:http://h:1/v1";
  EndpointRecord e;
  e.requests_issued = 12;
  e.requests_failed = 3;
  e.failures = {{"http_500", 3}};
  r.endpoint = e;
  std::string text;
  ASSERT_TRUE(FormatRuns({r}, "table", &text).ok());
  EXPECT_NE(text.find("3 of 12 requests failed (3 http_500), within --max-failure-ratio"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace cb

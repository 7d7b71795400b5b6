#include "results/formats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "results/record_json.h"
#include "tests/unit/record_testing.h"

namespace cb {
namespace {

using fixtures::InvalidRecord;
using fixtures::PopulatedRecord;
using Row = std::map<std::string, std::string>;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

std::string Render(const std::vector<RunRecord>& runs, const std::string& format) {
  std::string out;
  const Status s = FormatRuns(runs, format, &out);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

/// Parses the aligned text table by the column spans of its rule line (so a misaligned cell
/// shows up as a wrong value). Returns one map header -> cell per run.
std::vector<Row> ParseTable(const std::string& text, std::vector<std::string>* notes) {
  const std::vector<std::string> lines = Lines(text);
  EXPECT_GE(lines.size(), 2u);
  const std::string& rule = lines[1];
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t i = 0; i < rule.size();) {
    if (rule[i] != '-') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < rule.size() && rule[j] == '-') ++j;
    spans.emplace_back(i, j);
    i = j;
  }
  auto cell = [](const std::string& line, std::pair<size_t, size_t> span) {
    if (span.first >= line.size()) return std::string();
    // Spans are separated by two spaces; nothing of a cell may spill into them.
    if (span.second < line.size()) {
      EXPECT_EQ(line[span.second], ' ') << line;
    }
    return Trim(line.substr(span.first, span.second - span.first));
  };
  std::vector<std::string> headers;
  for (auto span : spans) headers.push_back(cell(lines[0], span));
  std::vector<Row> rows;
  size_t i = 2;
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    Row row;
    for (size_t c = 0; c < spans.size(); ++c) row[headers[c]] = cell(lines[i], spans[c]);
    rows.push_back(row);
  }
  for (++i; i < lines.size(); ++i) notes->push_back(lines[i]);
  return rows;
}

/// Splits a markdown table row on unescaped pipes.
std::vector<std::string> MdCells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cur;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size()) {
      cur += line.substr(i, 2);
      ++i;
    } else if (line[i] == '|') {
      cells.push_back(Trim(cur));
      cur.clear();
    } else {
      cur += line[i];
    }
  }
  // A row is "| a | b |": drop the empty strings before the first and after the last pipe.
  EXPECT_TRUE(!cells.empty() && cells.front().empty() && Trim(cur).empty()) << line;
  cells.erase(cells.begin());
  return cells;
}

/// RFC 4180 reader.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      EXPECT_TRUE(field.empty()) << "quote inside an unquoted field";
      quoted = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
    } else if (c == '\n') {
      row.push_back(field);
      field.clear();
      rows.push_back(row);
      row.clear();
    } else {
      field += c;
    }
  }
  EXPECT_FALSE(quoted);
  EXPECT_TRUE(row.empty() && field.empty()) << "last line not terminated";
  return rows;
}

std::vector<Row> CsvRows(const std::string& text) {
  const auto table = ParseCsv(text);
  std::vector<Row> rows;
  for (size_t i = 1; i < table.size(); ++i) {
    EXPECT_EQ(table[i].size(), table[0].size()) << "row " << i;
    Row row;
    for (size_t c = 0; c < table[0].size() && c < table[i].size(); ++c) {
      row[table[0][c]] = table[i][c];
    }
    rows.push_back(row);
  }
  return rows;
}

/// A simulated run: modelled figures, one metric missing.
RunRecord SimRecord() {
  RunRecord r = PopulatedRecord();
  r.workload.backend = "sim";
  r.device.backend = "sim";
  r.device.name = "Ascend 910B";
  r.device.simulated = true;
  r.extrapolated = false;
  r.layers_run = 16;
  r.workload.layers = 0;
  r.verification.status = "not_run";
  for (Metric& m : r.metrics) m.how = Provenance::kModelled;
  std::erase_if(r.metrics, [](const Metric& m) { return m.name == "ttft_seconds"; });
  for (Metric& m : r.metrics) {
    if (m.name == "prefill_tokens_per_second") m.value = 1234567.8;
    if (m.name == "decode_tokens_per_second") m.value = 0.04567;
  }
  return r;
}

TEST(FormatsTest, TableShowsAQuantisedRunsPrecisionAndAccuracy) {
  RunRecord q = PopulatedRecord();
  q.workload.dtype = DType::kFP8;
  q.precision = "fp8 (weight-only)";
  q.accuracy = AccuracyRecord{"bf16", 12, 0.9166, 0.0031};
  std::vector<std::string> notes;
  const std::vector<Row> rows = ParseTable(Render({q, PopulatedRecord()}, "table"), &notes);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("dtype"), "fp8 (weight-only)");
  EXPECT_EQ(rows[0].at("accuracy vs bf16"), "top1 92% KL 0.0031");
  EXPECT_EQ(rows[1].at("accuracy vs bf16"), "-");
  const std::string csv = Render({q}, "csv");
  EXPECT_NE(csv.find("accuracy_top1_agreement"), std::string::npos);
  EXPECT_NE(csv.find("fp8 (weight-only)"), std::string::npos);
}

TEST(FormatsTest, TableShowsFiguresMarksAndStatus) {
  std::vector<std::string> notes;
  const std::string text = Render({PopulatedRecord(), InvalidRecord(), SimRecord()}, "table");
  const std::vector<Row> rows = ParseTable(text, &notes);
  ASSERT_EQ(rows.size(), 3u) << text;

  const Row& ok = rows[0];
  EXPECT_EQ(ok.at("model"), "llama-3.2-1b");
  EXPECT_EQ(ok.at("backend"), "cpu");
  EXPECT_EQ(ok.at("device"), "AMD EPYC 9654 (2 cores) (sim)");
  EXPECT_EQ(ok.at("dtype"), "fp16");
  EXPECT_EQ(ok.at("scenario"), "offline-x");  // the fixture's scenario, as given
  EXPECT_EQ(ok.at("batch"), "8");
  EXPECT_EQ(ok.at("prompt/gen"), "512/64");
  EXPECT_EQ(ok.at("layers"), "4/16*");
  EXPECT_EQ(ok.at("status"), "ok");
  EXPECT_EQ(ok.at("how"), "measured");  // the decode throughput's provenance
  EXPECT_EQ(ok.at("prefill tok/s"), "12346");
  EXPECT_EQ(ok.at("decode tok/s"), "45.7");
  EXPECT_EQ(ok.at("TTFT p50 ms"), "12.3");
  EXPECT_EQ(ok.at("TTFT p99 ms"), "45.6");
  EXPECT_EQ(ok.at("TPOT p50 ms"), "4.57~");
  EXPECT_EQ(ok.at("TPOT p99 ms"), "6.12~");
  EXPECT_EQ(ok.at("MFU prefill %"), "45.7");
  EXPECT_EQ(ok.at("MBU decode %"), "78.9~");
  EXPECT_EQ(ok.at("verify"), "passed");

  const Row& bad = rows[1];
  EXPECT_EQ(bad.at("model"), "qwen3-0.6b");
  EXPECT_EQ(bad.at("status"), "INVALID");
  EXPECT_EQ(bad.at("layers"), "16");
  EXPECT_EQ(bad.at("verify"), "FAILED");
  for (const char* col : {"prefill tok/s", "decode tok/s", "TTFT p50 ms", "TTFT p99 ms",
                          "TPOT p50 ms", "TPOT p99 ms", "MFU prefill %", "MBU decode %"}) {
    EXPECT_EQ(bad.at(col), "-") << col;
  }

  const Row& sim = rows[2];
  EXPECT_EQ(sim.at("device"), "Ascend 910B (sim)");
  EXPECT_EQ(sim.at("how"), "modelled");
  EXPECT_EQ(bad.at("how"), "-");
  EXPECT_EQ(sim.at("prefill tok/s"), "1234568^");
  EXPECT_EQ(sim.at("decode tok/s"), "0.0457^");
  EXPECT_EQ(sim.at("TTFT p50 ms"), "-");
  EXPECT_EQ(sim.at("TTFT p99 ms"), "-");
  EXPECT_EQ(sim.at("verify"), "not run");

  ASSERT_GE(notes.size(), 3u) << text;
  EXPECT_NE(notes[0].find("measured unless marked: ~ extrapolated, ^ modelled"), std::string::npos);
  EXPECT_EQ(notes[1], "* extrapolated from 4 of 16 layers (per-layer time x 16/4)");
  EXPECT_EQ(notes[2],
            "run 2 (qwen3-0.6b, cpu): INVALID: verification failed: max rel error 0.5 > "
            "tolerance 0.02");
}

TEST(FormatsTest, TableNamesSkewedMoeRouting) {
  RunRecord skewed = PopulatedRecord();
  skewed.workload.model.moe.num_experts = 8;
  skewed.workload.model.moe.experts_per_token = 2;
  skewed.workload.model.moe.expert_ffn_size = 32;
  skewed.workload.model.routing_zipf_s = 1.5;
  RunRecord uniform = skewed;
  uniform.workload.model.routing_zipf_s = 0;
  std::vector<std::string> notes;
  const std::vector<Row> rows = ParseTable(Render({uniform, skewed}, "table"), &notes);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("model"), "llama-3.2-1b");
  EXPECT_EQ(rows[1].at("model"), "llama-3.2-1b zipf:1.5");
}

TEST(FormatsTest, TableNamesTheScenarioAndTheServerLoad) {
  RunRecord open_loop = PopulatedRecord();
  open_loop.workload.scenario = "server";
  open_loop.workload.serving.rate = 20;
  RunRecord closed_loop = open_loop;
  closed_loop.workload.serving.rate = 0;
  closed_loop.workload.serving.concurrency = 8;
  RunRecord single = PopulatedRecord();
  single.workload.scenario = "single-stream";
  std::vector<std::string> notes;
  const std::vector<Row> rows =
      ParseTable(Render({open_loop, closed_loop, single}, "table"), &notes);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].at("scenario"), "server 20/s");
  EXPECT_EQ(rows[1].at("scenario"), "server c8");
  EXPECT_EQ(rows[2].at("scenario"), "single-stream");
}

TEST(FormatsTest, TableOfAnInvalidRunAloneShowsNoSpeeds) {
  std::vector<std::string> notes;
  RunRecord failed = InvalidRecord();
  failed.status = "failed";
  RunRecord skipped = InvalidRecord();
  skipped.status = "skipped";
  const auto rows = ParseTable(Render({failed, skipped}, "table"), &notes);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("status"), "FAILED");
  EXPECT_EQ(rows[1].at("status"), "SKIPPED");
  for (const Row& r : rows) {
    EXPECT_EQ(r.at("prefill tok/s"), "-");
    EXPECT_EQ(r.at("decode tok/s"), "-");
    EXPECT_EQ(r.at("TPOT p99 ms"), "-");
  }
  // No layer footnote when nothing is extrapolated.
  for (const std::string& n : notes) EXPECT_NE(n.rfind("* ", 0), 0u) << n;
}

TEST(FormatsTest, Markdown) {
  const std::string text = Render({PopulatedRecord(), InvalidRecord()}, "md");
  const std::vector<std::string> lines = Lines(text);
  ASSERT_GE(lines.size(), 4u) << text;
  const auto header = MdCells(lines[0]);
  const auto sep = MdCells(lines[1]);
  ASSERT_EQ(sep.size(), header.size());
  std::map<std::string, size_t> col;
  for (size_t c = 0; c < header.size(); ++c) col[header[c]] = c;
  ASSERT_TRUE(col.count("decode tok/s") && col.count("model") && col.count("layers"));
  EXPECT_EQ(sep[col["decode tok/s"]].back(), ':');  // numbers right-aligned
  EXPECT_NE(sep[col["model"]].back(), ':');
  for (const std::string& s : sep) EXPECT_NE(s.find("---"), std::string::npos) << s;

  const auto ok = MdCells(lines[2]);
  const auto bad = MdCells(lines[3]);
  ASSERT_EQ(ok.size(), header.size());
  ASSERT_EQ(bad.size(), header.size());
  EXPECT_EQ(ok[col["model"]], "llama-3.2-1b");
  EXPECT_EQ(ok[col["layers"]], "4/16\\*");  // escaped: no emphasis
  EXPECT_EQ(ok[col["decode tok/s"]], "45.7");
  EXPECT_EQ(ok[col["TPOT p50 ms"]], "4.57\\~");
  EXPECT_EQ(ok[col["MBU decode %"]], "78.9\\~");
  EXPECT_EQ(bad[col["status"]], "INVALID");
  EXPECT_EQ(bad[col["decode tok/s"]], "-");
  EXPECT_EQ(bad[col["prefill tok/s"]], "-");
  EXPECT_NE(text.find("\n- Figures are measured unless marked"), std::string::npos) << text;
  EXPECT_NE(text.find("\n- \\* extrapolated from 4 of 16 layers"), std::string::npos) << text;
}

TEST(FormatsTest, MarkdownEscapesPipes) {
  RunRecord r = PopulatedRecord();
  r.workload.model.name = "a|b";
  const std::vector<std::string> lines = Lines(Render({r}, "md"));
  const auto header = MdCells(lines[0]);
  const auto row = MdCells(lines[2]);
  ASSERT_EQ(row.size(), header.size());
  EXPECT_EQ(row[0], "a\\|b");
}

TEST(FormatsTest, CsvHasRawNumbersAndProvenance) {
  const std::string text = Render({PopulatedRecord(), InvalidRecord(), SimRecord()}, "csv");
  const auto table = ParseCsv(text);
  ASSERT_EQ(table.size(), 4u) << text;
  const std::vector<std::string>& header = table[0];
  auto has = [&](const std::string& h) {
    return std::find(header.begin(), header.end(), h) != header.end();
  };
  EXPECT_TRUE(has("decode_tokens_per_second_how"));
  EXPECT_TRUE(has("ttft_seconds_p99"));
  EXPECT_TRUE(has("harness_overhead_ratio"));
  EXPECT_FALSE(has("mfu_prefill_ratio_p50"));  // no distribution anywhere

  const std::vector<Row> rows = CsvRows(text);
  const Row& ok = rows[0];
  EXPECT_EQ(ok.at("run_id"), "20250131T020000Z-ab12cd");
  EXPECT_EQ(ok.at("status"), "ok");
  EXPECT_EQ(ok.at("model"), "llama-3.2-1b");
  EXPECT_EQ(ok.at("dtype"), "fp16");
  EXPECT_EQ(ok.at("layers_run"), "4");
  EXPECT_EQ(ok.at("model_layers"), "16");
  EXPECT_EQ(ok.at("extrapolated"), "true");
  EXPECT_EQ(ok.at("prefill_tokens_per_second"), "12345.678");
  EXPECT_EQ(ok.at("decode_tokens_per_second"), "45.678");
  EXPECT_EQ(ok.at("decode_tokens_per_second_how"), "measured");
  EXPECT_EQ(ok.at("ttft_seconds"), "0.0123");  // base unit: seconds, not ms
  EXPECT_EQ(ok.at("ttft_seconds_p99"), "0.0456");
  EXPECT_EQ(ok.at("ttft_seconds_count"), "5");
  EXPECT_EQ(ok.at("tpot_seconds_how"), "extrapolated");
  EXPECT_EQ(ok.at("mfu_prefill_ratio"), "0.4567");        // a ratio, not percent
  EXPECT_EQ(ok.at("prefill_flops_per_second"), "1e+12");  // shortest exact spelling
  EXPECT_EQ(ok.at("prefill_flops_per_second_how"), "modelled");
  EXPECT_EQ(ok.at("verification"), "passed");

  const Row& bad = rows[1];
  EXPECT_EQ(bad.at("status"), "invalid");
  EXPECT_EQ(bad.at("status_message"), InvalidRecord().status_message);
  EXPECT_EQ(bad.at("decode_tokens_per_second"), "");
  EXPECT_EQ(bad.at("decode_tokens_per_second_how"), "");
  EXPECT_EQ(bad.at("ttft_seconds_p50"), "");
  EXPECT_EQ(bad.at("verification"), "failed");

  const Row& sim = rows[2];
  EXPECT_EQ(sim.at("ttft_seconds"), "");  // missing metric
  EXPECT_EQ(sim.at("ttft_seconds_how"), "");
  EXPECT_EQ(sim.at("decode_tokens_per_second"), "0.04567");
  EXPECT_EQ(sim.at("decode_tokens_per_second_how"), "modelled");
  EXPECT_EQ(sim.at("simulated"), "true");
}

TEST(FormatsTest, CsvQuotesPerRfc4180) {
  RunRecord r = InvalidRecord();
  r.status_message = "bad, \"very\" bad\nsecond line";
  r.workload.model.name = "plain";
  r.device.name = "GPU, 80GB";
  const std::string text = Render({r}, "csv");
  EXPECT_NE(text.find(",\"bad, \"\"very\"\" bad\nsecond line\","), std::string::npos) << text;
  EXPECT_NE(text.find(",\"GPU, 80GB\","), std::string::npos) << text;
  EXPECT_NE(text.find(",plain,"), std::string::npos) << text;  // unquoted when not needed
  const std::vector<Row> rows = CsvRows(text);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("status_message"), r.status_message);
  EXPECT_EQ(rows[0].at("device"), "GPU, 80GB");
}

TEST(FormatsTest, CsvAddsColumnsForOtherMetrics) {
  RunRecord r = PopulatedRecord();
  r.metrics.push_back(
      fixtures::MakeMetric("energy_joules_per_token", "J/token", Provenance::kMeasured, 0.25));
  const std::vector<Row> rows = CsvRows(Render({r, PopulatedRecord()}, "csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("energy_joules_per_token"), "0.25");
  EXPECT_EQ(rows[1].at("energy_joules_per_token"), "");
}

TEST(FormatsTest, JsonIsAnArrayOfRecordDocuments) {
  const std::string text = Render({PopulatedRecord(), InvalidRecord()}, "json");
  const nlohmann::json doc = nlohmann::json::parse(text);
  ASSERT_TRUE(doc.is_array());
  ASSERT_EQ(doc.size(), 2u);
  EXPECT_EQ(doc[0], ToJson(PopulatedRecord()));
  EXPECT_EQ(doc[1]["run"]["status"], "invalid");
  // Invalid runs keep their figures in JSON.
  EXPECT_EQ(doc[1]["metrics"]["decode_tokens_per_second"]["value"], 45.678);
  // Pretty-printed; keys are sorted, so a record opens with ceiling_check (or ceilings).
  EXPECT_NE(text.find("\n  {\n    \"ceiling_check\""), std::string::npos);
  RunRecord back;
  EXPECT_TRUE(FromJson(doc[1], "stdin", &back).ok());
}

TEST(FormatsTest, EmptyInput) {
  EXPECT_EQ(Render({}, "json"), "[]\n");
  const auto csv = ParseCsv(Render({}, "csv"));
  ASSERT_EQ(csv.size(), 1u);
  EXPECT_EQ(csv[0][0], "run_id");
  std::vector<std::string> notes;
  EXPECT_TRUE(ParseTable(Render({}, "table"), &notes).empty());
}

TEST(FormatsTest, JsonLinesHoldOneResultDocumentPerLine) {
  const std::string text = Render({PopulatedRecord(), InvalidRecord()}, "jsonl");
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.push_back(text.substr(at, nl - at));
  }
  ASSERT_EQ(lines.size(), 2u) << text;
  EXPECT_EQ(nlohmann::json::parse(lines[0]), ToJson(PopulatedRecord()));
  EXPECT_EQ(nlohmann::json::parse(lines[1])["run"]["status"], "invalid");
}

TEST(FormatsTest, ShortenedAndUnstableRunsShowTheirStatusLabel) {
  RunRecord shortened = PopulatedRecord();
  shortened.validity = ValidityRecord{};
  shortened.validity->label = "shortened";
  RunRecord unstable = shortened;
  unstable.validity->label = "unstable";
  std::vector<std::string> notes;
  const auto rows = ParseTable(Render({shortened, unstable}, "table"), &notes);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("status"), "SHORTENED");
  EXPECT_EQ(rows[1].at("status"), "UNSTABLE");
}

TEST(FormatsTest, UnknownFormatIsInvalidInput) {
  std::string out = "untouched";
  const Status s = FormatRuns({PopulatedRecord()}, "xml", &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("'xml'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("table, md, csv, json, jsonl"), std::string::npos) << s.message();
  EXPECT_EQ(out, "untouched");
}

TEST(FormatsTest, ACostNotComputedSaysWhy) {
  RunRecord r = SimRecord();
  CostRecord c;
  c.basis = "none";
  c.notes = {"no rental price and no purchase price for x: give --price-per-hour",
             "devices: 4 simulated devices (tp 4) of x x 4"};
  r.cost = c;
  const std::string text = Render({r}, "table");
  EXPECT_NE(text.find("$/Mtok: not computed: no rental price"), std::string::npos) << text;
}

}  // namespace
}  // namespace cb
